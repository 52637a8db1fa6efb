"""sam2_video's request logic, free of Triton: video sessions by id, with bounded memory.

A session is one ``VideoSession`` (SAM2VideoPredictor's state) under a random id the server
returns. Triton gives a model no timer, so limits are enforced on every request (and by the
model's sweeper thread): sessions idle longer than ``idle_seconds`` are closed, and when a new
session or a session's growth goes over ``max_sessions`` or ``max_bytes`` the least recently
used other sessions are closed. A closed or unknown id is answered NOT_FOUND (start again).
Every call holds one lock: one instance of the model owns the sessions, and a request runs to
its end before the next. Propagations reach it a frame a request (the public models page and
stream them so), and those of different sessions that arrive together (``handle_many``, the
model's dynamic batch) are tracked together, frame by frame.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sam2_triton.contract import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_POINTS
from sam2_triton.errors import InvalidInputError, UnknownImageError
from sam2_triton.metrics import EVICTED_FOR_BYTES, EVICTED_FOR_SESSIONS, EVICTED_IDLE
from sam2_triton.video.answers import frames_outputs
from sam2_triton.video.frames import VideoFrames, decode_video
from sam2_triton.video.request import OPERATIONS, Inputs, VideoRequest, inside_video, parse_request
from sam2_triton.video.session import VideoSession
from sam2_triton.video.state import DEFAULT_MEMORY_FRAMES, TrackerModels
from sam2_triton.video.steps import track_together


@dataclass(frozen=True)
class VideoLimits:
    """What one server holds for video (ServingOptions' video_* fields)."""

    max_sessions: int = 8
    max_bytes: int = 4 << 30  # frames, tracking state and features of every session together
    idle_seconds: float = 900.0
    max_frames: int = 3000  # per video
    max_objects: int = 32  # per video
    page_frames: int = 8  # frames one HTTP propagate answers at most (then the next page)
    memory_frames: int = DEFAULT_MEMORY_FRAMES  # tracked frames kept per object; 0: all
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = DEFAULT_MAX_POINTS


class UnknownSessionError(UnknownImageError):
    """NOT_FOUND: the session id was never issued, or the session was closed or evicted."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            "session_id",
            f"no open video session {session_id[:64]!r} (closed, evicted after idling or "
            "for room, or the server restarted): start a new session",
        )


@dataclass
class _Open:
    session: VideoSession
    last_used: float


@dataclass
class _Stepping:
    """A propagate request advancing in lockstep with other sessions' (``handle_many``)."""

    index: int  # in the batch
    request: VideoRequest
    session: VideoSession
    order: range
    page: range
    reverse: bool
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)


class VideoService:
    """``handle(inputs)`` -> outputs for each sam2_video request (``contract.VIDEO_*``): the
    inputs parsed into one ``VideoRequest`` (``run``, for a request parsed already)."""

    def __init__(
        self,
        models: TrackerModels,
        limits: VideoLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.models, self.limits, self.clock = models, limits or VideoLimits(), clock
        self.sessions: OrderedDict[str, _Open] = OrderedDict()  # least recently used first
        self.evictions: Counter[str] = Counter()
        self.frames_tracked = 0
        self.lock = threading.Lock()
        # Every operation on an open session (``start`` opens one), checked against the contract.
        self.operations: dict[str, Callable[[VideoSession, VideoRequest], dict]] = {
            "add_frames": self._add_frames,
            "add_points": self._add_points,
            "add_mask": self._add_mask,
            "propagate": self._propagate,
            "remove_object": self._remove_object,
            "clear_prompts": self._clear_prompts,
            "reset": self._reset,
            "close": self._close,
        }
        if {"start", *self.operations} != set(OPERATIONS):
            raise AssertionError(f"operations {sorted(self.operations)} != {OPERATIONS}")

    @property
    def nbytes(self) -> int:
        return sum(entry.session.nbytes for entry in self.sessions.values())

    def parse(self, inputs: Inputs) -> VideoRequest:
        """The request ``inputs`` make, checked against this server's limits."""
        return parse_request(inputs, self.limits.max_points, self.limits.max_image_pixels)

    def handle(self, inputs: Inputs) -> dict[str, np.ndarray]:
        return self.run(self.parse(inputs))

    def run(self, request: VideoRequest) -> dict[str, np.ndarray]:
        with self.lock:
            self._evict_idle()
            if request.operation == "start":
                session_id, session = self._start(request)
                outputs = {}
            else:
                session_id = request.session_id
                session = self._session(session_id)
                outputs = self.operations[request.operation](session, request)
                if request.operation == "close":
                    del self.sessions[session_id]
            self._make_room(keep=session_id)
            return self._outputs(session_id, session, outputs, request.output_format)

    def handle_many(self, batch: Sequence[Inputs]) -> list[dict[str, np.ndarray] | Exception]:
        """``run_many`` on requests' inputs, each parsed (a bad one fails alone)."""
        parsed: list[VideoRequest | Exception] = []
        for inputs in batch:
            try:
                parsed.append(self.parse(inputs))
            except Exception as exc:  # noqa: BLE001 - this request fails, the others go on
                parsed.append(exc)
        return self.run_many(parsed)

    def run_many(
        self, batch: Sequence[VideoRequest | Exception]
    ) -> list[dict[str, np.ndarray] | Exception]:
        """Requests that arrived together (the model's dynamic batch), each answered or failed
        (one that failed to parse is its own answer). Propagations of different sessions
        advance in lockstep, frame by frame, their objects tracked in the same calls
        (``track_together``: on a GPU one memory-attention call for all of them); any other
        request, or one of two for a session, runs on its own."""
        results: dict[int, dict[str, np.ndarray] | Exception] = {
            i: r for i, r in enumerate(batch) if isinstance(r, Exception)
        }
        requests = {i: r for i, r in enumerate(batch) if isinstance(r, VideoRequest)}
        joint = _joint_propagations(requests)
        if len(joint) > 1:
            with self.lock:
                self._evict_idle()
                results.update(self._propagate_together(requests, joint))
        for i, request in requests.items():
            if i not in results:
                try:
                    results[i] = self.run(request)
                except Exception as exc:  # noqa: BLE001 - the caller answers each request
                    results[i] = exc
        return [results[i] for i in range(len(batch))]

    def _propagate_together(
        self, requests: Mapping[int, VideoRequest], joint: list[int]
    ) -> dict[int, dict[str, np.ndarray] | Exception]:
        results: dict[int, dict[str, np.ndarray] | Exception] = {}
        stepping: list[_Stepping] = []
        for i in joint:
            try:
                session = self._session(requests[i].session_id)
                order, page, reverse = self._propagation(session, requests[i])
                stepping.append(_Stepping(i, requests[i], session, order, order[:page], reverse))
            except Exception as exc:  # noqa: BLE001 - this request fails, the others go on
                results[i] = exc
        try:
            for step in range(max((len(s.page) for s in stepping), default=0)):
                live = [s for s in stepping if step < len(s.page)]
                tracks = [s.session.frame_tracks(s.page[step], s.reverse) for s in live]
                outs = iter(track_together([t for ts in tracks for t in ts], self.models))
                for s, ts in zip(live, tracks, strict=True):
                    mine = [next(outs) for _ in ts]
                    frame, _, masks = s.session.finish_frame(ts, mine, s.page[step], s.reverse)
                    s.frames.append((frame, masks))
        except Exception as exc:  # noqa: BLE001 - the shared calls failed: so did every request
            return {**results, **{s.index: exc for s in stepping}}
        for s in stepping:
            try:
                page = self._page(s.order, s.frames)
                self._make_room(keep=s.request.session_id)
                results[s.index] = self._outputs(
                    s.request.session_id, s.session, page, s.request.output_format
                )
            except Exception as exc:  # noqa: BLE001
                results[s.index] = exc
        return results

    def evict_idle(self) -> int:
        """Close the sessions idle too long (the model's sweeper calls this)."""
        with self.lock:
            return self._evict_idle()

    # --- operations -------------------------------------------------------------------------

    def _start(self, request: VideoRequest) -> tuple[str, VideoSession]:
        limits = self.limits
        frames = VideoFrames(limits.max_frames, limits.max_image_pixels, limits.max_bytes)
        if request.video is not None:
            decode_video(request.video, frames)
        for data in request.frames:
            frames.append_image(data)
        session = VideoSession(
            frames,
            self.models,
            memory_frames=limits.memory_frames or None,
            expected_frames=request.num_frames,
            low_res_output=True,
        )
        self._check_fits(session, "video" if request.video is not None else "frames")
        session_id = secrets.token_hex(16)
        self.sessions[session_id] = _Open(session, self.clock())
        return session_id, session

    def _add_frames(self, session: VideoSession, request: VideoRequest) -> dict:
        count = len(session.frames)
        try:  # all of them or none
            for data in request.frames:
                session.frames.append_image(data)
            self._check_fits(session, "frames")
        except InvalidInputError:
            session.frames.truncate(count)
            raise
        return {}

    def _add_points(self, session: VideoSession, request: VideoRequest) -> dict:
        frame = inside_video(request.frame_idx, session.num_frames)
        obj_id = self._obj_id(session, request.obj_id, new=True)
        prompt = request.prompt.in_frame((session.height, session.width))
        _, _, masks = session.add_new_points_or_box(frame, obj_id, **prompt)
        return {"frames": [(frame, masks)]}

    def _add_mask(self, session: VideoSession, request: VideoRequest) -> dict:
        frame = inside_video(request.frame_idx, session.num_frames)
        obj_id = self._obj_id(session, request.obj_id, new=True)
        _, _, masks = session.add_new_mask(frame, obj_id, request.mask)
        return {"frames": [(frame, masks)]}

    def _propagate(self, session: VideoSession, request: VideoRequest) -> dict:
        order, page, reverse = self._propagation(session, request)
        frames = [(f, m) for f, _, m in session.track(order[:page], reverse)]
        return self._page(order, frames)

    def _propagation(self, session: VideoSession, request: VideoRequest) -> tuple[range, int, bool]:
        """A propagate request's frames in order, how many it answers, and its direction."""
        if not session.objects:
            raise InvalidInputError("session_id", "no object has a prompt yet: add points first")
        asked = request.propagation
        start = asked.start_frame_idx
        if start is not None:
            inside_video(start, session.num_frames, "start_frame_idx")
        page = min(asked.max_frames or self.limits.page_frames, self.limits.page_frames)
        try:
            order = session.propagation_order(
                start, asked.max_frame_num_to_track, asked.reverse, asked.resume
            )
        except ValueError as exc:  # an object whose prompts were all cleared
            raise InvalidInputError("session_id", str(exc)) from None
        return order, page, asked.reverse

    def _page(self, order: range, frames: list[tuple[int, np.ndarray]]) -> dict:
        """A propagate answer: its frames, and where the propagation goes on."""
        self.frames_tracked += len(frames)
        left = order[len(frames) :]
        return {"frames": frames, "next": left[0] if left else -1, "left": len(left)}

    def _remove_object(self, session: VideoSession, request: VideoRequest) -> dict:
        obj_id = self._obj_id(session, request.obj_id, new=False)
        _, updated = session.remove_object(obj_id)
        return {"frames": updated}

    def _clear_prompts(self, session: VideoSession, request: VideoRequest) -> dict:
        frame = inside_video(request.frame_idx, session.num_frames)
        obj_id = self._obj_id(session, request.obj_id, new=False)
        _, _, masks = session.clear_all_prompts_in_frame(frame, obj_id)
        return {"frames": [(frame, masks)]}

    def _reset(self, session: VideoSession, request: VideoRequest) -> dict:
        session.reset_state()
        return {}

    def _close(self, session: VideoSession, request: VideoRequest) -> dict:
        return {}

    # --- sessions ---------------------------------------------------------------------------

    def _session(self, session_id: str) -> VideoSession:
        entry = self.sessions.get(session_id)
        if entry is None:
            raise UnknownSessionError(session_id)
        entry.last_used = self.clock()
        self.sessions.move_to_end(session_id)
        return entry.session

    def _obj_id(self, session: VideoSession, obj_id: int, new: bool) -> int:
        if obj_id in session.objects:
            return obj_id
        if not new:
            raise UnknownImageError(
                "obj_id", f"object {obj_id} was never prompted; known: {session.obj_ids}"
            )
        if len(session.objects) >= self.limits.max_objects:
            raise InvalidInputError(
                "obj_id", f"a video may track at most {self.limits.max_objects} objects here"
            )
        return obj_id

    def _check_fits(self, session: VideoSession, field: str) -> None:
        if session.nbytes > self.limits.max_bytes:
            raise InvalidInputError(
                field,
                f"{session.num_frames} frames need {session.nbytes} bytes, more than the "
                f"server's {self.limits.max_bytes} for all videos: send fewer or smaller frames",
            )

    def _evict_idle(self) -> int:
        now = self.clock()
        idle = [k for k, e in self.sessions.items() if now - e.last_used > self.limits.idle_seconds]
        for key in idle:
            self._evict(key, EVICTED_IDLE)
        return len(idle)

    def _make_room(self, keep: str) -> None:
        """Close least recently used sessions (never ``keep``) until within the limits."""
        for key in list(self.sessions):
            if key == keep:
                continue
            if len(self.sessions) > self.limits.max_sessions:
                self._evict(key, EVICTED_FOR_SESSIONS)
            elif self.nbytes > self.limits.max_bytes:
                self._evict(key, EVICTED_FOR_BYTES)

    def _evict(self, key: str, reason: str) -> None:
        del self.sessions[key]
        self.evictions[reason] += 1

    # --- responses --------------------------------------------------------------------------

    def _outputs(
        self, session_id: str, session: VideoSession, result: dict, fmt: str
    ) -> dict[str, np.ndarray]:
        hw = (session.height, session.width)
        return {
            "session_id": np.array([session_id.encode()], dtype=np.object_),
            "num_frames": np.array([session.num_frames], np.int32),
            "video_size": np.array(hw, np.int32),
            **frames_outputs(result.get("frames", []), session.obj_ids, hw, fmt),
            "next_frame_idx": np.array([result.get("next", -1)], np.int32),
            "frames_left": np.array([result.get("left", 0)], np.int32),
        }


def _joint_propagations(requests: Mapping[int, VideoRequest]) -> list[int]:
    """The propagate requests whose session has no other request in the batch."""
    counts = Counter(r.session_id for r in requests.values())
    return [
        i for i, r in requests.items() if r.operation == "propagate" and counts[r.session_id] == 1
    ]
