"""Image embeddings kept between requests, shared by every process of one server, bounded in bytes.

``sam2_session`` runs as several Triton instances, i.e. several processes: a click may land on
an instance that did not encode its image. So the cache lives in files on a memory-backed
filesystem (``/dev/shm``), one folder per image, and all coordination goes through ``flock``:

- an entry is written into a private temporary folder and renamed into place, so a reader
  never sees half an entry;
- concurrent requests for the same missing image wait on one lock and the first one encodes
  it (``get_or_compute``): the image is encoded once, not once per racer;
- after each insert the least recently used entries are deleted until the total fits
  ``max_bytes``; entries are read through memory maps, which stay valid if evicted meanwhile.

Hit/miss/eviction counts are per process (``stats``); byte totals are read from disk.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

Arrays = Mapping[str, np.ndarray]
LOCK_STRIPES = 1024  # per-key encode locks, hashed into this many files (bounded file count)


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    evictions: int = 0


class EmbeddingCache:
    """A byte-bounded LRU of named float arrays per key, shared between processes via ``root``."""

    def __init__(self, root: Path, max_bytes: int, hot_entries: int = 2) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.entries = self.root / "entries"
        self.staging = self.root / "staging"
        self.locks = self.root / "locks"
        for folder in (self.entries, self.staging, self.locks):
            folder.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()
        # The few entries this process used last, as plain arrays: a click on a hot image skips
        # mapping and faulting in 16.8 MB (about 15 ms on 2 cores). Valid only while the shared
        # entry exists, so eviction means the same everywhere.
        self._hot: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
        self.hot_entries = hot_entries
        # Every user holds a shared lock on this file until close(): the last one out cleans up.
        self._users = open(self.root / "users.lock", "a")  # held until close()
        fcntl.flock(self._users, fcntl.LOCK_SH)

    def close(self) -> None:
        """Stop using the cache; the last process to close it deletes it (it lives in RAM)."""
        if self._users.closed:
            return
        try:
            fcntl.flock(self._users, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # other processes still use it
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        finally:
            self._users.close()

    # --- reading -----------------------------------------------------------------------------

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key`` (read-only), or None; counts hit/miss."""
        arrays = self._hot_get(key)
        if arrays is None:
            arrays = self._load(key)
            if arrays is not None:
                self._hot_put(key, arrays)
        if arrays is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return arrays

    def _hot_get(self, key: str) -> dict[str, np.ndarray] | None:
        if key not in self._hot:
            return None
        try:
            os.utime(self.entries / key)  # still in the shared cache? (and LRU recency)
        except FileNotFoundError:
            del self._hot[key]
            return None
        self._hot.move_to_end(key)
        return self._hot[key]

    def _hot_put(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        if self.hot_entries <= 0:
            return
        self._hot[key] = {name: np.array(value) for name, value in arrays.items()}
        while len(self._hot) > self.hot_entries:
            self._hot.popitem(last=False)

    def get_or_compute(
        self, key: str, compute: Callable[[], Arrays]
    ) -> tuple[dict[str, np.ndarray], bool]:
        """Cached arrays for ``key``, computing and storing them if absent.

        Returns (arrays, computed). Racers for the same key wait for the first one's result.
        """
        arrays = self._load(key)
        if arrays is not None:
            self.stats.hits += 1
            return arrays, False
        with self._key_lock(key):
            arrays = self._load(key)  # another process may have computed it while we waited
            if arrays is not None:
                self.stats.hits += 1
                return arrays, False
            self.stats.misses += 1
            computed = {name: np.ascontiguousarray(value) for name, value in compute().items()}
            self.put(key, computed)
            return computed, True

    def _load(self, key: str) -> dict[str, np.ndarray] | None:
        folder = self.entries / key
        with self._global_lock(fcntl.LOCK_SH):
            try:
                names = [p for p in folder.iterdir() if p.suffix == ".npy"]
                arrays = {p.stem: np.load(p, mmap_mode="r") for p in names}
            except FileNotFoundError:
                return None
        try:
            os.utime(folder)  # recency for LRU
        except FileNotFoundError:
            pass  # evicted just now; the memory maps stay valid
        return arrays

    # --- writing -----------------------------------------------------------------------------

    def put(self, key: str, arrays: Arrays) -> None:
        """Store ``arrays`` under ``key`` (atomically), then evict LRU entries beyond max_bytes."""
        if sum(np.asarray(a).nbytes for a in arrays.values()) > self.max_bytes:
            return  # larger than the whole cache: serve it, don't keep it
        staging = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=self.staging))
        try:
            for name, value in arrays.items():
                np.save(staging / f"{name}.npy", np.asarray(value), allow_pickle=False)
            if _folder_bytes(staging) > self.max_bytes:
                return
            with self._global_lock(fcntl.LOCK_EX):
                try:
                    staging.rename(self.entries / key)
                except OSError:
                    pass  # already there (same content, same arrays)
                self._evict(keep=key)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _evict(self, keep: str) -> None:
        """Delete least recently used entries until the total fits (caller holds the lock)."""
        entries = []
        for folder in self.entries.iterdir():
            try:
                size = _folder_bytes(folder)
                entries.append((folder.stat().st_mtime_ns, folder.name, size, folder))
            except FileNotFoundError:
                continue
        total = sum(size for _, _, size, _ in entries)
        for _, name, size, folder in sorted(entries):
            if total <= self.max_bytes:
                break
            if name == keep:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
            self.stats.evictions += 1

    # --- introspection -----------------------------------------------------------------------

    def total_bytes(self) -> int:
        return self.usage()[0]

    def usage(self) -> tuple[int, int]:
        """(bytes, entries) held now, in one pass over the entries (the metrics read both after
        every request)."""
        total = count = 0
        for folder in self.entries.iterdir():
            try:
                total += _folder_bytes(folder)
            except FileNotFoundError:
                continue  # evicted meanwhile
            count += 1
        return total, count

    def keys(self) -> list[str]:
        return sorted(p.name for p in self.entries.iterdir())

    # --- locks -------------------------------------------------------------------------------

    @contextmanager
    def _global_lock(self, mode: int) -> Iterator[None]:
        with open(self.root / "cache.lock", "a") as handle:
            fcntl.flock(handle, mode)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def _key_lock(self, key: str) -> Iterator[None]:
        stripe = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % LOCK_STRIPES
        with open(self.locks / f"{stripe:04d}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


def server_cache_dir(base: Path | None = None, server_pid: int | None = None) -> Path:
    """The cache folder of the server this process belongs to (Triton's stub's parent).

    Folders of servers that are no longer running are removed on the way.
    """
    base = base or (Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir()))
    server_pid = server_pid or os.getppid()
    prefix = "sam2-triton-cache-"
    for stale in base.glob(f"{prefix}*"):
        pid = stale.name.removeprefix(prefix)
        if pid.isdigit() and int(pid) != server_pid and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return base / f"{prefix}{server_pid}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
