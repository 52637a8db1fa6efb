"""SAM 2.1's prompt encoder and mask decoder for one image and N prompts, laid out for a CPU.

The same weights and the same arithmetic as ``sam2.modeling.sam`` (``PromptEncoder``,
``MaskDecoder.predict_masks``, ``TwoWayTransformer``), written so that the exported graph is
mostly matrix products on row-major ``[N, pixels, channels]`` tensors:

- the image side stays in token layout (``[N, 4096, 256]``) from the mask embedding to the last
  upscaling step: no NCHW <-> token transposes per prompt;
- attention never splits the 4096-token side into heads by a transpose: it is projected
  straight into head-major form by a GEMM reading its rows as they lie;
- the 2x2 stride-2 transposed convolutions and convolutions are GEMMs on pixel rows, and their
  LayerNorm2d a LayerNormalization over the last axis; the encoder hands over its feature maps
  already in that pixel order (``decoder_layout``), once per image instead of once per prompt;
- the image's features come once (batch 1) and broadcast against the N prompts inside the graph.

Measured against ``sam2``'s modules in ``tests/test_export_parity.py`` (1e-4, every prompt kind);
why and how fast: docs/performance.md.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LN2D_EPS = 1e-6  # sam2.modeling.sam2_utils.LayerNorm2d


def rows_linear(x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
    """``layer(x)`` on [B, S, C] as one 2-D product: exported as Gemm, the bias added in the
    GEMM (a 3-D MatMul leaves it to a separate pass over the output)."""
    b, s, c = x.shape
    return F.linear(x.reshape(b * s, c), layer.weight, layer.bias).reshape(b, s, -1)


class TokenAttention(nn.Module):
    """``sam2...transformer.Attention`` where one side has few tokens (the prompt tokens).

    The image side (4096 tokens) is projected straight into head-major, transposed form
    (``W^T @ x^T``: a GEMM that reads x as it lies), so each head's scores and outputs are
    plain batched products, and the output projection reads that form back as a transposed
    operand. Only the few-token side is ever rearranged into heads, which costs nothing.
    ``few="queries"``: tokens attend to the image; ``few="keys"``: the image attends to tokens.
    """

    def __init__(self, attention: nn.Module, few: str) -> None:
        super().__init__()
        self.q_proj, self.k_proj = attention.q_proj, attention.k_proj
        self.v_proj, self.out_proj = attention.v_proj, attention.out_proj
        self.heads = attention.num_heads
        self.few = few
        dim = attention.internal_dim
        self.scale = 1.0 / math.sqrt(dim // self.heads)

    def _heads_transposed(self, x: torch.Tensor, layer: nn.Linear) -> torch.Tensor:
        """``layer(x)`` [B, S, D] as [B, heads, D/heads, S]: W^T @ x^T + b, no transpose pass."""
        b, s, _ = x.shape
        out = torch.matmul(layer.weight, x.transpose(1, 2)) + layer.bias.unsqueeze(1)
        return out.reshape(b, self.heads, -1, s)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.few == "queries":
            q = rows_linear(q, self.q_proj)
            b, t, d = q.shape
            k_t = self._heads_transposed(k, self.k_proj)  # [B, h, d, S]
            v_t = self._heads_transposed(v, self.v_proj)
            q_h = q.reshape(b, t, self.heads, -1).transpose(1, 2)  # [B, h, T, d] (tiny)
            weights = torch.softmax(q_h @ k_t * self.scale, dim=-1)  # [B, h, T, S]
            out = (weights @ v_t.transpose(2, 3)).transpose(1, 2).reshape(b, t, d)
            return rows_linear(out, self.out_proj)
        q_t = self._heads_transposed(q, self.q_proj)  # [B, h, d, S]
        b, _, d, s = q_t.shape
        k, v = rows_linear(k, self.k_proj), rows_linear(v, self.v_proj)
        t = k.shape[1]
        k_t = k.reshape(b, t, self.heads, d).permute(0, 2, 3, 1)  # [B, h, d, T] (tiny)
        v_t = v.reshape(b, t, self.heads, d).permute(0, 2, 3, 1)
        weights = torch.softmax(q_t.transpose(2, 3) @ k_t * self.scale, dim=-1)  # [B, h, S, T]
        out_t = (v_t @ weights.transpose(2, 3)).reshape(b, self.heads * d, s)  # [B, D, S]
        return torch.matmul(out_t.transpose(1, 2), self.out_proj.weight.t()) + self.out_proj.bias


class TwoWayBlock(nn.Module):
    """``TwoWayAttentionBlock.forward`` with TokenAttention."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.self_attn = TokenAttention(block.self_attn, few="queries")
        self.to_image = TokenAttention(block.cross_attn_token_to_image, few="queries")
        self.to_token = TokenAttention(block.cross_attn_image_to_token, few="keys")
        self.norm1, self.norm2, self.norm3, self.norm4 = (
            block.norm1, block.norm2, block.norm3, block.norm4,
        )  # fmt: skip
        self.mlp = block.mlp
        self.skip_first_layer_pe = block.skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q = queries + query_pe
        keys = self.norm4(keys + self.to_token(k, q, queries))
        return queries, keys


def _space_to_depth(x: torch.Tensor, side: int) -> torch.Tensor:
    """[B, 2*side, 2*side, C] pixels -> [B, side*side, 4*C]: each 2x2 block's (a, b, c) in a row."""
    b, _, _, c = x.shape
    x = x.reshape(b, side, 2, side, 2, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, side * side, 4 * c)


def _conv2x2_matrix(conv: nn.Conv2d) -> torch.Tensor:
    """Conv2d(k=2, s=2) weight [Co, Ci, 2, 2] -> [(a, b, ci), Co] for ``_space_to_depth`` rows."""
    return conv.weight.detach().permute(2, 3, 1, 0).reshape(-1, conv.out_channels).clone()


def _deconv2x2_matrix(deconv: nn.ConvTranspose2d) -> torch.Tensor:
    """ConvTranspose2d(k=2, s=2) weight [Ci, Co, 2, 2] -> [Ci, (a, b, co)]."""
    weight = deconv.weight.detach()
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1).clone()


def _layer_norm_2d(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """LayerNorm2d over channels, for channels-last rows (the same biased-variance formula)."""
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, LN2D_EPS)


class MaskEmbedding(nn.Module):
    """``PromptEncoder.mask_downscaling`` on [N, 1, 256, 256] up to its last (1x1) layer, in
    token layout [N, 4096, 16] (row = 64x64 position, as ``flatten(2).permute(0, 2, 1)``
    orders them); ``w2``/``b2`` are that last layer, applied by the caller."""

    def __init__(self, downscaling: nn.Sequential) -> None:
        super().__init__()
        conv0, self.ln0, self.act0, conv1, self.ln1, self.act1, conv2 = downscaling
        self.register_buffer("w0", _conv2x2_matrix(conv0), persistent=False)
        self.register_buffer("w1", _conv2x2_matrix(conv1), persistent=False)
        self.register_buffer(
            "w2", conv2.weight.detach()[:, :, 0, 0].t().contiguous(), persistent=False
        )
        self.b0, self.b1, self.b2 = conv0.bias, conv1.bias, conv2.bias

    def forward(self, mask_input: torch.Tensor) -> torch.Tensor:
        n, _, size, _ = mask_input.shape
        x = _space_to_depth(mask_input.reshape(n, size, size, 1), size // 2) @ self.w0 + self.b0
        x = self.act0(_layer_norm_2d(x, self.ln0))  # [N, 128*128, 4]
        x = _space_to_depth(x.reshape(n, size // 2, size // 2, -1), size // 4) @ self.w1 + self.b1
        return self.act1(_layer_norm_2d(x, self.ln1))  # [N, 64*64, 16]


class MaskUpscaling(nn.Module):
    """``output_upscaling`` with the high-res features, then the hypernetwork product, from
    token-layout image embeddings [N, 4096, 256] to mask logits [N, tokens, 256, 256]."""

    def __init__(self, upscaling: nn.Sequential) -> None:
        super().__init__()
        dc1, self.ln1, self.act1, dc2, self.act2 = upscaling
        self.register_buffer("w1", _deconv2x2_matrix(dc1), persistent=False)
        self.register_buffer("w2", _deconv2x2_matrix(dc2), persistent=False)
        self.c1, self.c2 = dc1.out_channels, dc2.out_channels
        self.b1 = nn.Parameter(dc1.bias.detach().repeat(4), requires_grad=False)
        self.b2 = nn.Parameter(dc2.bias.detach().repeat(4), requires_grad=False)

    def forward(
        self, tokens: torch.Tensor, hyper_in: torch.Tensor, s1: torch.Tensor, s0: torch.Tensor
    ) -> torch.Tensor:
        n, pixels, _ = tokens.shape
        side = int(round(math.sqrt(pixels)))  # 64
        x = (tokens.reshape(n * pixels, -1) @ self.w1).reshape(n, pixels, -1) + (self.b1 + s1)
        x = self.act1(_layer_norm_2d(x.reshape(n, pixels * 4, self.c1), self.ln1))
        x = (x.reshape(n * pixels * 4, -1) @ self.w2).reshape(n, pixels * 4, -1) + (self.b2 + s0)
        x = self.act2(x).reshape(n, pixels * 16, self.c2)
        masks = x @ hyper_in.transpose(1, 2)  # [N, (i, j, a, b, a2, b2), tokens]
        k = masks.shape[-1]
        masks = masks.reshape(n, side, side, 2, 2, 2, 2, k).permute(0, 7, 1, 3, 5, 2, 4, 6)
        return masks.reshape(n, k, side * 4, side * 4)


def decoder_layout(
    image_embed: torch.Tensor, high_res_feats_0: torch.Tensor, high_res_feats_1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SAM's NCHW feature maps -> the rows the decoder's GEMMs read (what the encoder outputs).

    - image_embed [B, 256, 64, 64] -> [B, 4096, 256]: row (y, x), the transformer's tokens;
    - high_res_feats_1 [B, 64, 128, 128] -> [B, 4096, 256]: row (i, j), column (a, b, c) for
      pixel (2i + a, 2j + b);
    - high_res_feats_0 [B, 32, 256, 256] -> [B, 16384, 128]: row (i, j, a, b), column
      (a2, b2, c) for pixel (4i + 2a + a2, 4j + 2b + b2).
    """
    b, c, h, _ = image_embed.shape
    tokens = image_embed.flatten(2).transpose(1, 2)
    c1 = high_res_feats_1.shape[1]
    s1 = high_res_feats_1.reshape(b, c1, h, 2, h, 2).permute(0, 2, 4, 3, 5, 1)
    c0 = high_res_feats_0.shape[1]
    s0 = high_res_feats_0.reshape(b, c0, h, 2, 2, h, 2, 2).permute(0, 2, 5, 3, 6, 4, 7, 1)
    return tokens, s0.reshape(b, h * h * 4, 4 * c0), s1.reshape(b, h * h, 4 * c1)


class OneImageDecoder(nn.Module):
    """Prompt encoder + ``MaskDecoder.predict_masks`` for one image's features and N prompts.

    Returns all mask tokens' logits [N, 4, 256, 256] and IoU predictions [N, 4]."""

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        prompt, decoder = sam.sam_prompt_encoder, sam.sam_mask_decoder
        if not (decoder.use_high_res_features and decoder.pred_obj_scores):
            raise ValueError("expected a SAM 2.1 mask decoder (high-res features, object scores)")
        self.prompt_encoder = prompt
        self.mask_embedding = MaskEmbedding(prompt.mask_downscaling)
        transformer = decoder.transformer
        self.layers = nn.ModuleList(TwoWayBlock(layer) for layer in transformer.layers)
        self.final_attn = TokenAttention(transformer.final_attn_token_to_image, few="queries")
        self.norm_final = transformer.norm_final_attn
        self.upscaling = MaskUpscaling(decoder.output_upscaling)
        self.hypernetworks = decoder.output_hypernetworks_mlps
        self.iou_head = decoder.iou_prediction_head
        self.num_mask_tokens = decoder.num_mask_tokens
        with torch.no_grad():
            dense_pe = prompt.get_dense_pe().detach().flatten(2).permute(0, 2, 1).contiguous()
            # obj-score token, IoU token, then the mask tokens, as predict_masks orders them
            output_tokens = torch.cat(
                [
                    decoder.obj_score_token.weight,
                    decoder.iou_token.weight,
                    decoder.mask_tokens.weight,
                ]
            ).detach()
        self.register_buffer("image_pe", dense_pe, persistent=False)  # [1, 4096, 256]
        self.register_buffer("output_tokens", output_tokens.clone(), persistent=False)
        self.no_mask = prompt.no_mask_embed.weight  # [1, 256]

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
        masks, iou, _ = self.decode(
            image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels,
            mask_input, has_mask_input,
        )  # fmt: skip
        return masks, iou

    def decode(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Masks [N, 4, 256, 256], IoU predictions [N, 4] and the output tokens after the
        transformer [N, 2 + 4 + P, 256] (object score, IoU, the mask tokens, the prompts)."""
        sparse = self.prompt_encoder._embed_points(point_coords, point_labels, pad=True)
        n = sparse.shape[0]
        # dense = has * mask_embedding + (1 - has) * no_mask_embed, with the mask embedding's
        # last (linear) layer applied after the blend: one GEMM and one pass over [N, 4096, 256].
        has = has_mask_input.reshape(n, 1, 1)
        embedding = self.mask_embedding
        blended = has * embedding(mask_input)  # [N, 4096, 16]
        row_bias = has * embedding.b2 + (1.0 - has) * self.no_mask  # [N, 1, 256]
        pixels = image_embed.shape[1]
        keys = (blended.reshape(n * pixels, -1) @ embedding.w2).reshape(n, pixels, -1)
        keys = keys + (image_embed + row_bias)  # [N, 4096, 256]
        tokens = torch.cat([self.output_tokens.unsqueeze(0).expand(n, -1, -1), sparse], dim=1)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, self.image_pe)
        q, k = queries + tokens, keys + self.image_pe
        queries = self.norm_final(queries + self.final_attn(q, k, keys))

        mask_tokens = queries[:, 2 : 2 + self.num_mask_tokens, :]  # after obj-score, iou tokens
        hyper_in = torch.stack(
            [mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(self.hypernetworks)], dim=1
        )
        masks = self.upscaling(keys, hyper_in, high_res_feats_1, high_res_feats_0)
        return masks, self.iou_head(queries[:, 1, :]), queries
