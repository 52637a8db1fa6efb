"""The embedding cache: shared by processes, encode-once under races, bounded in bytes (LRU)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest

from sam2_triton.contract import content_id
from sam2_triton.image.embedding_cache import EmbeddingCache, server_cache_dir

ENTRY = {"a": np.ones((10, 10), np.float32), "b": np.arange(6, dtype=np.int64)}
ENTRY_BYTES = 10 * 10 * 4 + 6 * 8 + 2 * 128  # data + one .npy header per array


def _entry(seed: int) -> dict[str, np.ndarray]:
    return {name: value + seed for name, value in ENTRY.items()}


def test_put_then_get_returns_the_same_arrays_and_counts_hits_and_misses(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=10 * ENTRY_BYTES)
    assert cache.get("x") is None
    cache.put("x", _entry(1))
    got = cache.get("x")
    assert got is not None and set(got) == {"a", "b"}
    np.testing.assert_array_equal(got["a"], ENTRY["a"] + 1)
    np.testing.assert_array_equal(got["b"], ENTRY["b"] + 1)
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)
    assert cache.total_bytes() == ENTRY_BYTES


def test_least_recently_used_entries_are_evicted_to_stay_within_the_byte_bound(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=3 * ENTRY_BYTES)
    for key in ("k1", "k2", "k3"):
        cache.put(key, _entry(0))
        time.sleep(0.01)
    assert cache.get("k1") is not None  # k1 is now more recent than k2
    time.sleep(0.01)
    cache.put("k4", _entry(0))
    assert cache.keys() == ["k1", "k3", "k4"]
    assert cache.stats.evictions == 1
    assert cache.total_bytes() <= 3 * ENTRY_BYTES


def test_an_entry_larger_than_the_whole_cache_is_not_kept(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=ENTRY_BYTES - 1)
    arrays, computed = cache.get_or_compute("big", lambda: _entry(0))
    assert computed and arrays["a"].shape == (10, 10)
    assert cache.keys() == []


def test_arrays_read_before_an_eviction_stay_valid(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=ENTRY_BYTES)
    cache.put("old", _entry(5))
    held = cache.get("old")
    cache.put("new", _entry(0))  # evicts "old"
    assert cache.keys() == ["new"]
    np.testing.assert_array_equal(held["a"], ENTRY["a"] + 5)


def _racer(root: str, counter: str, barrier) -> float:
    cache = EmbeddingCache(Path(root), max_bytes=10 * ENTRY_BYTES)

    def compute() -> dict[str, np.ndarray]:
        with open(counter, "a") as handle:
            handle.write("x")
        time.sleep(0.5)  # an encoder run
        return _entry(7)

    barrier.wait()
    arrays, _ = cache.get_or_compute("same-image", compute)
    return float(arrays["a"][0, 0])


def test_processes_racing_for_the_same_missing_entry_compute_it_once(tmp_path):
    counter = tmp_path / "computed"
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            values = pool.starmap(_racer, [(str(tmp_path / "cache"), str(counter), barrier)] * 4)
    assert values == [8.0] * 4
    assert counter.read_text() == "x"  # one compute for four racers


def test_content_id_is_the_sha256_of_the_bytes():
    assert content_id(b"abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_server_cache_dir_removes_folders_of_dead_servers(tmp_path):
    dead = tmp_path / "sam2-triton-cache-999999999"
    dead.mkdir()
    mine = server_cache_dir(tmp_path, server_pid=os.getpid())
    assert mine == tmp_path / f"sam2-triton-cache-{os.getpid()}"
    assert not dead.exists()


def test_max_bytes_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        EmbeddingCache(tmp_path, 0)


def test_the_last_user_to_close_the_cache_deletes_it(tmp_path):
    root = tmp_path / "cache"
    first, second = EmbeddingCache(root, ENTRY_BYTES * 4), EmbeddingCache(root, ENTRY_BYTES * 4)
    first.put("x", _entry(0))
    first.close()
    assert second.get("x") is not None  # still in use by the second
    second.close()
    assert not root.exists()


def test_hot_copies_are_dropped_once_the_shared_entry_is_evicted(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=ENTRY_BYTES, hot_entries=2)
    other = EmbeddingCache(tmp_path, max_bytes=ENTRY_BYTES)  # another instance
    cache.put("x", _entry(1))
    assert cache.get("x") is not None and cache.get("x") is not None  # second read: hot copy
    other.put("y", _entry(2))  # evicts "x" from the shared cache
    assert cache.get("x") is None  # the hot copy does not outlive the shared entry
    assert cache.stats.hits == 2 and cache.stats.misses == 1
