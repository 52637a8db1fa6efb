"""``sam2-triton cluster --replicas N``: N embedded servers, nginx in front of them on
127.0.0.1:8000 (HTTP) and :8001 (gRPC) hashing on the image-id header, Prometheus on :9090;
replicas that die are started again; Ctrl-C / SIGTERM stops everything (docs/operations.md)."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from sam2_triton.cli.arguments import add_model, add_serving_options, positive_int, serving_options
from sam2_triton.cli.build_repo import build_repo
from sam2_triton.cli.paths import (
    CLUSTER_DIR,
    EMBEDDED_REPOSITORY_DIR,
    OBSERVABILITY_DIR,
    RUNTIME_DIR,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cluster", help="N embedded replicas behind nginx (image affinity) with Prometheus"
    )
    add_model(p)
    p.add_argument("--replicas", type=positive_int, default=2)
    p.add_argument("--repository", type=Path, default=EMBEDDED_REPOSITORY_DIR)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the balancer's bind address (default: loopback only; replicas and Prometheus "
        "always listen on 127.0.0.1)",
    )
    p.add_argument("--http-port", type=int, default=8000, help="the balancer's HTTP port")
    p.add_argument("--grpc-port", type=int, default=8001, help="the balancer's gRPC port")
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--no-prometheus", action="store_true", help="run without Prometheus")
    p.add_argument(
        "--replica-base-port",
        type=int,
        default=8100,
        help="replica i listens on BASE+10i (HTTP), +1 (gRPC), +2 (metrics); default 8100",
    )
    p.add_argument("--workdir", type=Path, default=CLUSTER_DIR, help="logs, nginx, Prometheus")
    add_serving_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sam2_triton.cluster.replicas import Cluster
    from sam2_triton.repository.build import serving
    from sam2_triton.runtime.runners import require_precision
    from sam2_triton.server.watchdog import admin_key, admin_key_notice

    options = serving_options(args)
    require_precision(options.cpu_precision)
    build_repo(args.model, args.repository, options)
    cluster = Cluster.create(
        args.replicas,
        args.repository.resolve(),
        RUNTIME_DIR.resolve(),
        args.workdir.resolve(),
        None if args.no_prometheus else OBSERVABILITY_DIR.resolve(),
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        prometheus_port=args.prometheus_port,
        replica_base_port=args.replica_base_port,
        log=lambda line: print(line, flush=True),
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: cluster.stopping.set())
    with serving(args.repository):
        cluster.start()
        where = f"{args.host}:{args.http_port} (HTTP), {args.host}:{args.grpc_port} (gRPC)"
        prometheus = "" if args.no_prometheus else f", Prometheus {cluster.prometheus.url}"
        print(
            f"cluster of {args.replicas} replicas of SAM 2.1 {args.model} ready: {where}"
            f"{prometheus}; logs in {args.workdir} (Ctrl-C to stop)",
            flush=True,
        )
        print(f"each replica's {admin_key_notice(admin_key()[1])}", flush=True)
        try:
            cluster.run()
        finally:
            cluster.stop()
    if cluster.failed:
        print(f"error: {cluster.failed}; cluster stopped", flush=True)
        return 1
    print("cluster stopped", flush=True)
    return 0
