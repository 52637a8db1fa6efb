"""sam2_video's request logic without Triton: sessions, paged propagation equal to one
VideoSession's, bounded memory, eviction, video files, and every client mistake named."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from sam2_triton.errors import ErrorKind, InvalidInputError
from sam2_triton.video.answers import propagation_pages
from sam2_triton.video.frames import VideoFrames
from sam2_triton.video.service import VideoLimits, VideoService
from sam2_triton.video.session import VideoSession
from tests.video_helpers import HEIGHT, WIDTH, synthetic_video

FRAMES = 6


@pytest.fixture(scope="module")
def models(tracker_models):
    return tracker_models


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    folder = tmp_path_factory.mktemp("video")
    synthetic_video(folder, FRAMES)
    return [(folder / f"{t}.jpg").read_bytes() for t in range(FRAMES)]


def _op(operation: str, **values) -> dict:
    inputs = {"operation": np.array([operation.encode()], dtype=object)}
    for name, value in values.items():
        if isinstance(value, str):
            value = np.array([value.encode()], dtype=object)
        elif isinstance(value, bool):
            value = np.array([value])
        elif isinstance(value, int):
            value = np.array([value], np.int32)
        inputs[name] = value
    return inputs


def _frames(jpegs: list[bytes]) -> np.ndarray:
    return np.array(jpegs, dtype=object)


def _started(service: VideoService, jpegs: list[bytes]) -> str:
    out = service.handle(_op("start", frames=_frames(jpegs)))
    return out["session_id"][0].decode()


def _click(service: VideoService, sid: str, frame: int = 0, obj: int = 1) -> dict:
    coords = np.array([[35.0, 55.0]], np.float32)
    return service.handle(
        _op("add_points", session_id=sid, frame_idx=frame, obj_id=obj, point_coords=coords,
            point_labels=np.array([1], np.int32))
    )  # fmt: skip


@pytest.fixture(scope="module")
def direct(models, video) -> np.ndarray:
    """One VideoSession keeping every frame's state (as the reference): a click on frame 0,
    then the low-res logits of every frame, [F, 1, 256, 256]."""
    frames = VideoFrames()
    for data in video:
        frames.append_image(data)
    session = VideoSession(frames, models, memory_frames=None, low_res_output=True)
    session.add_new_points_or_box(0, 1, [[35.0, 55.0]], [1])
    return np.stack([m[:, 0] for _, _, m in session.propagate_in_video()])


def test_paged_propagation_equals_one_video_session(models, video, direct):
    service = VideoService(models, VideoLimits(page_frames=4))
    sid = _started(service, video)
    clicked = _click(service, sid)
    assert clicked["frame_indices"].tolist() == [0] and clicked["obj_ids"].tolist() == [1]
    pages = list(propagation_pages(_op("propagate", session_id=sid), service.handle, 4))
    assert [p["frame_indices"].tolist() for p in pages] == [[0, 1, 2, 3], [4, 5]]
    assert [int(p["frames_left"][0]) for p in pages] == [2, 0]
    assert int(pages[0]["next_frame_idx"][0]) == 4 and int(pages[1]["next_frame_idx"][0]) == -1
    np.testing.assert_array_equal(np.concatenate([p["low_res_logits"] for p in pages]), direct)


def test_paged_reverse_propagation_reaches_frame_0(models, video):
    """The last backward page starts at frame 0, which sam2 would not track if asked to start
    there: a page of a propagation under way (``resume``) tracks it."""
    service = VideoService(models, VideoLimits(page_frames=2))
    sid = _started(service, video[:4])
    _click(service, sid, frame=3)
    start = _op("propagate", session_id=sid, start_frame_idx=3, reverse=True)
    pages = list(propagation_pages(start, service.handle, 2))
    assert [p["frame_indices"].tolist() for p in pages] == [[3, 2], [1, 0]]
    from_zero = service.handle(_op("propagate", session_id=sid, start_frame_idx=0, reverse=True))
    assert from_zero["frame_indices"].tolist() == []  # sam2's rule for a new propagation


def test_frames_sent_one_at_a_time_track_as_the_whole_video(models, video, direct):
    service = VideoService(models)
    sid = _started(service, video[:1])
    for data in video[1:]:
        out = service.handle(_op("add_frames", session_id=sid, frames=_frames([data])))
    assert int(out["num_frames"][0]) == FRAMES
    _click(service, sid)
    out = service.handle(_op("propagate", session_id=sid, max_frames=FRAMES))
    np.testing.assert_array_equal(out["low_res_logits"], direct)


def test_outputs_as_rle_and_raw_masks_are_the_logits_thresholded(models, video):
    from sam2_triton.image.encodings import rle_to_mask
    from sam2_triton.image.masks import upsample_logits

    service = VideoService(models)
    sid = _started(service, video[:3])
    logits = _click(service, sid)["low_res_logits"]
    expected = (upsample_logits(logits[0], (HEIGHT, WIDTH)) > 0).astype(np.uint8)
    raw = service.handle(_op("propagate", session_id=sid, output_format="raw", max_frames=1))
    assert raw["masks"].shape == (1, 1, HEIGHT, WIDTH) and raw["low_res_logits"].shape[0] == 0
    np.testing.assert_array_equal(raw["masks"][0], expected)
    again = _op("propagate", session_id=sid, output_format="rle", max_frames=1, start_frame_idx=0)
    rle = service.handle(again)
    assert rle["low_res_logits"].shape[0] == 0 and len(rle["encoded_masks"]) == 1
    np.testing.assert_array_equal(rle_to_mask(json.loads(rle["encoded_masks"][0])), expected[0])


def test_memory_is_bounded_to_what_tracking_reads(models, video, direct):
    """With 2 tracked frames kept, memory stops growing after frame 2, and frames 0-3 (which
    read no older memory) are exactly the unbounded session's."""
    service = VideoService(models, VideoLimits(memory_frames=2))
    sid = _started(service, video)
    _click(service, sid)
    logits, sizes = [], []
    for page in propagation_pages(_op("propagate", session_id=sid), service.handle, 1):
        logits.append(page["low_res_logits"][0])
        sizes.append(service.nbytes)
    assert len(service.sessions[sid].session.objects[1].non_cond) == 2
    assert sizes[0] < sizes[1] < sizes[2] and len(set(sizes[2:])) == 1
    np.testing.assert_array_equal(np.stack(logits[:4]), direct[:4])


def test_idle_sessions_lru_and_bytes_are_evicted_and_then_unknown(models, video):
    now = [0.0]
    limits = VideoLimits(max_sessions=2, idle_seconds=60)
    service = VideoService(models, limits, clock=lambda: now[0])
    first, second = _started(service, video[:2]), _started(service, video[:2])
    now[0] = 30
    service.handle(_op("reset", session_id=first))  # first is now the most recently used
    third = _started(service, video[:2])
    assert set(service.sessions) == {first, third} and service.evictions["sessions"] == 1
    now[0] = 100  # first was used at 30, third at 30: both idle 70 s
    assert service.evict_idle() == 2 and service.evictions["idle"] == 2
    with pytest.raises(InvalidInputError, match="no open video session") as error:
        service.handle(_op("reset", session_id=second))
    assert error.value.kind is ErrorKind.NOT_FOUND

    small = VideoService(models, VideoLimits(max_bytes=sum(map(len, video[:4])) + 10))
    a = _started(small, video[:3])
    b = _started(small, video[:3])  # both do not fit: the older goes
    assert list(small.sessions) == [b] and small.evictions["bytes"] == 1
    with pytest.raises(InvalidInputError, match="past the server's"):
        _started(small, video)  # alone more than the server holds
    with pytest.raises(InvalidInputError, match=r"frames\[4\]"):  # all of them or none
        small.handle(_op("add_frames", session_id=b, frames=_frames([video[3], b"junk"])))
    assert len(small.sessions[b].session.frames) == 3
    assert a not in small.sessions


def test_a_video_file_is_decoded_with_its_frames_in_order(models, video):
    import av
    from PIL import Image

    frames = [np.asarray(Image.open(io.BytesIO(d)).convert("RGB")) for d in video[:4]]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=10)  # lossless: the frames come back exact
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "bgr0"
        for rgb in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    service = VideoService(models)
    out = service.handle(_op("start", video=np.frombuffer(buffer.getvalue(), np.uint8)))
    assert int(out["num_frames"][0]) == 4 and out["video_size"].tolist() == [HEIGHT, WIDTH]
    session = service.sessions[out["session_id"][0].decode()].session
    expected = VideoFrames.of_arrays(frames)
    for t in range(4):
        np.testing.assert_array_equal(session.frames.model_input(t), expected.model_input(t))


def _points(sid: str, frame: int = 0, xy=(35.0, 55.0), **extra) -> dict:
    coords = np.array([xy], np.float32)
    return _op("add_points", session_id=sid, frame_idx=frame, obj_id=1, point_coords=coords,
               point_labels=np.ones(1, np.int32), **extra)  # fmt: skip


def _bytes(*items: bytes) -> np.ndarray:
    return np.array(items, dtype=object)


BOX = np.array([1, 1, 9, 9], np.float32)
BAD = [
    ("unknown operation", lambda sid: _op("explode", session_id=sid), "operation"),
    ("no operation", lambda sid: {}, "operation"),
    ("no session id", lambda sid: _op("propagate"), "session_id"),
    ("frame out of range", lambda sid: _points(sid, frame=99), "frame_idx"),
    ("NaN click", lambda sid: _points(sid, xy=(np.nan, 1.0)), "point_coords"),
    ("click outside", lambda sid: _points(sid, xy=(500.0, 5.0)), "point_coords"),
    (
        "no prompt",
        lambda sid: _op("add_points", session_id=sid, frame_idx=0, obj_id=1),
        "point_coords",
    ),
    (
        "box kept with old points",
        lambda sid: _op(
            "add_points", session_id=sid, frame_idx=0, obj_id=1, box=BOX, clear_old_points=False
        ),
        "box",
    ),
    (
        "mask of three axes",
        lambda sid: _op(
            "add_mask", session_id=sid, frame_idx=0, obj_id=1, mask=np.ones((2, 2, 2), bool)
        ),
        "mask",
    ),
    ("propagate before a prompt", lambda sid: _op("propagate", session_id=sid), "session_id"),
    (
        "corrupt frame",
        lambda sid: _op("add_frames", session_id=sid, frames=_bytes(b"no jpeg")),
        "frames[2]",
    ),
    (
        "a frame of another size",
        lambda sid: _op("add_frames", session_id=sid, frames=_bytes(_png(8, 8))),
        "frames",
    ),
    (
        "unknown format",
        lambda sid: _op("reset", session_id=sid, output_format="gif"),
        "output_format",
    ),
    ("corrupt video", lambda sid: _op("start", video=np.zeros(64, np.uint8)), "video"),
    (
        "video and frames",
        lambda sid: _op("start", video=np.zeros(4, np.uint8), frames=_bytes(b"x")),
        "video",
    ),
]


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("case", "request_of", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_name_their_input_and_leave_the_session_serving(
    models, video, case, request_of, field
):
    service = VideoService(models)
    sid = _started(service, video[:2])
    with pytest.raises(InvalidInputError) as error:
        service.handle(request_of(sid))
    assert error.value.field == field, str(error.value)
    assert error.value.kind is ErrorKind.INVALID_INPUT
    assert _click(service, sid)["frame_indices"].tolist() == [0]  # still serving


def test_objects_never_prompted_are_not_found(models, video):
    service = VideoService(models)
    sid = _started(service, video[:2])
    _click(service, sid, obj=1)
    for operation in ("remove_object", "clear_prompts"):
        with pytest.raises(InvalidInputError, match="never prompted") as error:
            service.handle(_op(operation, session_id=sid, frame_idx=0, obj_id=7))
        assert error.value.kind is ErrorKind.NOT_FOUND
    removed = service.handle(_op("remove_object", session_id=sid, obj_id=1))
    assert removed["obj_ids"].tolist() == [] and removed["frame_indices"].tolist() == []
    closed = service.handle(_op("close", session_id=sid))
    assert closed["session_id"][0].decode() == sid and sid not in service.sessions
