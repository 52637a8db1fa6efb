"""One image, N prompt sets: the decoder's feeds, built and checked in one place.

The decoder takes one image's features once ([1, ...]) and N prompt sets that share them inside
the graph (as ``SAM2ImagePredictor`` does for batched prompts). Every caller builds its feeds
here: a click (N = 1), segment-everything's point grid, and direct callers of
``sam2_mask_decoder``, whose tensors ``check_decoder_inputs`` checks before they reach the graph.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sam2_triton.contract import DECODER_FEATURES, ENCODER_OUTPUTS
from sam2_triton.errors import InvalidInputError


def decoder_feeds(
    features: Mapping[str, np.ndarray],
    coords: np.ndarray,
    labels: np.ndarray,
    mask_input: np.ndarray | None = None,
    has_mask_input: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One image's features + N prompt sets (coords [N, P, 2] in the 1024 frame, labels [N, P])
    -> DECODER_INPUTS. Without ``mask_input`` every set gets none (zeros, has_mask_input 0) at
    the family's low resolution (4 x the image tokens' side)."""
    rows = coords.shape[0]
    if mask_input is None:
        size = 4 * _token_side(features)
        mask_input = np.zeros((rows, 1, size, size), np.float32)
        has_mask_input = np.zeros((rows, 1), np.float32)
    elif has_mask_input is None:
        has_mask_input = np.ones((rows, 1), np.float32)
    feeds = {t.name: _one_image(features[t.name]) for t in DECODER_FEATURES}
    feeds.update(
        point_coords=np.ascontiguousarray(coords, np.float32),
        point_labels=np.ascontiguousarray(labels, np.int32),
        mask_input=np.ascontiguousarray(mask_input, np.float32),
        has_mask_input=np.ascontiguousarray(has_mask_input, np.float32),
    )
    return feeds


def _one_image(value: np.ndarray) -> np.ndarray:
    """One image's feature rows [..., rows, channels] as the decoder takes them: [1, rows, C]."""
    array = np.asarray(value, np.float32)
    return array.reshape(1, *array.shape[-2:])


def _token_side(features: Mapping[str, np.ndarray]) -> int:
    """The side of the image-token grid whose rows ``image_embed`` holds (64 for SAM 2.1)."""
    rows = int(np.asarray(features[ENCODER_OUTPUTS[0].name]).shape[-2])
    side = int(round(rows**0.5))
    if side * side != rows:
        raise ValueError(f"image_embed has {rows} rows, not a square grid of image tokens")
    return side


def check_decoder_inputs(
    inputs: Mapping[str, np.ndarray], max_prompts: int, max_points: int
) -> int:
    """The prompt-set count of a decoder request; a clear error when its tensors disagree.

    Triton checks each tensor's dtype and fixed dims against the config; what it cannot check is
    that the prompt tensors agree on N (and on P), nor caps on N (each set costs the decoder's
    whole image side, ~20 MB of intermediate tensors at fp32) and on P (the token attention grows
    with its square).
    """
    coords = inputs["point_coords"]
    rows, points = coords.shape[0], coords.shape[1]
    if rows == 0 or points == 0:
        raise InvalidInputError(
            "point_coords", f"has shape {list(coords.shape)}: need at least one prompt set"
        )
    if rows > max_prompts:
        raise InvalidInputError(
            "point_coords",
            f"{rows} prompt sets exceed this server's limit of {max_prompts} per call",
        )
    if points > max_points:
        raise InvalidInputError(
            "point_coords",
            f"{points} points per prompt set exceed this server's limit of {max_points}",
        )
    if inputs["point_labels"].shape != (rows, points):
        raise InvalidInputError(
            "point_labels",
            f"has shape {list(inputs['point_labels'].shape)}; point_coords "
            f"{list(coords.shape)} needs [{rows}, {points}]",
        )
    for name in ("mask_input", "has_mask_input"):
        if inputs[name].shape[0] != rows:
            raise InvalidInputError(
                name, f"has {inputs[name].shape[0]} rows for {rows} prompt sets; they must match"
            )
    for name in ("point_coords", "mask_input", "has_mask_input"):
        if not np.all(np.isfinite(inputs[name])):
            raise InvalidInputError(name, "contains NaN or infinite values")
    return rows


def sam_layout(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The encoder's outputs (the decoder's row layout, contract.ENCODER_OUTPUTS) -> SAM's NCHW
    maps, as ``SAM2ImagePredictor._features`` holds them (inverse of ``decoder_layout``)."""
    embed, s0, s1 = (np.asarray(features[n]) for n in tuple(t.name for t in ENCODER_OUTPUTS))
    b = embed.shape[0]
    image_embed = embed.reshape(b, 64, 64, 256).transpose(0, 3, 1, 2)
    feats_1 = s1.reshape(b, 64, 64, 2, 2, 64).transpose(0, 5, 1, 3, 2, 4).reshape(b, 64, 128, 128)
    feats_0 = s0.reshape(b, 64, 64, 2, 2, 2, 2, 32).transpose(0, 7, 1, 3, 5, 2, 4, 6)
    return {
        "image_embed": np.ascontiguousarray(image_embed),
        "high_res_feats_0": np.ascontiguousarray(feats_0.reshape(b, 32, 256, 256)),
        "high_res_feats_1": np.ascontiguousarray(feats_1),
    }
