"""One ``sam2_segment`` request, image bytes to masks, free of Triton.

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

from sam2_triton import processing
from sam2_triton.contract import MAX_RAW_MASK_BYTES, NO_RAW_MASK_FORMATS
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.mask_formats import response_outputs
from sam2_triton.polygons import DEFAULT_TOLERANCE, parse_tolerance
from sam2_triton.prompt_batch import decoder_feeds as prompt_batch_feeds
from sam2_triton.prompt_sets import (
    DEFAULT_MAX_PROMPT_SETS,
    PromptInputs,
    PromptSets,
    parse_prompt_inputs,
)

Arrays = Mapping[str, np.ndarray]
Encoder = Callable[[np.ndarray], Arrays]  # image_1024 [1,3,1024,1024] -> ENCODER_OUTPUTS
Decoder = Callable[[Arrays], Arrays]  # DECODER_INPUTS -> low_res_masks, iou_predictions (N rows)
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # cutout_rgb when no cut-out was asked for


@dataclass(frozen=True)
class Limits:
    max_image_pixels: int = processing.DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = processing.DEFAULT_MAX_POINTS
    max_prompt_sets: int = DEFAULT_MAX_PROMPT_SETS


def decoder_feeds(features: Arrays, sets: PromptSets) -> dict[str, np.ndarray]:
    """The encoder's feature maps and a request's B prompt sets -> DECODER_INPUTS (N = B)."""
    return prompt_batch_feeds(
        features, sets.coords, sets.labels, sets.mask_input, sets.has_mask_input
    )


@dataclass(frozen=True)
class PreparedRequest:
    """A checked request in the model's frame: what the encoder and decoder need."""

    rgb: np.ndarray  # the decoded image [H, W, 3], kept for cut-outs
    image_1024: np.ndarray  # [1, 3, 1024, 1024] normalised
    sets: PromptSets
    multimask: bool
    output_format: str
    mask_size: tuple[int, int] | None = None
    polygon_tolerance: float = DEFAULT_TOLERANCE

    @property
    def orig_hw(self) -> tuple[int, int]:
        return (self.rgb.shape[0], self.rgb.shape[1])

    def decoder_inputs(self, features: Arrays) -> dict[str, np.ndarray]:
        return decoder_feeds(features, self.sets)

    @property
    def cutout_rgb(self) -> np.ndarray:
        return self.rgb if self.output_format.startswith("cutout") else _NO_IMAGE


@dataclass(frozen=True)
class RequestOptions:
    """What a segment or session request asks for besides its image, checked; the prompts are
    checked against an image size by ``prompt_sets`` (in pixels, so they wait for the image)."""

    output_format: str
    multimask: bool
    prompts: PromptInputs
    max_points: int
    mask_size: tuple[int, int] | None = None  # masks resized to (height, width)
    polygon_tolerance: float = DEFAULT_TOLERANCE

    @property
    def prompts_given(self) -> bool:
        """Any prompt input present (a session request without one only encodes its image)."""
        return self.prompts.given

    def prompt_sets(self, orig_hw: tuple[int, int]) -> PromptSets:
        """The prompt sets checked against an image of ``orig_hw``, in the model frame, and the
        response they make checked against MAX_RAW_MASK_BYTES."""
        sets = self.prompts.sets(orig_hw, self.max_points)
        processing.check_mask_size(self.mask_size, orig_hw)
        if self.output_format not in NO_RAW_MASK_FORMATS:
            height, width = self.mask_size or orig_hw
            per_pixel = 5 if self.output_format.startswith("cutout") else 1
            size = len(sets) * (3 if self.multimask else 1) * height * width * per_pixel
            if size > MAX_RAW_MASK_BYTES:
                raise InvalidInputError(
                    "output_format",
                    f"{self.output_format!r} would return {size} bytes of masks for "
                    f"{len(sets)} prompt sets on a {width}x{height} image (limit "
                    f"{MAX_RAW_MASK_BYTES}): ask for 'rle' or 'png', or a smaller mask_size",
                )
        return sets


def parse_request(inputs: Mapping[str, np.ndarray | None], limits: Limits) -> RequestOptions:
    """The options and prompts of SEGMENT_INPUTS, shared by ``prepare_request`` and the session
    service so both check them alike and in the same order (format, multimask, mask_input)."""
    output_format = processing.parse_output_format(inputs.get("output_format"))
    multimask = processing.parse_multimask(inputs.get("multimask_output"))
    prompts = parse_prompt_inputs(inputs, limits.max_prompt_sets)
    mask_size = processing.parse_mask_size(
        inputs.get("mask_size"), output_format, limits.max_image_pixels
    )
    return RequestOptions(
        polygon_tolerance=parse_tolerance(inputs.get("polygon_tolerance"), (output_format,)),
        mask_size=mask_size,
        output_format=output_format,
        multimask=multimask,
        prompts=prompts,
        max_points=limits.max_points,
    )


def prepare_request(
    inputs: Mapping[str, np.ndarray | None], limits: Limits | None = None
) -> PreparedRequest:
    """SEGMENT_INPUTS (None where omitted) -> a checked request; bad input raises
    ``InvalidInputError`` naming the field, before any model runs."""
    limits = limits or Limits()
    options = parse_request(inputs, limits)
    image = inputs.get("image")
    if image is None:
        raise InvalidInputError("image", "required input is missing")
    rgb = processing.decode_image(np.asarray(image).tobytes(), limits.max_image_pixels)
    sets = options.prompt_sets((rgb.shape[0], rgb.shape[1]))  # before the costly resize
    return PreparedRequest(
        rgb=rgb,
        image_1024=processing.preprocess_image(rgb),
        sets=sets,
        multimask=options.multimask,
        output_format=options.output_format,
        mask_size=options.mask_size,
        polygon_tolerance=options.polygon_tolerance,
    )


def finish_request(
    decoded: Arrays,
    orig_hw: tuple[int, int],
    multimask: bool,
    output_format: str,
    cutout_rgb: np.ndarray | None = None,
    mask_size: tuple[int, int] | None = None,
    polygon_tolerance: float = DEFAULT_TOLERANCE,
) -> dict[str, np.ndarray]:
    """All four mask tokens of each of the B rows -> SEGMENT_OUTPUTS at the image's size (or
    ``mask_size``) and format: the sets' K masks each, one after another ([B * K, ...])."""
    low_res = np.asarray(decoded["low_res_masks"])
    scores = np.asarray(decoded["iou_predictions"])
    outputs = [
        response_outputs(
            processing.postprocess_masks(
                low_res[b], scores[b], orig_hw, multimask_output=multimask, mask_hw=mask_size
            ),
            output_format,
            cutout_rgb,
            polygon_tolerance,
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
) -> dict[str, np.ndarray]:
    """SEGMENT_INPUTS -> SEGMENT_OUTPUTS: prepare, encode, decode, finish.

    ``is_cancelled`` is asked before the encoder and before the decoder, so a request its
    client gave up on stops there (an ensemble cannot: it does not pass cancellation on).
    """
    request = prepare_request(inputs, limits)
    _stop_if(is_cancelled)
    features = encode(request.image_1024)
    _stop_if(is_cancelled)
    decoded = decode(request.decoder_inputs(features))
    return finish_request(
        decoded,
        request.orig_hw,
        request.multimask,
        request.output_format,
        request.cutout_rgb,
        request.mask_size,
        request.polygon_tolerance,
    )


def _stop_if(is_cancelled: Callable[[], bool]) -> None:
    if is_cancelled():
        raise RequestCancelled("cancelled by the client")
