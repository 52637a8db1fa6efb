"""Triton's own load generator against the service: perf_analyzer's ``--input-data`` JSON for an
image and a click or a box, and the binary set up to run here.

perf_analyzer ships inside the ``tritonclient`` wheel. Newer wheels' binaries need glibc 2.38;
the 2.41.0 wheel's runs on older systems once it finds libb64 and libcudart, which the
nvidia-pytriton wheel carries: ``install`` extracts the binary, links those two libraries beside
it and writes a ``perf_analyzer`` script that runs it with them (docs/benchmarks.md).
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sam2_triton import contract as c

WHEEL = "tritonclient==2.41.0"
BINARY_IN_WHEEL = "tritonclient-2.41.0.data/data/bin/perf_analyzer"
#: The libraries the binary links and nvidia-pytriton's wheel carries (name -> file prefix).
LIBRARIES = {"libb64.so.0d": "libb64-", "libcudart.so.12": "libcudart-"}
MODELS = (c.SEGMENT, c.SESSION)


def input_data(
    image: bytes,
    points: list[tuple[float, float]] | None = None,
    labels: list[int] | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> dict:
    """perf_analyzer's ``--input-data`` document: one request of ``sam2_segment`` or
    ``sam2_session`` (the same inputs) with the image file's bytes and a click or a box, in the
    image's pixels. perf_analyzer sends it again and again (sam2_session: one encode, then
    clicks on the cached image)."""
    if not image:
        raise ValueError("the image file is empty")
    if not points and box is None:
        raise ValueError("give a point or a box")
    request: dict[str, dict] = {
        "image": {"b64": base64.b64encode(image).decode("ascii"), "shape": [len(image)]}
    }
    if points:
        labels = [1] * len(points) if labels is None else labels
        if len(labels) != len(points):
            raise ValueError(f"{len(labels)} labels for {len(points)} points")
        request["point_coords"] = {
            "content": [float(v) for xy in points for v in xy],
            "shape": [len(points), 2],
        }
        request["point_labels"] = {"content": [int(v) for v in labels], "shape": [len(points)]}
    if box is not None:
        request["box"] = {"content": [float(v) for v in box], "shape": [4]}
    return {"data": [request]}


def write_input_data(path: Path, document: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


def pytriton_libraries() -> Path:
    """nvidia-pytriton's folder of bundled libraries (libb64, libcudart among them)."""
    import pytriton

    folder = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is missing: is nvidia-pytriton installed?")
    return folder


def install(target: Path) -> Path:
    """perf_analyzer under ``target`` (``bin/``, ``lib/`` and the ``perf_analyzer`` script that
    runs it); the script's path. Downloads the 2.41.0 wheel from the package index once."""
    script = target / "perf_analyzer"
    if script.exists():
        return script
    binary = target / "bin" / "perf_analyzer"
    lib = target / "lib"
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", scratch, WHEEL],
            check=True,
        )
        (wheel,) = Path(scratch).glob("tritonclient-*.whl")
        binary.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            binary.write_bytes(archive.read(BINARY_IN_WHEEL))
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    lib.mkdir(exist_ok=True)
    bundled = pytriton_libraries()
    for name, prefix in LIBRARIES.items():
        (found,) = [p for p in bundled.iterdir() if p.name.startswith(prefix)]
        link = lib / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(found)
    script.write_text(
        "#!/bin/sh\n# Triton's perf_analyzer (tritonclient 2.41.0) with the libraries it links.\n"
        f'LD_LIBRARY_PATH="{lib.resolve()}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}" '
        f'exec "{binary.resolve()}" "$@"\n'
    )
    script.chmod(0o755)
    return script


def main(argv: list[str] | None = None) -> int:
    """``python -m sam2_triton.bench.perf_analyzer install [DIR]`` (make perf-analyzer)."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] != ["install"]:
        print("usage: python -m sam2_triton.bench.perf_analyzer install [DIR]", file=sys.stderr)
        return 2
    target = Path(args[1] if len(args) > 1 else os.path.join("build", "perf_analyzer"))
    print(install(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
