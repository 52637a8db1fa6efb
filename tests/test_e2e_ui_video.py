"""Video in the web app (issue 33) through ``sam2-triton ui`` and the real embedded server, in
Debian's chromium: what the page tracks equals what ``SAM2RemoteVideoPredictor`` gets from the
same server for the same prompts; tracking streams frame by frame and stops when the page
cancels; a non-video is refused with a reason a person can read."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from sam2_triton.image.encodings import rle_to_mask
from tests.conftest import ROOT
from tests.helpers import Scrape
from tests.test_e2e_video import _mp4
from tests.ui_browser import gateway, opened
from tests.video_helpers import synthetic_video

pytestmark = pytest.mark.e2e
FRAMES = 4
SCREENSHOT = ROOT / "outputs" / "ui" / "video.png"
PROMPT = {"frame": 0, "obj_id": 1, "points": [[35.0, 55.0], [100.0, 100.0]], "labels": [1, 0]}


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


def test_the_page_tracks_two_objects_as_sam2_video_predictor_does(
    browser, ui, triton, clip, tmp_path
):
    """Issue 33 in a real browser: a clip opened from the file picker, two objects prompted
    on different frames (a foreground and a background click; a dragged box, then a click),
    Track: every frame's masks, exported with their prompts, equal SAM2RemoteVideoPredictor's
    replaying the page's calls over the same server; what the page draws is that frame's
    masks; a correction on a tracked frame resumes tracking there; Cancel stops the server
    stepping; an object removed leaves every frame; the downloads hold the masks; a non-video
    is refused in the page; no console error."""
    from sam2_triton import SAM2RemoteVideoPredictor

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip)
    errors: list[str] = []
    stats = "window.sam2ui.video.stats"
    with opened(browser, ui, errors, timeout_ms=300_000) as app:
        page = app.page
        page.set_input_files("#file", str(path))
        page.wait_for_selector("body[data-video-id]")
        at = lambda x, y: app.at(x / 160, y / 120)  # noqa: E731 - the clip's pixels
        page.mouse.click(*at(35, 55))
        page.wait_for_function(f"() => {stats}.prompts == 1")
        page.mouse.click(*at(100, 100), button="right")
        page.wait_for_function(f"() => {stats}.prompts == 2")
        page.click("#video-new-object")
        renamed = '#video-objects li[data-object-id="2"] input.name'
        page.fill(renamed, "blue disc")
        page.press(renamed, "Enter")  # names leave with the masks
        page.locator("#timeline").fill("2")
        page.wait_for_function("() => window.sam2ui.video.frame == 2")
        page.mouse.move(*at(90, 5))  # a box dragged around the blue disc, then a click in it
        page.mouse.down()
        page.mouse.move(*at(130, 45), steps=5)
        page.mouse.up()
        page.wait_for_function(f"() => {stats}.prompts == 3")
        page.mouse.click(*at(110, 30))
        page.wait_for_function(f"() => {stats}.prompts == 4")
        page.click("#track")
        page.wait_for_function(f"() => {stats}.passes == 1 && !window.sam2ui.video.tracking")
        exported = page.evaluate("window.sam2ui.video.exportable()")

        with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
            state = predictor.init_state(video_path=str(path))
            for p in exported["prompts"]:
                predictor.add_new_points_or_box(
                    state, p["frame"], p["obj_id"], points=p["points"] or None,
                    labels=p["labels"] or None, box=p["box"],
                )  # fmt: skip
            want = {frame: dict(zip(ids, np.asarray(m)[:, 0] > 0, strict=True))
                    for frame, ids, m in predictor.propagate_in_video(state, 0)}  # fmt: skip
            predictor.close_state(state)
        calls = [(p["frame"], p["obj_id"], len(p["points"]), p["box"] is not None)
                 for p in exported["prompts"]]  # fmt: skip
        assert calls == [(0, 1, 1, False), (0, 1, 2, False), (2, 2, 0, True), (2, 2, 1, True)]
        assert [(o["obj_id"], o["name"]) for o in exported["objects"]] == [
            (1, "object 1"), (2, "blue disc")]  # fmt: skip
        assert exported["prompts"][1]["labels"] == [1, 0]  # each call: the prompts so far
        np.testing.assert_allclose(exported["prompts"][2]["box"], [90, 5, 130, 45], atol=1)
        tracked = {r["frame"]: masks_of(r) for r in exported["frames"]}
        assert sorted(tracked) == sorted(want) == list(range(FRAMES))
        for frame, objects in want.items():
            assert sorted(tracked[frame]) == sorted(objects)
            for obj_id, mask in objects.items():
                assert (tracked[frame][obj_id] == mask).mean() >= 0.999, (frame, obj_id)
        shown = page.evaluate("window.sam2ui.video.frame")
        np.testing.assert_array_equal(app.drawn(), np.any(list(tracked[shown].values()), 0))
        page.screenshot(path=str(SCREENSHOT))  # the README's picture

        # a correction on a tracked frame (object 1, a background click): tracking resumes
        page.click('#video-objects li[data-object-id="1"]')
        page.mouse.click(*at(60, 90), button="right")
        page.wait_for_function(f"() => {stats}.passes == 2 && !window.sam2ui.video.tracking")
        assert page.evaluate("Object.keys(window.sam2ui.video.objects[0].prompts)") == ["0", "3"]

        # Cancel after the first tracked frame: the server stops stepping
        before = Scrape.of(triton).value("sam2_video_frames_tracked")
        page.click("#track")
        page.wait_for_function(f"() => {stats}.records > {FRAMES + 1}")
        page.click("#cancel-track")
        page.wait_for_function(f"() => {stats}.cancelled == 1 && !window.sam2ui.video.tracking")
        again = "window.sam2ui.video.remove(window.sam2ui.video.objects[1])"
        page.evaluate(again)  # answered once the server has stopped
        assert Scrape.of(triton).value("sam2_video_frames_tracked") - before < FRAMES
        assert all(2 not in masks_of(r) for r in page.evaluate(
            "window.sam2ui.video.exportable()")["frames"])  # fmt: skip

        with page.expect_download() as download:
            page.click("#export-video")
        saved = json.loads(Path(download.value.path()).read_text())
        assert saved == page.evaluate("window.sam2ui.video.exportable()")
        # the PNG masks and the overlay, as sam2-triton track writes them, of the masks shown
        with page.expect_download() as download:
            page.click("#export-png")
        with zipfile.ZipFile(download.value.path()) as archive:
            for record in saved["frames"]:
                for obj_id, mask in masks_of(record).items():
                    png = archive.read(f"masks/{record['frame']:05d}_obj{obj_id}.png")
                    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))) > 0, mask)
        with page.expect_download() as download:
            page.click("#export-mp4")
        import av

        with av.open(download.value.path()) as container:
            assert sum(1 for _ in container.decode(video=0)) == FRAMES

        assert errors == []  # loading, tracking, cancelling, exporting: no console error
        video_id = page.evaluate("document.body.dataset.videoId")
        junk = tmp_path / "junk.mp4"
        junk.write_bytes(b"not a video at all")
        page.set_input_files("#file", str(junk))
        page.wait_for_selector("#message:not([hidden])")
        assert "junk.mp4: not a video this server can track" in page.inner_text("#message")
        # chromium itself logs the refusal's status; the page logs nothing
        refused = "Failed to load resource: the server responded with a status of 400"
        assert all(e.startswith(refused) for e in errors), errors

        # a folder of JPEG frames (Folder…) opens as a video, its frames in name order
        folder = tmp_path / "frames"
        folder.mkdir()
        synthetic_video(folder, FRAMES)
        page.set_input_files("#folder", str(folder))
        page.wait_for_selector(f"#status:has-text('frames/: {FRAMES} frames, 160×120')")
        from_folder = page.evaluate("document.body.dataset.videoId")
        assert from_folder not in (None, video_id)
        last = requests.get(f"{ui}/api/videos/{from_folder}/frames/{FRAMES - 1}", timeout=60)
        assert last.content == (folder / f"{FRAMES - 1}.jpg").read_bytes()


def test_what_is_not_a_trackable_video_is_refused_saying_why(ui, triton, clip):
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
    notes = requests.post(f"{ui}/api/videos", files=[("frame", ("notes.txt", b"no"))], timeout=60)
    assert notes.status_code == 400 and "the folder holds no .jpg frames" in notes.text
    bad = requests.post(f"{ui}/api/videos/{'0' * 32}/prompts", json=PROMPT, timeout=60)
    assert bad.status_code == 404 and "not open here" in bad.json()["error"]
    assert requests.get(f"{ui}/api/videos/nope/frames/0", timeout=60).status_code == 400
    # over the limits: frames over the pixel cap, a file over the upload cap
    with gateway(triton.grpc_url, "--max-image-pixels", "10000", "--max-upload-mb", "1") as small:
        over = requests.post(f"{small}/api/videos", data=clip, timeout=60)
        assert over.status_code == 400 and "160x120 frames exceed the limit of 10000 pixels" in (
            over.json()["error"])  # fmt: skip
        huge = requests.post(f"{small}/api/videos", data=clip + bytes(2 << 20), timeout=60)
        assert huge.status_code == 413, huge.text
        parts = [("frame", (f"{k}.jpg", bytes(600_000))) for k in range(2)]  # a folder
        huge = requests.post(f"{small}/api/videos", files=parts, timeout=60)
        assert huge.status_code == 413 and "upload cap of 1 MiB" in huge.json()["error"]
