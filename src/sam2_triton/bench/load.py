"""A closed-loop load driver: C workers, each with its own connection, N requests in total."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def throughput(self) -> float:
        """Requests per second over the whole run (wall clock)."""
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    def summary(self) -> dict[str, float]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "seconds": self.seconds,
            "images_per_s": self.throughput,
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
        }


def run_load(
    make_worker: Callable[[], Callable[[], object]],
    concurrency: int,
    requests: int,
    warmup_per_worker: int = 0,
) -> LoadResult:
    """Run ``requests`` calls spread over ``concurrency`` workers; time the loaded part.

    ``make_worker`` is called once per worker (open its own client there) and returns the
    function that sends one request. Warm-up calls happen before the clock starts.
    """
    workers = [make_worker() for _ in range(concurrency)]
    for send in workers:
        for _ in range(warmup_per_worker):
            send()
    remaining = [requests]
    lock = threading.Lock()
    latencies: list[float] = []

    def loop(send: Callable[[], object]) -> None:
        while True:
            with lock:
                if remaining[0] == 0:
                    return
                remaining[0] -= 1
            start = time.perf_counter()
            send()
            elapsed = (time.perf_counter() - start) * 1e3
            with lock:
                latencies.append(elapsed)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(loop, send) for send in workers]:
            future.result()
    return LoadResult(concurrency, requests, time.perf_counter() - start, latencies)
