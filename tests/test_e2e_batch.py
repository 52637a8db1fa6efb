"""sam2-triton batch through a real tritonserver: a folder of prompted, unprompted and broken
images, killed (SIGKILL) and interrupted (Ctrl-C) mid-run, then resumed; nothing is lost, nothing
is done twice, the prompted masks match SAM2ImagePredictor, and the report files are written."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sam2_triton.image.encodings import rle_to_mask
from sam2_triton.image.polygons import polygons_to_mask
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

AUTOMATIC = ["points_per_side=4", "pred_iou_thresh=0.0", "stability_score_thresh=0.0"]


def _encode(rgb: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, fmt)
    return buffer.getvalue()


def make_folder(root: Path) -> tuple[Path, Path, dict[str, bytes]]:
    """7 images (2 in a subfolder, one with a space in its name), a broken one, prompts for 4."""
    coffee = skimage.data.coffee()
    astronaut = skimage.data.astronaut()
    images = {
        "coffee.jpg": _encode(coffee[::2, ::2], "JPEG"),
        "astronaut.png": _encode(astronaut[::3, ::3], "PNG"),
        "wide crop.png": _encode(coffee[100:200, :], "PNG"),
        "sub/tall.png": _encode(astronaut[:, 200:300], "PNG"),
        "sub/auto.jpg": _encode(astronaut[::4, ::4], "JPEG"),
        "auto2.png": _encode(coffee[::3, ::3], "PNG"),
        "small.png": _encode(coffee[:64, :96], "PNG"),
    }
    folder = root / "in"
    for name, data in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    prompts = {
        "coffee.jpg": {"cup": [[150, 100]], "saucer": [[60, 150], [240, 160]]},
        "astronaut.png": {"face": {"points": [[85, 60], [30, 150]], "labels": [1, 0]}},
        "wide crop.png": {"left": {"box": [10, 10, 200, 90]}},
        "sub/tall.png": {"arm": {"points": [[50, 300]], "box": [0, 200, 99, 500]}},
        "not-there.png": {"x": [[1, 1]]},
    }
    prompts_path = root / "prompts.json"
    prompts_path.write_text(json.dumps(prompts))
    return folder, prompts_path, images


def batch_command(triton, folder: Path, prompts: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "sam2_triton.cli", "batch", str(folder), "--prompts", str(prompts),
        "--out", str(out), "--url", triton.http_url, "--concurrency", "2",
        *[arg for value in AUTOMATIC for arg in ("--automatic", value)],
    ]  # fmt: skip


def finished(out: Path) -> dict[str, dict]:
    folder = out / "annotations"
    if not folder.exists():
        return {}
    return {
        p.relative_to(folder).as_posix()[: -len(".json")]: json.loads(p.read_text())
        for p in folder.rglob("*.json")
    }


def run_until(command: list[str], out: Path, more_than: int, sig: int) -> tuple[int, str]:
    """Start a batch run, send ``sig`` once more than ``more_than`` images are finished."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Ctrl-C as a terminal sends it, even when this suite was started in the background
        # (a shell's background job inherits SIGINT ignored, and Python then keeps ignoring it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 300
    while len(finished(out)) <= more_than and process.poll() is None:
        assert time.monotonic() < deadline, "batch run made no progress"
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(sig)
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def test_batch_resumes_after_kill_and_ctrl_c_without_loss_or_duplicates(
    triton, reference, tmp_path
):
    folder, prompts, images = make_folder(tmp_path)
    out = tmp_path / "out"
    command = batch_command(triton, folder, prompts, out)

    # 1. killed outright: whatever exists is whole, the rest is simply missing
    code, _ = run_until(command, out, more_than=0, sig=signal.SIGKILL)
    assert code == -signal.SIGKILL
    after_kill = finished(out)  # every file parses: json.loads above would raise otherwise
    assert 1 <= len(after_kill) < len(images)

    # 2. Ctrl-C: images in flight finish, the summary says interrupted, exit code 130
    code, output = run_until(command, out, more_than=len(after_kill), sig=signal.SIGINT)
    assert code == 130, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert summary["skipped_already_finished"] == len(after_kill)
    after_interrupt = finished(out)
    assert len(after_interrupt) < len(images), "nothing left to resume"

    # 3. resumed to the end; the broken image fails alone (exit code 1)
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 1, run.stdout + run.stderr
    final = finished(out)
    assert sorted(final) == sorted(images)  # exactly the good images, each once
    for name, document in after_interrupt.items():  # done before: not redone
        assert final[name]["sam2_triton"]["run_id"] == document["sam2_triton"]["run_id"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is False
    assert summary["skipped_already_finished"] == len(after_interrupt)
    assert summary["finished_this_run"] == len(images) - len(after_interrupt)
    assert summary["finished_total"] == len(images) and summary["not_started"] == 0
    (failure,) = summary["failures"]
    assert failure["file_name"] == "broken.jpg" and "image" in failure["error"]
    assert "not a recognised image" in failure["error"]
    assert json.loads((out / "errors" / "broken.jpg.json").read_text())["file_name"] == "broken.jpg"
    assert summary["prompts_without_image"] == ["not-there.png"]
    assert "not-there.png" in run.stdout
    assert not list(out.rglob("*.tmp"))

    check_documents(final, images, reference)
    check_report(out, final)


def check_documents(final: dict[str, dict], images: dict[str, bytes], reference) -> None:
    for name, document in final.items():
        rgb = np.asarray(Image.open(io.BytesIO(images[name])).convert("RGB"))
        height, width = rgb.shape[:2]
        assert document["image"]["file_name"] == name
        assert (document["image"]["height"], document["image"]["width"]) == (height, width)
        for annotation in document["annotations"]:
            mask = rle_to_mask(annotation["segmentation"])
            assert mask.shape == (height, width)
            assert annotation["area"] == int(mask.sum())
    modes = {name: d["sam2_triton"]["mode"] for name, d in final.items()}
    assert modes == {
        n: "prompts" if n in ("coffee.jpg", "astronaut.png", "wide crop.png", "sub/tall.png")
        else "automatic" for n in images
    }  # fmt: skip
    assert [a["label"] for a in final["coffee.jpg"]["annotations"]] == ["cup", "saucer"]
    # automatic images used the given grid: 4 x 4 points, so at most 16 x 3 candidates
    auto = final["auto2.png"]
    assert auto["sam2_triton"]["automatic_params"]["points_per_side"] == 4
    assert 0 < len(auto["annotations"]) <= 48
    assert {"stability_score", "predicted_iou", "crop_box"} <= set(auto["annotations"][0])

    # prompted masks are SAM2ImagePredictor's: the best of 3 for one point, else the single mask
    def points(coords: list, labels: list) -> dict:
        return {"point_coords": np.array(coords, float), "point_labels": np.array(labels)}

    cases = [
        ("coffee.jpg", 0, points([[150, 100]], [1]), True),
        ("coffee.jpg", 1, points([[60, 150], [240, 160]], [1, 1]), False),
        ("astronaut.png", 0, points([[85, 60], [30, 150]], [1, 0]), False),
        ("wide crop.png", 0, {"box": np.array([10.0, 10.0, 200.0, 90.0])}, False),
    ]
    for name, index, prompt, multimask in cases:
        masks, scores, _ = reference.predict(images[name], multimask_output=multimask, **prompt)
        best = int(np.argmax(scores))
        annotation = final[name]["annotations"][index]
        got = rle_to_mask(annotation["segmentation"]).astype(bool)
        want = masks[best].astype(bool)
        assert (got == want).mean() >= 0.999, (name, index)
        assert abs(annotation["predicted_iou"] - float(scores[best])) < 1e-3


def check_report(out: Path, final: dict[str, dict]) -> None:
    report = out / "report"
    page = (report / "index.html").read_text()
    for name in final:
        overlay = report / "overlays" / f"{name}.jpg"
        with Image.open(overlay) as picture:
            assert picture.format == "JPEG" and max(picture.size) <= 768
        assert f"<b>{name}</b>" in page
    assert "wide%20crop.png.jpg" in page  # file names are URL-quoted in links
    assert "broken.jpg" in page and "Failed images (1)" in page
    for plot in ("time_per_image.png", "throughput.png"):
        with Image.open(report / plot) as picture:
            assert picture.format == "PNG" and picture.size[0] > 300
        assert f'src="{plot}"' in page


def _boxed_and_automatic(tmp_path: Path) -> tuple[Path, Path]:
    """A folder of two images, one with a box prompt (boxed.png) and one without (auto.png),
    and its prompts file."""
    folder = tmp_path / "in"
    folder.mkdir()
    coffee = skimage.data.coffee()[::4, ::4]  # 150 x 100
    (folder / "boxed.png").write_bytes(_encode(coffee, "PNG"))
    (folder / "auto.png").write_bytes(_encode(coffee[:, ::-1], "PNG"))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"boxed.png": {"cup": {"box": [30, 10, 120, 90]}}}))
    return folder, prompts


def test_batch_over_grpc_with_box_prompts_and_automatic_masks(triton, tmp_path):
    """The gRPC path of both modes, and a rerun that finds nothing left to do."""
    folder, prompts = _boxed_and_automatic(tmp_path)
    out = tmp_path / "out"
    command = [
        sys.executable, "-m", "sam2_triton.cli", "batch", str(folder), "--prompts", str(prompts),
        "--out", str(out), "--protocol", "grpc", "--url", triton.grpc_url, "--no-progress",
        *[arg for value in AUTOMATIC for arg in ("--automatic", value)],
    ]  # fmt: skip
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    final = finished(out)
    assert sorted(final) == ["auto.png", "boxed.png"]
    (cup,) = final["boxed.png"]["annotations"]
    assert cup["label"] == "cup" and cup["prompt"] == {"box": [30.0, 10.0, 120.0, 90.0]}
    assert final["auto.png"]["sam2_triton"]["mode"] == "automatic"
    assert json.loads((out / "summary.json").read_text())["protocol"] == "grpc"
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 image(s) done" in again.stdout
    assert "2 already done" in again.stdout and finished(out) == final


def test_batch_writes_polygons_that_rasterise_to_the_rle_masks(triton, tmp_path):
    """--segmentation polygons: the same objects as an RLE run, as COCO polygons with holes."""
    folder, prompts = _boxed_and_automatic(tmp_path)
    documents = {}
    for segmentation in ("rle", "polygons"):
        out = tmp_path / segmentation
        command = [
            sys.executable, "-m", "sam2_triton.cli", "batch", str(folder), "--prompts",
            str(prompts), "--out", str(out), "--url", triton.http_url, "--no-progress",
            "--segmentation", segmentation,
            *[arg for value in AUTOMATIC for arg in ("--automatic", value)],
        ]  # fmt: skip
        run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        documents[segmentation] = finished(out)
    for name in ("boxed.png", "auto.png"):
        rle, polygons = (documents[s][name]["annotations"] for s in ("rle", "polygons"))
        assert len(rle) == len(polygons) > 0
        for want, got in zip(rle, polygons, strict=True):
            mask = rle_to_mask(want["segmentation"])
            drawn = polygons_to_mask(got["segmentation"], got["holes"], *mask.shape)
            union = np.logical_or(mask, drawn).sum()
            assert np.logical_and(mask, drawn).sum() >= 0.98 * union
