"""``sam2-triton perf-input``: perf_analyzer's ``--input-data`` JSON for an image and a click or a
box (the work is ``sam2_triton.bench.perf_analyzer``), so that nobody writes base64 by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _numbers(text: str, count: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} {text!r}: expected numbers") from None
    if len(values) not in count:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r}: expected {' or '.join(map(str, count))} numbers"
        )
    return values


def _point(text: str) -> list[float]:
    values = _numbers(text, (2, 3), "--point")
    if len(values) == 3 and values[2] not in (0.0, 1.0):
        raise argparse.ArgumentTypeError(f"--point {text!r}: the label is 1 or 0")
    return values


def _box(text: str) -> list[float]:
    return _numbers(text, (4,), "--box")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "perf-input",
        help="perf_analyzer's --input-data JSON for an image and a click or box",
        description="Writes the JSON that Triton's perf_analyzer sends as sam2_segment's or "
        "sam2_session's inputs (docs/benchmarks.md#perf_analyzer).",
    )
    p.add_argument("image", type=Path, help="an image file (JPEG, PNG, ...)")
    p.add_argument(
        "--point", type=_point, action="append", metavar="X,Y[,LABEL]",
        help="a click in the image's pixels (label 1: foreground, 0: background); repeatable",
    )  # fmt: skip
    p.add_argument("--box", type=_box, metavar="X0,Y0,X1,Y1", help="a box in the image's pixels")
    p.add_argument("-o", "--out", type=Path, default=Path("perf_input.json"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sam2_triton.bench.perf_analyzer import input_data, write_input_data

    if not args.point and args.box is None:
        print("error: give --point or --box", file=sys.stderr)
        return 2
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.image}: {exc.strerror}", file=sys.stderr)
        return 2
    points = [(p[0], p[1]) for p in args.point or []]
    labels = [int(p[2]) if len(p) == 3 else 1 for p in args.point or []]
    try:
        document = input_data(image, points or None, labels or None, args.box)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_input_data(args.out, document)
    print(f"wrote {args.out}: one request of {args.image.name} ({len(image)} bytes)")
    return 0
