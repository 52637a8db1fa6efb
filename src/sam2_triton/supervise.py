"""``sam2-tritonserver`` of the GPU image (and ``sam2-triton supervise``): tritonserver as a child
process with the stub watchdog beside it, what ``serve`` does for the embedded server.

    python3 -m sam2_triton.supervise tritonserver --model-repository=/models [FLAGS...]

The admin APIs are locked behind ``TRITON_ADMIN_KEY`` (a random key when unset: nobody can use
them), every model is loaded at start, and a model whose stub died is reloaded
(``sam2_triton.watchdog``). SIGTERM and SIGINT go to tritonserver, whose exit code this returns;
1 if a model could not be brought back, for the container's restart policy or Kubernetes.
Standard library only: the NGC image's Python has none of our other dependencies.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from sam2_triton.watchdog import ModelControl, Watchdog, control_arguments

REPLACED = ("--model-control-mode", "--load-model", "--http-restricted-api",
            "--grpc-restricted-protocol")  # fmt: skip


def supervised_command(command: list[str], admin_key: str) -> list[str]:
    """``command`` with our model control and restricted APIs instead of any given ones."""
    kept = [a for a in command if a.split("=", 1)[0] not in REPLACED]
    return [*kept, *control_arguments(admin_key)]


def http_url(command: list[str]) -> str:
    """Where tritonserver's HTTP endpoint is reachable from here (Triton's default port 8000)."""
    values = dict(a.split("=", 1) for a in command if a.startswith("--") and "=" in a)
    host = values.get("--http-address", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"{host}:{values.get('--http-port', '8000')}"


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print("usage: python3 -m sam2_triton.supervise tritonserver [FLAGS...]", file=sys.stderr)
        return 2
    key = os.environ.get("TRITON_ADMIN_KEY") or ""
    if not key:
        key = secrets.token_hex(24)
        print("sam2-tritonserver: TRITON_ADMIN_KEY is not set; admin APIs are locked", flush=True)
    server = subprocess.Popen(supervised_command(command, key))
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        server.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    url = http_url(command)
    while server.poll() is None and not stopping and not _ready(url):
        time.sleep(0.5)  # engine builds may take many minutes: no deadline but the process's
    if server.poll() is not None or stopping:
        return server.wait()
    watchdog = Watchdog(
        server.pid, ModelControl(url, key), log=lambda line: print(line, flush=True)
    ).start()
    while server.poll() is None and not watchdog.gave_up.is_set():
        time.sleep(0.5)
    watchdog.stop()
    if watchdog.gave_up.is_set() and not stopping:
        print(
            "a model could not be brought back: exiting 1 for a supervisor to restart", flush=True
        )
        server.terminate()
        server.wait()
        return 1
    return server.wait()


if __name__ == "__main__":
    sys.exit(main())
