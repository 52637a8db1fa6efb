"""Tracking as a person sees it in the web app, against ``sam2-triton track``'s own loop on the
same clip and server; and the hover preview against a click (issue 33).

    .venv/bin/python benchmarks/ui_video.py --export-dir EXPORT_WITH_VIDEO [--frames 12]

One embedded server (the video tracker on), ``sam2-triton ui`` against it over gRPC, Debian's
chromium (Playwright). A synthetic 640 x 480 clip of moving shapes (MP4). The page opens it,
one click on frame 0, Track: its figure is frames drawn per second, from the Track click to
the last frame drawn (the page's own ``performance.now`` stamps). The CLI's figure is
``VideoClient.track_video`` as ``sam2-triton track`` runs it (each frame's record written to
disk), timed over the same propagation, with the same click, on the same server. Goal: the
page at least 0.9 of the CLI. Hover: over ``--hovers`` positions, the time from the pointer's
last move to the preview drawn (``REST_MS`` of waiting included), against a click's
pointer-to-mask time at new positions. Medians. Writes ``ui_video.json`` next to the export.
Not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/

from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.cli.track_files import claim_output, frame_record, write_frame  # noqa: E402
from sam2_triton.clients.video import VideoClient  # noqa: E402
from sam2_triton.repository.options import ServingOptions  # noqa: E402
from tests.ui_browser import App, chromium, gateway  # noqa: E402

CLICK = (200.0, 260.0)  # on the red square of frame 0 (video_tracking.write_video's shapes)


def write_clip(folder: Path, frames: int) -> Path:
    import av

    rng = np.random.default_rng(0)
    background = rng.integers(60, 120, (480, 640, 3)).astype(np.uint8)
    path = folder / "clip.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for t in range(frames):
            frame = background.copy()
            frame[200:320, 140 + 12 * t : 260 + 12 * t] = (220, 30, 30)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def cli_fps(url: str, clip: Path, out: Path) -> tuple[float, int]:
    """``sam2-triton track``'s loop, timed over the propagation alone."""
    claim_output(out)
    with VideoClient(url, "grpc") as client:
        sid = client.start_path(clip).session_id
        client.add_points(sid, 0, 1, [CLICK], [1])
        start = time.perf_counter()
        count = 0
        for one in client.track_video(sid, 0, output_format="rle"):
            record = frame_record(one.frame_indices[0], one.obj_ids, one.encoded_masks)
            write_frame(out, record, png=False)
            count += 1
        seconds = time.perf_counter() - start
        client.close_session(sid)
    return count / seconds, count


def page_figures(url: str, clip: Path, hovers: int) -> dict:
    rng = np.random.default_rng(1)
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(600_000)
        app = App(context.new_page(), url)
        page = app.page
        page.set_input_files("#file", str(clip))
        page.wait_for_selector("body[data-video-id]")
        page.mouse.click(*app.at(CLICK[0] / 640, CLICK[1] / 480))
        page.wait_for_function("() => window.sam2ui.video.stats.prompts == 1")
        page.click("#track")
        page.wait_for_function("() => window.sam2ui.video.stats.passes == 1 && "
                               "!window.sam2ui.video.tracking")  # fmt: skip
        page.wait_for_timeout(500)  # the last frame's draw
        stamps = page.evaluate("window.sam2ui.video.stamps")
        frames = len(stamps) - 1
        page_fps = frames / ((stamps[-1] - stamps[0]) / 1e3)

        # hover and clicks on an image: the clip's first frame as a PNG
        image = clip.with_suffix(".png")
        import av
        from PIL import Image

        with av.open(str(clip)) as container:
            first = next(container.decode(video=0)).to_ndarray(format="rgb24")
        Image.fromarray(first).save(image)
        page.set_input_files("#file", str(image))
        page.wait_for_selector("body[data-image-id]")
        for k in range(hovers):
            fx, fy = rng.uniform(0.1, 0.9, 2)
            page.mouse.move(*app.at(fx, fy))
            page.wait_for_function(f"() => window.sam2ui.hover.restToShownMs.length > {k}")
        rest = page.evaluate("window.sam2ui.hover.restToShownMs")
        page.keyboard.press("n")
        for k in range(hovers):
            fx, fy = rng.uniform(0.1, 0.9, 2)
            page.mouse.click(*app.at(fx, fy))  # the pointer moves and clicks at once
            app.wait_answers(k + 1)
            page.keyboard.press("n")
        clicks = [x["browser_ms"] for x in page.evaluate("window.sam2ui.state.latencies")]
        context.close()
    return {
        "page_fps": round(page_fps, 2),
        "page_frames": frames,
        "hover_rest_to_preview_ms": round(float(np.median(rest)), 1),
        "click_to_mask_ms": round(float(np.median(clicks)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, required=True)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--hovers", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        clip = write_clip(Path(folder), args.frames)
        options = ServingOptions(video=True)
        with (
            bench_server(args.export_dir, ROOT / "build" / "ui-video-bench", options) as server,
            gateway(server.grpc_url) as url,
        ):
            page = page_figures(url, clip, args.hovers)
            fps, count = cli_fps(server.grpc_url, clip, Path(folder) / "track")
    report = {
        "machine": machine.summary(),
        "frames": args.frames,
        **page,
        "cli_fps": round(fps, 2),
        "cli_frames": count,
        "page_over_cli": round(page["page_fps"] / fps, 3),
        "goal": 0.9,
    }
    out = args.export_dir / "ui_video.json"
    out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
