"""A click on a 12 MP photo against a click on a 0.24 MP one, per mask format, one server.

    .venv/bin/python benchmarks/big_photo_clicks.py [--export-dir exports/tiny] [--clicks 30]
        [--protocol grpc]

Both images are embedded first (``sam2_session``), so a click is one decoder run plus the masks'
post-processing and transfer. The 12 MP photo is ``coffee.jpg`` resized to 4000 x 3000 and saved
as a JPEG (a phone photo's size). Formats: raw, png, rle, rle at a display size (``mask_size``
1000 x 750) and logits (upsampled by the client). The clicks of both images and all formats
alternate, so drift hits them alike; ``big_to_small_rle`` = p50 of the 12 MP RLE click / p50 of
the 0.24 MP RLE click (goal <= 1.5). Random weights give masks as ragged as noise; so that the
cost of a real object's mask shows too, the post-processing alone (one mask's RLE at 12 MP,
``image.upsampling.mask_rle``) is also timed in this process on three kinds of logits: a disk
(an object), smooth blobs, and noise. Writes ``big_photo_clicks.json`` next to the export. Not a
test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sam2_triton.bench import machine
from sam2_triton.bench.server import bench_server
from sam2_triton.clients.image import SegmentClient

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
BIG = (4000, 3000)
FORMATS = {
    "raw": {},
    "png": {"output_format": "png"},
    "rle": {"output_format": "rle"},
    "rle_1000x750": {"output_format": "rle", "mask_size": (750, 1000)},
    "logits": {"output_format": "logits"},
}


def big_photo() -> bytes:
    with Image.open(IMAGE) as image:
        buffer = io.BytesIO()
        image.convert("RGB").resize(BIG, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def post_processing_ms(rounds: int = 5) -> dict[str, float]:
    """Median ms of one mask's RLE at 4000 x 3000 from three kinds of low-res logits."""
    from sam2_triton.image.upsampling import AxisWeights, mask_rle

    grid = np.hypot(*np.mgrid[-128:128, -128:128]).astype(np.float32)
    coarse = np.random.default_rng(1).standard_normal((16, 16)).astype(np.float32)
    kinds = {
        "disk": (40.0 - grid) / 4.0,
        "blobs": np.kron(coarse, np.ones((16, 16), np.float32)) * 3.0,
        "noise": np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32) * 0.1,
    }
    rows, cols = AxisWeights.of(BIG[1], 256), AxisWeights.of(BIG[0], 256)
    out = {}
    for name, logits in kinds.items():
        mask_rle(logits, rows, cols)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            mask_rle(logits, rows, cols)
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--clicks", type=int, default=30, help="clicks per image and format")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="grpc")
    args = parser.parse_args()

    images = {"0.24MP": IMAGE.read_bytes(), "12MP": big_photo()}
    points = {  # the same spot of the photo in both
        "0.24MP": np.array([[300.0, 200.0]], np.float32),
        "12MP": np.array([[2000.0, 1500.0]], np.float32),
    }
    label = np.array([1], np.int32)
    samples: dict[str, list[float]] = {}
    server = bench_server(args.export_dir, ROOT / "build" / "bench")
    with server:
        url = server.grpc_url if args.protocol == "grpc" else server.http_url
        with SegmentClient(url, args.protocol) as client:
            ids = {name: client.embed(data) for name, data in images.items()}
            for round_index in range(args.clicks + 2):  # 2 warm-up rounds
                for name, image_id in ids.items():
                    for fmt, options in FORMATS.items():
                        start = time.perf_counter()
                        client.click(image_id, points[name], label, **options)
                        if round_index >= 2:
                            key = f"{name} {fmt}"
                            samples.setdefault(key, []).append(time.perf_counter() - start)
    p50 = {key: float(np.median(values) * 1e3) for key, values in samples.items()}
    report = {
        "machine": machine.summary(),
        "model": json.loads((args.export_dir / "export.json").read_text()).get("variant"),
        "protocol": args.protocol,
        "clicks": args.clicks,
        "p50_ms": p50,
        "big_to_small_rle": p50["12MP rle"] / p50["0.24MP rle"],
        "one_mask_rle_12mp_ms": post_processing_ms(),
    }
    out = args.export_dir / "big_photo_clicks.json"
    out.write_text(json.dumps(report, indent=2))
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {report['model']}, {args.protocol}")
    print(f"{'format':16s}{'0.24 MP p50 ms':>16s}{'12 MP p50 ms':>16s}{'ratio':>8s}")
    for fmt in FORMATS:
        small, big = p50[f"0.24MP {fmt}"], p50[f"12MP {fmt}"]
        print(f"{fmt:16s}{small:16.1f}{big:16.1f}{big / small:8.2f}")
    print(f"12 MP / 0.24 MP click with RLE: {report['big_to_small_rle']:.2f} (goal <= 1.5)")
    costs = ", ".join(f"{k} {v:.1f} ms" for k, v in report["one_mask_rle_12mp_ms"].items())
    print(f"one mask's RLE at 12 MP, in this process: {costs}")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
