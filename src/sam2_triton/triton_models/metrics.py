"""Triton custom metrics of our models (names and buckets: ``sam2_triton.metrics``).

A ``MetricFamily`` must outlive its ``Metric`` objects, so each holder keeps its families. Every
outcome's series is created at start (at 0), so rates and ratios exist before the first error.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import triton_python_backend_utils as pb_utils

from sam2_triton import metrics as m
from sam2_triton.image.embedding_cache import CacheStats, EmbeddingCache
from sam2_triton.metrics import EVICTION_REASONS

if TYPE_CHECKING:  # the image models' stubs load no video code
    from sam2_triton.video.service import VideoService

T = TypeVar("T")


class _Families:
    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.families: list[Any] = []

    def metric(self, name: str, description: str, kind: Any, **labels: str) -> Any:
        family = pb_utils.MetricFamily(name=name, description=description, kind=kind)
        self.families.append(family)
        return family.Metric(labels={"model": self.model_name, **labels})

    def by_label(
        self, name: str, description: str, kind: Any, label: str, values: tuple[str, ...]
    ) -> dict[str, Any]:
        """One series of ``name`` per value of ``label``, each created now (at 0)."""
        return {value: self.metric(name, description, kind, **{label: value}) for value in values}

    def histogram(self, name: str, description: str, buckets: tuple[float, ...]) -> Any:
        family = pb_utils.MetricFamily(
            name=name, description=description, kind=pb_utils.MetricFamily.HISTOGRAM
        )
        self.families.append(family)
        return family.Metric(labels={"model": self.model_name}, buckets=list(buckets))


class ModelMetrics(_Families):
    """sam2_requests_total by outcome, sam2_encode_seconds and sam2_decode_seconds."""

    def __init__(self, model_name: str) -> None:
        super().__init__(model_name)
        self.requests = self.by_label(
            m.REQUESTS,
            "Requests answered, by outcome (success or error kind)",
            pb_utils.MetricFamily.COUNTER,
            "outcome",
            m.OUTCOMES,
        )
        self.encode = self.histogram(
            m.ENCODE_SECONDS, "Seconds a request waited for an image-encoder pass", m.ENCODE_BUCKETS
        )
        self.decode = self.histogram(
            m.DECODE_SECONDS, "Seconds a request waited for a mask-decoder pass", m.DECODE_BUCKETS
        )
        # the watchdog's count, as of this (re)load: a gauge each instance sets alike
        counts = m.read_restarts(os.environ.get(m.RESTARTS_FILE_ENV)).get(model_name, {})
        self.restarts = self.by_label(
            m.STUB_RESTARTS,
            "Times the watchdog replaced a stub of this model, by cause (dead, hung)",
            pb_utils.MetricFamily.GAUGE,
            "cause",
            m.RESTART_CAUSES,
        )
        for cause, gauge in self.restarts.items():
            gauge.set(int(counts.get(cause, 0)))

    def answered(self, error: BaseException | None) -> None:
        self.requests[m.outcome(error)].increment(1)

    def timed_encode(self, run: Callable[..., T]) -> Callable[..., T]:
        return _timed(run, self.encode)

    def timed_decode(self, run: Callable[..., T]) -> Callable[..., T]:
        return _timed(run, self.decode)


def _timed(run: Callable[..., T], histogram: Any) -> Callable[..., T]:
    def timed(*args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return run(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - start)

    return timed


class CacheMetrics(_Families):
    """A cache's series (``sam2_triton.metrics.SESSION_CACHE`` or ``CONCEPTS_CACHE``): counters
    summed over instances; bytes and entries shared."""

    def __init__(self, model_name: str, series: tuple[str, ...] = m.SESSION_CACHE) -> None:
        super().__init__(model_name)
        counter, gauge = pb_utils.MetricFamily.COUNTER, pb_utils.MetricFamily.GAUGE
        hits, misses, evictions, held, entries = series
        self.hits = self.metric(hits, "Cache hits", counter)
        self.misses = self.metric(misses, "Cache misses (an image encoded)", counter)
        self.evictions = self.metric(evictions, "Images evicted (LRU, byte bound)", counter)
        self.bytes = self.metric(held, "Bytes held by the cache", gauge)
        self.entries = self.metric(entries, "Images held by the cache", gauge)
        self.reported = CacheStats()

    def update(self, cache: EmbeddingCache) -> None:
        stats = cache.stats
        for name in ("hits", "misses", "evictions"):
            delta = getattr(stats, name) - getattr(self.reported, name)
            if delta:
                getattr(self, name).increment(delta)
        self.reported = CacheStats(stats.hits, stats.misses, stats.evictions)
        held, entries = cache.usage()
        self.bytes.set(held)
        self.entries.set(entries)


class VideoMetrics(_Families):
    """sam2_video_*: open sessions and their bytes, evictions by reason, frames tracked."""

    def __init__(self, model_name: str) -> None:
        super().__init__(model_name)
        counter, gauge = pb_utils.MetricFamily.COUNTER, pb_utils.MetricFamily.GAUGE
        self.sessions = self.metric(m.VIDEO_SESSIONS, "Open video sessions", gauge)
        self.bytes = self.metric(m.VIDEO_BYTES, "Bytes held by the video sessions", gauge)
        self.frames = self.metric(m.VIDEO_FRAMES, "Frames tracked (all objects)", counter)
        self.evictions = self.by_label(
            m.VIDEO_EVICTIONS, "Video sessions closed by the server", counter, "reason",
            EVICTION_REASONS,
        )  # fmt: skip
        self.reported: Counter[str] = Counter()

    def update(self, service: VideoService) -> None:
        with service.lock:
            counts = Counter(service.evictions, frames=service.frames_tracked)
            self.sessions.set(len(service.sessions))
            self.bytes.set(service.nbytes)
        for reason, metric in [*self.evictions.items(), ("frames", self.frames)]:
            delta = counts[reason] - self.reported[reason]
            if delta:
                metric.increment(delta)
        self.reported = counts
