"""The two exportable halves of SAM 2.1 for single images, cut where the image-only work ends.

The split reproduces ``SAM2ImagePredictor`` exactly: the encoder is what ``set_image`` computes
once per image (``_features``), the decoder is what ``_predict`` runs per prompt set. Everything
that depends on the caller's choices (single vs multimask, resizing back to the image) stays
out of the graphs and is done in numpy by ``sam2_triton.processing``.
"""

from __future__ import annotations

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """``image`` [B,3,1024,1024] -> ``image_embed``, ``high_res_feats_0``, ``high_res_feats_1``.

    Equals ``SAM2ImagePredictor.set_image``'s ``_features``: the FPN levels after the decoder's
    ``conv_s0``/``conv_s1`` projections (applied by ``forward_image``), and the lowest-resolution
    level plus ``no_mem_embed`` (what SAM 2 adds to a frame without memory).
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
        return image_embed, fpn[0], fpn[1]


class PromptMaskDecoder(nn.Module):
    """Prompt encoder + mask decoder for one prompt set per batch row; all four mask tokens.

    ``point_labels`` use SAM's codes (1 fg, 0 bg, 2/3 box corners, -1 padding); a box is passed
    as two points labelled 2 and 3 placed before the clicks, as the predictor does. The padding
    point is appended in the graph (``pad=True``), again as the predictor does for point prompts.
    ``has_mask_input`` [B,1] blends the mask embedding with ``no_mask_embed`` so that one graph
    serves both cases; with 0/1 the blend is exact (x*1 + y*0).
    """

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.prompt_encoder = sam.sam_prompt_encoder
        self.mask_decoder = sam.sam_mask_decoder
        # A constant of the weights (random Fourier features over the 64x64 grid): computing it
        # once keeps sin/cos over a grid out of the per-prompt graph.
        with torch.no_grad():
            dense_pe = self.prompt_encoder.get_dense_pe().detach().clone()
        self.register_buffer("dense_pe", dense_pe, persistent=False)

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        sparse = self.prompt_encoder._embed_points(point_coords, point_labels, pad=True)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        mask_embed = self.prompt_encoder.mask_downscaling(mask_input)
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has * mask_embed + (1.0 - has) * no_mask
        low_res_masks, iou_predictions, _, _ = self.mask_decoder.predict_masks(
            image_embeddings=image_embed,
            image_pe=self.dense_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feats_0, high_res_feats_1],
        )
        return low_res_masks, iou_predictions
