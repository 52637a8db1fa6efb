"""The embedded server every benchmark measures: a repository built for the export, free ports."""

from __future__ import annotations

import socket
from pathlib import Path

from sam2_triton.repository.build import build_repository
from sam2_triton.repository.options import ServingOptions
from sam2_triton.server.embedded import Ports, TritonServer

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_server(
    export_dir: Path,
    work_dir: Path,
    options: ServingOptions | None = None,
    runtime_dir: Path = ROOT / "build" / "tritonserver",
) -> TritonServer:
    """A not yet started server for ``export_dir``; repository and log under ``work_dir``."""
    work_dir = work_dir.resolve()
    repo = work_dir / "model_repository"
    build_repository(export_dir, repo, options)
    return TritonServer(
        repo,
        runtime_dir.resolve(),
        ports=Ports(free_port(), free_port(), free_port()),
        log_file=work_dir / "tritonserver.log",
    )
