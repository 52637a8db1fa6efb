"""``sam2-triton ui``: the web app (click to segment, cut out, export) and its gateway, against
a running server, or with ``--serve`` against an embedded one it starts itself."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from sam2_triton.cli.arguments import add_served_model, positive_int, served_name
from sam2_triton.cli.paths import EMBEDDED_REPOSITORY_DIR
from sam2_triton.clients.tritonclient_io import DEFAULT_URLS
from sam2_triton.contract import DEFAULT_MAX_IMAGE_PIXELS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="the web app: click to segment in a browser (docs/ui.md)")
    p.add_argument(
        "--triton",
        metavar="HOST:PORT",
        help="the SAM 2 server (default: the local embedded server's gRPC port, "
        f"{DEFAULT_URLS['grpc']}; its HTTP port with --protocol http)",
    )
    p.add_argument("--protocol", choices=("grpc", "http"), default="grpc")
    p.add_argument("--host", default="127.0.0.1", help="gateway bind address (default: loopback)")
    p.add_argument("--port", type=int, default=7860, help="gateway port (default 7860)")
    p.add_argument(
        "--max-upload-mb", type=positive_int, default=64, help="largest image file accepted"
    )
    p.add_argument(
        "--max-image-pixels",
        type=positive_int,
        default=DEFAULT_MAX_IMAGE_PIXELS,
        help="refuse larger images here, before the server does (with --serve, the embedded "
        "server's cap too; else set it as the server's)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="also build and start the embedded server (HTTP 8000, gRPC 8001) and stop it after",
    )
    add_served_model(p)
    p.add_argument("--repository", type=Path, default=EMBEDDED_REPOSITORY_DIR)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from aiohttp import web

    from sam2_triton.ui.backend import UiBackend
    from sam2_triton.ui.gateway import LOOPBACK_NAMES, make_app
    from sam2_triton.ui.video import VideoBackend

    url = args.triton or DEFAULT_URLS[args.protocol]
    with _embedded_server(args) if args.serve else contextlib.nullcontext():
        backend = UiBackend(url, args.protocol, max_image_pixels=args.max_image_pixels)
        hosts = () if args.host in ("0.0.0.0", "::") else (*LOOPBACK_NAMES, args.host)
        videos = VideoBackend(url, args.protocol, max_pixels=args.max_image_pixels)
        app = make_app(backend, max_upload_bytes=args.max_upload_mb << 20, hosts=hosts,
                       videos=videos)  # fmt: skip
        print(
            f"sam2-triton ui: http://{args.host}:{args.port}/ (SAM 2 server {url} over "
            f"{args.protocol}; Ctrl-C to stop)",
            flush=True,
        )
        web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)
    return 0


@contextlib.contextmanager
def _embedded_server(args: argparse.Namespace) -> Iterator[None]:
    from sam2_triton.cli.build_repo import build_repo
    from sam2_triton.cli.serve import Address, start_server
    from sam2_triton.repository.build import serving
    from sam2_triton.repository.options import ServingOptions
    from sam2_triton.server.embedded import Ports

    options = ServingOptions(max_image_pixels=args.max_image_pixels)
    build_repo(args.model, args.repository, options)
    with serving(args.repository):
        server = start_server(
            args.repository, Address("127.0.0.1", Ports(8000, 8001, 8002)), options.cpu_precision
        )
        print(f"embedded {served_name(args.model)} server: HTTP :8000, gRPC :8001", flush=True)
        try:
            yield
        finally:
            server.stop()
