"""A pytest plugin for the suite's budget: each test phase's wall seconds and the machine's CPU
seconds meanwhile (every process: servers, browsers and tools included, from /proc/stat), as
tab-separated lines ``nodeid, phase, wall, cpu``. On a 2-core machine a phase whose CPU is near
twice its wall is compute-bound and will take longer on a slower machine in proportion; one
that waits does not. Linux only.

    CPU_PROFILE=cpu.tsv .venv/bin/python -m pytest -p tests.cpu_profile
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

import pytest

_TICKS = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds the machine has spent busy since boot (user, nice, system, irq, softirq)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq = map(int, stat.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / _TICKS


def _timed(phase: str) -> Callable:
    @pytest.hookimpl(wrapper=True)
    def hook(item: pytest.Item, *args, **kwargs) -> Iterator:
        path = os.environ.get("CPU_PROFILE")
        wall, busy = time.monotonic(), _busy_seconds()
        try:
            return (yield)
        finally:
            if path:
                with open(path, "a") as out:
                    out.write(
                        f"{item.nodeid}\t{phase}\t{time.monotonic() - wall:.2f}\t"
                        f"{_busy_seconds() - busy:.2f}\n"
                    )

    return hook


pytest_runtest_setup = _timed("setup")
pytest_runtest_call = _timed("call")
pytest_runtest_teardown = _timed("teardown")
