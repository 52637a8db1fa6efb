"""Export the video tracker's memory attention, memory encoder and tracking decoder to ONNX,
and check them against sam2's own modules.

Axes: B objects tracked together, Nm memory frames and Np object pointers per frame, all
dynamic. The files sit beside the image encoder and decoder in the export folder.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sam2_triton import contract
from sam2_triton.contract import (
    MEMORY_ATTENTION_FILE,
    MEMORY_ENCODER_FILE,
    TRACKER_CONSTANTS_FILE,
    TRACKING_DECODER_FILE,
)
from sam2_triton.export.onnx_export import example_decoder_inputs, optimize_onnx_file
from sam2_triton.export.tracker_graph import (
    TOKENS,
    MemoryAttentionGraph,
    MemoryEncoderGraph,
    TrackingDecoder,
)
from sam2_triton.runtime.runners import create_session

TRACKING_DECODER_OUTPUTS = [t.name for t in contract.TRACKING_DECODER_OUTPUTS]
OPSET = 18
# Example sizes for tracing: none of them 1, which dynamo would freeze to a constant.
_OBJECTS, _MEMORIES, _POINTERS = 2, 2, 3


@dataclass(frozen=True)
class TrackerExport:
    memory_attention: Path
    memory_encoder: Path
    tracking_decoder: Path
    seconds: float


def example_memory_attention_inputs(
    objects: int = _OBJECTS, memories: int = _MEMORIES, pointers: int = _POINTERS, seed: int = 0
) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "vision_feat": torch.randn(objects, TOKENS, 256, generator=gen),
        "memory": torch.randn(objects, memories, TOKENS, 64, generator=gen),
        "memory_tpos": (torch.arange(memories, dtype=torch.int64) + torch.arange(objects)[:, None])
        % 7,
        "obj_ptrs": torch.randn(objects, pointers, 256, generator=gen),
        "obj_ptr_tpos": torch.arange(1, pointers + 1, dtype=torch.float32).repeat(objects, 1)
        / (15 - torch.arange(objects, dtype=torch.float32)[:, None]),
    }


def example_memory_encoder_inputs(objects: int = _OBJECTS, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    return {
        "vision_feat": torch.randn(objects, TOKENS, 256, generator=gen),
        "mask_logits": torch.randn(objects, 1, 1024, 1024, generator=gen) * 4,
        "object_score_logits": torch.linspace(-1, 1, objects).reshape(objects, 1),
        "binarize": torch.tensor([True]),
    }


def export_tracker_onnx(model: nn.Module, out_dir: Path) -> TrackerExport:
    """Write memory_attention.onnx, memory_encoder.onnx and tracking_decoder.onnx into
    ``out_dir`` (the decoder with onnxruntime's SAM 2 fusions, as the image decoder)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    objects = torch.export.Dim("objects", min=1, max=256)
    memories = torch.export.Dim("memories", min=1, max=64)
    pointers = torch.export.Dim("pointers", min=1, max=256)
    attention_path = out_dir / MEMORY_ATTENTION_FILE
    _export(
        MemoryAttentionGraph(model).eval(),
        example_memory_attention_inputs(),
        {
            "vision_feat": {0: objects},
            "memory": {0: objects, 1: memories},
            "memory_tpos": {0: objects, 1: memories},
            "obj_ptrs": {0: objects, 1: pointers},
            "obj_ptr_tpos": {0: objects, 1: pointers},
        },
        [t.name for t in contract.MEMORY_ATTENTION_OUTPUTS],
        attention_path,
    )
    encoder_path = out_dir / MEMORY_ENCODER_FILE
    _export(
        MemoryEncoderGraph(model).eval(),
        example_memory_encoder_inputs(),
        {
            "vision_feat": {0: objects},
            "mask_logits": {0: objects},
            "object_score_logits": {0: objects},
            "binarize": None,
        },
        [t.name for t in contract.MEMORY_ENCODER_OUTPUTS],
        encoder_path,
    )
    decoder_path = out_dir / TRACKING_DECODER_FILE
    prompts = torch.export.Dim("num_prompts", min=1, max=4096)
    points = torch.export.Dim("num_points", min=1, max=4096)
    features = {t.name for t in contract.DECODER_FEATURES}
    decoder_inputs = example_decoder_inputs()
    shapes = {name: None if name in features else {0: prompts} for name in decoder_inputs}
    shapes["point_coords"] = {0: prompts, 1: points}
    shapes["point_labels"] = {0: prompts, 1: points}
    _export(
        TrackingDecoder(model).eval(),
        decoder_inputs,
        shapes,
        TRACKING_DECODER_OUTPUTS,
        decoder_path,
    )
    optimize_onnx_file(decoder_path)
    np.savez(
        out_dir / TRACKER_CONSTANTS_FILE,
        no_mem_embed=model.no_mem_embed.detach().numpy().reshape(-1),
        no_obj_ptr=model.no_obj_ptr.detach().numpy().reshape(1, -1),
        mask_downsample_weight=model.mask_downsample.weight.detach().numpy(),
        mask_downsample_bias=model.mask_downsample.bias.detach().numpy(),
    )
    seconds = round(time.perf_counter() - start, 2)
    return TrackerExport(attention_path, encoder_path, decoder_path, seconds)


def _export(module: nn.Module, inputs: dict, shapes: dict, outputs: list[str], path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            tuple(inputs.values()),
            dynamo=True,
            opset_version=OPSET,
            input_names=list(inputs),
            output_names=outputs,
            dynamic_shapes=shapes,
            optimize=True,
            verbose=False,
        )
        program.save(str(tmp), external_data=False)
    tmp.replace(path)


# --- parity with sam2's modules ---------------------------------------------------------------


def reference_memory_attention(model: nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """sam2's memory_attention on the memory sequence as _prepare_memory_conditioned_features
    assembles it (seq-first, pointers split into mem_dim tokens, positions added), object by
    object (each with its own temporal positions, as the reference tracks each on its own)."""
    return np.concatenate(
        [
            _reference_one_object(model, {k: v[i : i + 1] for k, v in inputs.items()})
            for i in range(inputs["vision_feat"].shape[0])
        ]
    )


def _reference_one_object(model: nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    feat, memory = inputs["vision_feat"], inputs["memory"]
    b, frames = feat.shape[0], memory.shape[1]
    c, mem_dim = model.hidden_dim, model.mem_dim
    with torch.no_grad():
        pix = feat.transpose(1, 2).reshape(b, c, 64, 64)
        neck_pos = model.image_encoder.neck.position_encoding(pix)
        curr_pos = neck_pos.flatten(2).permute(2, 0, 1)
        dummy_mask = torch.zeros(b, 1, 1024, 1024)
        mem_pos = model.memory_encoder(pix, dummy_mask)["vision_pos_enc"][-1]
        to_cat, to_cat_pos = [], []
        for f in range(frames):
            maps = memory[:, f].transpose(1, 2).reshape(b, mem_dim, 64, 64)
            to_cat.append(maps.flatten(2).permute(2, 0, 1))
            enc = mem_pos.flatten(2).permute(2, 0, 1)
            to_cat_pos.append(enc + model.maskmem_tpos_enc[int(inputs["memory_tpos"][0, f])])
        ptrs = inputs["obj_ptrs"].transpose(0, 1)  # [Np, B, C]
        from sam2.modeling.sam2_utils import get_1d_sine_pe

        obj_pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(inputs["obj_ptr_tpos"][0], dim=c))
        obj_pos = obj_pos.unsqueeze(1).expand(-1, b, mem_dim)
        ptrs = ptrs.reshape(-1, b, c // mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(c // mem_dim, dim=0)
        out = model.memory_attention(
            curr=[feat.transpose(0, 1)],
            curr_pos=[curr_pos],
            memory=torch.cat([*to_cat, ptrs], dim=0),
            memory_pos=torch.cat([*to_cat_pos, obj_pos], dim=0),
            num_obj_ptr_tokens=ptrs.shape[0],
        )
    return out.transpose(0, 1).numpy()


def reference_memory_encoder(model: nn.Module, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    """sam2_base._encode_new_memory, with the video predictor's binarize_mask_from_pts."""
    feat = inputs["vision_feat"]
    saved = model.binarize_mask_from_pts_for_mem_enc
    model.binarize_mask_from_pts_for_mem_enc = True
    try:
        with torch.no_grad():
            features, _ = model._encode_new_memory(
                current_vision_feats=[feat.transpose(0, 1)],
                feat_sizes=[(64, 64)],
                pred_masks_high_res=inputs["mask_logits"],
                object_score_logits=inputs["object_score_logits"],
                is_mask_from_pts=bool(inputs["binarize"][0]),
            )
    finally:
        model.binarize_mask_from_pts_for_mem_enc = saved
    return features.flatten(2).transpose(1, 2).numpy()


def run_onnx(path: Path, inputs: dict[str, torch.Tensor]) -> np.ndarray:
    session = create_session(path)
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]


def verify_tracker(model: nn.Module, export: TrackerExport) -> dict[str, float]:
    """Largest |ONNX - sam2| of memory attention (2 objects, 3 memories, 4 pointers) and of
    the memory encoder (click masks binarised), on example inputs."""
    attention_inputs = example_memory_attention_inputs(objects=2, memories=3, pointers=4, seed=1)
    encoder_inputs = example_memory_encoder_inputs(objects=2, seed=1)
    attention = run_onnx(export.memory_attention, attention_inputs)
    encoder = run_onnx(export.memory_encoder, encoder_inputs)
    return {
        "memory_attention": float(
            np.abs(attention - reference_memory_attention(model, attention_inputs)).max()
        ),
        "memory_encoder": float(
            np.abs(encoder - reference_memory_encoder(model, encoder_inputs)).max()
        ),
    }
