"""``sam2-tritonserver`` of the GPU image: tritonserver as a child process with the stub watchdog
beside it, what ``serve`` does for the embedded server.

    python3 -m sam2_triton.server.supervise tritonserver --model-repository=/models [FLAGS...]

The admin APIs are locked behind ``TRITON_ADMIN_KEY`` (a random key when unset: nobody can use
them), every model is loaded at start, and a model whose stub died is reloaded
(``server.watchdog``). SIGTERM and SIGINT go to tritonserver, whose exit code this returns;
1 if a model could not be brought back, for the container's restart policy or Kubernetes.
Standard library only: the NGC image's Python has none of our other dependencies.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from sam2_triton.metrics import RESTARTS_FILE_ENV
from sam2_triton.server.watchdog import (
    ModelControl,
    Watchdog,
    admin_key,
    admin_key_notice,
    control_arguments,
    server_ready,
)

REPLACED = ("--model-control-mode", "--load-model", "--http-restricted-api",
            "--grpc-restricted-protocol")  # fmt: skip


def _options(command: list[str]) -> list[tuple[str, str | None, int]]:
    """(flag, value, number of words) for each word of ``command`` after the program, as
    tritonserver reads them: ``--flag=value`` or ``--flag value``."""
    parsed, i = [], 1
    while i < len(command):
        word = command[i]
        if word.startswith("--") and "=" in word:
            flag, value = word.split("=", 1)
            parsed.append((flag, value, 1))
        elif word.startswith("--") and i + 1 < len(command) and not command[i + 1].startswith("-"):
            parsed.append((word, command[i + 1], 2))
        else:
            parsed.append((word, None, 1))
        i += parsed[-1][2]
    return parsed


def supervised_command(command: list[str], admin_key: str) -> tuple[list[str], list[str]]:
    """``command`` with our model control and restricted APIs instead of any given ones, and
    the flags dropped for that (names only: a value may be a key)."""
    kept, dropped, i = [command[0]], [], 1
    for flag, _, words in _options(command):
        if flag in REPLACED:
            dropped.append(flag)
        else:
            kept.extend(command[i : i + words])
        i += words
    return [*kept, *control_arguments(admin_key)], dropped


def http_url(command: list[str]) -> str:
    """Where tritonserver's HTTP endpoint is reachable from here (Triton's default port 8000)."""
    values = {flag: value for flag, value, _ in _options(command) if value is not None}
    host = values.get("--http-address", "127.0.0.1")
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"{host}:{values.get('--http-port', '8000')}"


def _exit_code(returncode: int) -> int:
    """A shell's convention: killed by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def main(argv: list[str] | None = None) -> int:
    command = list(sys.argv[1:] if argv is None else argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(
            "usage: python3 -m sam2_triton.server.supervise tritonserver [FLAGS...]",
            file=sys.stderr,
        )
        return 2
    key, from_environment = admin_key()
    print(f"sam2-tritonserver: {admin_key_notice(from_environment)}", flush=True)
    full, dropped = supervised_command(command, key)
    if dropped:
        print(f"sam2-tritonserver: replacing {', '.join(dropped)} by its own", flush=True)
    stopping = threading.Event()
    server: subprocess.Popen | None = None
    watchdog: Watchdog | None = None

    def forward(signum: int, _frame: object) -> None:
        stopping.set()
        if watchdog is not None:
            watchdog.stop(timeout_s=0)  # the stubs exit during shutdown: not a fault
        if server is not None:
            server.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    # restarts counted for the models' metrics, in a file of this container's
    restarts = Path(tempfile.mkdtemp(prefix="sam2-triton-")) / "restarts.json"
    server = subprocess.Popen(full, env={**os.environ, RESTARTS_FILE_ENV: str(restarts)})
    url = http_url(command)
    while server.poll() is None and not stopping.is_set() and not server_ready(url):
        time.sleep(0.5)  # engine builds may take many minutes: no deadline but the process's
    if server.poll() is None and not stopping.is_set():
        watchdog = Watchdog(
            server.pid,
            ModelControl(url, key),
            log=lambda line: print(line, flush=True),
            restarts_file=restarts,
        ).start()
        while server.poll() is None and not watchdog.gave_up.is_set():
            time.sleep(0.5)
        watchdog.stop()
        if watchdog.gave_up.is_set() and not stopping.is_set():
            print("a model could not be brought back: exiting 1 for a supervisor to restart")
            server.terminate()
            server.wait()
            return 1
    return _exit_code(server.wait())


if __name__ == "__main__":
    sys.exit(main())
