"""The two exportable halves of SAM 2.1 for single images, cut where the image-only work ends.

The split reproduces ``SAM2ImagePredictor`` exactly: the encoder is what ``set_image`` computes
once per image (``_features``, in the decoder's row layout), the decoder is what ``_predict``
runs for a batch of prompt sets on one image. Everything that depends on the caller's choices
(single vs multimask, resizing back to the image) stays out of the graphs and is done in numpy
by ``sam2_triton.image.transforms``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from sam2_triton.export.decoder_graph import OneImageDecoder, decoder_layout


class ImageEncoder(nn.Module):
    """``image`` [B,3,1024,1024] -> ``image_embed``, ``high_res_feats_0``, ``high_res_feats_1``.

    Equals ``SAM2ImagePredictor.set_image``'s ``_features``: the FPN levels after the decoder's
    ``conv_s0``/``conv_s1`` projections (applied by ``forward_image``), and the lowest-resolution
    level plus ``no_mem_embed`` (what SAM 2 adds to a frame without memory), rearranged once
    here into the rows the decoder reads (``decoder_layout``) rather than once per prompt there.
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.sam = sam
        self.add_no_mem_embed = bool(sam.directly_add_no_mem_embed)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        backbone_out = self.sam.forward_image(image)
        # Only the last num_feature_levels maps are used by the image predictor (scalp aside).
        fpn = backbone_out["backbone_fpn"][-self.sam.num_feature_levels :]
        image_embed = fpn[-1]
        if self.add_no_mem_embed:
            image_embed = image_embed + self.sam.no_mem_embed.reshape(1, -1, 1, 1)
        return decoder_layout(image_embed, fpn[0], fpn[1])


class PromptMaskDecoder(OneImageDecoder):
    """Prompt encoder + mask decoder: one image's features [1, ...], N prompt sets; all four
    mask tokens per set (``decoder_graph.OneImageDecoder``).

    ``point_labels`` use SAM's codes (1 fg, 0 bg, 2/3 box corners, -1 padding); a box is passed
    as two points labelled 2 and 3 placed before the clicks, as the predictor does. The padding
    point is appended in the graph (``pad=True``), again as the predictor does for point prompts.
    ``has_mask_input`` [N,1] blends the mask embedding with ``no_mask_embed`` so that one graph
    serves both cases; with 0/1 the blend is exact (x*1 + y*0).
    """


#: Queries per chunk of a global attention (Hiera's 4096-token blocks at 1024 x 1024).
ATTENTION_QUERY_CHUNK = 1024


def _chunked_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``hieradet.MultiScaleAttention.forward`` with the queries in chunks: each query's softmax
    row is independent, so the result is the same, but the [heads, 4096, 4096] score matrix of a
    global block (268 MB per image on tiny) is never whole; the encoder's peak memory halves."""
    from sam2.modeling.backbones.hieradet import do_pool

    b, h, w, _ = x.shape
    q, k, v = torch.unbind(self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1), 2)
    if self.q_pool:
        q = do_pool(q.reshape(b, h, w, -1), self.q_pool)
        h, w = q.shape[1:3]
        q = q.reshape(b, h * w, self.num_heads, -1)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    step = ATTENTION_QUERY_CHUNK
    parts = [
        F.scaled_dot_product_attention(q[:, :, i : i + step], k, v)
        for i in range(0, q.shape[2], step)
    ]
    x = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
    return self.proj(x.transpose(1, 2).reshape(b, h, w, -1))


@contextlib.contextmanager
def attention_in_query_chunks() -> Iterator[None]:
    """While exporting the encoder: Hiera's attention computed in query chunks (above)."""
    from sam2.modeling.backbones.hieradet import MultiScaleAttention

    original = MultiScaleAttention.forward
    MultiScaleAttention.forward = _chunked_forward
    try:
        yield
    finally:
        MultiScaleAttention.forward = original
