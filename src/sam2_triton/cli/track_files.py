"""What ``sam2-triton track`` writes: one COCO-RLE JSON per frame (PNG masks optional) and an
overlay video of the frames with every object's mask in its colour, encoded by PyAV (FFmpeg).

The output folder is ours only if it is new, empty or holds the ``track.json`` of an earlier
run: anything else is refused, so a mistyped ``--out`` never overwrites someone's files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sam2_triton.image.encodings import mask_to_png, rle_to_mask

MANIFEST = "track.json"
MASKS_DIR = "masks"
OVERLAY = "overlay.mp4"
#: object colours (RGB), one per object in the order they were prompted (tab10)
COLOURS = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
     [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
    np.float32,
)  # fmt: skip
ALPHA = 0.5


class OutputFolderError(ValueError):
    """The output folder holds files this tool did not write."""


def claim_output(out: Path) -> None:
    """Make ``out`` ours: new, empty, or an earlier run's (its files are then replaced)."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise OutputFolderError(
            f"{out} is not empty and holds no {MANIFEST} of an earlier track run: "
            "choose a new or empty --out folder"
        )
    (out / MASKS_DIR).mkdir(parents=True, exist_ok=True)


def frame_record(frame: int, obj_ids: list[int], rles: list[bytes]) -> dict[str, Any]:
    """One frame's masks as written: {"frame", "objects": [{"obj_id", "segmentation": RLE,
    "area", "bbox"}]} (RLE as pycocotools encodes it; bbox COCO's x, y, w, h)."""
    objects = []
    for obj_id, raw in zip(obj_ids, rles, strict=True):
        record = json.loads(raw)
        objects.append(
            {
                "obj_id": obj_id,
                "segmentation": {"size": record["size"], "counts": record["counts"]},
                "area": record["area"],
                "bbox": record["bbox"],
            }
        )
    return {"frame": frame, "objects": objects}


def write_frame(out: Path, record: dict[str, Any], png: bool) -> None:
    folder = out / MASKS_DIR
    (folder / f"{record['frame']:05d}.json").write_text(json.dumps(record))
    if png:
        for obj in record["objects"]:
            mask = rle_to_mask(obj["segmentation"])
            name = f"{record['frame']:05d}_obj{obj['obj_id']}.png"
            (folder / name).write_bytes(mask_to_png(mask))


def overlay(rgb: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """The frame with each mask blended in its object's colour."""
    image = rgb.astype(np.float32)
    for k, mask in enumerate(masks):
        inside = mask.astype(bool)
        image[inside] = (1 - ALPHA) * image[inside] + ALPHA * COLOURS[k % len(COLOURS)]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_overlay(
    path: Path, frames: Iterator[np.ndarray], records: dict[int, dict], fps: float
) -> int:
    """An H.264 MP4 of the frames with their masks; frames without a record are as they are.
    Returns the frames written."""
    import av

    written = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for index, rgb in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=round(fps) or 25)
                stream.height, stream.width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
                stream.pix_fmt = "yuv420p"
            record = records.get(index, {"objects": []})
            masks = [rle_to_mask(o["segmentation"]) for o in record["objects"]]
            image = overlay(rgb, masks)[: stream.height, : stream.width]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
            written += 1
        if stream is not None:
            container.mux(stream.encode())
    return written


def read_frames(video: Path) -> tuple[Iterator[np.ndarray], float]:
    """The frames of a video file or a folder of JPEG frames (RGB), and the frame rate (25 for
    a folder)."""
    from PIL import Image

    from sam2_triton.clients.video import jpeg_frames

    if video.is_dir():
        paths = jpeg_frames(video)
        return (np.asarray(Image.open(p).convert("RGB")) for p in paths), 25.0
    import av

    container = av.open(str(video))
    stream = container.streams.video[0]
    fps = float(stream.average_rate or 25)

    def frames() -> Iterator[np.ndarray]:
        with container:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")

    return frames(), fps
