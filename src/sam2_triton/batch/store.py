"""Where ``sam2-triton batch`` keeps its results, written so that a run can die at any moment.

OUT_DIR/
  annotations/<image path>.json   one SA-1B-style document per finished image
  errors/<image path>.json        why an image failed (removed when a rerun succeeds)
  summary.json                    counts, timings and failures of the last run
  report/                         index.html, overlays, time_per_image.png, throughput.png

Every file is written to a hidden temporary name beside its target and renamed over it
(``os.replace`` is atomic on POSIX), so a reader sees either the old file or the whole new one:
an image's annotation file exists if and only if the image is finished. A lock file keeps two runs
from sharing one OUT_DIR.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


class OutputLockedError(RuntimeError):
    """Another batch run is writing to the same OUT_DIR."""


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, document: Any) -> None:
    atomic_write(path, json.dumps(document, indent=1).encode())


class ResultStore:
    """The files of one OUT_DIR, addressed by image path relative to INPUT_DIR."""

    def __init__(self, out_dir: Path) -> None:
        self.root = Path(out_dir)
        self.annotations = self.root / "annotations"
        self.errors = self.root / "errors"
        self.report = self.root / "report"
        self.summary = self.root / "summary.json"
        self._lock: IO[bytes] | None = None

    def lock(self) -> None:
        """Take OUT_DIR for this process (released at exit, even on a crash)."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / ".lock", "wb")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise OutputLockedError(
                f"{self.root} is in use by another sam2-triton batch run"
            ) from None
        self._lock = handle

    def remove_stale_temporaries(self) -> int:
        """Delete what killed runs left half-written (never visible as results)."""
        removed = 0
        for folder in (self.annotations, self.errors, self.report):
            if folder.exists():
                for tmp in folder.rglob(f".*{TMP_SUFFIX}"):
                    tmp.unlink(missing_ok=True)
                    removed += 1
        return removed

    def annotation_path(self, name: str) -> Path:
        return self.annotations / f"{name}.json"

    def error_path(self, name: str) -> Path:
        return self.errors / f"{name}.json"

    def is_finished(self, name: str) -> bool:
        return self.read(name) is not None

    def read(self, name: str) -> dict[str, Any] | None:
        """The finished document of ``name``, or None (missing or unreadable: redo it)."""
        try:
            return json.loads(self.annotation_path(name).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save(self, name: str, document: dict[str, Any]) -> None:
        atomic_write_json(self.annotation_path(name), document)
        self.error_path(name).unlink(missing_ok=True)

    def save_error(self, name: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.error_path(name), record)

    def finished(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(image path, document) of every finished image, in path order."""
        if not self.annotations.exists():
            return
        for path in sorted(self.annotations.rglob("*.json")):
            name = path.relative_to(self.annotations).as_posix()[: -len(".json")]
            document = self.read(name)
            if document is not None:
                yield name, document

    def failures(self) -> Iterator[dict[str, Any]]:
        if not self.errors.exists():
            return
        for path in sorted(self.errors.rglob("*.json")):
            try:
                yield json.loads(path.read_text())
            except json.JSONDecodeError:
                continue
