"""The real tritonservers the tests share: started watched, stopped in the background.

Each server runs as ``sam2-triton serve`` runs it, under the stub watchdog with an admin key, so
a stub that crashes mid-suite is reloaded as a user's would be instead of failing every later
request to its model; the crash is still reported. (The crashes once seen here came from
decoupled BLS calls, which no model makes now: docs/operations.md.) Every stub writes its
Python stacks to the server's log when it crashes (``faulthandler``, enabled in
``triton_models.common``), and the session's summary prints them (``report``).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

#: Servers' graceful stops still running (``stop_in_background``), joined at the session's end.
_STOPPING: list[threading.Thread] = []
#: What the watchdogs of the servers said, each with the crash stacks logged by then.
_HEALED: list[tuple[str, list[str]]] = []
FATAL = "Fatal Python error"


def stop_in_background(stop: Callable[[], object]) -> None:
    """Run a server's graceful stop (``stop``) beside the next tests. Triton unloads a Python
    model's instances one after another, each after its backend's one-second health check, so a
    stop takes 3-5 s of waiting (15 s once a stub was killed mid-request: the old version stays
    referenced until the exit timeout) in which the next test need not wait."""
    thread = threading.Thread(target=stop, name="server-stop", daemon=True)
    thread.start()
    _STOPPING.append(thread)


def join_stopping() -> None:
    for thread in _STOPPING:
        thread.join(timeout=120)


def serve_watched(repo: Path, log: Path, ports, runtime_dir: Path, python=None) -> Iterator:
    """A started TritonServer for ``repo`` under a stub watchdog, stopped when the caller is
    done (its log printed if it fails to start)."""
    from sam2_triton.server.embedded import TritonServer
    from sam2_triton.server.watchdog import Watchdog

    server = TritonServer(
        repository=repo,
        runtime_dir=runtime_dir,
        ports=ports,
        log_file=log,
        python=python,
        admin_key=secrets.token_urlsafe(16),
    )
    try:
        server.start(timeout=300)
    except Exception:
        print(log.read_text()[-5000:] if log.exists() else "no log")
        raise
    watchdog = Watchdog.of_server(server, log=lambda line: _heard(log, line)).start()
    yield server
    watchdog.stop()
    stop_in_background(server.stop)


def _heard(log: Path, line: str) -> None:
    """A watchdog's line; with a healing, the crash stacks the server's log holds by then (its
    stubs also crash when the server stops, which is not reported)."""
    if line.startswith("watchdog: watching"):
        return
    text = log.read_text(errors="replace") if log.exists() else ""
    stacks = []
    start = text.find(FATAL)
    while start >= 0:
        end = text.find("Extension modules:", start)
        stacks.append(text[start : end if end > 0 else start + 3000].rstrip())
        start = text.find(FATAL, start + 1)
    _HEALED.append((line, stacks))


def report() -> list[str]:
    """Lines for the session's summary: each healing, then the crash stacks logged before it."""
    lines: list[str] = []
    seen: set[str] = set()
    for line, stacks in _HEALED:
        lines.append(line)
        lines += [stack for stack in stacks if stack not in seen]
        seen.update(stacks)
    return lines
