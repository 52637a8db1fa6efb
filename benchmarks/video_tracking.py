"""Video tracking speed and memory: sam2_video served, against SAM2VideoPredictor in-process.

    .venv/bin/python benchmarks/video_tracking.py [--export-dir exports/tiny] [--frames 12]
        [--objects 1 3] [--precisions fp32 bf16] [--long 300]

The export needs the tracker's graphs (``sam2-triton export --video``). A synthetic 640 x 480
video of moving shapes is written as JPEG frames. For each object count, 1..k objects are
clicked on frame 0 and tracked over ``--frames`` frames:

- **served**: an embedded server per precision (``--cpu-precision``), the session started from
  the JPEG frames, propagation streamed over gRPC (``SAM2RemoteVideoPredictor``); the time runs
  from the call to the last frame received;
- **reference**: Meta's SAM2VideoPredictor in this process (PyTorch fp32 on the CPU; its memory
  attention handed float32 copies of its bfloat16 memories, as the tests do), same frames and
  clicks.

frames/s = frames tracked / seconds (frame 0, the prompted frame, included), and the ratio
served / reference. Then ``--long`` frames with one object on the last precision: the server's
memory (RSS of tritonserver and its stubs) every 25 frames, and the reference's RSS growth over
its ``--frames``. Writes ``video_tracking.json`` next to the export. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/video_helpers.py

from sam2_triton import SAM2RemoteVideoPredictor  # noqa: E402
from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.repository.options import ServingOptions  # noqa: E402
from sam2_triton.weights.variants import get_variant  # noqa: E402

WIDTH, HEIGHT = 640, 480
CLICKS = [(130.0, 200.0), (470.0, 120.0), (320.0, 400.0)]  # on the three shapes of frame 0


def write_video(folder: Path, frames: int) -> Path:
    """A square moving right, a disc moving down and a bar moving left on a textured ground."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ground = rng.integers(60, 120, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    for t in range(frames):
        frame = ground.copy()
        x = 80 + (4 * t) % 400
        frame[160:240, x : x + 100] = (220, 30, 30)
        frame[(yy - (120 + (3 * t) % 240)) ** 2 + (xx - 470) ** 2 < 50**2] = (30, 40, 230)
        bar = 420 - (5 * t) % 300
        frame[380:420, bar : bar + 140] = (40, 200, 60)
        Image.fromarray(frame).save(folder / f"{t}.jpg", quality=90)
    return folder


def track(predictor, state, objects: int, frames: int) -> float:
    """Seconds to propagate ``objects`` clicked objects over ``frames`` frames."""
    for obj in range(objects):
        predictor.add_new_points_or_box(
            state, frame_idx=0, obj_id=obj + 1, points=[CLICKS[obj]], labels=[1]
        )
    start = time.perf_counter()
    seen = sum(1 for _ in predictor.propagate_in_video(state, max_frame_num_to_track=frames - 1))
    seconds = time.perf_counter() - start
    assert seen == frames, (seen, frames)
    predictor.reset_state(state)
    return seconds


def served(args, video: Path, precision: str, work: Path) -> tuple[dict, list | None]:
    options = ServingOptions(
        video=True, cpu_precision=precision, video_max_frames=max(args.frames, args.long) + 1
    )
    figures, memory = {}, None
    with bench_server(args.export_dir, work / precision, options) as server:
        with SAM2RemoteVideoPredictor(server.grpc_url, "grpc") as predictor:
            state = predictor.init_state(video_path=str(video))
            for objects in args.objects:
                seconds = track(predictor, state, objects, args.frames)
                figures[objects] = {"seconds": seconds, "frames_per_s": args.frames / seconds}
                print(f"served {precision}, {objects} object(s): {args.frames / seconds:.3f} fps")
            predictor.close_state(state)
            if precision == args.precisions[-1] and args.long:
                memory = long_run(predictor, server, video)
    return figures, memory


def long_run(predictor, server, video: Path) -> list:
    """(frame, server RSS bytes) every 25 frames over the whole video, one object."""
    state = predictor.init_state(video_path=str(video))
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=1, points=[CLICKS[0]], labels=[1])
    samples = []
    for frame, _, _ in predictor.propagate_in_video(state):
        if frame % 25 == 0 or frame == state["num_frames"] - 1:
            samples.append((frame, machine.tree_memory_bytes(server.process.pid)[0]))
            print(f"  frame {frame}: server RSS {samples[-1][1] / 2**20:.0f} MiB", flush=True)
    predictor.close_state(state)
    return samples


def reference(args, video: Path) -> tuple[dict, dict]:
    import torch

    from tests.video_helpers import reference_video_predictor

    meta = json.loads((args.export_dir / "export.json").read_text())
    checkpoint = args.checkpoint or meta.get("saved_checkpoint") or meta.get("checkpoint")
    holder = type("Export", (), {"config": get_variant(meta["variant"]).config,
                                 "checkpoint": checkpoint})  # fmt: skip
    predictor = reference_video_predictor(holder)
    figures, rss = {}, {}
    with torch.inference_mode():
        state = predictor.init_state(video_path=str(video))
        for objects in args.objects:
            before = machine.tree_memory_bytes(os.getpid())[0]
            seconds = track(predictor, state, objects, args.frames)
            rss[objects] = machine.tree_memory_bytes(os.getpid())[0] - before
            figures[objects] = {"seconds": seconds, "frames_per_s": args.frames / seconds}
            print(f"reference, {objects} object(s): {args.frames / seconds:.3f} fps")
    return figures, rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--checkpoint", type=Path, help="default: the export's (export.json)")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--long", type=int, default=300, help="frames of the memory run (0: none)")
    args = parser.parse_args()
    if args.long and args.long < args.frames:
        raise SystemExit("--long must be 0 or at least --frames")
    args.precisions = machine.runnable_precisions(args.precisions)
    report: dict = {"machine": machine.summary(), "frames": args.frames, "served": {}}
    with tempfile.TemporaryDirectory() as folder:
        video = write_video(Path(folder) / "frames", max(args.frames, args.long))
        reference_figures, reference_rss = reference(args, short_copy(video, args.frames))
        report["reference"] = reference_figures
        report["reference_rss_growth_bytes"] = reference_rss
        for precision in args.precisions:
            figures, memory = served(args, video, precision, Path(folder))
            report["served"][precision] = figures
            if memory is not None:
                report["served_memory"] = {"precision": precision, "samples": memory}
    for figures in report["served"].values():
        for objects, fig in figures.items():
            fig["over_reference"] = fig["frames_per_s"] / reference_figures[objects]["frames_per_s"]
    out = args.export_dir / "video_tracking.json"
    out.write_text(json.dumps(report, indent=2))
    print_report(report)
    print(f"figures written to {out}")


def short_copy(video: Path, frames: int) -> Path:
    """The first ``frames`` JPEG frames in a folder of their own (the reference loads them all)."""
    folder = video.parent / f"first-{frames}"
    folder.mkdir()
    for t in range(frames):
        os.link(video / f"{t}.jpg", folder / f"{t}.jpg")
    return folder


def print_report(report: dict) -> None:
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {report['frames']} frames, {WIDTH}x{HEIGHT}")
    print(f"{'':>10s}{'objects':>8s}{'frames/s':>10s}{'x reference':>13s}")
    for objects, fig in report["reference"].items():
        print(f"{'reference':>10s}{objects:>8}{fig['frames_per_s']:10.3f}{'':>13s}")
    for precision, figures in report["served"].items():
        for objects, fig in figures.items():
            print(
                f"{precision:>10s}{objects:>8}{fig['frames_per_s']:10.3f}"
                f"{fig['over_reference']:13.2f}"
            )
    memory = report.get("served_memory")
    if memory:
        first, last = memory["samples"][0], memory["samples"][-1]
        print(
            f"server RSS over {last[0] + 1} frames ({memory['precision']}): "
            f"{first[1] / 2**20:.0f} MiB at frame {first[0]} -> {last[1] / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()
