"""``sam2-triton track``: follow objects through a video on a running server (sam2_video).

Prompts are given per frame and object; the video is tracked forward from the first prompted
frame and, if that is not frame 0, backward from it too, so every frame gets its masks. Writes
``masks/NNNNN.json`` (COCO RLE per object; ``--png`` adds a PNG per object), ``overlay.mp4``
and ``track.json`` (what was run) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from sam2_triton.cli.arguments import parse_box, parse_point

PROTOCOLS = ("grpc", "http")


def parse_prompt(text: str) -> tuple[int, int, tuple[float, float, int]]:
    """FRAME:OBJ:X,Y[,LABEL] -> (frame, object, point)."""
    frame, obj, point = _frame_obj(text, "X,Y[,LABEL]")
    return frame, obj, parse_point(point)


def parse_box_prompt(text: str) -> tuple[int, int, np.ndarray]:
    """FRAME:OBJ:X0,Y0,X1,Y1 -> (frame, object, box)."""
    frame, obj, box = _frame_obj(text, "X0,Y0,X1,Y1")
    return frame, obj, parse_box(box)


def _frame_obj(text: str, rest: str) -> tuple[int, int, str]:
    parts = text.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        return int(parts[0]), int(parts[1]), parts[2]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FRAME:OBJ:{rest}, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("track", help="track objects through a video on a running server")
    p.add_argument("video", type=Path, help="a video file (MP4, WebM, ...) or a folder of JPEGs")
    click = "FRAME:OBJ:X,Y[,LABEL] a click (label 1 fg, 0 bg), in video pixels"
    p.add_argument("--prompt", type=parse_prompt, action="append", default=[], help=click)
    box = "FRAME:OBJ:X0,Y0,X1,Y1 a box"
    p.add_argument("--box", type=parse_box_prompt, action="append", default=[], help=box)
    p.add_argument("--out", type=Path, required=True, help="folder for masks and overlay")
    p.add_argument("--png", action="store_true", help="also write a PNG mask per object")
    p.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    p.add_argument("--protocol", choices=PROTOCOLS, default="grpc")
    p.add_argument("--url", help="host:port (default 127.0.0.1:8001 grpc, :8000 http)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sam2_triton.cli.track_files import (
        MANIFEST,
        OVERLAY,
        claim_output,
        frame_record,
        read_frames,
        write_frame,
        write_overlay,
    )
    from sam2_triton.clients.video import VideoClient

    prompts = _grouped(args.prompt, args.box)
    if not prompts:
        raise ValueError("give at least one --prompt or --box")
    claim_output(args.out)
    started = time.perf_counter()
    with VideoClient(args.url, args.protocol) as client:
        answer = client.start_path(args.video)
        sid, num_frames = answer.session_id, answer.num_frames
        print(f"video: {num_frames} frames, {answer.video_size[1]}x{answer.video_size[0]}")
        try:
            for (frame, obj), (points, labels, box) in sorted(prompts.items()):
                client.add_points(sid, frame, obj, points, labels, box)
            first = min(frame for frame, _ in prompts)
            records: dict[int, dict] = {}
            with tqdm(total=num_frames + (first > 0), unit="frame", desc="tracking") as bar:
                for one in client.track_video(sid, first, output_format="rle"):
                    record = frame_record(one.frame_indices[0], one.obj_ids, one.encoded_masks)
                    write_frame(args.out, record, args.png)
                    records[record["frame"]] = record
                    bar.update(1)
        finally:
            client.close_session(sid)
    seconds = time.perf_counter() - started
    overlay_frames = 0
    if not args.no_overlay:
        frames, fps = read_frames(args.video)
        overlay_frames = write_overlay(args.out / OVERLAY, frames, records, fps)
    manifest = {
        "video": str(args.video),
        "num_frames": num_frames,
        "prompts": [
            {
                "frame": f,
                "obj_id": o,
                "points": p.tolist() if p is not None else None,
                "labels": lab.tolist() if lab is not None else None,
                "box": b.tolist() if b is not None else None,
            }
            for (f, o), (p, lab, b) in sorted(prompts.items())
        ],  # fmt: skip
        "frames_tracked": len(records),
        "seconds": round(seconds, 2),
        "overlay_frames": overlay_frames,
    }
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    print(
        f"tracked {len(records)} frames in {seconds:.1f} s "
        f"({len(records) / max(seconds, 1e-9):.2f} frames/s): {args.out}"
    )
    return 0


def _grouped(points: list, boxes: list) -> dict[tuple[int, int], tuple]:
    """(frame, object) -> (points [N, 2] | None, labels [N] | None, box | None)."""
    clicks: dict[tuple[int, int], list] = defaultdict(list)
    for frame, obj, point in points:
        clicks[frame, obj].append(point)
    box_of = {}
    for frame, obj, box in boxes:
        if (frame, obj) in box_of:
            raise ValueError(f"two boxes for object {obj} on frame {frame}")
        box_of[frame, obj] = box
    grouped = {}
    for key in set(clicks) | set(box_of):
        pts = clicks.get(key)
        coords = np.array([p[:2] for p in pts], np.float32) if pts else None
        labels = np.array([p[2] for p in pts], np.int32) if pts else None
        grouped[key] = (coords, labels, box_of.get(key))
    return grouped
