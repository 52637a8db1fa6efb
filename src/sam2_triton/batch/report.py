"""The static report of a batch OUT_DIR: index.html, one overlay per image, two plots.

The report covers every finished image of the folder (all runs); the plots cover the last run
that finished images (time per image, in completion order, and throughput versus the number of
images done). Overlays show at most ``MAX_SEGMENTS`` segments, largest first, so small ones stay
visible on top; they are re-rendered only when their annotation file is newer.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw

from sam2_triton.batch.store import ResultStore, atomic_write
from sam2_triton.image.encodings import rle_to_mask
from sam2_triton.image.polygons import polygons_to_mask
from sam2_triton.image.transforms import decode_image

MAX_SEGMENTS = 10
OVERLAY_MAX_SIDE = 768  # pixels: the report's images are previews, not results
ALPHA = 0.5


def _colours() -> np.ndarray:
    from matplotlib import colormaps

    return (np.array(colormaps["tab10"].colors[:MAX_SEGMENTS]) * 255).astype(np.float32)


def top_segments(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The annotations drawn on the overlay: the MAX_SEGMENTS largest, largest first."""
    annotations = sorted(document["annotations"], key=lambda a: a["area"], reverse=True)
    return annotations[:MAX_SEGMENTS]


def annotation_mask(annotation: dict[str, Any], size: tuple[int, int]) -> np.ndarray:
    """An annotation's mask, from its RLE or its polygons (and holes)."""
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        return polygons_to_mask(segmentation, annotation.get("holes", []), *size)
    return rle_to_mask(segmentation)


def render_overlay(image: bytes, document: dict[str, Any]) -> bytes:
    """JPEG of the image with its top segments tinted, outlined and their prompt points marked."""
    canvas = decode_image(image).astype(np.float32)
    colours = _colours()
    segments = top_segments(document)
    for k, annotation in enumerate(segments):
        mask = annotation_mask(annotation, canvas.shape[:2]).astype(bool)
        if mask.shape != canvas.shape[:2]:
            raise ValueError(
                f"mask size {mask.shape} does not match the image {canvas.shape[:2]}: "
                "the image changed since it was segmented"
            )
        canvas[mask] = (1 - ALPHA) * canvas[mask] + ALPHA * colours[k]
    picture = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    radius = max(3, round(max(picture.size) / 150))
    for k, annotation in enumerate(segments):
        colour = tuple(int(v) for v in colours[k])
        for x, y in annotation.get("point_coords", []):
            draw.ellipse(
                [x - radius, y - radius, x + radius, y + radius], fill=colour, outline="white"
            )
    picture.thumbnail((OVERLAY_MAX_SIDE, OVERLAY_MAX_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def _plotted_run(documents: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """This run's documents in completion order, or the latest run's if this one finished none."""
    runs = [d["sam2_triton"] for d in documents if "sam2_triton" in d]
    chosen = [r for r in runs if r["run_id"] == run_id]
    if not chosen and runs:
        latest = max(runs, key=lambda r: r["finished_at"])["run_id"]
        chosen = [r for r in runs if r["run_id"] == latest]
    return sorted(chosen, key=lambda r: r["finished_at"])


def write_plots(runs: list[dict[str, Any]], folder: Path) -> list[str]:
    """time_per_image.png and throughput.png for one run's records; returns the file names."""
    if not runs:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = np.arange(1, len(runs) + 1)
    seconds = np.array([r["seconds"] for r in runs])
    modes = [r["mode"] for r in runs]
    elapsed = np.array([r["finished_at"] - r["run_started_at"] for r in runs])
    written = []

    figure, axis = plt.subplots(figsize=(7, 3.5))
    colours = (("prompts", "tab:blue"), ("automatic", "tab:orange"), ("text", "tab:green"))
    for mode, colour in colours:
        chosen = [i for i, m in enumerate(modes) if m == mode]
        if chosen:
            axis.bar(count[chosen], seconds[chosen], color=colour, label=mode)
    axis.axhline(float(np.median(seconds)), color="black", linestyle="--", label="median")
    axis.set_xlabel("image (completion order)")
    axis.set_ylabel("seconds per image")
    axis.set_title("Time per image (request latency, client side)")
    axis.legend()
    written.append(_save(figure, folder / "time_per_image.png"))

    figure, axis = plt.subplots(figsize=(7, 3.5))
    axis.plot(count, count / np.maximum(elapsed, 1e-9), marker="o")
    axis.set_xlabel("images finished")
    axis.set_ylabel("images / s since the run started")
    axis.set_title("Throughput versus number of images")
    axis.set_ylim(bottom=0)
    written.append(_save(figure, folder / "throughput.png"))
    plt.close("all")
    return written


def _save(figure: Any, path: Path) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write(path, buffer.getvalue())
    return path.name


def write_report(store: ResultStore, input_dir: Path, summary: dict[str, Any]) -> Path:
    """Write OUT_DIR/report/ (a shard's: report.shard-I-of-N/, its images only) and return the
    path of its index.html."""
    folder = store.report
    folder.mkdir(parents=True, exist_ok=True)
    finished = list(store.finished())
    cards = []
    for name, document in finished:
        overlay = folder / "overlays" / f"{name}.jpg"
        problem = None
        source = store.annotation_path(name)
        if not overlay.exists() or overlay.stat().st_mtime < source.stat().st_mtime:
            try:
                atomic_write(overlay, render_overlay((input_dir / name).read_bytes(), document))
            except (OSError, ValueError) as error:
                problem = f"no overlay: {error}"
        cards.append(_card(name, document, overlay.relative_to(folder), problem))
    plots = write_plots(_plotted_run([d for _, d in finished], summary["run_id"]), folder)
    page = _page(summary, plots, list(store.failures()), cards)
    index = folder / "index.html"
    atomic_write(index, page.encode())
    return index


def _card(name: str, document: dict[str, Any], overlay: Path, problem: str | None) -> str:
    run = document.get("sam2_triton", {})
    rows = []
    for annotation in top_segments(document):
        label = annotation.get("label", f"#{annotation['id']}")
        rows.append(
            f"<li>{html.escape(str(label))}: IoU {annotation['predicted_iou']:.3f}, "
            f"{annotation['area']} px</li>"
        )
    picture = (
        f'<p class="error">{html.escape(problem)}</p>'
        if problem
        else f'<img loading="lazy" src="{quote(overlay.as_posix())}" alt="{html.escape(name)}">'
    )
    seconds = run.get("seconds")
    timing = f", {seconds:.2f} s" if seconds is not None else ""
    return (
        f"<figure>{picture}<figcaption><b>{html.escape(name)}</b> "
        f"({html.escape(str(run.get('mode', '?')))}, {len(document['annotations'])} masks"
        f"{timing})<ol>{''.join(rows)}</ol></figcaption></figure>"
    )


SUMMARY_ROWS = (
    ("images found", "images_found"),
    ("finished (all runs)", "finished_total"),
    ("finished this run", "finished_this_run"),
    ("skipped (already finished)", "skipped_already_finished"),
    ("failed this run", "failed_this_run"),
    ("not started (interrupted)", "not_started"),
    ("masks this run", "masks_this_run"),
    ("wall time this run (s)", "wall_seconds"),
    ("images / s this run", "images_per_second"),
)


def _page(
    summary: dict[str, Any], plots: list[str], failures: list[dict[str, Any]], cards: list[str]
) -> str:
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else html.escape(str(value))

    table = "".join(
        f"<tr><th>{label}</th><td>{cell(summary[key])}</td></tr>" for label, key in SUMMARY_ROWS
    )
    plot_tags = "".join(f'<img class="plot" src="{quote(p)}" alt="{p}">' for p in plots)
    failure_rows = "".join(
        f"<tr><td>{html.escape(f['file_name'])}</td><td>{html.escape(f['error'])}</td></tr>"
        for f in failures
    )
    failure_table = (
        f"<h2>Failed images ({len(failures)})</h2><table><tr><th>image</th><th>error</th></tr>"
        f"{failure_rows}</table>"
        if failures
        else ""
    )
    status = " (interrupted)" if summary["interrupted"] else ""
    if summary.get("shard"):
        status = f", shard {html.escape(summary['shard'])}{status}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>sam2-triton batch report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: 4px 8px; }}
th {{ text-align: left; }} .error {{ color: #b00; }} img.plot {{ max-width: 48%; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; max-width: 400px; }} figure img {{ max-width: 100%; }}
</style></head><body>
<h1>sam2-triton batch report</h1>
<p>{html.escape(summary["input_dir"])} &rarr; {html.escape(summary["out_dir"])}, server
{html.escape(summary["server"])} ({html.escape(summary["protocol"])}), run
{html.escape(summary["run_id"])}{status}</p>
<table>{table}</table>
<h2>Timing of the last run</h2>{plot_tags}
{failure_table}
<h2>Images ({len(cards)}), up to {MAX_SEGMENTS} segments each, largest first</h2>
<div class="grid">{"".join(cards)}</div>
</body></html>
"""
