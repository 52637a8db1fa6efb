"""One ``sam2_segment`` request, image bytes to masks, free of Triton.

The request is parsed once (``image.request``), then flows down: decode and resize the image
(``image.transforms``), encode, decode with the prompt sets (``image.prompts``), choose and
upsample the masks (``image.masks``) and encode them (``image.encodings``).

Its two halves are what the ensemble's ``sam2_preprocess`` and ``sam2_postprocess`` models run
(GPU target); ``segment`` chains them around the encoder and decoder for the embedded target's
single ``sam2_segment`` Python model and for the benchmark's in-process baseline. On a CPU the
ensemble's hops (12.6 MB image and 16.8 MB of features through shared memory, four stub round
trips) cost more than its batching bought (figures: docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.families import SAM2, Family
from sam2_triton.image.encodings import response_outputs
from sam2_triton.image.masks import postprocess_masks
from sam2_triton.image.prompts import PromptSets
from sam2_triton.image.request import Limits, OutputOptions, RequestOptions, parse_request
from sam2_triton.image.transforms import decode_image, preprocess_image

Arrays = Mapping[str, np.ndarray]
Encoder = Callable[[np.ndarray], Arrays]  # image_1024 [1,3,1024,1024] -> ENCODER_OUTPUTS
Decoder = Callable[[Arrays], Arrays]  # DECODER_INPUTS -> low_res_masks, iou_predictions (N rows)
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # cutout_rgb when no cut-out was asked for


@dataclass(frozen=True)
class PreparedRequest:
    """A checked request in the model's frame: what the encoder and decoder need."""

    rgb: np.ndarray  # the decoded image [H, W, 3], kept for cut-outs
    image_1024: np.ndarray  # [1, 3, 1024, 1024] normalised (the family's size)
    sets: PromptSets
    options: RequestOptions

    @property
    def orig_hw(self) -> tuple[int, int]:
        return (self.rgb.shape[0], self.rgb.shape[1])

    @property
    def cutout_rgb(self) -> np.ndarray:
        return self.rgb if self.options.output_format.startswith("cutout") else _NO_IMAGE

    def finish(self, decoded: Arrays) -> dict[str, np.ndarray]:
        """The decoder's rows -> SEGMENT_OUTPUTS as this request asked."""
        return finish_request(decoded, self.orig_hw, self.options, self.cutout_rgb)


def prepare_request(
    inputs: Mapping[str, np.ndarray | None],
    limits: Limits | None = None,
    family: Family = SAM2,
) -> PreparedRequest:
    """SEGMENT_INPUTS (None where omitted) -> a checked request for ``family``'s model; bad
    input raises ``InvalidInputError`` naming the field, before any model runs."""
    limits = limits or Limits()
    options = parse_request(inputs, limits, family)
    image = inputs.get("image")
    if image is None:
        raise InvalidInputError("image", "required input is missing")
    rgb = decode_image(np.asarray(image).tobytes(), limits.max_image_pixels)
    sets = options.prompt_sets((rgb.shape[0], rgb.shape[1]))  # before the costly resize
    return PreparedRequest(rgb, preprocess_image(rgb, family), sets, options)


def finish_request(
    decoded: Arrays,
    orig_hw: tuple[int, int],
    options: OutputOptions,
    cutout_rgb: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """All four mask tokens of each of the B rows -> SEGMENT_OUTPUTS at the image's size (or
    ``options.mask_size``) and format: the sets' K masks each, one after another ([B * K, ...]),
    holes filled as ``options.family``'s predictor fills them.
    """
    low_res = np.asarray(decoded["low_res_masks"])
    scores = np.asarray(decoded["iou_predictions"])
    outputs = [
        response_outputs(
            postprocess_masks(
                low_res[b],
                scores[b],
                orig_hw,
                multimask_output=options.multimask,
                mask_hw=options.mask_size,
                family=options.family,
            ),
            options.output_format,
            cutout_rgb,
            options.polygon_tolerance,
        )
        for b in range(low_res.shape[0])
    ]
    if len(outputs) == 1:
        return outputs[0]
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}


def segment(
    inputs: Mapping[str, np.ndarray | None],
    encode: Encoder,
    decode: Decoder,
    limits: Limits | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
    family: Family = SAM2,
) -> dict[str, np.ndarray]:
    """SEGMENT_INPUTS -> SEGMENT_OUTPUTS: prepare, encode, decode, finish (``family``: the
    model ``encode`` and ``decode`` run).

    ``is_cancelled`` is asked before the encoder and before the decoder, so a request its
    client gave up on stops there (an ensemble cannot: it does not pass cancellation on).
    """
    request = prepare_request(inputs, limits, family)
    _stop_if(is_cancelled)
    features = encode(request.image_1024)
    _stop_if(is_cancelled)
    return request.finish(decode(request.sets.decoder_inputs(features)))


def _stop_if(is_cancelled: Callable[[], bool]) -> None:
    if is_cancelled():
        raise RequestCancelled("cancelled by the client")
