"""Click-to-mask latency as a person sees it in the web app, against sam2_session's own click.

    .venv/bin/python benchmarks/ui_latency.py [--export-dir exports/tiny] [--clicks 15]

One embedded server, ``sam2-triton ui`` against it over gRPC, and Debian's chromium (Playwright)
at 1280 x 800. For each image (the bundled 600 x 400 sample and the same photo upscaled to
12 MP) the page opens it, then ``clicks`` lone clicks, each on a new object, waiting for each
mask to be drawn: the browser's figure runs from the pointer event to the mask painted on the
canvas (the gateway, RLE decoding and drawing included). The same clicks are then sent straight
to sam2_session with ``SegmentClient`` (gRPC, RLE masks, three candidates: the gateway's
request). Medians; ``browser_over_session`` = browser / direct. Writes ``ui_latency.json``
next to the export. Not a test.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ui_browser.py

from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.clients.image import SegmentClient  # noqa: E402
from tests.ui_browser import App, chromium, gateway  # noqa: E402

SAMPLE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"


def images(folder: Path) -> list[Path]:
    big = folder / "coffee-12mp.jpg"
    with Image.open(SAMPLE) as image:
        image.resize((4240, 2827), Image.Resampling.LANCZOS).save(big, quality=92)
    return [SAMPLE, big]


def clicks(count: int) -> list[tuple[float, float]]:
    rng = np.random.default_rng(0)
    return [tuple(float(v) for v in rng.uniform(0.1, 0.9, 2)) for _ in range(count)]


def browser_clicks(app: App, path: Path, positions: list) -> tuple[str, list[dict], list]:
    app.open_file(path)
    app.page.wait_for_selector("body[data-image-id]")
    image_id = app.state("s.state.image.id")
    for k, (fx, fy) in enumerate(positions):
        app.page.keyboard.press("n")
        app.click(fx, fy)
        app.wait_answers(k + 1)
    points = [o["points"][0] for o in app.state("s.annotations.objects")]
    return image_id, app.state("s.state.latencies"), points


def direct_clicks(client: SegmentClient, image_id: str, points: list) -> list[float]:
    times = []
    for point in points:
        start = time.perf_counter()
        client.click(
            image_id,
            np.array([point], np.float32),
            np.array([1], np.int32),
            multimask_output=True,
            output_format="rle",
        )
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--clicks", type=int, default=15)
    args = parser.parse_args()
    results = {}
    positions = clicks(args.clicks)
    with (
        tempfile.TemporaryDirectory() as folder,
        bench_server(args.export_dir, ROOT / "build" / "ui-bench") as server,
        gateway(server.grpc_url) as url,
        chromium() as browser,
        SegmentClient(server.grpc_url, "grpc") as client,
    ):
        for path in images(Path(folder)):
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            app = App(context.new_page(), url)
            image_id, latencies, points = browser_clicks(app, path, positions)
            context.close()
            direct = direct_clicks(client, image_id, points)
            with Image.open(io.BytesIO(path.read_bytes())) as image:
                size = image.size
            browser_ms = float(np.median([t["browser_ms"] for t in latencies]))
            session_ms = float(np.median(direct))
            results[f"{size[0]}x{size[1]}"] = {
                "browser_click_to_mask_ms": browser_ms,
                "gateway_ms": float(np.median([t["gateway_ms"] for t in latencies])),
                "gateway_server_call_ms": float(np.median([t["server_ms"] for t in latencies])),
                "session_click_ms": session_ms,
                "browser_over_session": browser_ms / session_ms,
            }
    report = {
        "machine": machine.summary(),
        "model": json.loads((args.export_dir / "export.json").read_text()).get("variant"),
        "clicks": args.clicks,
        "images": results,
    }
    out = args.export_dir / "ui_latency.json"
    out.write_text(json.dumps(report, indent=2))
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {report['model']}; medians of {args.clicks}")
    print(f"{'image':>11s}{'browser ms':>12s}{'gateway ms':>12s}{'session ms':>12s}{'ratio':>8s}")
    for name, r in results.items():
        print(
            f"{name:>11s}{r['browser_click_to_mask_ms']:12.1f}{r['gateway_ms']:12.1f}"
            f"{r['session_click_ms']:12.1f}{r['browser_over_session']:8.2f}"
        )
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
