"""``sam2-triton connect``: the gateway that makes the service the SAM 2 backend of Label
Studio, CVAT and X-AnyLabeling (docs/integrations.md), against a running server."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_PORT = 9090  # Label Studio's examples' ML backend port


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "connect",
        help="the backend of Label Studio, CVAT and X-AnyLabeling (docs/integrations.md)",
    )
    p.add_argument("--config", type=Path, help="a TOML file (docs/integrations.md#config)")
    p.add_argument("--triton", metavar="HOST:PORT", help="the SAM 2 server (overrides [server])")
    p.add_argument("--protocol", choices=("grpc", "http"), help="(overrides [server])")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"(default {DEFAULT_PORT})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from aiohttp import web

    from sam2_triton.connect.app import make_app
    from sam2_triton.connect.config import ConfigError, ConnectConfig
    from sam2_triton.connect.service import ToolError

    try:
        config = ConnectConfig.load(args.config)
    except ConfigError as exc:
        print(f"sam2-triton connect: {exc}")
        return 2
    server = dataclasses.replace(
        config.server,
        **{k: v for k, v in (("url", args.triton), ("protocol", args.protocol)) if v},
    )
    config = dataclasses.replace(config, server=server)
    try:
        app = make_app(config)
    except ToolError as exc:
        print(f"sam2-triton connect: {exc}")
        return 2
    base = f"http://{args.host}:{args.port}"
    print(
        f"sam2-triton connect: {base} (SAM 2 server {server.url} over {server.protocol})\n"
        f"  Label Studio: ML backend URL {base}\n"
        f"  CVAT: CVAT_NUCLIO_HOST={args.host} CVAT_NUCLIO_PORT={args.port}"
        f" (functions {config.cvat.interactor}, {config.cvat.detector})\n"
        f"  X-AnyLabeling: remote_server_settings.server_url {base}\n"
        "Ctrl-C to stop",
        flush=True,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0
