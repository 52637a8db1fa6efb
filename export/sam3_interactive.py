"""SAM 3's interactive model (its SAM-2-style prompt encoder and mask decoder, the ``tracker.``
weights) as the same decoder graph SAM 2.1 exports (``wrappers.PromptMaskDecoder``), at SAM 3's
sizes: 1008-pixel prompts, 72 x 72 image tokens, 288 x 288 low-resolution masks (issue 34).

Its inputs are ``sam3_vision``'s interactive outputs and the prompts in SAM 2's encoding (a box
as two corner points labelled 2 and 3 before the clicks), so the sessions that serve SAM 2.1's
clicks can serve SAM 3's: only the sizes differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from sam2_triton.export.onnx_export import _export_module
from sam2_triton.export.sam3_vision import IMAGE_SIZE
from sam2_triton.export.wrappers import PromptMaskDecoder

TOKENS_SIDE = IMAGE_SIZE // 14  # 72
LOW_RES_MASK_SIZE = TOKENS_SIDE * 4  # 288


@contextlib.contextmanager
def cpu_construction() -> Iterator[None]:
    """sam3's builders fill a position-encoding cache and the concept decoder's coordinates on
    CUDA at construction (``PositionEmbeddingSine(precompute_resolution=1008)``,
    ``TransformerDecoder._get_coords``), which fails on a machine without one; inside this
    block both are left to be made at first use, on the device the model then runs on (the
    same numbers)."""
    import sam3.model_builder as builder
    from sam3.model.decoder import TransformerDecoder

    original = builder.PositionEmbeddingSine
    coords = TransformerDecoder.__dict__["_get_coords"].__func__
    init = TransformerDecoder.__init__

    def on_first_use(*args, **kwargs):
        return original(*args, **{**kwargs, "precompute_resolution": None})

    def coords_on_first_use(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        # made at the first forward, on the boxes' device (sam3 does so on a cache miss)
        self.compilable_cord_cache = self.compilable_stored_size = None

    builder.PositionEmbeddingSine = on_first_use
    TransformerDecoder._get_coords = staticmethod(lambda h, w, device: coords(h, w, "cpu"))
    TransformerDecoder.__init__ = coords_on_first_use
    try:
        yield
    finally:
        builder.PositionEmbeddingSine = original
        TransformerDecoder._get_coords = staticmethod(coords)
        TransformerDecoder.__init__ = init


def example_inputs(prompts: int = 2, points: int = 3) -> dict[str, torch.Tensor]:
    """Tracing inputs in ``contract.DECODER_INPUTS``' order, at SAM 3's sizes."""
    gen = torch.Generator().manual_seed(0)
    pixels = TOKENS_SIDE * TOKENS_SIDE
    return {
        "image_embed": torch.randn(1, pixels, 256, generator=gen),
        "high_res_feats_0": torch.randn(1, pixels * 4, 128, generator=gen),
        "high_res_feats_1": torch.randn(1, pixels, 256, generator=gen),
        "point_coords": torch.rand(prompts, points, 2, generator=gen) * IMAGE_SIZE,
        "point_labels": torch.randint(0, 2, (prompts, points), generator=gen, dtype=torch.int32),
        "mask_input": torch.randn(prompts, 1, LOW_RES_MASK_SIZE, LOW_RES_MASK_SIZE, generator=gen),
        "has_mask_input": torch.ones(prompts, 1),
    }


def export_interactive_onnx(tracker: nn.Module, path: Path, opset: int = 18) -> Path:
    """Write the interactive decoder of ``tracker`` (sam3's ``Sam3TrackerPredictor``, the model
    behind ``SAM3InteractiveImagePredictor``) to ``path``: ``low_res_masks`` [N, 4, 288, 288]
    and ``iou_predictions`` [N, 4] for N prompt sets, as SAM 2.1's decoder graph answers
    (exported as SAM 2.1's is: the dynamo exporter, whose dynamic shapes the graph needs)."""
    decoder = PromptMaskDecoder(tracker).eval()
    _export_module(decoder, example_inputs(), path, "dynamo", opset, "decoder")
    return path
