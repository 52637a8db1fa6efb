"""The interactive model families the image models serve: SAM 2.1 (the contract's own sizes)
and SAM 3's interactive model, which SAM 2.1's decoder graph exports, so that only its input
size, image-token grid, normalisation, hole filling and files differ. ``sized`` gives any of the
contract's tensors at a family's sizes."""

from __future__ import annotations

from dataclasses import dataclass

from sam2_triton.contract import (
    DECODER_FILE,
    EMBED_SIZE,
    ENCODER_FILE,
    IMAGE_SIZE,
    LOW_RES_MASK_SIZE,
    PIXELS,
    SAM3_FILES,
    SAM3_IMAGE_SIZE,
    Tensor,
)


@dataclass(frozen=True)
class Family:
    """What an interactive model family fixes for the image models (sam2_segment, sam2_session,
    sam2_automatic): its input size, the side of its image-token grid (the low-resolution masks
    are 4 x it), how its predictor normalises pixels and fills mask holes, and its two files.
    SAM 3's interactive model is exported by SAM 2.1's own decoder graph, so only these differ."""

    name: str
    image_size: int
    token_side: int
    normalisation: str  # "imagenet" (SAM2Transforms) or "half" (Sam3Processor: mean = std = 0.5)
    encoder_file: str
    decoder_file: str
    # the predictor's max_hole_area: 8-connected background regions of a click's low-res logits
    # up to this area become foreground (hole_score) before upsampling; SAM2ImagePredictor's is
    # 0 (segment everything follows Meta's generator, which sets its predictor's own)
    hole_area: int = 0
    hole_score: float = 10.0

    @property
    def low_res(self) -> int:
        return 4 * self.token_side

    @property
    def pixels(self) -> int:
        return self.token_side * self.token_side


SAM2 = Family("sam2.1", IMAGE_SIZE, EMBED_SIZE, "imagenet", ENCODER_FILE, DECODER_FILE)
SAM3 = Family(
    "sam3", SAM3_IMAGE_SIZE, SAM3_IMAGE_SIZE // 14, "half", SAM3_FILES["vision"],
    SAM3_FILES["interactive"], hole_area=256,
)  # fmt: skip
FAMILIES = {family.name: family for family in (SAM2, SAM3)}
_IMAGES = ("image", "image_1024")  # [.., 3, S, S]: the model's input
_LOW_RES = ("mask_input", "mask_input_batch", "mask_input_1024", "low_res_masks", "low_res_logits")
_TOKENS = ("image_embed", "high_res_feats_0", "high_res_feats_1")


def sized(tensors: tuple[Tensor, ...], family: Family) -> tuple[Tensor, ...]:
    """``tensors`` as the contract declares them (SAM 2.1's sizes) at ``family``'s: its input
    side, its low-resolution mask side and its image-token count wherever SAM 2.1's stand."""
    out = []
    for t in tensors:
        dims = t.dims
        if t.name in _IMAGES and dims[-2:] == (IMAGE_SIZE, IMAGE_SIZE):
            dims = (*dims[:-2], family.image_size, family.image_size)
        elif t.name in _LOW_RES and dims[-2:] == (LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE):
            dims = (*dims[:-2], family.low_res, family.low_res)
        elif t.name in _TOKENS and len(dims) >= 2 and dims[-2] % PIXELS == 0:
            dims = (*dims[:-2], dims[-2] // PIXELS * family.pixels, dims[-1])
        out.append(Tensor(t.name, t.dtype, dims, t.optional))
    return tuple(out)
