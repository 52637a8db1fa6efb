"""The GPU image's supervisor (sam2_triton.server.supervise) without a server: the flags it gives
tritonserver whatever the operator wrote, where it looks for readiness, its exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys

from sam2_triton.server.supervise import http_url, supervised_command
from sam2_triton.server.watchdog import RESTRICTED_APIS


def test_model_control_and_restrictions_replace_the_given_ones_in_both_spellings():
    given = ["tritonserver", "--model-repository=/models", "--model-control-mode", "none",
             "--http-port", "9000", "--load-model=a", "--grpc-restricted-protocol=x:k=v",
             "--strict-readiness=true"]  # fmt: skip
    command, dropped = supervised_command(given, "K")
    assert command[:5] == [
        "tritonserver", "--model-repository=/models", "--http-port", "9000",
        "--strict-readiness=true",
    ]  # fmt: skip
    assert dropped == ["--model-control-mode", "--load-model", "--grpc-restricted-protocol"]
    assert command.count("--model-control-mode=explicit") == 1 and "none" not in command
    restricted = f"{','.join(RESTRICTED_APIS)}:admin-key=K"
    assert f"--http-restricted-api={restricted}" in command
    assert f"--grpc-restricted-protocol={restricted}" in command
    assert "shared-memory" in RESTRICTED_APIS and "model-repository" in RESTRICTED_APIS


def test_readiness_is_polled_where_tritonserver_listens():
    assert http_url(["tritonserver"]) == "127.0.0.1:8000"
    assert http_url(["tritonserver", "--http-port", "9000"]) == "127.0.0.1:9000"
    assert http_url(["tritonserver", "--http-address=0.0.0.0", "--http-port=9001"]) == (
        "127.0.0.1:9001"
    )
    assert http_url(["tritonserver", "--http-address=10.1.2.3"]) == "10.1.2.3:8000"


def _supervise(script: str) -> subprocess.CompletedProcess:
    """The supervisor over a fake tritonserver (a Python one-liner that never becomes ready)."""
    return subprocess.run(
        [sys.executable, "-m", "sam2_triton.server.supervise", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_returns_tritonservers_exit_code_and_128_plus_a_killing_signal():
    assert _supervise("raise SystemExit(3)").returncode == 3
    killed = _supervise(f"import os; os.kill(os.getpid(), {int(signal.SIGKILL)})")
    assert killed.returncode == 128 + signal.SIGKILL
