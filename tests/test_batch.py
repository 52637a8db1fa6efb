"""sam2-triton batch without a server: the prompts file, the atomic result store, the folder walk,
the report's overlay, and the command's errors before any request is sent."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam2_triton.batch import find_images
from sam2_triton.batch.prompts import PromptsError, load_prompts, parse_prompts
from sam2_triton.batch.report import MAX_SEGMENTS, render_overlay, top_segments
from sam2_triton.batch.store import OutputLockedError, ResultStore, atomic_write
from sam2_triton.cli import main
from sam2_triton.image.encodings import mask_to_rle
from tests.conftest import ROOT, free_port


def test_prompts_short_form_is_foreground_points_per_label():
    prompts = parse_prompts({"a.jpg": {"cup": [[10, 20]], "table": [[1, 2], [3.5, 4]]}})
    cup, table = prompts["a.jpg"]
    assert (cup.label, cup.point_coords.tolist(), cup.point_labels.tolist()) == (
        "cup",
        [[10, 20]],
        [1],
    )
    assert table.point_coords.dtype == np.float32 and table.point_labels.tolist() == [1, 1]
    assert cup.box is None


def test_prompts_long_form_takes_background_points_and_boxes():
    (obj,) = parse_prompts(
        {"a.jpg": {"cup": {"points": [[1, 2], [3, 4]], "labels": [1, 0], "box": [0, 0, 9, 9]}}}
    )["a.jpg"]
    assert obj.point_labels.tolist() == [1, 0]
    assert obj.box.tolist() == [0, 0, 9, 9]
    (only_box,) = parse_prompts({"b.png": {"x": {"box": [1, 1, 5, 5]}}})["b.png"]
    assert only_box.point_coords is None and only_box.box is not None


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ([], "expected an object"),
        ({"a.jpg": {}}, "'a.jpg'"),
        ({"a.jpg": {"cup": []}}, "'cup'"),
        ({"a.jpg": {"cup": [[1]]}}, "[x, y]"),
        ({"a.jpg": {"cup": [[1, float("nan")]]}}, "finite"),
        ({"a.jpg": {"cup": [["1", 2]]}}, "finite"),
        ({"a.jpg": {"cup": {"points": [[1, 2]], "labels": [2]}}}, "labels"),
        ({"a.jpg": {"cup": {"points": [[1, 2]], "labels": [1, 1]}}}, "labels"),
        ({"a.jpg": {"cup": {"box": [1, 2, 3]}}}, "box"),
        ({"a.jpg": {"cup": {"labels": [1]}}}, "without 'points'"),
        ({"a.jpg": {"cup": {"pts": [[1, 2]]}}}, "unknown keys"),
        ({"a.jpg": {"cup": {}}}, "'points' or 'box'"),
    ],
)
def test_bad_prompts_are_refused_naming_the_entry(document, names):
    with pytest.raises(PromptsError, match=None) as error:
        parse_prompts(document)
    assert names in str(error.value)


def test_prompts_file_that_is_not_json_names_the_file(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text("{not json")
    with pytest.raises(PromptsError, match="prompts.json: not valid JSON"):
        load_prompts(path)


def test_find_images_walks_subfolders_and_skips_hidden_and_other_files(tmp_path):
    for name in ["b.JPG", "a.png", "sub/c.webp", ".hidden/d.png", ".e.png", "notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert find_images(tmp_path) == ["a.png", "b.JPG", "sub/c.webp"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_images(tmp_path / "missing")


def test_atomic_write_leaves_the_old_file_or_nothing_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "out" / "a.json"
    atomic_write(target, b"old")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new and longer")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_store_results_errors_and_stale_temporaries(tmp_path):
    store = ResultStore(tmp_path)
    store.save_error("sub/a.jpg", {"file_name": "sub/a.jpg", "error": "boom"})
    assert [f["error"] for f in store.failures()] == ["boom"]
    assert not store.is_finished("sub/a.jpg")
    store.save("sub/a.jpg", {"annotations": []})
    assert store.is_finished("sub/a.jpg") and list(store.failures()) == []  # error cleared
    assert [name for name, _ in store.finished()] == ["sub/a.jpg"]
    # what a killed process leaves: a hidden temporary, never read as a result
    stale = store.annotations / "sub" / ".b.jpg.json.12345.tmp"
    stale.write_text('{"annotations": [')
    assert [name for name, _ in store.finished()] == ["sub/a.jpg"]
    assert store.remove_stale_temporaries() == 1 and not stale.exists()
    # a truncated result (written by hand, not by us) counts as unfinished
    store.annotation_path("c.jpg").write_text('{"annotations": [')
    assert not store.is_finished("c.jpg")


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path):
    holder = ResultStore(tmp_path)
    holder.lock()
    code = (
        "import sys; from sam2_triton.batch.store import ResultStore, OutputLockedError\n"
        f"try: ResultStore({str(tmp_path)!r}).lock()\n"
        "except OutputLockedError as e: print(e); sys.exit(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 3 and "in use by another" in run.stdout
    with pytest.raises(OutputLockedError):  # same process, second handle: also refused
        ResultStore(tmp_path).lock()


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_overlay_tints_the_largest_segments_only(tmp_path):
    height, width = 40, 60
    annotations = []
    for k in range(MAX_SEGMENTS + 2):  # 12 segments: rows k..k+1, widths growing with k
        mask = np.zeros((height, width), np.uint8)
        mask[3 * k : 3 * k + 2, : 4 + 4 * k] = 1
        rle = mask_to_rle(mask)
        annotations.append(
            {"id": k, "segmentation": {"size": rle["size"], "counts": rle["counts"]},
             "area": rle["area"], "predicted_iou": 0.5, "point_coords": []}
        )  # fmt: skip
    document = {"annotations": annotations}
    assert [a["id"] for a in top_segments(document)] == list(range(11, 1, -1))
    grey = np.full((height, width, 3), 128, np.uint8)
    overlay = np.asarray(Image.open(io.BytesIO(render_overlay(_png(grey), document))))
    assert overlay.shape == (height, width, 3)
    tinted = np.abs(overlay.astype(int) - 128).sum(axis=2) > 30
    assert tinted[3 * 11, 2] and tinted[3 * 2, 2]  # drawn: among the 10 largest
    assert not tinted[0, 2] and not tinted[3, 2]  # segments 0 and 1: the smallest, left out
    assert not tinted[height - 1, width - 1]  # background untouched


def test_batch_command_reports_bad_prompts_and_a_missing_server(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(_png(np.zeros((8, 8, 3), np.uint8)))
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"a.png": {"cup": [[1, 2, 3]]}}))
    out = tmp_path / "out"
    args = ["batch", str(tmp_path / "in"), "--out", str(out), "--no-progress"]
    assert main([*args, "--prompts", str(prompts)]) == 1
    assert "'a.png'.'cup': each point must be [x, y]" in capsys.readouterr().err
    url = f"127.0.0.1:{free_port()}"
    assert main([*args, "--url", url]) == 1
    err = capsys.readouterr().err
    assert f"no server answers at {url}" in err and "sam2-triton serve" in err
    assert not (out / "annotations").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--automatic", "z=1"], "points_per_side"),  # names the parameters it knows
        (["--automatic", "points_per_side=many"], "not a valid INT32 value"),
        (["--concurrency", "0"], "must be at least 1"),
    ],
)
def test_batch_flags_are_checked_before_anything_runs(flags, says):
    run = subprocess.run(
        [sys.executable, "-m", "sam2_triton.cli", "batch", "x", "--out", "y", *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2 and says in run.stderr


def _image_tree(root, count: int) -> list[str]:
    """``count`` tiny PNGs spread over nested folders; returns their relative paths."""
    names = [f"{'sub/' * (k % 3)}img_{k:03d}.png" for k in range(count)]
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_png(np.full((4, 4, 3), 7 * (len(name) % 30), np.uint8)))
    return names


@pytest.mark.parametrize("count", [1, 2, 3, 5, 16])
def test_shards_partition_the_folder_exactly_whatever_the_listing_order(tmp_path, count):
    from sam2_triton.batch.shard import Shard

    _image_tree(tmp_path, 40)
    images = find_images(tmp_path)
    shards = [set(Shard(i, count).select(images)) for i in range(count)]
    assert set().union(*shards) == set(images)  # every image is in a shard ...
    assert sum(len(s) for s in shards) == len(images)  # ... in exactly one
    shuffled = list(reversed(images))
    assert [set(Shard(i, count).select(shuffled)) for i in range(count)] == shards


def test_adding_images_moves_no_image_to_another_shard(tmp_path):
    from sam2_triton.batch.shard import Shard, shard_of

    _image_tree(tmp_path, 30)
    before = {name: shard_of(name, 4) for name in find_images(tmp_path)}
    (tmp_path / "late.png").write_bytes(_png(np.zeros((4, 4, 3), np.uint8)))
    after = {name: shard_of(name, 4) for name in find_images(tmp_path)}
    assert {name: after[name] for name in before} == before
    # the rule is on disk (shards resume from each other's files): pinned, sha256 of the path
    assert (shard_of("a.jpg", 4), shard_of("kitchen/001.jpg", 4), shard_of("a.jpg", 3)) == (2, 0, 1)
    assert Shard(2, 4).owns("a.jpg") and not Shard(1, 4).owns("a.jpg")


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("4/4", "I must be 0..3, got 4"),
        ("1/0", "N must be at least 1, got 0"),
        ("=-1/2", "I must be 0..1, got -1"),
        ("3", "expected I/N"),
        ("a/b", "expected I/N"),
        ("1/2/3", "expected I/N"),
    ],
)
def test_bad_shard_values_are_refused_with_a_message(value, says):
    flag = ["--shard" + value] if value.startswith("=") else ["--shard", value]
    run = subprocess.run(
        [sys.executable, "-m", "sam2_triton.cli", "batch", "x", "--out", "y", *flag],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert "argument --shard" in run.stderr and says in run.stderr


def test_shards_share_one_output_folder_without_overwriting_each_other(tmp_path):
    """Two shards' runs over one OUT_DIR (every image already finished, so no server is needed):
    each writes its own summary and report, about its own images only."""
    from sam2_triton.batch import BatchOptions, run_batch
    from sam2_triton.batch.shard import Shard

    source, out = tmp_path / "in", tmp_path / "out"
    images = _image_tree(source, 12)
    done = ResultStore(out)
    for name in images:
        done.save(name, {"image": {"file_name": name}, "annotations": []})
    shards = [Shard(i, 2) for i in range(2)]
    holders = [ResultStore(out, shard) for shard in shards]
    for holder in holders:  # both shards at once: allowed; a whole-folder run or a twin: not
        holder.lock()
    with pytest.raises(OutputLockedError):
        ResultStore(out).lock()
    with pytest.raises(OutputLockedError, match="shard 1/2"):
        ResultStore(out, shards[1]).lock()
    for holder in holders:
        holder.unlock()
    for shard in shards:
        options = BatchOptions(source, out, progress=False, shard=shard)
        assert run_batch(options).exit_code == 0
    for shard in shards:
        mine = shard.select(sorted(images))
        summary = json.loads((out / f"summary.shard-{shard.index}-of-2.json").read_text())
        assert summary["shard"] == str(shard)
        assert summary["images_found"] == summary["skipped_already_finished"] == len(mine)
        page = (out / f"report.shard-{shard.index}-of-2" / "index.html").read_text()
        assert all(f"<b>{name}</b>" in page for name in mine)
        assert not any(f"<b>{name}</b>" in page for name in set(images) - set(mine))
    assert not (out / "summary.json").exists() and not (out / "report").exists()


def test_a_shard_cleans_up_only_its_own_half_written_files(tmp_path):
    """A shard starting up must not delete what another shard is writing at that moment."""
    from sam2_triton.batch.shard import Shard

    shard = Shard(0, 2)
    names = [f"sub/x{k}.jpg" for k in range(20)]
    own = next(name for name in names if shard.owns(name))
    other = next(name for name in names if not shard.owns(name))
    store = ResultStore(tmp_path, shard)
    temporaries = {}
    for name in (own, other):  # what atomic_write leaves behind: .<file>.json.<pid>.tmp
        result = store.annotation_path(name)
        temporaries[name] = result.with_name(f".{result.name}.7.tmp")
        temporaries[name].parent.mkdir(parents=True, exist_ok=True)
        temporaries[name].write_text('{"annotations": [')
    assert store.remove_stale_temporaries() == 1
    assert not temporaries[own].exists() and temporaries[other].exists()
    assert ResultStore(tmp_path).remove_stale_temporaries() == 1  # a whole-folder run: all
