"""``sam2-triton connect`` against the shared real tritonserver, driven as each tool drives it.

- X-AnyLabeling: its own client (``RemoteServer``, x-anylabeling-cvhub 4.2.1, in its own venv:
  ``make x-anylabeling``) clicks; its polygons are sam2_session's for the same click.
- CVAT: requests and answers shaped as its sources build and read them:
  ``cvat/apps/lambda_manager/views.py`` (the function list, ``/api/function_invocations`` with
  ``x-nuclio-function-name``, the interactor body ``pos_points``/``neg_points``/``obj_bbox``
  [[x1, y1], [x2, y2]]), ``cvat-ui/src/components/annotation-page/standard-workspace/
  controls-side-bar/tools-control.tsx`` (``mask`` cropped to inclusive ``bounds``) and the
  segmentation detectors' ``to_cvat_mask`` (``serverless/pytorch/ultralytics/…/main.py``: the
  crop's flat values then [xtl, ytl, xbr, ybr]).
- Label Studio: ``/predict`` as Label Studio 1.23.2 calls it (keypoints in percent,
  ``is_positive``), its image fetched with the token (a legacy token, and a personal access
  token exchanged and renewed); the brush RLE decoded as
  ``label_studio_sdk.converter.brush.decode_rle`` reads it (this project's venv cannot hold the
  SDK: it needs numpy 2; tests/test_connect.py holds the SDK's own bytes for two masks).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import numpy as np
import pytest
import requests
from pycocotools import mask as mask_utils
from scipy import ndimage

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.connect.config import LabelStudioConfig
from sam2_triton.connect.service import ToolError
from sam2_triton.image.polygons import mask_to_polygons, polygons_to_mask
from tests.conftest import ROOT, model_runs
from tests.connect_helpers import (
    COFFEE,
    LABEL_CONFIG,
    PERSONAL_TOKEN,
    STUDIO,
    X_ANYLABELING,
    best,
    decode_brush_rle,
)
from tests.helpers import PARAMS

pytestmark = pytest.mark.e2e


# --- X-AnyLabeling ---------------------------------------------------------------------------


def _anylabeling(gateway: str, workdir, image, model: int, marks: list, *mode: str) -> dict:
    """X-AnyLabeling's client, run in its own venv (tests/anylabeling_client.py)."""
    if not X_ANYLABELING.exists():
        message = "X-AnyLabeling's client is not installed: make x-anylabeling"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (make test installs it)")
        pytest.skip(message)
    run = subprocess.run(
        [str(X_ANYLABELING), str(ROOT / "tests" / "anylabeling_client.py"), str(workdir),
         gateway, str(image), str(model), json.dumps(marks), *mode],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_x_anylabeling_clicks_come_back_as_sam2_sessions_polygons(gateway, triton, tmp_path):
    image = tmp_path / "coffee.png"
    image.write_bytes(COFFEE)
    marks = [{"type": "point", "data": [150, 100], "label": 1},
             {"type": "point", "data": [40, 30], "label": 0}]  # fmt: skip
    answer = _anylabeling(gateway, tmp_path, image, 0, marks)
    assert answer["models"] == ["sam2", "sam2_everything", "sam2_video"]
    assert answer["messages"] == []
    shapes = answer["shapes"]
    assert shapes and {s["shape_type"] for s in shapes} == {"polygon"}
    want = best(triton, point_coords=[[150, 100], [40, 30]], point_labels=[1, 0])
    rings = [[v for point in s["points"] for v in point] for s in shapes]
    got = polygons_to_mask(rings, [[] for _ in rings], 200, 300).astype(bool)
    # X-AnyLabeling's polygons hold no holes: the rasterised outer rings are the mask with its
    # holes filled (within the polygons' simplification)
    filled = ndimage.binary_fill_holes(want)
    assert np.all(got[want]) and (got ^ filled).sum() <= 0.02 * filled.sum()

    # the image re-sent (as X-AnyLabeling does with every click) costs one sam2_session request,
    # the click: the gateway sends no image (the server would find it cached, but only after
    # receiving and hashing it), and no encoder runs
    before = model_runs(triton, c.SESSION), model_runs(triton, c.IMAGE_ENCODER)
    body = {"model": "sam2", "image": "data:image/png;base64," + base64.b64encode(COFFEE).decode(),
            "params": {"marks": marks[:1]}}  # fmt: skip
    reply = requests.post(f"{gateway}/v1/predict", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json()["data"]["shapes"]
    after = model_runs(triton, c.SESSION), model_runs(triton, c.IMAGE_ENCODER)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


def test_x_anylabeling_tracks_its_frames_as_sam2_video_does(gateway, triton, tmp_path):
    """Its own client: a click on a frame of a folder (init with every frame, a prompt), then
    "run" (the prompt again, the propagation streamed as server-sent events); each frame's
    polygons cover SAM2RemoteVideoPredictor's mask for the same click."""
    from sam2_triton import SAM2RemoteVideoPredictor
    from tests.video_helpers import synthetic_video

    frames = tmp_path / "frames"
    frames.mkdir()
    synthetic_video(frames, 3)
    # a click and a background click: random weights give a mask with islands and holes (a
    # lone click's covers the whole frame, whose outline says nothing)
    marks = [{"type": "point", "data": [35, 55], "label": 1},
             {"type": "point", "data": [100, 100], "label": 0}]  # fmt: skip
    answer = _anylabeling(gateway, tmp_path, frames / "0.jpg", 2, marks, "video")
    failures = [m for m in answer["messages"] if "error" in m.lower() or "failed" in m.lower()]
    assert not failures and answer["shapes"], answer  # it says "Packing completed…" itself
    with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
        state = predictor.init_state(video_path=str(frames))
        for _ in range(2):  # the click, then "run" sends the marks again (the first mask in)
            predictor.add_new_points_or_box(state, 0, 10000, points=[[35, 55], [100, 100]],
                                            labels=[1, 0])  # fmt: skip
        want = {k: np.asarray(m)[0, 0] > 0 for k, _, m in predictor.propagate_in_video(state)}
        predictor.close_state(state)
    assert sorted(answer["saved"]) == ["0.jpg", "1.jpg", "2.jpg"]
    for name, shapes in answer["saved"].items():
        rings = [[v for point in s["points"] for v in point] for s in shapes]
        mask = want[int(name.split(".")[0])]
        # the outer rings of the reference's mask (random weights leave holes, which
        # X-AnyLabeling's polygons cannot hold): the same mask, traced the same way
        outer, _ = mask_to_polygons(mask)
        assert 0.05 < mask.mean() < 0.95 and len(rings) == len(outer), name  # not all of it
        for ring, traced in zip(sorted(rings), sorted(outer), strict=True):
            assert ring == pytest.approx(traced, abs=1e-3), name
        got = polygons_to_mask(rings, [[] for _ in rings], 120, 160).astype(bool)
        assert np.all(got[mask]), name
        assert {s["group_id"] for s in shapes} == {10000}


# --- Label Studio ----------------------------------------------------------------------------


def test_label_studio_click_answers_sam2_sessions_mask_as_a_brush(gateway, triton):
    keypoint = {"original_width": 300, "original_height": 200, "image_rotation": 0,
                "value": {"x": 50.0, "y": 50.0, "width": 0.5, "keypointlabels": ["cup"]},
                "is_positive": True, "id": "k1", "from_name": "tag2", "to_name": "image",
                "type": "keypointlabels", "origin": "manual"}  # fmt: skip
    task = {"id": 1, "data": {"image": "/data/upload/1/coffee.png"}}
    params = {"login": None, "password": None, "context": {"result": [keypoint]}}
    body = {"tasks": [task], "project": "1.1733000000", "label_config": LABEL_CONFIG,
            "params": params}  # fmt: skip
    reply = requests.post(f"{gateway}/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    (prediction,) = reply.json()["results"]
    (region,) = prediction["result"]
    assert (region["type"], region["from_name"], region["to_name"]) == ("brushlabels", "tag",
                                                                        "image")  # fmt: skip
    assert region["value"]["brushlabels"] == ["cup"] and region["value"]["format"] == "rle"
    assert isinstance(prediction["model_version"], str)
    rgba = decode_brush_rle(region["value"]["rle"]).reshape(200, 300, 4)
    assert set(np.unique(rgba[..., 3])) <= {0, 255}
    want = best(triton, point_coords=[[150, 100]], point_labels=[1])
    assert np.array_equal(rgba[..., 3] == 255, want)

    # pre-annotation (no context): every object sam2_automatic finds, one prediction per task
    reply = requests.post(f"{gateway}/predict", json={**body, "params": {}}, timeout=300)
    (prediction,) = reply.json()["results"]
    with SegmentClient(triton.grpc_url, "grpc", network_timeout_s=300) as client:
        records = client.automatic(COFFEE, PARAMS)["annotations"]
    assert len(prediction["result"]) == len(records) > 0
    for region, record in zip(prediction["result"], records, strict=True):
        assert region["value"]["brushlabels"] == ["cup"]
        assert region["score"] == pytest.approx(record["predicted_iou"], abs=1e-4)
        rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
        alpha = decode_brush_rle(region["value"]["rle"]).reshape(200, 300, 4)[..., 3]
        assert np.array_equal(alpha == 255, mask_utils.decode(rle) > 0)


def test_label_studio_personal_access_tokens_are_exchanged_and_renewed(gateway):
    from sam2_triton.connect.label_studio import ImageFetcher

    fetcher = ImageFetcher(LabelStudioConfig(url=STUDIO["url"], token=PERSONAL_TOKEN), 1 << 20)
    assert fetcher.fetch("/data/upload/1/coffee.png", 1) == COFFEE  # exchanged: Bearer
    requests.post(f"{STUDIO['url']}/test/expire", timeout=10)
    assert fetcher.fetch("/data/upload/1/coffee.png", 1) == COFFEE  # 401, renewed, again
    assert fetcher.headers("http://elsewhere.example/data/upload/1/coffee.png") == {}
    assert fetcher.headers(STUDIO["url"] + "/api/projects/") == {}  # only its file paths
    wrong = ImageFetcher(LabelStudioConfig(url=STUDIO["url"], token=PERSONAL_TOKEN[:-2]), 1 << 20)
    with pytest.raises(ToolError, match="refused the personal access token"):
        wrong.fetch("/data/upload/1/coffee.png", 1)


# --- bad input -------------------------------------------------------------------------------

IMAGE = base64.b64encode(COFFEE).decode()
BAD = [
    ("/v1/predict", {}, b"{not json", "not valid JSON"),
    ("/v1/predict", {}, {"model": "yolo", "image": IMAGE}, "unknown model 'yolo'"),
    ("/v1/predict", {}, {"model": "sam2", "image": base64.b64encode(b"GIF89 no").decode(),
                         "params": {"marks": [{"type": "point", "data": [1, 1]}]}}, "image:"),
    ("/v1/predict", {}, {"model": "sam2", "image": "A" * (2 << 20)}, "over the gateway's limit"),
    ("/v1/predict", {}, {"model": "sam2", "image": IMAGE,
                         "params": {"marks": [{"type": "point", "data": [5000, 3]}]}},
     "(5000, 3) lies outside the 300 x 200 image"),
    ("/api/function_invocations", {"x-nuclio-function-name": "siammask"}, {"image": IMAGE},
     "function 'siammask': unknown"),
    ("/api/function_invocations", {"x-nuclio-function-name": "sam2-triton"},
     {"image": IMAGE, "pos_points": [[float("nan"), 3]]}, "is not finite"),
    ("/predict", {}, {"tasks": [{"id": 9, "data": {"image": "/data/upload/1/missing.png"}}],
                      "label_config": LABEL_CONFIG}, "Label Studio answered 404"),
    ("/predict", {}, {"tasks": [], "label_config": LABEL_CONFIG}, "tasks: empty"),
]  # fmt: skip


def test_bad_requests_are_refused_in_each_tools_shape_naming_the_problem(gateway):
    for path, headers, body, problem in BAD:
        data = body if isinstance(body, bytes) else json.dumps(body)  # NaN as Python writes it
        reply = requests.post(f"{gateway}{path}", data=data, timeout=60,
                              headers={"Content-Type": "application/json", **headers})  # fmt: skip
        assert 400 <= reply.status_code < 600, (path, body)
        # what the tools show: str(requests' HTTPError), the status line with its reason
        shown = str(requests.HTTPError(f"{reply.status_code} Error: {reply.reason}"))
        assert problem in shown, (path, shown)
        assert problem in json.dumps(reply.json()), reply.text
    form = requests.post(f"{gateway}/v1/predict", data="x=1", timeout=10)
    assert form.status_code == 415
    # and it keeps serving
    assert requests.get(f"{gateway}/health", timeout=10).json()["status"] == "UP"
