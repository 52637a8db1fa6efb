"""CVAT's serverless functions through ``sam2-triton connect`` and a real server, in the
shapes its sources build and read: ``cvat/apps/lambda_manager/views.py`` (the function list,
``/api/function_invocations`` with ``x-nuclio-function-name``, the interactor body
``pos_points``/``neg_points``/``obj_bbox`` [[x1, y1], [x2, y2]], the tracker's ``shapes`` and
``states``), ``cvat-ui/src/components/annotation-page/standard-workspace/controls-side-bar/
tools-control.tsx`` (``mask`` cropped to inclusive ``bounds``), the segmentation detectors'
``to_cvat_mask`` (the crop's flat values then [xtl, ytl, xbr, ybr]) and
``serverless/pytorch/dschoerk/transt/nuclio/main.py`` (a tracker's first call: no state, the
box as given)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import requests
from pycocotools import mask as mask_utils

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.video import VideoClient
from tests.conftest import model_runs
from tests.connect_helpers import (
    COFFEE,
    best,
    invoke,
    uncrop,
)
from tests.helpers import PARAMS

pytestmark = pytest.mark.e2e


def test_cvat_lists_its_functions_and_the_interactor_answers_sam2_sessions_mask(gateway, triton):
    listed = requests.get(f"{gateway}/api/functions", timeout=10).json()
    interactor = listed["sam2-triton"]
    assert interactor["metadata"]["annotations"]["type"] == "interactor"
    assert int(interactor["metadata"]["annotations"]["version"]) >= 2
    assert "description" in interactor["spec"] and "status" in interactor
    detector = requests.get(f"{gateway}/api/functions/sam2-triton-everything", timeout=10).json()
    assert json.loads(detector["metadata"]["annotations"]["spec"]) == [
        {"name": "object", "type": "mask"}
    ]
    image = base64.b64encode(COFFEE).decode()
    clicks = {"image": image, "pos_points": [[150, 100]], "neg_points": [], "obj_bbox": []}
    answer = invoke(gateway, "sam2-triton", clicks).json()
    want = best(triton, point_coords=[[150, 100]], point_labels=[1])
    assert np.array_equal(uncrop(np.array(answer["mask"], bool), answer["bounds"]), want)

    boxed = {**clicks, "obj_bbox": [[60, 40], [220, 170]], "neg_points": [[70, 50]]}
    answer = invoke(gateway, "sam2-triton", boxed).json()
    want = best(triton, point_coords=[[150, 100], [70, 50]], point_labels=[1, 0],
                 box=[60, 40, 220, 170])  # fmt: skip
    assert np.array_equal(uncrop(np.array(answer["mask"], bool), answer["bounds"]), want)


def test_cvat_detector_answers_sam2_automatics_masks(gateway, triton):
    with SegmentClient(triton.grpc_url, "grpc", network_timeout_s=300) as client:
        records = client.automatic(COFFEE, PARAMS)["annotations"]
    sessions = model_runs(triton, c.SESSION)
    shapes = invoke(gateway, "sam2-triton-everything",
                     {"image": base64.b64encode(COFFEE).decode()}).json()  # fmt: skip
    assert model_runs(triton, c.SESSION) == sessions  # nothing embedded for it
    assert len(shapes) == len(records) > 0
    for shape, record in zip(shapes, records, strict=True):
        assert (shape["label"], shape["type"]) == ("object", "mask")
        *values, x1, y1, x2, y2 = shape["mask"]
        crop = np.array(values, bool).reshape(y2 - y1 + 1, x2 - x1 + 1)
        rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
        assert np.array_equal(uncrop(crop, [x1, y1, x2, y2]), mask_utils.decode(rle) > 0)
    image = base64.b64encode(COFFEE).decode()
    strict = invoke(gateway, "sam2-triton-everything", {"image": image, "threshold": 0.9}).json()
    assert len(strict) == sum(r["predicted_iou"] >= 0.9 for r in records)


def test_cvat_tracker_follows_a_box_frame_by_frame_as_sam2_video_does(gateway, triton, tmp_path):
    """CVAT's tracker calls (one frame each, the states it was given sent back) against
    SAM2RemoteVideoPredictor propagating the same box over the same frames at once. Random
    weights segment the whole frame for a box, so the boxes alone would say little: the live
    session the calls grew is then prompted with points (a mask with holes and islands) and
    tracked again, which gives the reference's masks only if it holds the same frames in the
    same order."""
    from sam2_triton import SAM2RemoteVideoPredictor
    from tests.video_helpers import synthetic_video

    decoded = synthetic_video(tmp_path, 3)
    frames = [(tmp_path / f"{k}.jpg").read_bytes() for k in range(3)]
    box = [18.0, 38.0, 52.0, 72.0]  # the red square on frame 0
    with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
        state = predictor.init_state(video_path=str(tmp_path))
        predictor.add_new_points_or_box(state, 0, 1, box=box)
        want = {}
        for index, _, logits in predictor.propagate_in_video(state):
            ys, xs = np.nonzero(np.asarray(logits)[0, 0] > 0)
            want[index] = [xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0]
        predictor.close_state(state)
    assert decoded[0].shape[:2] == (120, 160)

    def call(frame: bytes, shapes: list, states: list) -> dict:
        body = {"image": base64.b64encode(frame).decode(), "shapes": shapes, "states": states}
        reply = invoke(gateway, "sam2-triton-tracker", body)
        assert reply.status_code == 200, reply.text
        return reply.json()

    answer = call(frames[0], [box], [])
    assert answer["shapes"] == [box]  # a new track: its box as given
    states = answer["states"]
    assert json.loads(json.dumps(states)) == states  # CVAT keeps them as JSON
    for k in range(1, 3):
        answer = call(frames[k], answer["shapes"], states)
        assert answer["states"] == states
        assert answer["shapes"][0] == pytest.approx(want[k], abs=0.01), k

    clicks = {"points": [[35.0, 55.0], [100.0, 100.0]], "labels": [1, 0]}
    with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
        state = predictor.init_state(video_path=str(tmp_path))
        predictor.add_new_points_or_box(state, 0, 1, box=box)  # its mask feeds the clicks
        predictor.add_new_points_or_box(state, 0, 1, **clicks)
        masks = {k: np.asarray(m) > 0 for k, _, m in predictor.propagate_in_video(state)}
        predictor.close_state(state)
    with VideoClient(triton.grpc_url, "grpc") as client:
        session = states[0]["session"]
        client.add_points(session, 0, states[0]["object"], **clicks)
        live = list(client.propagate(session, 0))
    assert [a.frame_indices[0] for a in live] == [0, 1, 2] and live[0].num_frames == 3
    for answer in live:
        got = answer.video_res_logits(0) > 0
        assert 0.05 < got.mean() < 0.95  # not the whole frame
        assert np.array_equal(got, masks[answer.frame_indices[0]]), answer.frame_indices

    gone = [{"session": "no-such-session", "object": 1}]
    reply = invoke(gateway, "sam2-triton-tracker", {"image": base64.b64encode(frames[0]).decode(),
                                                     "shapes": [box], "states": gone})  # fmt: skip
    assert reply.status_code == 404 and "session no-such-session is gone" in reply.reason
