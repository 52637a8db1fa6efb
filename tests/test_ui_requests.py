"""The gateway's own checks and estimates, without a server: what the page may send becomes the
arrays SegmentClient sends, anything else a message naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from sam2_triton.ui.backend import GatewayError, OpenImage, estimate_everything_s
from sam2_triton.ui.requests import BadRequest, parse_everything, parse_prompts


def test_prompts_become_float32_points_int32_labels_and_a_box():
    prompts = parse_prompts({"points": [[1.5, 2], [3, 4]], "labels": [1, 0], "box": [0, 0, 9, 9]})
    assert prompts.points.dtype == np.float32 and prompts.points.shape == (2, 2)
    assert prompts.labels.tolist() == [1, 0] and prompts.labels.dtype == np.int32
    assert prompts.box.tolist() == [0, 0, 9, 9] and not prompts.multimask


def test_a_lone_click_asks_for_three_candidates_and_anything_more_for_one():
    assert parse_prompts({"points": [[1, 2]], "labels": [1]}).multimask
    assert not parse_prompts({"points": [[1, 2]], "labels": [1], "box": [0, 0, 4, 4]}).multimask
    assert not parse_prompts({"box": [0, 0, 4, 4]}).multimask


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "body: must be a JSON object"),
        ({"points": [[1, 2]] * 65, "labels": [1] * 65}, "65 points; at most 64"),
        ({"points": [[1, True]], "labels": [1]}, "points[0]: True is not a finite number"),
        ({"points": [[1, 2]], "labels": [True]}, "labels[0]: True is neither"),
        ({"points": [[1, 2, 3]], "labels": [1]}, "points[0]: must be a list of 2 numbers"),
        ({"points": "1,2", "labels": [1]}, "points and labels: must be lists"),
        ({"box": [0, 0, float("inf"), 1]}, "box: inf is not a finite number"),
        ({}, "an object needs a point or a box"),
    ],
)
def test_malformed_prompts_are_refused_naming_the_field(body, message):
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_prompts(body)


def test_everything_parameters_are_typed_as_the_contract_types_them():
    params = parse_everything(
        {"points_per_side": 16.0, "pred_iou_thresh": 1, "multimask_output": False}
    )
    assert params == {"points_per_side": 16, "pred_iou_thresh": 1.0, "multimask_output": False}
    assert type(params["points_per_side"]) is int and type(params["pred_iou_thresh"]) is float
    for body, message in [
        ({"points_per_side": 2**40}, "not a whole number of 32 bits"),
        ({"multimask_output": 1}, "is not true or false"),
        ({"point_grids": [[0.5, 0.5]]}, "point_grids: unknown"),
        ({"box_nms_thresh": "0.7"}, "'0.7' is not a finite number"),
    ]:
        with pytest.raises(BadRequest, match=message):
            parse_everything(body)


def test_the_estimate_grows_with_the_grid_and_the_crops_and_refuses_what_cannot_run():
    image = OpenImage("0" * 64, b"", width=600, height=400, encode_s=2.0, click_s=0.04)
    small = estimate_everything_s(image, {"points_per_side": 8})
    assert small == pytest.approx(2.0 + 0.8 * 64 * 0.04)
    assert estimate_everything_s(image, {"points_per_side": 16}) > small
    crops = estimate_everything_s(image, {"points_per_side": 8, "crop_n_layers": 1})
    assert crops == pytest.approx(5 * small)  # the image and its 4 crops, each encoded
    with pytest.raises(GatewayError, match="points_per_side"):
        estimate_everything_s(image, {"points_per_side": 10**6})  # never builds that grid


def test_a_video_prompt_names_its_frame_object_and_prompts():
    from sam2_triton.ui.requests import parse_video_prompt

    prompt = parse_video_prompt({"frame": 3, "obj_id": 2, "points": [[1, 2]], "labels": [1]})
    assert (prompt.frame, prompt.obj_id, prompt.prompts.points.tolist()) == (3, 2, [[1.0, 2.0]])
    for body, field in [
        ({"frame": -1, "obj_id": 1, "points": [[1, 2]], "labels": [1]}, "frame"),
        ({"frame": 1.5, "obj_id": 1, "points": [[1, 2]], "labels": [1]}, "frame"),
        ({"frame": 0, "obj_id": True, "points": [[1, 2]], "labels": [1]}, "obj_id"),
        ({"frame": 0, "obj_id": 1, "points": [[1, 2]], "labels": [1], "clear": 1}, "unknown"),
        ({"frame": 0, "obj_id": 1}, "a point or a box"),
    ]:
        with pytest.raises(BadRequest, match=field):
            parse_video_prompt(body)


def test_a_zip_or_a_folder_of_frames_is_read_in_frame_order():
    import io
    import zipfile

    from sam2_triton.errors import InvalidInputError
    from sam2_triton.ui.video import _jpeg_frames

    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for k in (10, 9, 0):  # by number, not by name: 9 before 10
            archive.writestr(f"clip/{k}.jpg", f"frame {k}")
        archive.writestr("__MACOSX/clip/._0.jpg", "resource fork")
        archive.writestr("clip/readme.txt", "not a frame")
    assert _jpeg_frames(data.getvalue(), 10) == [b"frame 0", b"frame 9", b"frame 10"]
    folder = [("00010.JPG", b"10"), ("notes.txt", b""), ("00002.jpeg", b"2")]  # as the page sends
    assert _jpeg_frames(folder, 10) == [b"2", b"10"]
    with pytest.raises(InvalidInputError, match="the folder holds no .jpg frames"):
        _jpeg_frames([("notes.txt", b"")], 10)
    with pytest.raises(InvalidInputError, match="2 frames; at most 1"):
        _jpeg_frames(folder, 1)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a cup", "body: expected a JSON object"),
        ({}, "text: give a phrase"),
        ({"text": "   "}, "text: give a phrase"),
        ({"text": "x" * 201}, "text: 201 characters"),
        ({"text": "a cup", "threshold": "high"}, "threshold: must be a number"),
        ({"text": "a cup", "threshold": True}, "threshold: must be a number"),
        ({"text": "a cup", "colour": "red"}, "colour: unknown field"),
    ],
)
def test_a_find_all_question_is_a_phrase_and_a_threshold(body, message):
    from sam2_triton.ui.requests import parse_find_all

    assert parse_find_all({"text": " a cup ", "threshold": 0.3}).text == "a cup"
    assert parse_find_all({"text": "a cup"}).threshold is None
    with pytest.raises(BadRequest, match=message):
        parse_find_all(body)
