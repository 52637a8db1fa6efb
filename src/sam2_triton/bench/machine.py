"""What the benchmarks report about the machine they ran on (figures mean little without it)."""

from __future__ import annotations

import os
import platform
import subprocess


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


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the host's total)."""
    return len(os.sched_getaffinity(0))
