"""SAM 3's interactive model answering clicks through the service's own request logic (issue 34):
``SessionService`` and ``segment`` with ``families.SAM3`` over the exported vision and interactive
graphs (ONNX Runtime, in process) against ``Sam3Image.predict_inst`` (``Sam3Processor.set_image``
then ``SAM3InteractiveImagePredictor.predict``) on the same weights: masks at the image's size
(holes of up to 256 low-res pixels filled, as its predictor fills them), IoU and low-res logits.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sam2_triton.families import SAM3
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.masks import fill_holes
from sam2_triton.image.segment import segment
from sam2_triton.image.session import SessionService
from sam2_triton.runtime.runners import sam2_functions
from tests.helpers import PARAMS, match_annotations
from tests.sam3_helpers import (
    assert_like_predict_inst,
    clicks_image,
    clicks_png,
    sam3_automatic_generator,
)


@pytest.fixture(scope="module")
def clicks(sam3_clicks_reference, sam3_export, tmp_path_factory):
    """(the reference's ``predict``, the served logic on the graphs, the image's PNG)."""
    encode, decode = sam2_functions(
        sam3_export / SAM3.encoder_file, sam3_export / SAM3.decoder_file
    )
    cache = EmbeddingCache(tmp_path_factory.mktemp("sam3-clicks"), 1 << 30)
    service = SessionService(cache, _counted(encode), decode, family=SAM3)
    return sam3_clicks_reference, service, clicks_png()


def _counted(encode):
    def run(image):
        run.calls += 1
        return encode(image)

    run.calls = 0
    return run


def test_session_clicks_boxes_and_refinements_are_sam3s(clicks):
    """A click and a background click (three candidates), a box (one mask: the stability rule),
    two boxes at once, and a refinement with the previous low-res logits; the image encoded
    once, then answered by its id."""
    theirs_for, service, png = clicks
    points, labels = np.array([[180.0, 140.0], [320.0, 60.0]], np.float32), np.array([1, 0])
    ours = service.handle({"image": png, "point_coords": points, "point_labels": labels})
    theirs = theirs_for(point_coords=points, point_labels=labels, multimask_output=True)
    assert_like_predict_inst(ours, *theirs)
    filled = fill_holes(ours["low_res_logits"], SAM3.hole_area, SAM3.hole_score)
    assert (filled > 0).sum() > (ours["low_res_logits"] > 0).sum(), "no hole to fill: no check"
    image_id = ours["image_id"]

    box = np.array([120.0, 80.0, 330.0, 230.0], np.float32)
    single = {"image_id": image_id, "box": box, "multimask_output": np.array([False])}
    assert_like_predict_inst(service.handle(single), *theirs_for(box=box, multimask_output=False))

    boxes = np.array([[120.0, 80.0, 330.0, 230.0], [10.0, 10.0, 90.0, 120.0]], np.float32)
    ours = service.handle({"image_id": image_id, "box_batch": boxes})
    assert_like_predict_inst(ours, *theirs_for(box=boxes, multimask_output=True))

    previous = theirs[2][np.argmax(theirs[1])][None]  # the best candidate's logits [1, 288, 288]
    refine = {"point_coords": points[:1], "point_labels": labels[:1], "mask_input": previous}
    ours = service.handle({"image_id": image_id, **refine, "multimask_output": np.array([False])})
    assert_like_predict_inst(ours, *theirs_for(**refine, multimask_output=False))
    assert service.encode.calls == 1


def test_segment_answers_as_the_session_does(clicks):
    """sam2_segment's logic (image and prompt in one request) on SAM 3's graphs: the session's
    answer, and SAM 2.1's 256 x 256 mask_input refused by name."""
    from sam2_triton.errors import InvalidInputError

    _, service, png = clicks
    request = {"image": png, "point_coords": np.array([[50.0, 250.0]], np.float32),
               "point_labels": np.array([1], np.int32)}  # fmt: skip
    ours = segment(request, service.encode, service.decode, family=SAM3)
    theirs = service.handle(request)
    np.testing.assert_array_equal(ours["masks"], theirs["masks"])
    np.testing.assert_array_equal(ours["low_res_logits"], theirs["low_res_logits"])
    with pytest.raises(InvalidInputError, match=r"mask_input.*\[1, 288, 288\]"):
        service.handle({**request, "mask_input": np.zeros((1, 256, 256), np.float32)})


def test_segment_everything_is_sam2s_generator_over_sam3s_interactive_model(sam3_model, clicks):
    """sam2_automatic's logic with SAM3 against Meta's SAM2AutomaticMaskGenerator whose
    predictor is SAM 3's interactive one: the same masks (IoU >= 0.99), predicted IoUs and
    stability scores."""
    from sam2_triton.image.automatic import AutomaticParams, generate

    _, service, _ = clicks
    rgb = clicks_image()
    params = {**PARAMS, "points_per_side": 5}  # 25 points: 8 masks kept
    ours = generate(rgb, service.encode, service.decode, AutomaticParams(**params), family=SAM3)
    generator = sam3_automatic_generator(sam3_model, output_mode="coco_rle", **params)
    with torch.no_grad():
        theirs = generator.generate(rgb)
    assert len(theirs) > 3, len(theirs)
    assert min(match_annotations(ours, theirs)) >= 0.99
    for key in ("predicted_iou", "stability_score"):
        got, want = sorted(a[key] for a in ours), sorted(a[key] for a in theirs)
        np.testing.assert_allclose(got, want, atol=1e-3, err_msg=key)
