"""sam2_video_sessions' frame scheduler, free of Triton: the sessions' requests run on one
thread, those that wait together in one ``VideoService.handle_many`` call, so propagations of
different videos are tracked together frame by frame.

Triton's dynamic batcher cannot do this: its delay counts from the oldest request's arrival,
and a frame of another video that waited through a whole step would always go alone, the two
propagations alternating for good. Here a propagation under way (its last answer had frames
left) is expected back: the next step waits up to ``wait_seconds`` for its next frame, so
propagations that started apart fall into step and stay there. A lone request waits for
nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sam2_triton.errors import RequestCancelled
from sam2_triton.video.request import Inputs, VideoRequest
from sam2_triton.video.service import VideoService

Result = dict[str, np.ndarray] | Exception
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    request: VideoRequest | Exception  # parsed once, on submit (or why it could not be)
    reply: Callable[[Result], None]
    cancelled: Callable[[], bool]

    @property
    def session_id(self) -> str | None:
        return self.request.session_id if isinstance(self.request, VideoRequest) else None


class FrameScheduler:
    """``submit`` a request and its ``reply``; replies come from the scheduler's thread."""

    def __init__(
        self,
        service: VideoService,
        wait_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service, self.wait_seconds, self.clock = service, wait_seconds, clock
        self.batches: list[int] = []  # requests per handle_many call, the last 1000
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._expected: set[str] = set()  # sessions whose propagation is under way
        self._thread = threading.Thread(target=self._run, name="frame-scheduler", daemon=True)
        self._thread.start()

    def submit(
        self,
        inputs: Inputs,
        reply: Callable[[Result], None],
        cancelled: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            request: VideoRequest | Exception = self.service.parse(inputs)
        except Exception as exc:  # noqa: BLE001 - answered in turn, from the scheduler's thread
            request = exc
        self._queue.put(_Job(request, reply, cancelled))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while (jobs := self._next_jobs()) is not None:
            self._step(jobs)

    def _next_jobs(self) -> list[_Job] | None:
        """Every request waiting, and those of the propagations under way that come within
        ``wait_seconds``; None when stopped."""
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        deadline = self.clock() + self.wait_seconds
        while True:
            missing = self._expected - {job.session_id for job in jobs}
            timeout = deadline - self.clock() if missing else 0.0
            try:
                job = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this step
                break
            jobs.append(job)
        self._expected.clear()
        return jobs

    def _step(self, jobs: list[_Job]) -> None:
        live = []
        for job in jobs:
            if job.cancelled():
                _reply(job, RequestCancelled("cancelled by the client"))
            else:
                live.append(job)
        try:
            results = self.service.run_many([job.request for job in live])
        except Exception as exc:  # noqa: BLE001 - every request gets an answer
            results = [exc] * len(live)
        self.batches = [*self.batches[-999:], len(live)]
        for job, result in zip(live, results, strict=True):
            if _under_way(job, result):
                self._expected.add(job.session_id)
            _reply(job, result)


def _under_way(job: _Job, result: Result) -> bool:
    """A propagate answered with frames left: its next frame is coming."""
    if isinstance(result, Exception) or not isinstance(job.request, VideoRequest):
        return False
    return job.request.operation == "propagate" and int(result["frames_left"][0]) > 0


def _reply(job: _Job, result: Result) -> None:
    try:
        job.reply(result)
    except Exception:  # a client gone away cannot be told; the others still are
        log.exception("could not answer a video request")
