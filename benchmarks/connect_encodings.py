"""The gateway's own work on a click's answer, in process: each labelling tool's encoding made
from what sam2_session answered, timed apart from any traffic.

    .venv/bin/python benchmarks/connect_encodings.py [--export-dir exports/tiny] [--clicks 15]

One embedded server; the images and click points of ``connect_latency.py`` (same seed). For
each click, sam2_session's best candidate as the gateway asks for it (COCO RLE, or polygons for
X-AnyLabeling), then, each the median of 7 runs: Label Studio's brush (``brush.coco_to_rle``:
the COCO counts read, the brush runs and bytes) and its JSON (``answers.bytes_json``); CVAT's
interactor answer (``runs.decode``, ``cvat.crop``, ``answers.digits_json``); X-AnyLabeling's
outer rings (``service.outer_rings``). Prints medians over the clicks and the masks' COCO run
counts (random weights make ragged masks: many more runs than a real object's). The gateway's
``json.loads`` of the small RLE record is left out. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.connect_latency import images  # noqa: E402
from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.clients.image import SegmentClient  # noqa: E402
from sam2_triton.connect import runs  # noqa: E402
from sam2_triton.connect.answers import bytes_json, digits_json  # noqa: E402
from sam2_triton.connect.brush import coco_to_rle  # noqa: E402
from sam2_triton.connect.cvat import crop  # noqa: E402
from sam2_triton.connect.service import outer_rings  # noqa: E402


def timed(work: Callable[[], object], repeats: int = 7) -> float:
    """The median of ``repeats`` runs of ``work``, in ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))


def best(client: SegmentClient, image_id: str, point, fmt: str) -> bytes:
    """sam2_session's best of three candidates for a lone click, as the gateway asks."""
    answer = client.click(image_id, np.array([point], np.float32), np.array([1], np.int32),
                          multimask_output=True, output_format=fmt, with_masks=False)  # fmt: skip
    return answer.encoded_masks[int(np.argmax(answer.iou_scores.reshape(-1)))]


def interactor(record: dict) -> None:
    cropped, bounds = crop(runs.decode(record).view(bool))
    digits_json(cropped, b'{"mask":', b',"bounds":' + json.dumps(bounds).encode() + b"}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--clicks", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)  # connect_latency's points
    figures: dict[str, dict[str, float]] = {}
    with bench_server(args.export_dir, ROOT / "build" / "connect-bench") as server:
        with SegmentClient(server.grpc_url, "grpc") as client:
            for key, data in images().items():
                with Image.open(io.BytesIO(data)) as image:
                    size = image.size
                points = [rng.uniform(0.1, 0.9, 2) * size for _ in range(args.clicks)]
                image_id = client.embed(data)
                rows: dict[str, list[float]] = {}
                for point in points:
                    record = json.loads(best(client, image_id, point, "rle"))
                    brush = coco_to_rle(record)
                    polygons = best(client, image_id, point, "polygons")
                    measured = {
                        "coco runs": float(runs.checked_counts(record)[0].size),
                        "LS counts": timed(partial(runs.checked_counts, record)),
                        "LS brush": timed(partial(coco_to_rle, record)),
                        "LS json": timed(partial(bytes_json, brush)),
                        "CVAT mask": timed(partial(interactor, record)),
                        "XAL rings": timed(partial(outer_rings, polygons)),
                    }
                    for name, value in measured.items():
                        rows.setdefault(name, []).append(value)
                figures[key] = {name: float(np.median(v)) for name, v in rows.items()}
    host = machine.summary()
    print(f"{host['cpu']}, {host['cores']} cores; medians over {args.clicks} clicks; times in ms")
    names = list(next(iter(figures.values())))
    print(f"{'image':>10s}" + "".join(f"{n:>11s}" for n in names))
    for key, row in figures.items():
        print(f"{key:>10s}" + "".join(f"{row[n]:11.1f}" for n in names))


if __name__ == "__main__":
    main()
