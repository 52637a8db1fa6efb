"""``sam2-triton``: download, export, build-repo, serve, cluster, segment, track, batch, bench,
perf-input, demo, ui, connect.

One module per command (``register`` adds its parser, ``run`` runs it). Paths default to folders
under the current directory (the repository root when run by make): ``sam2_triton.cli.paths``.
"""

from __future__ import annotations

import argparse
import sys

from sam2_triton.cli import (
    batch,
    bench,
    build_repo,
    cluster,
    connect,
    demo,
    download,
    export,
    perf_input,
    segment,
    serve,
    track,
    ui,
)

COMMANDS = (
    download, export, build_repo, serve, cluster, segment, track, batch, bench, perf_input, demo,
    ui, connect,
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sam2-triton", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sam2_triton.batch.runner import ServerUnavailableError
    from sam2_triton.batch.store import OutputLockedError
    from sam2_triton.cluster.nginx import NginxError
    from sam2_triton.cluster.prometheus import PrometheusError
    from sam2_triton.repository.build import RepositoryError
    from sam2_triton.runtime.runners import PrecisionUnavailableError
    from sam2_triton.server.embedded import ServerError
    from sam2_triton.weights.checkpoints import CheckpointDownloadError

    try:
        return args.func(args)
    except (
        CheckpointDownloadError,
        RepositoryError,
        ServerError,
        export.ExportCheckError,
        ServerUnavailableError,
        OutputLockedError,
        PrecisionUnavailableError,
        NginxError,
        PrometheusError,
        FileNotFoundError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
