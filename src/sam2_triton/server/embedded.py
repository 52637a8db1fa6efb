"""Start and stop the embedded Triton server: the real ``tritonserver`` binary from the
``nvidia-pytriton`` wheel, with its Python backend, on 127.0.0.1 by default.

The wheel ships the binary, the Python backend and one backend stub per Python version, but not in
the layout ``tritonserver`` expects: the stub must sit next to ``libtriton_python.so``. We copy
``bin/``, ``backends/`` and ``caches/`` into a runtime folder once and put the stub there; the
wheel's bundled libraries go on ``LD_LIBRARY_PATH``; this interpreter's ``bin/`` goes first on
``PATH`` because the stub finds its Python packages through the ``python3`` it sees there.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from sam2_triton.metrics import RESTARTS_FILE_ENV
from sam2_triton.server.watchdog import control_arguments

EXIT_TIMEOUT_S = 15


class ServerError(RuntimeError):
    """The server cannot be started; the message says what to do."""


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def _pytriton_dir() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise ServerError(
            "nvidia-pytriton (which ships tritonserver) is not installed: run `make install`"
        ) from exc
    return Path(pytriton.__file__).parent / "tritonserver"


@dataclass(frozen=True)
class StubPython:
    """The Python the backend stubs run: its version picks the stub binary, its ``bin/`` goes
    first on PATH (the stub finds its packages through the ``python3`` it sees there), and for
    an interpreter other than this one its ``LIBDIR`` (libpython) goes on LD_LIBRARY_PATH."""

    executable: Path
    version: str
    lib_dirs: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> StubPython:
        return cls(Path(sys.executable), f"{sys.version_info.major}.{sys.version_info.minor}")

    @classmethod
    def of(cls, executable: Path) -> StubPython:
        """Another interpreter, e.g. Python 3.10 as in the NGC image (tests/test_gpu_runtime.py)."""
        query = (
            "import sys, sysconfig; "
            "print(f'{sys.version_info[0]}.{sys.version_info[1]}'); "
            "print(sysconfig.get_config_var('LIBDIR'))"
        )
        out = subprocess.run(
            [str(executable), "-c", query], capture_output=True, text=True, check=True
        )
        version, libdir = out.stdout.split()
        return cls(Path(executable), version, (libdir,))


def _stub_path(triton_dir: Path, version: str) -> Path:
    stub = triton_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        available = sorted(p.name for p in (triton_dir / "python_backend_stubs").glob("*"))
        raise ServerError(
            f"no Python backend stub for Python {version} in {stub.parent.parent} "
            f"(available: {', '.join(available) or 'none'}); use one of those Python versions"
        )
    return stub


def prepare_runtime(runtime_dir: Path, python_version: str | None = None) -> Path:
    """Lay out tritonserver, backends (with the stub) and caches under ``runtime_dir``.

    Idempotent: an existing complete layout from the same wheel and stub is reused.
    """
    triton_dir = _pytriton_dir()
    stub = _stub_path(triton_dir, python_version or StubPython.current().version)
    marker = runtime_dir / ".source"
    source = f"{triton_dir}:{stub.stat().st_mtime_ns}"
    if marker.exists() and marker.read_text() == source:
        return runtime_dir
    if runtime_dir.exists():
        shutil.rmtree(runtime_dir)
    runtime_dir.mkdir(parents=True)
    for part in ("bin", "backends", "caches"):
        shutil.copytree(triton_dir / part, runtime_dir / part, symlinks=True)
    shutil.copy2(stub, runtime_dir / "backends" / "python" / "triton_python_backend_stub")
    marker.write_text(source)
    return runtime_dir


_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` of our long-running children (tritonserver, nginx, Prometheus): SIGTERM
    them when the process that started them dies, even by SIGKILL, instead of leaving them
    holding their ports. Linux only; (the signal comes when the starting *thread* exits, so
    start them from a thread that lives as long as they should)."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    command: list[str], log_file: Path | None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start one of our long-running children (tritonserver, nginx, Prometheus): its output
    appended to ``log_file`` (None: ours), in a session of its own (so ``stop_process`` can
    kill its group), and terminated when we die (``die_with_parent``)."""
    log = open(log_file, "ab") if log_file else None  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            command,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
            preexec_fn=die_with_parent,  # one C call in the child, no locks
        )
    finally:
        if log:
            log.close()


def stop_process(process: subprocess.Popen | None, sig: int, timeout: float) -> int | None:
    """Send ``sig`` to a child started with ``start_new_session``, wait up to ``timeout`` for it
    to exit, then SIGKILL its whole process group (stubs, nginx workers); its exit code."""
    if process is None or process.poll() is not None:
        return process.returncode if process else None
    process.send_signal(sig)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def server_environment(python: StubPython | None = None) -> dict[str, str]:
    """Environment for tritonserver and the stubs it spawns."""
    python = python or StubPython.current()
    env = dict(os.environ)
    libs = Path(_pytriton_dir()).parent.parent / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(libs), *python.lib_dirs, env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["PATH"] = os.pathsep.join((str(python.executable.parent), env.get("PATH", "")))
    return env


@dataclass
class TritonServer:
    """A running embedded tritonserver process (use as a context manager or call stop())."""

    repository: Path
    runtime_dir: Path
    host: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    log_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    python: StubPython | None = None  # default: this interpreter
    # Set: models loaded explicitly and the model-repository API open only to requests carrying
    # this key (server.watchdog reloads a model whose stub died); None: Triton's defaults.
    admin_key: str | None = None
    # Where the watchdog counts stub restarts for the models' metrics (with an admin key: a
    # temporary file of this server's, removed at stop).
    restarts_file: Path | None = None
    process: subprocess.Popen | None = None
    _temporary: Path | None = field(default=None, init=False, repr=False)

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.ports.http}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.ports.grpc}"

    def command(self) -> list[str]:
        runtime = self.runtime_dir
        return [
            str(runtime / "bin" / "tritonserver"),
            f"--model-repository={self.repository}",
            f"--backend-directory={runtime / 'backends'}",
            f"--cache-directory={runtime / 'caches'}",
            f"--http-address={self.host}",
            f"--grpc-address={self.host}",
            f"--metrics-address={self.host}",
            f"--http-port={self.ports.http}",
            f"--grpc-port={self.ports.grpc}",
            f"--metrics-port={self.ports.metrics}",
            "--disable-auto-complete-config",
            "--exit-on-error=true",
            # Idle keep-alive client connections must not hold a SIGTERM for Triton's default
            # 30 s; in-flight requests still get this long to finish.
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            *(control_arguments(self.admin_key) if self.admin_key else ()),
            *self.extra_args,
        ]

    def start(self, timeout: float = 300.0) -> TritonServer:
        """Start the server and wait until every model is ready."""
        if not self.repository.is_dir():
            raise ServerError(f"model repository {self.repository} does not exist")
        for name, port in (
            ("HTTP", self.ports.http),
            ("gRPC", self.ports.grpc),
            ("metrics", self.ports.metrics),
        ):
            if port_in_use(self.host, port):
                raise ServerError(
                    f"{name} port {self.host}:{port} is already in use (another tritonserver?); "
                    "stop it or choose other ports with --http-port/--grpc-port/--metrics-port"
                )
        python = self.python or StubPython.current()
        prepare_runtime(self.runtime_dir, python.version)
        environment = server_environment(python)
        if self.admin_key and self.restarts_file is None:
            self._temporary = Path(tempfile.mkdtemp(prefix="sam2-triton-"))
            self.restarts_file = self._temporary / "restarts.json"
        if self.restarts_file is not None:
            environment[RESTARTS_FILE_ENV] = str(self.restarts_file)
        self.process = spawn(self.command(), self.log_file, environment)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                hint = f"; see {self.log_file}" if self.log_file else ""
                raise ServerError(f"tritonserver exited with code {self.process.returncode}{hint}")
            # Connection: close - a pooled keep-alive connection left open here would hold up
            # the server's graceful shutdown later.
            with contextlib.suppress(requests.RequestException):
                with requests.get(url, timeout=2, headers={"Connection": "close"}) as reply:
                    if reply.status_code == 200:
                        return
            time.sleep(0.5)
        self.stop()
        raise ServerError(f"tritonserver was not ready after {timeout:.0f} s")

    def stop(self, timeout: float = 3 * EXIT_TIMEOUT_S) -> int | None:
        """SIGTERM, wait for a clean exit (models finalised), SIGKILL as a last resort."""
        code = stop_process(self.process, signal.SIGTERM, timeout)
        if self._temporary is not None:  # the folder start() made, and only that
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = self.restarts_file = None
        return code

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
