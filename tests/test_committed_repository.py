"""The committed model_repository/ is the GPU target rendered with default options, like a lock
file: a hand edit, or a change of the plan or contract without `make repository`, fails here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sam2_triton import contract as c
from sam2_triton.repository.build import MARKER, render_files, stale_files
from sam2_triton.repository.model_plan import Runtime
from sam2_triton.repository.plan import repository_plan
from tests.conftest import ROOT, load_configs

COMMITTED = ROOT / "model_repository"
REGENERATE = "run `make repository` and commit the result"


def _tracked_files() -> set[str]:
    """Files git tracks under model_repository/ (every file there when git is unavailable)."""
    run = subprocess.run(
        ["git", "ls-files", "model_repository"], cwd=ROOT, capture_output=True, text=True
    )
    if run.returncode == 0 and run.stdout.strip():
        names = run.stdout.split()
    else:
        ignored = {"build.json"}
        names = [
            p.relative_to(ROOT).as_posix()
            for p in COMMITTED.rglob("*")
            if p.is_file() and p.suffix not in (".onnx", ".npz", ".pyc") and p.name not in ignored
        ]
    return {n.removeprefix("model_repository/") for n in names}


def test_the_committed_repository_is_what_the_plan_renders():
    files = render_files("gpu")
    assert not stale_files(COMMITTED, files), (
        f"stale: {stale_files(COMMITTED, files)}; {REGENERATE}"
    )
    extra = _tracked_files() - set(files)
    assert not extra, f"committed but no longer rendered: {sorted(extra)}; {REGENERATE}"


def test_a_hand_edited_config_is_caught(tmp_path):
    copy = tmp_path / "model_repository"
    shutil.copytree(COMMITTED, copy)
    config = copy / c.IMAGE_ENCODER / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 4", "max_batch_size: 8"))
    (copy / c.SESSION / "1" / "model.py").unlink()
    assert stale_files(copy, render_files("gpu")) == [
        f"{c.IMAGE_ENCODER}/config.pbtxt",
        f"{c.SESSION}/1/model.py",
    ]


def test_every_model_has_a_config_and_every_python_model_its_model_py():
    configs = load_configs(COMMITTED)
    plans = repository_plan("gpu")
    assert set(configs) == {p.name for p in plans}
    for plan in plans:
        model_py = COMMITTED / plan.name / "1" / "model.py"
        if plan.runtime is Runtime.PYTHON:
            assert configs[plan.name].backend == "python"
            assert f"sam2_triton.triton_models.{plan.python_module} import" in model_py.read_text()
        else:
            assert not model_py.exists(), plan.name
    assert configs[c.SEGMENT].platform == "ensemble"
    assert (COMMITTED / MARKER).is_file() and (COMMITTED / "README.md").is_file()


def test_rendering_needs_neither_torch_nor_an_export(tmp_path):
    """What `make repository` runs, in a fresh interpreter where importing torch fails."""
    script = (
        "import sys; sys.modules['torch'] = None; sys.modules['onnxruntime'] = None\n"
        "from pathlib import Path\n"
        "from sam2_triton.repository.build import write_repository\n"
        "write_repository(Path(sys.argv[1]), 'gpu')\n"
    )
    out = tmp_path / "rendered"
    subprocess.run([sys.executable, "-c", script, str(out)], check=True, cwd=tmp_path)
    assert not stale_files(out, render_files("gpu"))
    assert not list(out.rglob("*.onnx"))


@pytest.mark.parametrize("video", [True, False])
def test_export_places_its_onnx_files_where_the_committed_configs_expect_them(
    fake_export, tmp_path, monkeypatch, capsys, video
):
    """`sam2-triton export` (the export itself faked) fills a copy of model_repository/; an
    export without the video tracker fills the image models and says what video then lacks."""
    if not video:
        for name in c.VIDEO_EXPORT_FILES:
            (fake_export / name).unlink()
    from sam2_triton.cli import export as export_command

    local = shutil.ignore_patterns("*.onnx", "*.npz", "build.json", "__pycache__")

    def skip(folder: str, names: list[str]) -> set[str]:
        """What a checkout does not have: a previous export's files, and folders only they
        filled (so this test passes after `sam2-triton export` was run here too)."""
        ignored = set(local(folder, names))
        for name in set(names) - ignored:
            path = Path(folder) / name
            if path.is_dir() and all(local(str(path), [n]) for n in os.listdir(path)):
                ignored.add(name)
        return ignored

    shutil.copytree(COMMITTED, tmp_path / "model_repository", ignore=skip)

    def fake_export_model(model, *args, **kwargs):
        (tmp_path / "exports").mkdir(exist_ok=True)
        return shutil.copytree(fake_export, tmp_path / "exports" / model)

    monkeypatch.setattr(export_command, "export_model", fake_export_model)
    monkeypatch.chdir(tmp_path)
    assert export_command.run(export_command_args(model="small")) == 0
    printed = capsys.readouterr()
    assert "placed in model_repository" in printed.out
    repo = tmp_path / "model_repository"
    assert (repo / c.IMAGE_ENCODER / "1" / "model.onnx").read_bytes() == b"encoder"
    assert (repo / c.MASK_DECODER / "1" / "model.onnx").read_bytes() == b"decoder"
    attention = repo / c.MEMORY_ATTENTION / "1" / "model.onnx"
    constants = repo / c.VIDEO_SESSIONS / "1" / c.TRACKER_CONSTANTS_FILE
    if video:
        assert attention.read_bytes() == c.MEMORY_ATTENTION_FILE.encode()
        assert constants.read_bytes() == c.TRACKER_CONSTANTS_FILE.encode()
        assert "video" not in printed.err
    else:
        assert not attention.exists() and not constants.exists()
        assert "--video" in printed.err and "--no-video" in printed.err
        assert f"{c.VIDEO_SESSIONS}/1/{c.TRACKER_CONSTANTS_FILE}" in printed.err
    assert not stale_files(repo, render_files("gpu"))  # the committed files are untouched


def export_command_args(model: str):
    from sam2_triton.cli import build_parser

    return build_parser().parse_args(["export", "--model", model, "--random-weights"])
