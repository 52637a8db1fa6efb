"""Test exports made in a background process while the suite makes another.

Exporting is mostly tracing: one core busy and the other idle (SAM 2.1's reduced export took 50 s
of wall and 51 CPU-seconds on a 2-core Zen 3). So when a run needs SAM 3's export as well,
conftest starts it in its own process at collection, beside the first test's SAM 2.1 export, and
the fixture waits for it. A failure fails the fixture with the process's output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Exports under way: their folder -> (process, its log).
_JOBS: dict[Path, tuple[subprocess.Popen, Path]] = {}


def start(folder: Path, code: str) -> None:
    """Run ``code`` (Python, from the project's root) in a process of its own: it makes
    ``folder``. Its output goes to a log beside the folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    log = folder.with_name(folder.name + ".log")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    _JOBS[folder] = (process, log)


def wait(folder: Path) -> bool:
    """Wait for the process making ``folder``, if one was started (then True); raise with its
    output if it failed."""
    job = _JOBS.pop(folder, None)
    if job is None:
        return False
    process, log = job
    if process.wait() != 0:
        raise RuntimeError(
            f"the background export of {folder.name} failed ({process.returncode}):\n"
            + log.read_text(errors="replace")[-5000:]
        )
    return True


def stop_all() -> None:
    """At the session's end: stop what no test waited for (a run stopped early)."""
    for process, _log in _JOBS.values():
        process.kill()
        process.wait()
    _JOBS.clear()
