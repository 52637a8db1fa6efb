"""A request's prompt sets: one (``point_coords``, ``point_labels``, ``box``, ``mask_input``) or
B of them (the same names with ``_batch``: Meta's batched prompts, e.g. several boxes at once).

Every set of a request shares the image's features in one decoder call (``decoder_feeds``), so B
boxes cost one request and one decoder run with B rows instead of B round trips. The checks are
the single set's (``prepare_prompts``), applied to each set and naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam2_triton.contract import IMAGE_SIZE, LOW_RES_MASK_SIZE
from sam2_triton.errors import InvalidInputError
from sam2_triton.image.decoder_feeds import decoder_feeds
from sam2_triton.image.transforms import prepare_mask_input, prepare_prompts

SET_INPUTS = ("point_coords", "point_labels", "box", "mask_input")
BATCH_SUFFIX = "_batch"
#: Rank of each input for one set; the batched input has one more axis (B first).
SET_RANK = {"point_coords": 2, "point_labels": 1, "box": 1, "mask_input": 3}
DEFAULT_MAX_PROMPT_SETS = (
    64  # one decoder call (repository.options.ServingOptions.decoder_max_prompts)
)


@dataclass(frozen=True)
class PromptSets:
    """B prompt sets in the 1024 model frame, what the decoder takes: coords [B, M, 2], labels
    [B, M] (box corners first, as SAM2ImagePredictor orders them), mask_input [B, 1, 256, 256],
    has_mask_input [B, 1]."""

    coords: np.ndarray
    labels: np.ndarray
    mask_input: np.ndarray
    has_mask_input: np.ndarray

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    def decoder_inputs(self, features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One image's features (ENCODER_OUTPUTS) and these B sets -> DECODER_INPUTS (N = B)."""
        return decoder_feeds(
            features, self.coords, self.labels, self.mask_input, self.has_mask_input
        )


@dataclass(frozen=True)
class PromptInputs:
    """A request's prompt inputs as sent (pixels), with what needs no image size checked."""

    point_coords: np.ndarray | None
    point_labels: np.ndarray | None
    box: np.ndarray | None
    mask_input: np.ndarray  # decoder-ready [B, 1, 256, 256] (zeros without one)
    has_mask_input: np.ndarray  # [B, 1]
    batched: bool

    @property
    def given(self) -> bool:
        """Any point or box (a session request without one only encodes its image)."""
        return any(p is not None for p in (self.point_coords, self.point_labels, self.box))

    @property
    def count(self) -> int:
        """B: how many prompt sets (1 for the single-set inputs)."""
        return int(self.mask_input.shape[0])

    def sets(
        self, orig_hw: tuple[int, int], max_points: int, image_size: int = IMAGE_SIZE
    ) -> PromptSets:
        """The sets checked against an image of ``orig_hw`` and mapped to the model frame
        (``image_size`` square)."""
        if not self.batched:
            prompts = prepare_prompts(
                self.point_coords, self.point_labels, self.box, orig_hw, max_points,
                image_size=image_size,
            )  # fmt: skip
            return PromptSets(prompts.coords, prompts.labels, self.mask_input, self.has_mask_input)
        coords, labels = [], []
        for b in range(self.count):
            try:
                prompts = prepare_prompts(
                    _row(self.point_coords, b),
                    _row(self.point_labels, b),
                    _row(self.box, b),
                    orig_hw,
                    max_points,
                    padding_label=True,
                    image_size=image_size,
                )
            except InvalidInputError as error:
                raise InvalidInputError(
                    error.field + BATCH_SUFFIX, f"prompt set {b}: {error.problem}"
                ) from None
            coords.append(prompts.coords[0])
            labels.append(prompts.labels[0])
        return PromptSets(np.stack(coords), np.stack(labels), self.mask_input, self.has_mask_input)


def _row(value: np.ndarray | None, b: int) -> np.ndarray | None:
    return None if value is None else value[b]


def parse_prompt_inputs(
    inputs: Mapping[str, np.ndarray | None],
    max_sets: int = DEFAULT_MAX_PROMPT_SETS,
    size: int = LOW_RES_MASK_SIZE,
) -> PromptInputs:
    """The prompt inputs of SEGMENT_INPUTS: one set or B (``*_batch``), never both; B agreed by
    every batched input and at most ``max_sets`` (one decoder call). ``size``: the family's
    low-resolution mask side, which a ``mask_input`` must have."""
    batched = {n: inputs.get(n + BATCH_SUFFIX) for n in SET_INPUTS}
    batched = {n: np.asarray(v) for n, v in batched.items() if v is not None}
    if not batched:
        mask_input, has_mask_input = prepare_mask_input(inputs.get("mask_input"), size)
        return PromptInputs(
            inputs.get("point_coords"),
            inputs.get("point_labels"),
            inputs.get("box"),
            mask_input,
            has_mask_input,
            batched=False,
        )
    for name in SET_INPUTS:
        if inputs.get(name) is not None:
            raise InvalidInputError(
                name,
                f"cannot be combined with {', '.join(n + BATCH_SUFFIX for n in batched)}: send "
                "one prompt set or B of them (the *_batch inputs), not both",
            )
    count = _set_count(batched, max_sets)
    mask = batched.get("mask_input")
    if mask is None:
        mask_input = np.zeros((count, 1, size, size), np.float32)
        has_mask_input = np.zeros((count, 1), np.float32)
    else:
        if mask.shape[1:] != (1, size, size):
            raise InvalidInputError(
                "mask_input_batch",
                f"expected [B, 1, {size}, {size}] (one low_res_logits entry per prompt set), "
                f"got {list(mask.shape)}",
            )
        if not np.all(np.isfinite(mask)):
            raise InvalidInputError("mask_input_batch", "contains NaN or infinite values")
        mask_input = mask.astype(np.float32)
        has_mask_input = np.ones((count, 1), np.float32)
    return PromptInputs(
        batched.get("point_coords"),
        batched.get("point_labels"),
        batched.get("box"),
        mask_input,
        has_mask_input,
        batched=True,
    )


def _set_count(batched: Mapping[str, np.ndarray], max_sets: int) -> int:
    counts = {}
    for name, value in batched.items():
        field = name + BATCH_SUFFIX
        if value.ndim != SET_RANK[name] + 1:
            raise InvalidInputError(
                field, f"expected {SET_RANK[name] + 1} axes (B first), got {list(value.shape)}"
            )
        counts[field] = int(value.shape[0])
    first, count = next(iter(counts.items()))
    for field, other in counts.items():
        if other != count:
            raise InvalidInputError(
                field, f"has {other} prompt sets but {first} has {count}; they must match"
            )
    if not 1 <= count <= max_sets:
        raise InvalidInputError(
            first, f"{count} prompt sets: send 1 to {max_sets} per request (this server's limit)"
        )
    return count
