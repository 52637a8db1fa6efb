"""pixi.toml: every task is an alias of something that exists, and its pins are the project's.

pixi itself is not needed (nor installable from these machines' registries): the manifest is
parsed with tomllib, and the cheap tasks are run through the CLI they alias.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PIXI = tomllib.loads((ROOT / "pixi.toml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
MAKEFILE = (ROOT / "Makefile").read_text()
REQUIRED_TASKS = {
    "setup",
    "download-tiny",
    "download-small",
    "download-base",
    "download-large",
    "export-onnx",
    "serve",
    "cluster",
    "test",
    "loadtest",
    "bench",
    "build-repo-gpu",
}
CLI = [sys.executable, "-m", "sam2_triton.cli"]
# The subprocesses import this checkout's package, wherever they run.
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
}


def _name(requirement: str) -> str:
    return re.split(r"[\s=<>!~;\[]", requirement, maxsplit=1)[0].lower()


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", MAKEFILE, re.MULTILINE))


def cli_commands() -> set[str]:
    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(subparsers.choices)


def task_commands() -> dict[str, list[list[str]]]:
    """Each task's command, split into its `&&`-joined parts, each part into words."""
    tasks = {}
    for name, task in PIXI["tasks"].items():
        command = task if isinstance(task, str) else task["cmd"]
        tasks[name] = [shlex.split(part) for part in command.split("&&")]
    return tasks


def test_the_workspace_matches_the_project():
    workspace = PIXI["workspace"]
    assert workspace["channels"] == ["conda-forge"]
    assert workspace["platforms"] == ["linux-64"]
    assert PYPROJECT["project"]["requires-python"] == ">=3.11,<3.12"
    assert PIXI["dependencies"]["python"] == "3.11.*"


def test_pypi_pins_are_the_projects():
    deps = PIXI["pypi-dependencies"]
    project = deps[PYPROJECT["project"]["name"]]
    assert project["path"] == "." and project["editable"] is True
    assert set(project["extras"]) == set(PYPROJECT["project"]["optional-dependencies"])
    # sam2 is installed apart from the constraints by the Makefile; same pin here.
    [make_pin] = set(re.findall(r"\bsam2==([\w.]+)", MAKEFILE))
    assert deps["sam2"] == f"=={make_pin}"
    constraints = dict(
        line.split("==")
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pinned = {name.lower(): version for name, version in constraints.items()}
    for name, spec in deps.items():
        if isinstance(spec, str) and name != "sam2":
            assert spec == f"=={pinned[name.lower()]}", name


def test_every_task_aliases_an_existing_command():
    assert REQUIRED_TASKS <= set(PIXI["tasks"])
    targets, commands = make_targets(), cli_commands()
    dev_tools = {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]}
    for name, parts in task_commands().items():
        for words in parts:
            program, first = words[0], words[1] if len(words) > 1 else None
            if program == "make":
                exists = first in targets
            elif program == "sam2-triton":
                exists = first in commands
            else:  # the test task: the tools `make test` runs, from the dev extra
                assert program in dev_tools, f"task {name}: {program} is not a project command"
                continue
            assert exists, f"task {name}: `{program} {first}` does not exist"


def test_sam2_triton_tasks_parse_with_the_cli():
    """argparse checks the subcommand and every option (e.g. --model choices) before --help."""
    run = subprocess.run([*CLI, "--help"], capture_output=True, text=True, env=ENV)
    assert run.returncode == 0 and "build-repo" in run.stdout
    commands = cli_commands()
    for name, parts in task_commands().items():
        for words in parts:
            if words[0] != "sam2-triton" or words[1] not in commands:
                continue
            run = subprocess.run(
                [*CLI, *words[1:], "--help"], capture_output=True, text=True, env=ENV
            )
            assert run.returncode == 0, f"task {name}: {run.stderr}"


@pytest.mark.parametrize("task", ["build-repo-gpu"])
def test_build_repo_gpu_task_writes_a_gpu_repository(task, tiny_export, tmp_path):
    [words] = task_commands()[task]
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "tiny").symlink_to(tiny_export.export_dir)
    run = subprocess.run(
        [*CLI, *words[1:], "--out", "repo"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    config = text_format.Parse(
        (tmp_path / "repo" / c.IMAGE_ENCODER / "config.pbtxt").read_text(), mc.ModelConfig()
    )
    assert config.backend == "onnxruntime"
    assert config.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    assert (tmp_path / "repo" / c.IMAGE_ENCODER / "1" / "model.onnx").stat().st_size > 1e6
