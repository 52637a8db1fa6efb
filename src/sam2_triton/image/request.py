"""One typed request per image model, parsed and checked in one place, before any model runs.

``parse_request`` turns the inputs of ``sam2_segment`` and ``sam2_session`` (SEGMENT_INPUTS,
None where omitted) into a ``RequestOptions``: the output format, multimask, mask size, polygon
tolerance and prompt inputs, each checked in the same order for both models. Prompts are in
pixels, so what needs the image's size is checked by ``RequestOptions.prompt_sets`` once the
image is decoded (``image.prompts`` maps them to the model frame through ``image.transforms``).
Every mistake is an ``InvalidInputError`` naming the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam2_triton import contract
from sam2_triton.contract import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_RAW_MASK_BYTES,
    NO_RAW_MASK_FORMATS,
    OUTPUT_FORMATS,
)
from sam2_triton.errors import InvalidInputError
from sam2_triton.families import SAM2, Family
from sam2_triton.image.polygons import DEFAULT_TOLERANCE
from sam2_triton.image.prompts import (
    DEFAULT_MAX_PROMPT_SETS,
    PromptInputs,
    PromptSets,
    parse_prompt_inputs,
)


@dataclass(frozen=True)
class Limits:
    """A server's caps on one request (its config's parameters)."""

    max_image_pixels: int = contract.DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = contract.DEFAULT_MAX_POINTS
    max_prompt_sets: int = DEFAULT_MAX_PROMPT_SETS


@dataclass(frozen=True)
class OutputOptions:
    """How a response's masks are chosen, sized and encoded (what ``sam2_postprocess`` gets
    from the ensemble's tensors, and part of every ``RequestOptions``)."""

    output_format: str
    multimask: bool
    mask_size: tuple[int, int] | None = None  # masks resized to (height, width)
    polygon_tolerance: float = DEFAULT_TOLERANCE
    family: Family = SAM2  # the served model: its sizes and hole filling


@dataclass(frozen=True, kw_only=True)
class RequestOptions(OutputOptions):
    """What a segment or session request asks for besides its image, checked; the prompts are
    checked against an image size by ``prompt_sets`` (in pixels, so they wait for the image)."""

    prompts: PromptInputs
    max_points: int

    @property
    def prompts_given(self) -> bool:
        """Any prompt input present (a session request without one only encodes its image)."""
        return self.prompts.given

    def prompt_sets(self, orig_hw: tuple[int, int]) -> PromptSets:
        """The prompt sets checked against an image of ``orig_hw``, in the model frame, and the
        response they make checked against MAX_RAW_MASK_BYTES."""
        sets = self.prompts.sets(orig_hw, self.max_points, self.family.image_size)
        check_mask_size(self.mask_size, orig_hw)
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


def parse_request(
    inputs: Mapping[str, np.ndarray | None], limits: Limits, family: Family = SAM2
) -> RequestOptions:
    """The options and prompts of SEGMENT_INPUTS, shared by ``prepare_request`` and the session
    service so both check them alike and in the same order (format, multimask, mask_input);
    ``family``: the served model's sizes."""
    output_format = parse_output_format(inputs.get("output_format"))
    multimask = parse_multimask(inputs.get("multimask_output"))
    prompts = parse_prompt_inputs(inputs, limits.max_prompt_sets, family.low_res)
    mask_size = parse_mask_size(inputs.get("mask_size"), output_format, limits.max_image_pixels)
    return RequestOptions(
        polygon_tolerance=parse_tolerance(inputs.get("polygon_tolerance"), (output_format,)),
        mask_size=mask_size,
        output_format=output_format,
        multimask=multimask,
        prompts=prompts,
        max_points=limits.max_points,
        family=family,
    )


def parse_multimask(value: np.ndarray | None) -> bool:
    """``multimask_output`` BOOL [1]; default True like SAM2ImagePredictor.predict."""
    if value is None:
        return True
    flat = np.asarray(value).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError("multimask_output", f"expected one value, got {flat.shape[0]}")
    return bool(flat[0])


def parse_mask_size(
    value: np.ndarray | None, output_format: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
) -> tuple[int, int] | None:
    """``mask_size`` INT32 [2] (height, width) -> the size masks are returned at, or None for
    the image's own. Not for cut-outs (they cut the full-size image) nor "logits" (a client
    upsampling logits chooses its size itself)."""
    if value is None:
        return None
    flat = np.asarray(value).reshape(-1)
    if flat.shape[0] != 2:
        raise InvalidInputError(
            "mask_size", f"expected (height, width), got {flat.shape[0]} values"
        )
    height, width = (int(v) for v in flat)
    if height < 1 or width < 1 or height * width > max_pixels:
        raise InvalidInputError(
            "mask_size",
            f"({height}, {width}) must be at least 1 x 1 and at most {max_pixels} pixels",
        )
    if output_format.startswith("cutout") or output_format == "logits":
        raise InvalidInputError(
            "mask_size", f"cannot be combined with output_format {output_format!r}"
        )
    return height, width


#: ``mask_size`` may ask for up to this many pixels, or the image's own count if larger: masks
#: for a display, never a response many times the image (3 raw masks of 64 MP for a 10 x 10 PNG).
MAX_MASK_PIXELS = 16_777_216


def check_mask_size(mask_size: tuple[int, int] | None, orig_hw: tuple[int, int]) -> None:
    """Refuse a ``mask_size`` larger than the image and than MAX_MASK_PIXELS."""
    if mask_size is None:
        return
    limit = max(orig_hw[0] * orig_hw[1], MAX_MASK_PIXELS)
    if mask_size[0] * mask_size[1] > limit:
        raise InvalidInputError(
            "mask_size",
            f"{mask_size[0]} x {mask_size[1]} exceeds {limit} pixels (the image is "
            f"{orig_hw[0]} x {orig_hw[1]}, masks are at most its size or {MAX_MASK_PIXELS})",
        )


def parse_output_format(value: np.ndarray | None) -> str:
    """``output_format`` STRING [1] -> one of OUTPUT_FORMATS (default "raw")."""
    return parse_choice(value, "output_format", OUTPUT_FORMATS, "raw")


def parse_choice(
    value: np.ndarray | None, field: str, choices: tuple[str, ...], default: str
) -> str:
    """A STRING [1] input naming one of ``choices`` (``default`` when omitted)."""
    if value is None:
        return default
    flat = np.asarray(value, dtype=object).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError(field, f"expected one value, got {flat.shape[0]}")
    raw = flat[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if text not in choices:
        raise InvalidInputError(
            field, f"unknown format {text[:80]!r}; use one of {', '.join(choices)}"
        )
    return text


#: The most a simplified polygon may stray from its mask's contour, in pixels.
MAX_TOLERANCE = 100.0


def parse_tolerance(value: np.ndarray | None, formats: tuple[str, ...] | None = None) -> float:
    """``polygon_tolerance`` FP32 [1] -> pixels (default DEFAULT_TOLERANCE); ``formats``: the
    request's mask format(s), refused unless one is polygons (a tolerance would do nothing)."""
    if value is None:
        return DEFAULT_TOLERANCE
    flat = np.asarray(value).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError("polygon_tolerance", f"expected one value, got {flat.shape[0]}")
    tolerance = float(flat[0])
    if not np.isfinite(tolerance) or not 0.0 <= tolerance <= MAX_TOLERANCE:
        raise InvalidInputError(
            "polygon_tolerance", f"{tolerance!r} must be between 0 and {MAX_TOLERANCE:g} pixels"
        )
    if formats is not None and "polygons" not in formats:
        raise InvalidInputError("polygon_tolerance", "only applies with output_format 'polygons'")
    return tolerance


SEGMENTATION_FORMATS = ("rle", "polygons")


def parse_segmentation_format(value: np.ndarray | None) -> str:
    """sam2_automatic's ``segmentation_format`` STRING [1] -> "rle" (default) or "polygons"."""
    return parse_choice(value, "segmentation_format", SEGMENTATION_FORMATS, "rle")
