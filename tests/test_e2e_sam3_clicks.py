"""SAM 3's interactive model answering clicks through a real tritonserver (issue 34): the SAM 3
export served alone (``serve --model sam3``'s repository: build-repo picks the family), where
``sam2_session`` and ``sam2_segment`` keep their contract at SAM 3's sizes. Clients written for
SAM 2.1 drive it unchanged: ``SAM2RemotePredictor`` over HTTP and ``SegmentClient`` over gRPC,
against ``Sam3Image.predict_inst`` on the same weights (masks >= 0.999 of pixels, IoU within
1e-4, low-res logits within 5e-4); SAM 2.1's 256 x 256 mask_input refused by name, the server
serving on.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.image_predictor import SAM2RemotePredictor
from sam2_triton.families import SAM3
from tests.sam3_helpers import assert_like_predict_inst, clicks_image, clicks_png

pytestmark = pytest.mark.e2e

CLICK = {"point_coords": np.array([[180.0, 140.0], [320.0, 60.0]], np.float32),
         "point_labels": np.array([1, 0], np.int32)}  # fmt: skip
BOX = np.array([120.0, 80.0, 330.0, 230.0], np.float32)


@pytest.fixture(scope="module")
def sam3_triton(sam3_export, tmp_path_factory):
    """The SAM 3 export served alone, with the options build-repo gives it (concepts off here:
    the shared server serves them); one instance of each model."""
    from sam2_triton.cli.build_repo import with_video_if_exported
    from sam2_triton.repository.options import ServingOptions
    from tests.conftest import running_server

    options, _ = with_video_if_exported(ServingOptions(), sam3_export, "embedded")
    assert options.family == SAM3.name and not options.video
    options = replace(options, concepts=False, session_instances=1, automatic_instances=1,
                      decoder_instances=1)  # fmt: skip
    yield from running_server(sam3_export, tmp_path_factory, options)


def test_sam2_clients_get_sam3s_masks_over_http_and_grpc(sam3_triton, sam3_clicks_reference):
    """The remote predictor as SAM2ImagePredictor is used (set_image, then a click, a box with
    one mask, a refinement), and sam2_segment's one call over gRPC."""
    theirs = sam3_clicks_reference
    predictor = SAM2RemotePredictor(sam3_triton.http_url, protocol="http", output_format="rle")
    try:
        predictor.set_image(clicks_image())
        click = predictor.predict(**CLICK, multimask_output=True)
        reference = theirs(**CLICK, multimask_output=True)
        assert_like_predict_inst(_outputs(*click), *reference)
        single = predictor.predict(box=BOX, multimask_output=False)
        assert_like_predict_inst(_outputs(*single), *theirs(box=BOX, multimask_output=False))
        best = reference[2][np.argmax(reference[1])][None]  # [1, 288, 288]
        refine = {"point_coords": CLICK["point_coords"][:1], "point_labels": [1],
                  "mask_input": best}  # fmt: skip
        again = predictor.predict(**refine, multimask_output=False)
        assert_like_predict_inst(_outputs(*again), *theirs(**refine, multimask_output=False))
        # Triton's own shape check, from the config rendered at SAM 3's sizes
        with pytest.raises(InferenceServerException, match=r"mask_input.*Expected \[1,288,288\]"):
            predictor.predict(**CLICK, mask_input=np.zeros((1, 256, 256), np.float32))
    finally:
        predictor.close()

    client = SegmentClient(sam3_triton.grpc_url, "grpc")
    try:
        response = client.segment(bytes(clicks_png()), box=BOX)
    finally:
        client.close()
    answer = {"masks": response.masks, "iou_scores": response.iou_scores,
              "low_res_logits": response.low_res_logits}  # fmt: skip
    assert_like_predict_inst(answer, *theirs(box=BOX, multimask_output=True))


def _outputs(masks, iou, low_res):
    return {"masks": masks.astype(np.uint8), "iou_scores": iou, "low_res_logits": low_res}
