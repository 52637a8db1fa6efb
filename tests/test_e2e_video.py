"""SAM2RemoteVideoPredictor through a real tritonserver (sam2_video; sam2_video_stream over
gRPC, pages over HTTP) against Meta's SAM2VideoPredictor on the same weights and the same
8 JPEG frames: the shared script (video_helpers.SCRIPT: clicks and a box on frame 0, a
refining click, propagation, a correction, an object added mid-video and tracked on, reverse
propagation, remove_object, clear_all_prompts_in_frame, reset_state; over HTTP: the prompts and
the first frames of the propagation, two pages). The server runs VideoSession on the same
graphs as in-process, so this is also that session's parity test. Frames sent one at a time,
each tracked as it comes, give the whole video's masks; `track` writes every frame; mistakes
are 400/404."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sam2_triton import SAM2RemoteVideoPredictor
from sam2_triton.clients.video import VideoClient
from tests.helpers import Scrape
from tests.video_helpers import (
    SCRIPT,
    SCRIPT_FRAMES,
    SCRIPT_FRAMES_ANSWERED,
    run_script,
    script_agreement,
)

pytestmark = pytest.mark.e2e

AGREEMENT = 0.999  # of mask pixels, per frame and object: what the in-process session gets

# Over HTTP (the same sessions, pages instead of a stream): the clicks, the box and the
# refinement, then frames 0-3 of the propagation in two pages of two frames. Tracking is causal,
# so those frames are the first four of the reference's whole propagation; the server's paging
# of longer propagations, both ways, is tested in test_video_service. The whole script runs
# over gRPC.
HTTP_SCRIPT = [*SCRIPT[:3], ("propagate_in_video", {"max_frame_num_to_track": 3})]
HTTP_PAGE_FRAMES = 2


@pytest.fixture(scope="module")
def video(script_video) -> Path:
    return script_video[0]


@pytest.fixture(scope="module")
def answers() -> dict:
    """The remote predictor's script answers per protocol (the streamed test reuses them)."""
    return {}


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_remote_video_predictor_matches_sam2_video_predictor(
    triton, script_video, video_reference, answers, protocol
):
    """Each answer of the script (video_helpers.SCRIPT: clicks and a box, a refining click,
    forward propagation, a correction on a tracked frame, an object added mid-video, reverse
    propagation through the corrected frame, remove_object, clear_all_prompts_in_frame,
    reset_state) against Meta's on the same frames: its frames, object ids, dtype and masks."""
    from tritonclient.utils import InferenceServerException

    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    if protocol == "grpc":
        script, theirs, frames_answered = SCRIPT, video_reference, SCRIPT_FRAMES_ANSWERED
    else:
        script = HTTP_SCRIPT
        theirs = [*video_reference[:3], video_reference[3][:4]]
        frames_answered = [*SCRIPT_FRAMES_ANSWERED[:3], [0, 1, 2, 3]]
    with SAM2RemoteVideoPredictor(url, protocol, page_frames=HTTP_PAGE_FRAMES) as predictor:
        state = predictor.init_state(video_path=str(script_video[0]))
        assert (state["num_frames"], state["video_height"], state["video_width"]) == (
            SCRIPT_FRAMES, 120, 160
        )  # fmt: skip

        def after(step: int) -> None:
            if script[step][0] == "clear_all_prompts_in_frame":  # object 2 has no prompt left
                with pytest.raises(InferenceServerException, match="object 2 has no prompt"):
                    next(iter(predictor.propagate_in_video(state)))

        ours = run_script(predictor, state, script, after=after)
        predictor.close_state(state)
    answers[protocol] = ours
    assert [[f for f, _, _ in step] for step in ours] == frames_answered
    for mine, reference in zip(ours, theirs, strict=True):
        for (_, _, m), (_, _, r) in zip(mine, reference, strict=True):
            assert m.dtype == r.dtype
    assert script_agreement(ours, theirs) >= AGREEMENT


def test_frames_sent_one_at_a_time_and_tracked_as_they_come_give_the_whole_videos(
    triton, video, answers
):
    if "grpc" not in answers:
        pytest.skip("needs the whole video's answers of the gRPC test")
    whole = {f: m[0].numpy() for f, _, m in answers["grpc"][3]}  # object 1 on each frame
    with VideoClient(triton.grpc_url, "grpc") as client:
        # the length declared up front: the pointers' temporal scale depends on it
        sid = client.start(
            frames=[(video / "0.jpg").read_bytes()], num_frames=SCRIPT_FRAMES
        ).session_id
        client.add_points(sid, 0, 1, [[35.0, 55.0]], [1])
        first = client.add_points(sid, 0, 1, [[45.0, 50.0]], [1], clear_old_points=False)
        np.testing.assert_array_equal(first.video_res_logits()[0], whole[0])
        for t in range(1, 4):
            client.add_frames(sid, [(video / f"{t}.jpg").read_bytes()])
            (tracked,) = client.propagate(sid, start_frame_idx=t, max_frame_num_to_track=0)
            assert tracked.frame_indices == [t]
            np.testing.assert_array_equal(tracked.video_res_logits()[0], whole[t])
        client.close_session(sid)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_mistakes_are_named_and_the_server_keeps_serving(triton, video, protocol):
    from tritonclient.utils import InferenceServerException

    url = triton.grpc_url if protocol == "grpc" else triton.http_url
    status = {"grpc": ("StatusCode.INVALID_ARGUMENT", "StatusCode.NOT_FOUND"),
              "http": ("400", "404")}[protocol]  # fmt: skip
    before = Scrape.of(triton)
    with VideoClient(url, protocol) as client:
        sid = client.start(frames=[(video / "0.jpg").read_bytes()]).session_id
        # Triton's stream protocol carries an error's message but no status code
        streamed = None if protocol == "grpc" else status[0]
        cases = [
            (lambda: client.reset("0" * 32), status[1], "session_id"),
            (lambda: client.add_points(sid, 5, 1, [[1.0, 1.0]], [1]), status[0], "frame_idx"),
            (
                lambda: client.add_points(sid, 0, 1, [[np.nan, 1.0]], [1]),
                status[0],
                "point_coords",
            ),  # fmt: skip
            (lambda: client.remove_object(sid, 9), status[1], "obj_id"),
            (lambda: client.start(video=b"\0" * 100), status[0], "video"),
            (lambda: client.add_frames(sid, [b"junk"]), status[0], "frames[1]"),
            (lambda: list(client.propagate(sid)), streamed, "no object has a prompt"),
        ]
        for call, code, text in cases:
            with pytest.raises(InferenceServerException) as error:
                call()
            got = error.value.status()
            assert (None if got is None else str(got)) == code, error.value
            assert text in error.value.message(), error.value
        answer = client.add_points(sid, 0, 1, [[35.0, 55.0]], [1])  # still serving
        assert answer.obj_ids == [1] and answer.frame_indices == [0]
        assert [a.frame_indices for a in client.propagate(sid)] == [[0]]
        client.close_session(sid)
    after = Scrape.of(triton)

    def grew(name: str, models=("sam2_video",), **labels: str) -> float:
        return sum(
            after.value(name, model=m, **labels) - before.value(name, model=m, **labels)
            for m in models
        )

    assert grew("sam2_video_frames_tracked") == 1
    assert grew("sam2_requests_total", outcome="not_found") == 2
    # each public model counts its own requests: over gRPC the propagation is the stream's
    public = ("sam2_video", "sam2_video_stream")
    assert grew("sam2_requests_total", public, outcome="invalid_input") == 5


def _mp4(frames_dir: Path, count: int, path: Path) -> Path:
    import av
    from PIL import Image

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for t in range(count):
            rgb = np.asarray(Image.open(frames_dir / f"{t}.jpg").convert("RGB"))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_track_writes_every_frames_masks_and_an_overlay_video(triton, video, tmp_path, capsys):
    import json

    import av

    from sam2_triton.cli import main
    from sam2_triton.image.encodings import png_to_mask, rle_to_mask

    path = _mp4(video, 4, tmp_path / "clip.mp4")
    out = tmp_path / "tracked"
    prompts = ["--prompt", "2:1:35,55", "--prompt", "2:1:45,50,1", "--box", "2:2:92,3,128,38"]
    common = ["track", str(path), *prompts, "--url", triton.grpc_url]
    assert main([*common, "--out", str(out), "--png"]) == 0
    assert "tracked 4 frames" in capsys.readouterr().out
    records = [json.loads(p.read_text()) for p in sorted((out / "masks").glob("*.json"))]
    assert [r["frame"] for r in records] == list(range(4))  # forward from 2, back from 1
    assert all([o["obj_id"] for o in r["objects"]] == [1, 2] for r in records)

    # the prompted frame's masks are the session's answer to the same prompts
    with VideoClient(triton.grpc_url, "grpc") as client:
        sid = client.start(video=path.read_bytes()).session_id
        client.add_points(sid, 2, 1, [[35.0, 55.0], [45.0, 50.0]], [1, 1])
        answer = client.add_points(sid, 2, 2, box=[92, 3, 128, 38])
        client.close_session(sid)
    expected = answer.video_res_logits()[:, 0] > 0
    for obj, mask in zip(records[2]["objects"], expected, strict=True):
        written = rle_to_mask(obj["segmentation"])
        np.testing.assert_array_equal(written, mask)
        png = out / "masks" / f"00002_obj{obj['obj_id']}.png"
        np.testing.assert_array_equal(png_to_mask(png.read_bytes()), written)
        assert obj["area"] == int(written.sum())

    with av.open(str(out / "overlay.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (120, 160, 3)
    manifest = json.loads((out / "track.json").read_text())
    assert manifest["frames_tracked"] == 4 and manifest["prompts"][0]["frame"] == 2

    foreign = tmp_path / "someone's"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main([*common, "--out", str(foreign)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"
