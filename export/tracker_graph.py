"""SAM 2's video tracker parts as export-friendly modules: memory attention and the memory
encoder, on a batch of objects.

What the public exports trip on, and what is done here instead:
- memory attention's RoPE multiplies complex numbers (``torch.view_as_complex``), which ONNX
  has no type for; here each (even, odd) pair is rotated in real arithmetic with cos/sin tables;
- the number of memories and of object-pointer tokens changes every frame; here both are
  dynamic axes, and the frame/pointer choices (which memories, their temporal indices, the
  pointers' distances) are inputs, decided by plain code outside the graph;
- flags such as "binarize a mask made from clicks" are inputs, not Python branches that the
  exporter would freeze to the example's value.
The positional encodings of the 64 x 64 feature maps are constants (the image is always 1024
square) and are baked in. Attention runs in query chunks: the same numbers, a fraction of the
memory of a 4096 x (7 x 4096) score matrix. Cross-attention mixes the 64-channel memories
before projecting them to 256 (the same sum, reordered): a quarter of the score-by-value work.
"""

from __future__ import annotations

import math

import torch
from sam2.modeling.position_encoding import compute_axial_cis
from torch import nn

from sam2_triton.export.decoder_graph import OneImageDecoder

SIDE = 64  # feature map side at 1024 input
TOKENS = SIDE * SIDE
QUERY_CHUNK = 1024  # queries per attention chunk (4 chunks of the 4096 image tokens)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """RoPE on the last axis, (x[2i], x[2i+1]) rotated by the angle whose cos/sin are given:
    ``x`` [..., N, D], ``cos``/``sin`` [N, D/2] (broadcast over leading axes)."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    return torch.stack([a * cos - b * sin, a * sin + b * cos], dim=-1).flatten(-2)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) v, [B, H, N, D], over query chunks."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    outputs = []
    for start in range(0, q.shape[-2], QUERY_CHUNK):
        scores = torch.matmul(q[..., start : start + QUERY_CHUNK, :] * scale, k.transpose(-1, -2))
        outputs.append(torch.matmul(torch.softmax(scores, dim=-1), v))
    return torch.cat(outputs, dim=-2)


class RealRoPEAttention(nn.Module):
    """sam2's RoPEAttention (q_proj ... out_proj reused) with real-arithmetic rotation. Keys
    beyond the first ``num_spatial`` (the object-pointer tokens) are not rotated; spatial keys
    are whole 64 x 64 maps, each rotated like the queries (``rope_k_repeat``)."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.attn = attn
        # memory attention's cross-attention reads 64-channel memories into 256-channel heads
        self.values_after = attn.v_proj.in_features < attn.internal_dim // attn.num_heads
        cis = compute_axial_cis(dim=attn.internal_dim // attn.num_heads, end_x=SIDE, end_y=SIDE)
        self.register_buffer("cos", cis.real.float().contiguous(), persistent=False)
        self.register_buffer("sin", cis.imag.float().contiguous(), persistent=False)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_spatial: int | None = None
    ) -> torch.Tensor:
        a = self.attn
        q = a._separate_heads(a.q_proj(q), a.num_heads)
        k = a._separate_heads(a.k_proj(k), a.num_heads)
        q = rotate_pairs(q, self.cos, self.sin)
        if num_spatial is None:  # self-attention: the same 4096 positions
            k = rotate_pairs(k, self.cos, self.sin)
        else:
            b, h, _, d = k.shape
            spatial = k[:, :, :num_spatial].reshape(b, h, -1, TOKENS, d)
            spatial = rotate_pairs(spatial, self.cos, self.sin).reshape(b, h, -1, d)
            k = torch.cat([spatial, k[:, :, num_spatial:]], dim=2)
        if not self.values_after:
            v = a._separate_heads(a.v_proj(v), a.num_heads)
            return a.out_proj(a._recombine_heads(attention(q, k, v)))
        # softmax rows sum to 1, so P (V W^T + b) = (P V) W^T + b: the value projection runs
        # on the mixed values, and the product with the scores is on 64 channels, not 256
        heads, head_dim = a.num_heads, a.internal_dim // a.num_heads
        mixed = attention(q, k, v[:, None])  # [B, H, N, kv_in_dim]
        weight = a.v_proj.weight.reshape(heads, head_dim, -1).transpose(1, 2)
        values = torch.matmul(mixed, weight)
        if a.v_proj.bias is not None:
            values = values + a.v_proj.bias.reshape(heads, 1, head_dim)
        return a.out_proj(a._recombine_heads(values))


def sine_pe_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """sam2.modeling.sam2_utils.get_1d_sine_pe."""
    pe_dim = dim // 2
    dim_t = torch.arange(pe_dim, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / pe_dim)
    embed = positions.unsqueeze(-1) / dim_t
    return torch.cat([embed.sin(), embed.cos()], dim=-1)


def _feature_pos(encoding: nn.Module, channels: int) -> torch.Tensor:
    """A sine position encoding of a 64 x 64 map as tokens [4096, C] (it depends on the size
    only)."""
    with torch.no_grad():
        pos = encoding(torch.zeros(1, channels, SIDE, SIDE))
    return pos[0].flatten(1).transpose(0, 1).contiguous()


class MemoryAttentionGraph(nn.Module):
    """The current frame's image tokens conditioned on an object's memories.

    Inputs: ``vision_feat`` [B, 4096, 256] (the encoder's lowest level, without the no-memory
    embedding), ``memory`` [B, Nm, 4096, 64] (Nm past frames' memory features),
    ``memory_tpos`` [B, Nm] int64 (each frame's row of ``maskmem_tpos_enc``: num_maskmem -
    t_pos - 1), ``obj_ptrs`` [B, Np, 256] (past object pointers) and ``obj_ptr_tpos`` [B, Np]
    float32 (each pointer's signed frame distance divided by max_obj_ptrs_in_encoder - 1).
    The temporal positions are each object's own, so objects of different videos, or prompted
    on different frames, share a call when their counts match. Output ``pix_feat_with_mem``
    [B, 4096, 256]: the decoder's image embedding for this frame.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        ma = model.memory_attention
        assert ma.batch_first and ma.pos_enc_at_input
        self.layers = ma.layers
        self.norm = ma.norm
        self.self_attn = nn.ModuleList(RealRoPEAttention(layer.self_attn) for layer in ma.layers)
        self.cross_attn = nn.ModuleList(
            RealRoPEAttention(layer.cross_attn_image) for layer in ma.layers
        )
        self.maskmem_tpos_enc = model.maskmem_tpos_enc  # [num_maskmem, 1, 1, mem_dim]
        self.obj_ptr_tpos_proj = model.obj_ptr_tpos_proj
        self.hidden_dim, self.mem_dim = model.hidden_dim, model.mem_dim
        neck_pos = model.image_encoder.neck.position_encoding
        mem_pos = model.memory_encoder.position_encoding
        self.register_buffer("curr_pos", _feature_pos(neck_pos, self.hidden_dim), persistent=False)
        self.register_buffer("maskmem_pos", _feature_pos(mem_pos, self.mem_dim), persistent=False)

    def forward(
        self,
        vision_feat: torch.Tensor,
        memory: torch.Tensor,
        memory_tpos: torch.Tensor,
        obj_ptrs: torch.Tensor,
        obj_ptr_tpos: torch.Tensor,
    ) -> torch.Tensor:
        b = vision_feat.shape[0]
        tpos = self.maskmem_tpos_enc.reshape(-1, self.mem_dim)[memory_tpos]  # [B, Nm, 64]
        spatial_pos = (self.maskmem_pos[None, None] + tpos[:, :, None]).reshape(b, -1, self.mem_dim)
        spatial = memory.reshape(b, -1, self.mem_dim)
        split = self.hidden_dim // self.mem_dim  # a pointer is 4 tokens of 64
        ptr_tokens = obj_ptrs.reshape(b, -1, self.mem_dim)
        ptr_pos = self.obj_ptr_tpos_proj(sine_pe_1d(obj_ptr_tpos, self.hidden_dim))
        ptr_pos = ptr_pos.repeat_interleave(split, dim=1)  # [B, 4 Np, 64]
        memory_all = torch.cat([spatial, ptr_tokens], dim=1)
        pos_all = torch.cat([spatial_pos, ptr_pos], dim=1)
        num_spatial = spatial.shape[1]

        x = vision_feat + 0.1 * self.curr_pos[None]
        for layer, self_attn, cross_attn in zip(
            self.layers, self.self_attn, self.cross_attn, strict=True
        ):
            assert not layer.pos_enc_at_attn and layer.pos_enc_at_cross_attn_keys
            assert not layer.pos_enc_at_cross_attn_queries
            t = layer.norm1(x)
            x = x + self_attn(t, t, t)
            t = layer.norm2(x)
            x = x + cross_attn(t, memory_all + pos_all, memory_all, num_spatial)
            t = layer.norm3(x)
            x = x + layer.linear2(layer.activation(layer.linear1(t)))
        return self.norm(x)


class MemoryEncoderGraph(nn.Module):
    """A frame's prediction encoded as a memory (sam2_base._encode_new_memory).

    Inputs: ``vision_feat`` [B, 4096, 256] (as above), ``mask_logits`` [B, 1, 1024, 1024] (the
    high-resolution mask logits), ``object_score_logits`` [B, 1] and ``binarize`` [1] bool
    (the mask came from clicks: thresholded at 0 instead of a sigmoid). Output
    ``maskmem_features`` [B, 4096, 64].
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.memory_encoder
        self.scale = float(model.sigmoid_scale_for_mem_enc)
        self.bias = float(model.sigmoid_bias_for_mem_enc)
        self.no_obj_embed_spatial = model.no_obj_embed_spatial  # [1, mem_dim]
        self.hidden_dim = model.hidden_dim

    def forward(
        self,
        vision_feat: torch.Tensor,
        mask_logits: torch.Tensor,
        object_score_logits: torch.Tensor,
        binarize: torch.Tensor,
    ) -> torch.Tensor:
        b = vision_feat.shape[0]
        pix_feat = vision_feat.transpose(1, 2).reshape(b, self.hidden_dim, SIDE, SIDE)
        thresholded = (mask_logits > 0).to(mask_logits.dtype)
        mask = torch.where(binarize.reshape(1, 1, 1, 1), thresholded, torch.sigmoid(mask_logits))
        mask = mask * self.scale + self.bias
        enc = self.encoder
        x = enc.pix_feat_proj(pix_feat) + enc.mask_downsampler(mask)
        features = enc.out_proj(enc.fuser(x))  # [B, 64, 64, 64]
        absent = 1.0 - (object_score_logits > 0).to(features.dtype)  # [B, 1]
        features = features + absent[:, :, None, None] * self.no_obj_embed_spatial[..., None, None]
        return features.flatten(2).transpose(1, 2)


class TrackingDecoder(OneImageDecoder):
    """The image decoder (same inputs, same masks and IoU predictions) plus what tracking reads:
    every mask token's object pointer ``obj_ptrs`` [N, 4, 256] (SAM2Base.obj_ptr_proj) and the
    ``object_score_logits`` [N, 1] (is the object in the frame at all). Which token's pointer
    counts, and the no-object gating, are the tracker's choice (``sam2_triton.video.heads``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.obj_ptr_proj = model.obj_ptr_proj
        self.obj_score_head = model.sam_mask_decoder.pred_obj_score_head

    def forward(
        self,
        image_embed: torch.Tensor,
        high_res_feats_0: torch.Tensor,
        high_res_feats_1: torch.Tensor,
        point_coords: torch.Tensor,
        point_labels: torch.Tensor,
        mask_input: torch.Tensor,
        has_mask_input: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        masks, iou, queries = self.decode(
            image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels,
            mask_input, has_mask_input,
        )  # fmt: skip
        mask_tokens = queries[:, 2 : 2 + self.num_mask_tokens, :]
        return masks, iou, self.obj_ptr_proj(mask_tokens), self.obj_score_head(queries[:, 0, :])
