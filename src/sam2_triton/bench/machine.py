"""What the benchmarks report about the machine they ran on (figures mean little without it)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path


def cpu_model() -> str:
    """``lscpu``'s model name, else what ``platform`` knows."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def summary() -> dict[str, object]:
    """What every benchmark report says about the machine: CPU, usable cores, Python."""
    return {"cpu": cpu_model(), "cores": usable_cores(), "python": platform.python_version()}


def runnable_precisions(precisions: list[str]) -> list[str]:
    """The CPU precisions of ``precisions`` this machine runs, each other one named on stderr
    (bf16 needs AVX512-BF16 or AMX): a benchmark measures what it can rather than failing
    after minutes of work."""
    from sam2_triton.runtime.runners import PrecisionUnavailableError, require_precision

    runnable = []
    for precision in precisions:
        try:
            require_precision(precision)
        except PrecisionUnavailableError as error:
            print(f"skipping {precision}: {error}", file=sys.stderr)
        else:
            runnable.append(precision)
    return runnable


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    return len(os.sched_getaffinity(0))


def tree_memory_bytes(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` and its descendants, from /proc/<pid>/smaps_rollup (Linux)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    rss = pss = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss
