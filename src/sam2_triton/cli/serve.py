"""``sam2-triton serve``: (re)build the embedded repository if stale, run tritonserver until
Ctrl-C / SIGTERM, stop it cleanly."""

from __future__ import annotations

import argparse
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sam2_triton.cli.arguments import (
    add_served_model,
    add_server_address,
    add_serving_options,
    served_name,
    serving_options,
)
from sam2_triton.cli.build_repo import build_repo
from sam2_triton.cli.paths import EMBEDDED_REPOSITORY_DIR, RUNTIME_DIR
from sam2_triton.server.embedded import Ports
from sam2_triton.server.watchdog import Watchdog, admin_key, admin_key_notice

if TYPE_CHECKING:
    from sam2_triton.server.embedded import TritonServer


@dataclass(frozen=True)
class Address:
    """Where the embedded server listens."""

    host: str
    ports: Ports

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Address:
        return cls(args.host, Ports(args.http_port, args.grpc_port, args.metrics_port))

    def url(self, port: int) -> str:
        return f"{self.host}:{port}"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the embedded tritonserver until Ctrl-C / SIGTERM")
    add_served_model(p)
    p.add_argument("--repository", type=Path, default=EMBEDDED_REPOSITORY_DIR)
    add_server_address(p)
    add_serving_options(p)
    p.set_defaults(func=run)


def start_server(
    repository: Path,
    address: Address,
    precision: str,
    log_file: Path | None = None,
    admin_key: str | None = None,
) -> TritonServer:
    from sam2_triton.runtime.runners import require_precision
    from sam2_triton.server.embedded import TritonServer

    require_precision(precision)  # say so now, not as a model load failure
    server = TritonServer(
        repository=repository.resolve(),
        runtime_dir=RUNTIME_DIR.resolve(),
        host=address.host,
        ports=address.ports,
        log_file=log_file,
        admin_key=admin_key,
    )
    return server.start()


def run(args: argparse.Namespace) -> int:
    from sam2_triton.repository.build import serving

    options = serving_options(args)
    address = Address.from_args(args)
    build_repo(args.model, args.repository, options)
    with serving(args.repository):
        key, from_environment = admin_key()
        server = start_server(args.repository, address, options.cpu_precision, admin_key=key)
        watchdog = Watchdog.of_server(server, log=lambda line: print(line, flush=True)).start()
        print(admin_key_notice(from_environment), flush=True)
        print(
            f"serving {served_name(args.model)}: HTTP {address.url(address.ports.http)}, "
            f"gRPC {address.url(address.ports.grpc)}, metrics "
            f"{address.url(address.ports.metrics)} (Ctrl-C to stop)",
            flush=True,
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        while not stop.is_set() and server.process.poll() is None and not watchdog.gave_up.is_set():
            stop.wait(0.5)
        watchdog.stop()
        code = server.stop()
    print(f"tritonserver stopped (exit code {code})")
    if watchdog.gave_up.is_set():
        print(
            "a model could not be brought back: exiting 1 for a supervisor to restart", flush=True
        )
    return 0 if stop.is_set() and not watchdog.gave_up.is_set() else 1
