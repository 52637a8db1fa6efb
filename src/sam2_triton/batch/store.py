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

The N runs of ``--shard I/N`` share one OUT_DIR: per-image files are disjoint (an image is in one
shard), and each shard has its own ``summary.shard-I-of-N.json``, ``report.shard-I-of-N/`` and
lock, and only reads, reports and cleans up the images it owns. Shards hold ``.lock`` shared and
their own lock exclusively, so shards run side by side while a whole-folder run excludes them all.
Shards running at the same time must agree on N (the locks cannot tell 0/2 from 0/3 overlapping).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sam2_triton.batch.shard import Shard

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
    """The files of one OUT_DIR, addressed by image path relative to INPUT_DIR; with ``shard``,
    the part of OUT_DIR that belongs to that shard (its images, its summary and report)."""

    def __init__(self, out_dir: Path, shard: Shard | None = None) -> None:
        self.root = Path(out_dir)
        self.shard = shard
        suffix = shard.suffix if shard else ""
        self.annotations = self.root / "annotations"
        self.errors = self.root / "errors"
        self.report = self.root / f"report{suffix}"
        self.summary = self.root / f"summary{suffix}.json"
        self._locks: list[IO[bytes]] = []

    def owns(self, name: str) -> bool:
        """Whether image ``name`` is this store's (every image, without a shard)."""
        return self.shard is None or self.shard.owns(name)

    def lock(self) -> None:
        """Take OUT_DIR (a shard: its part of it) for this process; released at exit, even on a
        crash."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.shard is None:
            self._locks = [self._flock(".lock", fcntl.LOCK_EX)]
            return
        folder = self._flock(".lock", fcntl.LOCK_SH)  # no whole-folder run meanwhile
        try:
            own = self._flock(f".lock{self.shard.suffix}", fcntl.LOCK_EX)
        except OutputLockedError:
            folder.close()
            raise
        self._locks = [folder, own]

    def unlock(self) -> None:
        """Let other runs take OUT_DIR (the end of the process does it too)."""
        for handle in self._locks:
            handle.close()
        self._locks = []

    def _flock(self, name: str, mode: int) -> IO[bytes]:
        handle = open(self.root / name, "a+b")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            which = f" (shard {self.shard})" if self.shard else ""
            raise OutputLockedError(
                f"{self.root}{which} is in use by another sam2-triton batch run"
            ) from None
        return handle

    def remove_stale_temporaries(self) -> int:
        """Delete what killed runs left half-written (never visible as results); a shard only
        touches its own images' (another shard's may be in the middle of writing them)."""
        removed = 0
        for folder in (self.annotations, self.errors, self.report):
            if folder.exists():
                for tmp in folder.rglob(f".*{TMP_SUFFIX}"):
                    if folder is not self.report and not self.owns(_temporary_of(folder, tmp)):
                        continue
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
        """(image path, document) of every finished image (of the shard), in path order."""
        if not self.annotations.exists():
            return
        for path in sorted(self.annotations.rglob("*.json")):
            name = path.relative_to(self.annotations).as_posix()[: -len(".json")]
            document = self.read(name) if self.owns(name) else None
            if document is not None:
                yield name, document

    def failures(self) -> Iterator[dict[str, Any]]:
        """The error records of the images (of the shard) that failed, in path order."""
        if not self.errors.exists():
            return
        for path in sorted(self.errors.rglob("*.json")):
            if not self.owns(path.relative_to(self.errors).as_posix()[: -len(".json")]):
                continue
            try:
                yield json.loads(path.read_text())
            except json.JSONDecodeError:
                continue


def _temporary_of(folder: Path, tmp: Path) -> str:
    """The image whose result file ``tmp`` (``.<image file>.json.<pid>.tmp``) was becoming."""
    target = tmp.name[1 : -len(TMP_SUFFIX)].rpartition(".")[0]  # "<image file>.json"
    return (tmp.parent.relative_to(folder) / target).as_posix().removesuffix(".json")
