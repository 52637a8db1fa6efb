"""The web app's video API (issue 33) through ``sam2-triton ui`` and the real embedded server:
what the page will be shown and told equals what ``SAM2RemoteVideoPredictor`` gets from the
same server for the same prompts; tracking streams frame by frame and stops when the page stops
reading; a non-video is refused with a reason a person can read."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import requests
from PIL import Image

from sam2_triton.image.encodings import rle_to_mask
from tests.helpers import Scrape
from tests.test_e2e_video import _mp4
from tests.ui_browser import gateway
from tests.video_helpers import synthetic_video

pytestmark = pytest.mark.e2e
FRAMES = 4
#: two objects prompted on different frames: a fg and a bg click (a mask with holes and
#: islands under random weights, not the whole frame), and a lone click on frame 2
PROMPTS = [
    {"frame": 0, "obj_id": 1, "points": [[35.0, 55.0], [100.0, 100.0]], "labels": [1, 0]},
    {"frame": 2, "obj_id": 2, "points": [[110.0, 30.0]], "labels": [1]},
]


@pytest.fixture(scope="module")
def ui(triton):
    with gateway(triton.grpc_url) as url:
        yield url


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("ui_video")
    synthetic_video(folder, FRAMES)
    return _mp4(folder, FRAMES, folder / "clip.mp4").read_bytes()


def records(response: requests.Response) -> list[dict]:
    """The events of a tracking stream, as the page reads them."""
    events = []
    for line in response.iter_lines():
        if line.startswith(b"data: "):
            events.append(json.loads(line[6:]))
    return events


def masks_of(record: dict) -> dict[int, np.ndarray]:
    return {o["obj_id"]: rle_to_mask(o["segmentation"]) for o in record["objects"]}


def test_a_video_opened_prompted_and_tracked_gives_sam2_video_predictors_masks(
    ui, triton, clip, tmp_path
):
    from sam2_triton import SAM2RemoteVideoPredictor

    opened = requests.post(f"{ui}/api/videos", data=clip, timeout=300)
    assert opened.status_code == 200, opened.text
    video = opened.json()
    assert (video["num_frames"], video["width"], video["height"]) == (FRAMES, 160, 120)
    assert video["fps"] == pytest.approx(10)
    base = f"{ui}/api/videos/{video['video_id']}"
    shown = Image.open(io.BytesIO(requests.get(f"{base}/frames/{FRAMES - 1}", timeout=30).content))
    assert shown.size == (160, 120)

    answers = [requests.post(f"{base}/prompts", json=p, timeout=300) for p in PROMPTS]
    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    with requests.post(f"{base}/track", json={"start": 0}, stream=True, timeout=600) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        events = records(stream)
    assert events[-1] == {"done": True}
    tracked = {e["frame"]: masks_of(e) for e in events[:-1]}
    assert sorted(tracked) == list(range(FRAMES))

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
        state = predictor.init_state(video_path=str(path))
        for p in PROMPTS:
            predictor.add_new_points_or_box(state, p["frame"], p["obj_id"], points=p["points"],
                                            labels=p["labels"])  # fmt: skip
        want = {frame: dict(zip(ids, (np.asarray(m)[:, 0] > 0), strict=True))
                for frame, ids, m in predictor.propagate_in_video(state, 0)}  # fmt: skip
        predictor.close_state(state)
    for frame, objects in want.items():
        assert sorted(tracked[frame]) == sorted(objects)
        for obj_id, mask in objects.items():
            assert (tracked[frame][obj_id] == mask).mean() >= 0.999, (frame, obj_id)
    prompted = masks_of(answers[0].json())[1]
    assert (prompted == want[0][1]).mean() >= 0.999  # a prompt answers its frame's masks

    # the page stops reading after one frame: the server's propagation is cancelled (the
    # frame under way finishes, the last is never tracked), and the session answers again
    tracked_before = Scrape.of(triton).value("sam2_video_frames_tracked")
    with requests.post(f"{base}/track", json={"start": 0}, stream=True, timeout=600) as stream:
        first = next(line for line in stream.iter_lines() if line.startswith(b"data: "))
        assert json.loads(first[6:])["frame"] == 0
    again = requests.post(f"{base}/prompts", json=PROMPTS[1], timeout=300)
    assert again.status_code == 200, again.text
    assert Scrape.of(triton).value("sam2_video_frames_tracked") - tracked_before < FRAMES
    gone = requests.delete(f"{base}/objects/2", timeout=60)
    assert gone.status_code == 200, gone.text
    assert requests.delete(base, timeout=60).status_code == 200
    assert requests.get(f"{base}/frames/0", timeout=30).status_code == 404


def test_what_is_not_a_trackable_video_is_refused_saying_why(ui):
    def refusal(data: bytes) -> str:
        answer = requests.post(f"{ui}/api/videos", data=data, timeout=60)
        assert answer.status_code == 400, answer.text
        return answer.json()["error"]

    assert "cannot be decoded as a video file" in refusal(b"not a video at all")
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("notes.txt", "no frames here")
    assert "no .jpg frames" in refusal(empty.getvalue())
    mixed = io.BytesIO()
    with zipfile.ZipFile(mixed, "w") as archive:
        for k, size in enumerate([(40, 30), (50, 30)]):
            frame = io.BytesIO()
            Image.new("RGB", size).save(frame, "JPEG")
            archive.writestr(f"{k}.jpg", frame.getvalue())
    assert "differ in size" in refusal(mixed.getvalue())
    bad = requests.post(f"{ui}/api/videos/{'0' * 32}/prompts", json=PROMPTS[0], timeout=60)
    assert bad.status_code == 404 and "not open here" in bad.json()["error"]
    assert requests.get(f"{ui}/api/videos/nope/frames/0", timeout=60).status_code == 400
