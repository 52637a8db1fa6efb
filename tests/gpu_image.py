"""The NGC tritonserver image's Python side, imitated here: Python 3.10 (24.10's), exactly
``docker/requirements-gpu.txt``, and the package installed as ``docker/Dockerfile.gpu`` installs
it (the sources copied, ``pip install --no-deps --ignore-requires-python``); and its repository,
the committed one with an export placed (``gpu_repository``).

Only Triton's onnxruntime backend cannot run here: its models get CPU stand-ins, Python
models that run the ONNX files with an onnxruntime kept in a folder of their own, so the models
under test never see it (the image has no onnxruntime package).
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sam2_triton import contract as c
from sam2_triton.repository.build import model_config
from sam2_triton.repository.model_plan import Runtime
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import repository_plan
from sam2_triton.repository.python_configs import model_py, render
from tests.exports import CACHE

ROOT = Path(__file__).resolve().parents[1]
GPU_REQUIREMENTS = ROOT / "docker" / "requirements-gpu.txt"
COMMITTED = ROOT / "model_repository"
ONNXRUNTIME_MODELS = [p.name for p in repository_plan("gpu") if p.runtime is Runtime.ONNXRUNTIME]
SLOW_CPU = ServingOptions(video_step_wait_us=1_000_000)
#: What build-repo adds for an export with SAM 3: sam3_concepts and SAM 3's graphs as models.
CONCEPTS = ServingOptions(concepts=True)
SAM3_PLANS = [p for p in repository_plan("gpu", CONCEPTS) if p.name not in
              {q.name for q in repository_plan("gpu")}]  # fmt: skip
SAM3_GRAPHS = [p.name for p in SAM3_PLANS if p.runtime is Runtime.ONNXRUNTIME]
#: The newest onnxruntime with Python 3.10 wheels; it runs the stand-ins only.
STANDIN_ONNXRUNTIME = "onnxruntime==1.23.2"
#: What Dockerfile.gpu copies before installing the package.
PACKAGE_FILES = ("pyproject.toml", "setup.py", "README.md", "src", "export")
INSTALL_HINT = (
    "the GPU-runtime tests need Python 3.10 with its shared library (the NGC image's Python): "
    "e.g. `PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install 3.10.13`, or Debian's "
    "python3.10 with libpython3.10"
)


def _has_libpython(python: str) -> bool:
    query = (
        "import os, sysconfig; "
        "print(os.path.exists(os.path.join(sysconfig.get_config_var('LIBDIR'), "
        "sysconfig.get_config_var('LDLIBRARY'))))"
    )
    run = subprocess.run([python, "-c", query], capture_output=True, text=True)
    return run.returncode == 0 and run.stdout.strip() == "True"


def find_python310() -> Path | None:
    """A Python 3.10 whose libpython the 3.10 backend stub can load, or None."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [
        shutil.which("python3.10"),
        *sorted(glob.glob(f"{pyenv_root}/versions/3.10.*/bin/python3.10"), reverse=True),
    ]
    for candidate in candidates:
        if candidate and _has_libpython(candidate):
            return Path(candidate)
    return None


def _pip(python: Path, *args: str) -> None:
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", *args], check=True
    )


def image_env(cache: Path) -> Path:
    """The venv's folder: one per version of the requirements."""
    key = hashlib.sha256(GPU_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    return cache / f"gpu-image-py310-{key}"


def gpu_image_python(cache: Path, python310: Path) -> Path:
    """The interpreter of a venv built as the image is; the package is reinstalled from the
    working tree on every call (the requirements only when they change)."""
    env = image_env(cache)
    python = env / "bin" / "python"
    done = env / ".requirements-installed"
    if not done.exists():
        shutil.rmtree(env, ignore_errors=True)
        subprocess.run([str(python310), "-m", "venv", str(env)], check=True)
        _pip(python, "install", "-r", str(GPU_REQUIREMENTS))
        done.touch()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "sam2-triton"  # /opt/sam2-triton in the image
        source.mkdir()
        for name in PACKAGE_FILES:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
            copy(ROOT / name, source / name)
        _pip(
            python, "install", "--no-deps", "--ignore-requires-python", "--force-reinstall",
            "--no-cache-dir", str(source),
        )  # fmt: skip
    return python


def standin_onnxruntime(cache: Path, python: Path) -> Path:
    """A folder holding onnxruntime for ``python``, for the stand-ins' sys.path only."""
    target = cache / f"standin-{STANDIN_ONNXRUNTIME.replace('==', '-')}-py310"
    if not (target / "onnxruntime").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        _pip(python, "install", "--no-deps", "--target", str(target), STANDIN_ONNXRUNTIME)
    return target


def standin_model_py(onnxruntime_dir: Path) -> str:
    """model.py of a CPU stand-in for an onnxruntime-backend model (same name and tensors)."""
    return (
        '"""CPU stand-in for Triton\'s onnxruntime backend (tests/test_gpu_runtime.py)."""\n'
        "import sys\n\n"
        f"sys.path.append({str(onnxruntime_dir)!r})  # this stub process only\n"
        "from sam2_triton.triton_models.onnx_model import TritonPythonModel  # noqa: E402,F401\n"
    )


def standin_plan(name: str):
    """A GPU model's plan as a Python model running its ONNX file: the embedded target's where
    it has the model (same name, tensors and batching), else the GPU plan's, on one instance."""
    embedded = {p.name: p for p in repository_plan("embedded")}
    if name in embedded:
        return embedded[name]
    plan = {p.name: p for p in [*repository_plan("gpu"), *SAM3_PLANS]}[name]
    return dataclasses.replace(
        plan, runtime=Runtime.PYTHON, python_module="onnx_model", gpu=None, instances=1
    )


def gpu_repository(
    gpu_python, export_dir: Path, root: Path, concepts: bool = False, cache: Path = CACHE
) -> Path:
    """The committed repository with the tiny export (and its tracker) placed, and the CPU
    stand-ins; with ``concepts``, SAM 3's models too, as build-repo adds them for an export
    with SAM 3 (``export_dir`` has its graphs)."""
    repo = root / "model_repository"
    shutil.copytree(
        COMMITTED,
        repo,
        ignore=shutil.ignore_patterns("*.onnx", "*.npz", "build.json", "__pycache__"),
    )
    onnxruntime_dir = standin_onnxruntime(cache, gpu_python.executable)
    for plan in SAM3_PLANS if concepts else []:  # sam3_concepts; its graphs below
        (repo / plan.name / "1").mkdir(parents=True)
        if plan.runtime is Runtime.PYTHON:
            (repo / plan.name / "config.pbtxt").write_text(render(model_config(plan, CONCEPTS)))
            (repo / plan.name / "1" / "model.py").write_text(model_py(plan.python_module))
    for name in [*ONNXRUNTIME_MODELS, *(SAM3_GRAPHS if concepts else [])]:
        plan = standin_plan(name)
        (repo / name / "config.pbtxt").write_text(render(model_config(plan, ServingOptions())))
        (repo / name / "1").mkdir(exist_ok=True)
        (repo / name / "1" / "model.py").write_text(standin_model_py(onnxruntime_dir))
        os.link(export_dir / plan.model_file, repo / name / "1" / "model.onnx")
    # a wide wait for a propagation's next frame, as a loaded 2-core CPU needs
    (plan,) = [p for p in repository_plan("gpu", SLOW_CPU) if p.name == c.VIDEO_SESSIONS]
    (repo / c.VIDEO_SESSIONS / "config.pbtxt").write_text(render(model_config(plan, SLOW_CPU)))
    # what a build places beside the Python models
    for plan in [*repository_plan("gpu"), *(SAM3_PLANS if concepts else [])]:
        for rel, file in plan.export_files().items():
            if plan.runtime is Runtime.PYTHON and not (repo / plan.name / rel).exists():
                os.link(export_dir / file, repo / plan.name / rel)
    return repo
