"""Notice a dead Python-backend stub and bring its model back.

Triton 2.51 does not: after a model's stub process dies (OOM killer, a crash in native code),
every request to the model fails with ``Stub process '...' is not healthy`` forever, while
``/v2/health/ready`` keeps answering 200, so neither a probe nor a balancer notices. The watchdog
polls the stubs ``tritonserver`` started; when one is gone it unloads and reloads that model
through the model-repository API (the server runs with ``--model-control-mode=explicit`` and that
API restricted to a per-run key only ``serve`` knows); once loaded, fresh stubs serve it.
Readiness does not show the reload: the unload returns at once, the old instances serve until
the new ones are loaded, and Triton 2.51 answers 200 on ``/v2/health/ready`` throughout (measured:
"not ready", and 404 for a request, only for a few milliseconds). Requests that reach the dead
stub fail with Triton's error from its death to the end of the reload (a poll, under a second);
the model's other instances keep answering. A stub stopped for ``hung_after_s`` (SIGSTOP, a
tracer) is hung: Triton fails its requests and never recovers it, so it is killed and healed
as a dead one. A model that fails to
load again ``max_attempts`` times in a row is given up on: the caller stops the server and exits
non-zero, for a supervisor (systemd, Kubernetes) to restart.

Each replacement is counted by model and cause (dead, hung) in ``restarts_file``, which the
reloaded model reads into the ``sam2_stub_restarts`` gauge on the metrics port.

Standard library only (and ``sam2_triton.metrics``, which is too): it also runs in the GPU
image's Python (``sam2_triton.server.supervise``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sam2_triton.metrics import RESTART_CAUSES

# HTTP header (gRPC: metadata ``triton-grpc-protocol-admin-key``) that opens the admin APIs.
ADMIN_HEADER = "admin-key"
#: The operator's key for the admin APIs; unset, a random one that only the watchdog holds.
ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"
STUB_BINARY = "triton_python_backend_stub"
# Admin APIs: what changes the server. Only the holder of the key (the watchdog, an operator's
# TRITON_ADMIN_KEY) may use them. The load API takes model files in the request (code, for a
# Python model); a client registering shared memory would make the server map it; logging and
# trace settings change what the server writes. What only reads stays open, as Triton leaves
# it by default: inference, health, metadata, model config and statistics (Triton's own clients
# and perf_analyzer read a model's config before they send anything).
RESTRICTED_APIS = ("model-repository", "shared-memory", "logging", "trace")


def admin_key() -> tuple[str, bool]:
    """(the admin APIs' key, whether it is the operator's ``TRITON_ADMIN_KEY``): unset, a
    random key nobody is told, so the admin APIs are locked to all but the watchdog."""
    key = os.environ.get(ADMIN_KEY_ENV, "")
    return (key, True) if key else (secrets.token_urlsafe(24), False)


def admin_key_notice(from_environment: bool) -> str:
    """What ``serve``, ``cluster`` and the GPU image say about the admin APIs at start."""
    apis = ", ".join(RESTRICTED_APIS)
    if from_environment:
        return f"admin APIs ({apis}): open with the key in {ADMIN_KEY_ENV}"
    return f"admin APIs ({apis}): locked ({ADMIN_KEY_ENV} is not set)"


def control_arguments(admin_key: str) -> tuple[str, ...]:
    """tritonserver flags: every model loaded at start, loads and unloads afterwards only by the
    holder of ``admin_key`` (the watchdog's reloads)."""
    restricted = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={admin_key}"
    return (
        "--model-control-mode=explicit",
        "--load-model=*",
        f"--http-restricted-api={restricted}",
        f"--grpc-restricted-protocol={restricted}",
    )


def server_ready(http_url: str) -> bool:
    """GET /v2/health/ready at ``http_url`` (host:port) answers 200."""
    try:
        with urllib.request.urlopen(f"http://{http_url}/v2/health/ready", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class Stub:
    pid: int
    model: str  # from the model.py path the stub runs: <repository>/<model>/<version>/model.py
    name: str  # Triton's instance name, e.g. sam2_segment_0_0


def _status(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a live process, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state in ("Z", "X") else (int(ppid), state)


def stubs_of(server_pid: int) -> list[Stub]:
    """The live backend stubs of the tritonserver process ``server_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        status = _status(int(entry.name))
        if status is None or status[0] != server_pid:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) > 8 and argv[0].endswith(STUB_BINARY):
            found.append(Stub(int(entry.name), Path(argv[1]).parent.parent.name, argv[8]))
    return found


def alive(pid: int) -> bool:
    return _status(pid) is not None


@dataclass
class ModelControl:
    """Triton's model-repository API over HTTP, with the admin key."""

    http_url: str  # host:port
    admin_key: str
    timeout_s: float = 300.0

    def _post(self, path: str) -> bytes:
        request = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/{path}",
            data=b"",
            headers={ADMIN_HEADER: self.admin_key, "Connection": "close"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                return reply.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RuntimeError(f"{path}: HTTP {exc.code} {detail}") from None
        except OSError as exc:  # refused, reset, timed out
            raise RuntimeError(f"{path}: {exc}") from None

    def is_loaded(self, model: str) -> bool:
        """Triton believes ``model`` is READY (a dead stub does not change that; an unload by an
        operator does)."""
        index = json.loads(self._post("index") or b"[]")
        return any(m.get("name") == model and m.get("state") == "READY" for m in index)

    def reload(self, model: str) -> None:
        """Unload (asynchronous in Triton: it returns at once), then load (returns once loaded)."""
        self._post(f"models/{model}/unload")
        self._post(f"models/{model}/load")


@dataclass
class Healing:
    """What the watchdog did, for the log and for tests."""

    model: str
    stubs: list[str]
    seconds: float
    error: str | None = None
    cause: str = "dead"  # or "hung": alive but stopped, replaced


def stopped(pid: int) -> bool:
    """The process is stopped (SIGSTOP, a tracer): alive, answering nothing, using no CPU."""
    status = _status(pid)
    return status is not None and status[1] in ("T", "t")


@dataclass
class Watchdog:
    """Polls the stubs of one tritonserver process in a thread; see the module docstring."""

    server_pid: int
    control: ModelControl
    interval_s: float = 0.5
    max_attempts: int = 3
    #: A stub stopped this long is hung: killed, then reloaded as a dead one is.
    hung_after_s: float = 5.0
    #: Where restarts are counted for the reloaded models' metrics (None: not counted).
    restarts_file: Path | None = None
    log: Callable[[str], None] = print
    healings: list[Healing] = field(default_factory=list)
    gave_up: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _restarts: dict[str, dict[str, int]] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    @classmethod
    def of_server(cls, server: Any, **options: Any) -> Watchdog:
        """For a started ``server.embedded.TritonServer`` with an ``admin_key`` (duck-typed:
        this module stays importable without the rest of the package)."""
        control = ModelControl(server.http_url, server.admin_key)
        options.setdefault("restarts_file", server.restarts_file)
        return cls(server.process.pid, control, **options)

    def start(self) -> Watchdog:
        stubs = stubs_of(self.server_pid)
        self._expected = self._by_model(stubs)
        self.log(f"watchdog: watching {len(stubs)} stubs of {len(self._expected)} models")
        self._thread = threading.Thread(target=self._run, name="stub-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop watching (before the server stops: its stubs exit then). A reload in progress is
        left to finish in its daemon thread rather than hold up a shutdown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    @staticmethod
    def _by_model(stubs: list[Stub]) -> dict[str, list[Stub]]:
        models: dict[str, list[Stub]] = {}
        for stub in stubs:
            models.setdefault(stub.model, []).append(stub)
        return models

    def _run(self) -> None:
        stopped_since: dict[int, float] = {}  # pid -> when it was first seen stopped
        while not self._stop.wait(self.interval_s):
            if not alive(self.server_pid):
                return
            now = time.monotonic()
            for model, stubs in list(self._expected.items()):
                hung = []
                for stub in stubs:
                    if not stopped(stub.pid):
                        stopped_since.pop(stub.pid, None)
                    elif now - stopped_since.setdefault(stub.pid, now) >= self.hung_after_s:
                        hung.append(stub)
                dead = [s.name for s in stubs if not alive(s.pid)]
                if not (dead or hung) or self._stop.is_set():
                    continue
                if not self._still_wanted(model):
                    continue
                cause = "dead" if dead else "hung"
                if hung and not dead:
                    self._kill(model, hung)
                    dead = [s.name for s in hung]
                if not self._heal(model, dead, cause):
                    self.gave_up.set()
                    return
            watched = {s.pid for stubs in self._expected.values() for s in stubs}
            for pid in stopped_since.keys() - watched:  # replaced since
                del stopped_since[pid]

    def _kill(self, model: str, hung: list[Stub]) -> None:
        """Requests caught in a hung stub fail once it is gone (Triton answers them), instead
        of waiting on it: the reload then replaces it."""
        names = ", ".join(s.name for s in hung)
        self.log(
            f"watchdog: {model}'s stub {names} hung (stopped {self.hung_after_s:g} s); killing it"
        )
        for stub in hung:
            try:
                os.kill(stub.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while any(alive(s.pid) for s in hung) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _still_wanted(self, model: str) -> bool:
        """False (and the model no longer watched) if it was unloaded on purpose, or if the
        server cannot say (it is shutting down)."""
        try:
            loaded = self.control.is_loaded(model)
        except RuntimeError as exc:
            self.log(f"watchdog: cannot ask the server about {model} ({exc}); not reloading it")
            loaded = False
        if not loaded:
            del self._expected[model]
        return loaded

    def _heal(self, model: str, dead: list[str], cause: str = "dead") -> bool:
        verb = "died" if cause == "dead" else "hung and was killed"
        self.log(f"watchdog: {model}'s stub {', '.join(dead)} {verb}; reloading {model}")
        self._count(model, cause)
        before = {s.pid for s in stubs_of(self.server_pid)}
        for attempt in range(1, self.max_attempts + 1):
            start = time.monotonic()
            try:
                self.control.reload(model)
            except RuntimeError as exc:
                spent = time.monotonic() - start
                self.healings.append(Healing(model, dead, spent, str(exc), cause))
                self.log(f"watchdog: reloading {model} failed (attempt {attempt}): {exc}")
                last = attempt == self.max_attempts
                if not last and self._stop.wait(min(2.0**attempt, 30.0)):
                    return True
                continue
            seconds = time.monotonic() - start
            # The new instances' stubs; the old ones may still be on their way out.
            fresh = [s for s in stubs_of(self.server_pid) if s.pid not in before]
            self._expected[model] = [s for s in fresh if s.model == model]
            self.healings.append(Healing(model, dead, seconds, cause=cause))
            self.log(f"watchdog: {model} reloaded in {seconds:.1f} s")
            return True
        self.log(f"watchdog: giving up on {model} after {self.max_attempts} failed reloads")
        return False

    def _count(self, model: str, cause: str) -> None:
        """One more restart of ``model`` for ``cause``, written before the reload reads it."""
        if self.restarts_file is None:
            return
        by_cause = self._restarts.setdefault(model, dict.fromkeys(RESTART_CAUSES, 0))
        by_cause[cause] += 1
        partial = self.restarts_file.with_name(self.restarts_file.name + ".partial")
        try:
            partial.write_text(json.dumps(self._restarts))
            os.replace(partial, self.restarts_file)
        except OSError as exc:
            self.log(f"watchdog: cannot write {self.restarts_file} ({exc}); restarts not counted")
