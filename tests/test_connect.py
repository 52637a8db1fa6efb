"""The gateway's parts without a server: its config file, Label Studio's brush RLE, and how each
tool's request is read (tests/test_e2e_connect.py drives the whole through a real server)."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest

from sam2_triton.connect import anylabeling, cvat, label_studio
from sam2_triton.connect.brush import coco_to_rle, mask_to_rle
from sam2_triton.connect.config import ConfigError, ConnectConfig
from sam2_triton.connect.runs import coco_counts, decode
from sam2_triton.connect.service import OpenImage, ToolError
from tests.connect_helpers import LABEL_CONFIG, decode_brush_rle

IMAGE = OpenImage("k", b"", "id", width=300, height=200)


def test_the_config_file_overrides_defaults_and_names_its_mistakes(tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "from-env")
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://studio:8080")
    studio = ConnectConfig.load().label_studio
    assert (studio.token, studio.url) == ("from-env", "http://studio:8080")
    good = tmp_path / "connect.toml"
    good.write_text('[cvat]\nlabels = ["cup", "plate"]\n[label_studio]\ntoken = "abc"\n')
    config = ConnectConfig.load(good)
    assert config.cvat.labels == ("cup", "plate") and config.label_studio.token == "abc"
    assert config.server.url == "127.0.0.1:8001"  # a default kept
    for text, problem in [
        ("[cvat]\nlabel = 'cup'\n", "unknown key 'label'"),
        ("[cvta]\n", "unknown section(s) ['cvta']"),
        ("[gateway]\nimages = 'many'\n", "images must be a int"),
        ("[gateway]\nimages = 0\n", "[gateway] images must be at least 1"),
        ("[cvat]\nlabels = []\n", "[cvat] labels must name at least one label"),
        ("[cvat\n", "connect.toml"),
    ]:
        good.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(problem)):
            ConnectConfig.load(good)


@pytest.mark.parametrize("shape", [(200, 300), (1, 1), (300, 300)])
def test_brush_rle_decodes_to_the_mask_with_label_studios_reading(shape):
    rng = np.random.default_rng(0)
    mask = np.zeros(shape, bool)
    mask[shape[0] // 4 : shape[0] // 2 + 1, : shape[1] // 3 + 1] = True  # a long run
    mask[rng.random(shape) < 0.01] = True  # single pixels
    if shape == (300, 300):
        mask[:] = True  # one run of 360,000 values: pieces of 65,536
    rle = mask_to_rle(mask)
    assert mask_to_rle(np.asfortranarray(mask)) == rle  # column-major, as pycocotools decodes
    assert int.from_bytes(bytes(rle[:4]), "big") == mask.size * 4
    rgba = decode_brush_rle(rle).reshape(*shape, 4)
    assert np.array_equal(rgba[..., 3] == 255, mask) and np.all(rgba == rgba[..., :1])


def test_brush_rle_from_coco_runs_is_the_brush_rle_of_the_decoded_mask():
    """Label Studio's clicks are answered from sam2_session's COCO RLE without decoding it:
    the same bytes as from the pixels, for blobs (runs), noise (pixels) and the edge cases."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    masks = [np.zeros((4, 6), bool), np.ones((4, 6), bool), np.ones((1, 1), bool)]
    for shape in [(1, 9), (9, 1), (2, 2), (7, 5), (40, 64), (200, 300)]:
        masks.append(rng.random(shape) < 0.5)  # noise: one run every two pixels
        for _ in range(6):
            blobs = np.zeros(shape, bool)
            for _ in range(rng.integers(1, 4)):
                y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
                blobs[y : y + rng.integers(1, 90), x : x + rng.integers(1, 90)] ^= True
            masks.append(blobs)
    for mask in masks:
        rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        flat = mask.T.reshape(-1).astype(int)  # column-major; runs from a run of zeros
        runs = np.diff([0, *(np.flatnonzero(np.diff(flat)) + 1), flat.size])
        runs = np.concatenate([[0], runs]) if flat[0] else runs  # what rleFrString gives
        assert coco_counts(rle["counts"].decode()).tolist() == runs.tolist()
        record = {"size": rle["size"], "counts": rle["counts"].decode()}
        assert np.array_equal(decode(record), mask_utils.decode(rle)), mask.shape
        assert coco_to_rle(record) == mask_to_rle(mask), mask.shape
    with pytest.raises(ValueError, match="do not cover"):
        coco_to_rle({"size": [5, 5], "counts": rle["counts"].decode()})


def test_answers_splice_numbers_written_by_numpy_into_valid_json():
    from sam2_triton.connect.answers import bytes_json, encode_answer

    data = bytes(range(256)) + bytes([0, 255, 7])
    assert json.loads(bytes_json(data).text) == list(data)
    assert bytes_json(b"").text == b"[]"
    label = 'a "quoted" label with a , and ] in it'
    answer = {"results": [{"rle": bytes_json(b"\x01\x02"), "label": label},
                          {"rle": bytes_json(bytes([200])), "n": 1.5}]}  # fmt: skip
    want = {"results": [{"rle": [1, 2], "label": label}, {"rle": [200], "n": 1.5}]}
    assert json.loads(encode_answer(answer).body) == want
    assert json.loads(encode_answer({"plain": [1]}).body) == {"plain": [1]}
    with pytest.raises(TypeError, match="RawJson|not JSON"):
        encode_answer({"x": object()})


def test_brush_rle_is_byte_for_byte_the_sdks():
    """Bytes label_studio_sdk 2.1.2's ``mask2rle(mask * 255)`` wrote for these masks (computed
    with the SDK's own brush.py: it cannot be installed here, it needs numpy 2)."""
    mask = np.zeros((5, 40), np.uint8).reshape(-1)
    position = 0
    for run, value in [(1, 1), (1, 0), (2, 1), (5, 0), (16, 1), (17, 0), (64, 1), (65, 0), (1, 1)]:
        mask[position : position + run] = value  # runs of every field size, and single pixels
        position += run
    want = "00000320391bfc7ff1804fff84c031fffe4300dffffc040c023ffcde00"
    assert bytes(mask_to_rle(mask.reshape(5, 40))).hex() == want
    big = np.zeros((300, 300), bool)
    big[100:250] = True  # 180,000 values in one run: pieces of 65,536
    big[5, 7] = True
    rle = bytes(mask_to_rle(big))
    assert (len(rle), hashlib.sha256(rle).hexdigest()) == (
        33,
        "990caf80336ff147ec250e6bf6698e11370ee5783429f79080109e04007dab11",
    )
    assert len(mask_to_rle(np.zeros((480, 640), np.uint8))) == 71  # the SDK's too
    with pytest.raises(ValueError, match="non-empty"):
        mask_to_rle(np.zeros((0, 3)))


def test_label_studio_prompts_are_read_in_percent_of_the_image():
    result = [
        {"type": "keypointlabels", "is_positive": False,
         "value": {"x": 10.0, "y": 50.0, "keypointlabels": ["cup"]}},
        {"type": "rectanglelabels",
         "value": {"x": 10.0, "y": 10.0, "width": 50.0, "height": 25.0,
                   "rectanglelabels": ["plate"]}},
    ]  # fmt: skip
    prompt, label = label_studio._prompt(result, IMAGE)
    assert prompt.points == ((30.0, 100.0),) and prompt.labels == (0,)
    assert prompt.box == (30.0, 20.0, 180.0, 70.0) and label == "plate"
    wanted = label_studio.controls(LABEL_CONFIG)
    assert (wanted.from_name, wanted.to_name, wanted.data_key) == ("tag", "image", "image")
    with pytest.raises(ToolError, match="no <BrushLabels>"):
        label_studio.controls('<View><Image name="i" value="$x"/></View>')
    with pytest.raises(ToolError, match=r"value.x: expected a percentage"):
        label_studio._prompt([{"type": "keypointlabels", "value": {"x": "left", "y": 1}}], IMAGE)
    with pytest.raises(ToolError, match="outside the 300 x 200 image"):
        label_studio._prompt([{"type": "keypointlabels", "value": {"x": 101, "y": 1}}], IMAGE)


def test_masks_written_as_json_digits_read_back_as_their_pixels():
    """CVAT's mask answers: any layout (pycocotools' column-major masks and crops of them,
    row-major, bool or uint8, one row, a flat list), between a prefix of either parity."""
    from sam2_triton.connect.answers import digits_json

    rng = np.random.default_rng(0)
    column_major = np.asfortranarray(rng.integers(0, 2, (37, 23), np.uint8))
    masks = [column_major, column_major[3:30, 5:9], column_major.view(bool)[1:2],
             np.ascontiguousarray(column_major).view(bool), column_major[:, 4:5],
             column_major[5], np.array([1], np.uint8)]  # fmt: skip
    for mask in masks:
        for prefix in (b"", b'{"mask":', b'{"m":'):
            text = bytes(digits_json(mask, prefix, b',"bounds":[1]}'))
            assert text.startswith(prefix) and text.endswith(b',"bounds":[1]}')
            body = text[len(prefix) : -len(b',"bounds":[1]}')]
            assert json.loads(body) == mask.astype(int).tolist(), (mask.shape, prefix)


def test_cvat_masks_are_cropped_to_inclusive_bounds():
    mask = np.zeros((200, 300), bool)
    mask[10:20, 30:35] = True
    cropped, bounds = cvat.crop(mask)
    assert bounds == [30, 10, 34, 19] and cropped.shape == (10, 5) and cropped.all()
    assert cvat.crop(np.zeros((4, 4), bool))[1] == [0, 0, 0, 0]
    prompt = cvat._prompt(
        {"pos_points": [[1, 2]], "neg_points": [[3, 4]], "obj_bbox": [[50, 60], [10, 20]]}, IMAGE
    )
    assert prompt.points == ((1.0, 2.0), (3.0, 4.0)) and prompt.labels == (1, 0)
    assert prompt.box == (10.0, 20.0, 50.0, 60.0)
    with pytest.raises(ToolError, match=r"obj_bbox: \[10.0, 20.0, 10.0, 60.0\] has no area"):
        cvat._prompt({"obj_bbox": [[10, 20], [10, 60]]}, IMAGE)


def test_polygon_answers_give_their_outer_rings_without_reading_the_holes():
    """X-AnyLabeling's shapes are the outer rings of sam2_session's polygons record; its holes
    (thousands for a ragged mask) are skipped, not parsed."""
    from sam2_triton.connect.service import outer_rings

    record = {"size": [4, 6], "segmentation": [[1, 2, 3.5, 4, 5, 6], [7, 8, 9, 10, 11, 12]],
              "holes": [[[1, 1, 2, 2, 3, 1]], []], "bbox": [1, 2, 3, 4], "area": 7}  # fmt: skip
    for text in (json.dumps(record), json.dumps(record, indent=2)):
        assert outer_rings(text.encode()) == record["segmentation"]
    broken = json.dumps(record).replace('"holes": [[[1', '"holes": [[[@').encode()
    assert outer_rings(broken) == record["segmentation"]  # never read
    with pytest.raises(ToolError, match="no segmentation"):
        outer_rings(b'{"size": [1, 1]}')


def test_x_anylabeling_marks_are_read_and_wrong_ones_named():
    marks = [{"type": "point", "data": [5, 6], "label": 0},
             {"type": "rectangle", "data": [1, 2, 30, 40], "label": 1}]  # fmt: skip
    prompt = anylabeling._prompt(marks, IMAGE)
    assert prompt.points == ((5.0, 6.0),) and prompt.labels == (0,)
    assert prompt.box == (1.0, 2.0, 30.0, 40.0)
    for bad, problem in [
        ([], "params.marks: expected a list"),
        ([{"type": "polygon", "data": []}], r"marks\[0\].type: expected point or rectangle"),
        ([{"type": "point", "data": [1]}], r"marks\[0\].data: expected \[x, y\]"),
        ([{"type": "point", "data": [1, 2], "label": 3}], "label: expected 1 or 0"),
        (marks + [marks[1]], "one rectangle per object"),
    ]:
        with pytest.raises(ToolError, match=problem):
            anylabeling._prompt(bad, IMAGE)
    assert anylabeling.decode_data_uri("data:image/png;base64,aGk=", 10) == b"hi"
    with pytest.raises(ToolError, match="not valid base64"):
        anylabeling.decode_data_uri("data:image/png;base64,@@", 10)


def test_label_studio_video_regions_are_read_and_wrong_ones_named():
    from sam2_triton.connect import label_studio_video as lsv

    config = ('<View><Video name="v" value="$video"/>'
              '<VideoRectangle name="box" toName="v" smart="true"/></View>')  # fmt: skip
    assert lsv.video_controls(config) == lsv.VideoControls("box", "v", "video")
    assert lsv.video_controls(LABEL_CONFIG) is None
    keyframe = {"frame": 2, "x": 10, "y": 50, "width": 20, "height": 25, "enabled": True}
    region = {"type": "videorectangle", "value": {"sequence": [keyframe], "framesCount": 30,
                                                  "duration": 3.0}}  # fmt: skip
    assert lsv.is_video([region]) and not lsv.is_video([{"type": "keypointlabels"}])
    assert lsv._region(region, 0) is region and lsv._fps(region) == 10.0
    assert lsv._pixels(keyframe, 160, 120) == (16.0, 60.0, 48.0, 90.0)
    for value, problem in [
        ({"sequence": []}, "value.sequence: expected keyframes"),
        ({"sequence": [{**keyframe, "x": "left"}]}, r"sequence\[0\]: expected frame, x, y"),
        ({"sequence": [{**keyframe, "frame": 0}]}, "frames count from 1"),
        ({"sequence": [{**keyframe, "enabled": False}]}, "no enabled keyframe"),
    ]:
        with pytest.raises(ToolError, match=problem):
            lsv._region({"type": "videorectangle", "value": value}, 0)
    with pytest.raises(ToolError, match="its box has no area"):
        lsv._pixels({**keyframe, "x": 120}, 160, 120)
