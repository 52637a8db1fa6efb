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
from sam2_triton.errors import InvalidInputError, RequestCancelled
from sam2_triton.mask_formats import response_outputs
from sam2_triton.prompt_batch import decoder_feeds as prompt_batch_feeds

Arrays = Mapping[str, np.ndarray]
Encoder = Callable[[np.ndarray], Arrays]  # image_1024 [1,3,1024,1024] -> ENCODER_OUTPUTS
Decoder = Callable[[Arrays], Arrays]  # DECODER_INPUTS -> low_res_masks, iou_predictions (N rows)
_NO_IMAGE = np.zeros((0, 0, 3), np.uint8)  # cutout_rgb when no cut-out was asked for


@dataclass(frozen=True)
class Limits:
    max_image_pixels: int = processing.DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = processing.DEFAULT_MAX_POINTS


def decoder_feeds(
    features: Arrays,
    prompts: processing.Prompts,
    mask_input: np.ndarray,
    has_mask_input: np.ndarray,
) -> dict[str, np.ndarray]:
    """The encoder's feature maps and one prompt set -> DECODER_INPUTS (N = 1)."""
    return prompt_batch_feeds(features, prompts.coords, prompts.labels, mask_input, has_mask_input)


@dataclass(frozen=True)
class PreparedRequest:
    """A checked request in the model's frame: what the encoder and decoder need."""

    rgb: np.ndarray  # the decoded image [H, W, 3], kept for cut-outs
    image_1024: np.ndarray  # [1, 3, 1024, 1024] normalised
    prompts: processing.Prompts
    mask_input: np.ndarray
    has_mask_input: np.ndarray
    multimask: bool
    output_format: str
    mask_size: tuple[int, int] | None = None

    @property
    def orig_hw(self) -> tuple[int, int]:
        return (self.rgb.shape[0], self.rgb.shape[1])

    def decoder_inputs(self, features: Arrays) -> dict[str, np.ndarray]:
        return decoder_feeds(features, self.prompts, self.mask_input, self.has_mask_input)

    @property
    def cutout_rgb(self) -> np.ndarray:
        return self.rgb if self.output_format.startswith("cutout") else _NO_IMAGE


@dataclass(frozen=True)
class RequestOptions:
    """What a segment or session request asks for besides its image, checked; the prompts are
    checked against an image size by ``prompts`` (in pixels, so they wait for the image)."""

    output_format: str
    multimask: bool
    mask_input: np.ndarray  # decoder-ready [1, 1, 256, 256]
    has_mask_input: np.ndarray  # [1, 1]
    point_coords: np.ndarray | None
    point_labels: np.ndarray | None
    box: np.ndarray | None
    max_points: int
    mask_size: tuple[int, int] | None = None  # masks resized to (height, width)

    @property
    def prompts_given(self) -> bool:
        """Any prompt input present (a session request without one only encodes its image)."""
        return any(p is not None for p in (self.point_coords, self.point_labels, self.box))

    def prompts(self, orig_hw: tuple[int, int]) -> processing.Prompts:
        """The prompts checked against an image of ``orig_hw`` and mapped to the model frame."""
        return processing.prepare_prompts(
            self.point_coords, self.point_labels, self.box, orig_hw, self.max_points
        )


def parse_request(inputs: Mapping[str, np.ndarray | None], limits: Limits) -> RequestOptions:
    """The options and prompts of SEGMENT_INPUTS, shared by ``prepare_request`` and the session
    service so both check them alike and in the same order (format, multimask, mask_input)."""
    output_format = processing.parse_output_format(inputs.get("output_format"))
    multimask = processing.parse_multimask(inputs.get("multimask_output"))
    mask_input, has_mask_input = processing.prepare_mask_input(inputs.get("mask_input"))
    mask_size = processing.parse_mask_size(
        inputs.get("mask_size"), output_format, limits.max_image_pixels
    )
    return RequestOptions(
        mask_size=mask_size,
        output_format=output_format,
        multimask=multimask,
        mask_input=mask_input,
        has_mask_input=has_mask_input,
        point_coords=inputs.get("point_coords"),
        point_labels=inputs.get("point_labels"),
        box=inputs.get("box"),
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
    prompts = options.prompts((rgb.shape[0], rgb.shape[1]))  # before the costly resize
    processing.check_mask_size(options.mask_size, (rgb.shape[0], rgb.shape[1]))
    return PreparedRequest(
        rgb=rgb,
        image_1024=processing.preprocess_image(rgb),
        prompts=prompts,
        mask_input=options.mask_input,
        has_mask_input=options.has_mask_input,
        multimask=options.multimask,
        output_format=options.output_format,
        mask_size=options.mask_size,
    )


def finish_request(
    decoded: Arrays,
    orig_hw: tuple[int, int],
    multimask: bool,
    output_format: str,
    cutout_rgb: np.ndarray | None = None,
    mask_size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """All four mask tokens of one row -> SEGMENT_OUTPUTS at the image's size (or
    ``mask_size``) and format."""
    result = processing.postprocess_masks(
        np.asarray(decoded["low_res_masks"])[0],
        np.asarray(decoded["iou_predictions"])[0],
        orig_hw,
        multimask_output=multimask,
        mask_hw=mask_size,
    )
    return response_outputs(result, output_format, cutout_rgb)


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
    )


def _stop_if(is_cancelled: Callable[[], bool]) -> None:
    if is_cancelled():
        raise RequestCancelled("cancelled by the client")
