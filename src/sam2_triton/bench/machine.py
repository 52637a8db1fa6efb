"""What the benchmarks report about the machine they ran on (figures mean little without it)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any


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


def physical_cores() -> int:
    """Physical cores under this process's affinity mask (SMT siblings counted once), from
    sysfs' topology; ``usable_cores()`` where that is missing."""
    cores = set()
    for cpu in os.sched_getaffinity(0):
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return usable_cores()
        cores.add((package, core))
    return len(cores) or usable_cores()


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in out.splitlines())
    }


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_clock_mhz() -> tuple[float | None, str]:
    """The clock the peak is computed at, and where it was read: lscpu's "CPU max MHz" when
    present, else the highest "cpu MHz" of /proc/cpuinfo (under a hypervisor often the nominal
    clock, below what the cores boost to)."""
    maximum = _lscpu().get("CPU max MHz")
    if maximum:
        return float(maximum), 'lscpu "CPU max MHz"'
    current = [
        float(line.split(":", 1)[1])
        for line in _cpuinfo().splitlines()
        if line.startswith("cpu MHz")
    ]
    if current:
        return max(current), '/proc/cpuinfo "cpu MHz"'
    return None, "unknown"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (/proc/cpuinfo's "flags", else lscpu's "Flags")."""
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set(_lscpu().get("Flags", "").split())


def fp32_lanes(flags: set[str]) -> int:
    """float32 lanes of one FMA instruction: 16 with AVX-512, 8 with AVX2 and FMA, else 4."""
    if "avx512f" in flags:
        return 16
    if {"avx2", "fma"} <= flags:
        return 8
    return 4


def theoretical_fp32_peak(
    cores: int, clock_mhz: float | None, flags: set[str], fma_units: int = 2
) -> dict[str, Any]:
    """cores x clock x FMA lanes x 2 (multiply and add) x FMA units per core, with its inputs.

    An estimate from the ISA, not a measurement: it assumes every core issues ``fma_units``
    full-width FMAs per cycle at ``clock_mhz``. It overstates where a core has fewer or
    narrower FMA units than the flags suggest (Zen 4 runs AVX-512 on 256-bit halves: half
    this; Intel parts with one 512-bit FMA unit: half) or lowers its clock under wide vector
    load, and understates where the clock read is below the boost clock (a hypervisor's
    nominal "cpu MHz")."""
    lanes = fp32_lanes(flags)
    peak = cores * clock_mhz * 1e6 * lanes * 2 * fma_units if clock_mhz else None
    return {
        "cores": cores,
        "clock_mhz": clock_mhz,
        "fp32_lanes_per_fma": lanes,
        "fma_units_per_core": fma_units,
        "flops_per_s": peak,
        "formula": "cores x clock x FMA lanes x 2 x FMA units",
    }


def fp32_peak(threads: int) -> dict[str, Any]:
    """``theoretical_fp32_peak`` of this machine for ``threads`` threads (at most one per
    physical core counts), with where the clock was read."""
    clock, source = cpu_clock_mhz()
    peak = theoretical_fp32_peak(min(threads, physical_cores()), clock, cpu_flags())
    peak["clock_source"] = source
    return peak


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux: /proc/<pid>/status)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        children.setdefault(int(fields["PPid"]), []).append(int(fields["Pid"]))
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        stack += children.get(current, [])
    return tree


def tree_memory_bytes(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` and its descendants, from /proc/<pid>/smaps_rollup (Linux)."""
    rss = pss = 0
    for current in process_tree(pid):
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def tree_peak_rss_bytes(pid: int) -> int:
    """The sum of each process's own peak RSS (the kernel's VmHWM) in ``pid``'s tree: read
    once, at the end of a run, it costs the processes nothing (sampling smaps while they
    work slowed a SAM 3 server's requests by a third)."""
    total = 0
    for current in process_tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total
