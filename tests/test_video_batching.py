"""Propagations of different videos tracked together (``VideoService.handle_many`` on the
requests ``FrameScheduler`` gathers, as sam2_video_sessions runs them): each session's masks
are the ones it gets alone, its objects share the other sessions' memory-attention and encoder
calls, propagations started apart fall into step, and a batch that is not only one
propagation per session is answered request by request."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from sam2_triton.errors import InvalidInputError
from sam2_triton.video.answers import propagation_pages
from sam2_triton.video.scheduler import FrameScheduler
from sam2_triton.video.service import VideoService
from tests.test_video_service import _click, _frames, _op, _started
from tests.video_helpers import RecordingModels, agreement, synthetic_video


@pytest.fixture(scope="module")
def models(tracker_models):
    return tracker_models


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two videos: 5 frames of moving shapes, and the same shapes' first 3 frames reversed."""
    folder = tmp_path_factory.mktemp("videos")
    synthetic_video(folder, 5)
    jpegs = [(folder / f"{t}.jpg").read_bytes() for t in range(5)]
    return jpegs, jpegs[2::-1]


def _prompted(service: VideoService, videos) -> list[str]:
    """Session A: one click; session B: a click and a box (two objects)."""
    a, b = (_started(service, jpegs) for jpegs in videos)
    _click(service, a)
    _click(service, b, obj=1)
    box = np.array([92, 3, 128, 38], np.float32)
    service.handle(_op("add_points", session_id=b, frame_idx=0, obj_id=2, box=box))
    return [a, b]


def _in_lockstep(service: VideoService, sids: list[str]) -> dict[str, np.ndarray]:
    """Each session's propagation a frame a request, all sessions' next frames in one batch
    (as the stream and sam2_video send them): every frame's logits, [F, N, 256, 256]."""
    feeds = {sid: _op("propagate", session_id=sid, max_frames=1) for sid in sids}
    frames: dict[str, list[np.ndarray]] = {sid: [] for sid in sids}
    while feeds:
        order = list(feeds)
        for sid, out in zip(order, service.handle_many([feeds[s] for s in order]), strict=True):
            assert not isinstance(out, Exception), out
            frames[sid].append(out["low_res_logits"])
            left = int(out["frames_left"][0])
            feeds.pop(sid)
            if left:
                rest = {"start_frame_idx": int(out["next_frame_idx"][0]), "resume": True}
                rest["max_frame_num_to_track"] = left - 1
                feeds[sid] = _op("propagate", session_id=sid, max_frames=1, **rest)
    return {sid: np.concatenate(f) for sid, f in frames.items()}


@pytest.fixture(scope="module")
def alone(models, videos) -> list[np.ndarray]:
    """Each session's logits propagated on its own, [F, N, 256, 256]."""
    service = VideoService(models)
    want = []
    for sid in _prompted(service, videos):
        pages = propagation_pages(_op("propagate", session_id=sid), service.handle, 8)
        want.append(np.concatenate([p["low_res_logits"] for p in pages]))
    return want


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    for ours, expected in zip(got, want, strict=True):
        assert ours.shape == expected.shape
        np.testing.assert_allclose(ours, expected, atol=1e-2)
        side = expected.shape[-1]
        pairs = ours.reshape(-1, side, side), expected.reshape(-1, side, side)
        assert min(agreement(*pairs)) >= 0.999  # every frame and object


def test_sessions_propagated_together_get_the_masks_they_get_alone(models, videos, alone):
    graphs = RecordingModels(models, batch_objects=8)
    together = VideoService(graphs)
    sids = _prompted(together, videos)
    graphs.attended.clear()
    got = _in_lockstep(together, sids)
    # frame 0 is prompted; frames 1-2 of both videos (1 + 2 objects) in one call each, then A's
    assert graphs.attended == [3, 3, 1, 1], graphs.attended
    assert graphs.encoded == [2, 2], graphs.encoded  # both videos' frames 1 and 2
    _assert_same([got[sid] for sid in sids], alone)
    assert together.frames_tracked == len(videos[0]) + len(videos[1])


def test_a_batch_with_more_than_propagations_is_answered_request_by_request(models, videos):
    """Two requests for one session run in order; a bad request fails alone."""
    graphs = RecordingModels(models, batch_objects=8)
    service = VideoService(graphs)
    a, b = _prompted(service, videos)
    coords = np.array([[40.0, 50.0]], np.float32)
    batch = [
        _op("propagate", session_id=a, max_frames=2),
        _op(
            "add_points",
            session_id=a,
            frame_idx=1,
            obj_id=1,
            point_coords=coords,
            point_labels=np.array([1], np.int32),
            clear_old_points=False,
        ),  # fmt: skip
        _op("propagate", session_id="no-such-session", max_frames=1),
        _op("add_frames", session_id=b, frames=_frames(videos[0][:1])),
        _op("propagate", session_id=b, max_frames=0),  # fails to parse
    ]
    results = service.handle_many(batch)
    assert results[0]["frame_indices"].tolist() == [0, 1]
    assert results[1]["frame_indices"].tolist() == [1]  # after the propagation reached it
    assert isinstance(results[2], InvalidInputError) and "no open video session" in str(results[2])
    assert int(results[3]["num_frames"][0]) == len(videos[1]) + 1
    assert isinstance(results[4], InvalidInputError) and results[4].field == "max_frames"
    assert graphs.encoded == []  # nothing tracked together


def _through(scheduler: FrameScheduler, feeds: dict) -> dict:
    """One request through the scheduler, answered from its thread (as sam2_video_sessions)."""
    answer: Future = Future()
    scheduler.submit(feeds, answer.set_result)
    result = answer.result(timeout=900)
    if isinstance(result, Exception):
        raise result
    return result


def test_the_scheduler_brings_propagations_started_apart_into_step(models, videos, alone):
    """The second propagation starts once the first has answered a frame; the scheduler waits
    for the first's next frame and tracks both together from then on."""
    graphs = RecordingModels(models, batch_objects=8)
    service = VideoService(graphs)
    sids = _prompted(service, videos)
    scheduler = FrameScheduler(service, wait_seconds=30.0)
    first_answered = threading.Event()

    def stream(sid: str) -> np.ndarray:  # as sam2_video_stream: a frame, then the next
        if sid == sids[1]:
            assert first_answered.wait(timeout=900)
        logits = []
        start = _op("propagate", session_id=sid)
        for page in propagation_pages(start, lambda f: _through(scheduler, f), 1):
            logits.append(page["low_res_logits"])
            first_answered.set()
        return np.concatenate(logits)

    try:
        with ThreadPoolExecutor(2) as pool:
            got = list(pool.map(stream, sids))
    finally:
        scheduler.stop()
    _assert_same(got, alone)
    assert 2 in scheduler.batches, scheduler.batches  # the two sessions' frames in one step
    assert 2 in graphs.encoded, graphs.encoded
