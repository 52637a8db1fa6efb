"""Our decoder graph against sam2's own modules exported as they are, in ONNX Runtime, in turn.

    .venv/bin/python benchmarks/decoder_graphs.py [--prompts 1,8] [--rounds 25]

Both graphs come from the same random-weight tiny model (seed 0) and run with the server's
session settings (``runtime.runners.create_session``):
- **sam2 modules**: ``PromptEncoder`` + ``MaskDecoder.predict_masks`` exported as written (NCHW
  features, heads split by transposes, ConvTranspose, LayerNorm2d as reductions), the image's
  features repeated per prompt set as ``SAM2ImagePredictor`` does for batched prompts, and
  onnxruntime's sam2 fusions as our export applied them before (SkipLayerNormalization
  included);
- **ours**: ``export/decoder_graph.py`` as ``sam2-triton export`` writes it.
Prints ms per prompt set (medians over rounds, the two graphs alternating), the speed-up, the
FLOP rate against a 2048² fp32 GEMM measured in the same run (``decoder_flops_utilization``),
and the largest difference between the two graphs' logits. Not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sam2_triton import contract as c
from sam2_triton.bench.compute import gemm_flops_per_s
from sam2_triton.bench.machine import cpu_model, usable_cores
from sam2_triton.export import build_sam2_model, export_onnx
from sam2_triton.image.decoder_feeds import decoder_feeds, sam_layout
from sam2_triton.runtime.runners import create_session


class Sam2Modules(nn.Module):
    """sam2's prompt encoder + predict_masks, unchanged, on NCHW features (batch 1)."""

    def __init__(self, sam: nn.Module) -> None:
        super().__init__()
        self.prompt, self.decoder = sam.sam_prompt_encoder, sam.sam_mask_decoder
        with torch.no_grad():
            self.register_buffer("pe", self.prompt.get_dense_pe().clone(), persistent=False)

    def forward(self, embed, feats_0, feats_1, coords, labels, mask_input, has_mask_input):
        sparse = self.prompt._embed_points(coords, labels, pad=True)
        has = has_mask_input.reshape(-1, 1, 1, 1)
        no_mask = self.prompt.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has * self.prompt.mask_downscaling(mask_input) + (1.0 - has) * no_mask
        masks, iou, _, _ = self.decoder.predict_masks(
            image_embeddings=embed,
            image_pe=self.pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=True,
            high_res_features=[feats_0, feats_1],
        )
        return masks, iou


def export_sam2_modules(sam: nn.Module, path: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    rng = torch.Generator().manual_seed(0)
    args = (
        torch.randn(1, 256, 64, 64, generator=rng),
        torch.randn(1, 32, 256, 256, generator=rng),
        torch.randn(1, 64, 128, 128, generator=rng),
        torch.rand(2, 3, 2, generator=rng) * 1024,
        torch.ones(2, 3, dtype=torch.int32),
        torch.zeros(2, 1, 256, 256),
        torch.zeros(2, 1),
    )
    prompts = torch.export.Dim("num_prompts", min=1, max=1024)
    points = torch.export.Dim("num_points", min=1, max=64)
    shapes = (None, None, None, {0: prompts, 1: points}, {0: prompts, 1: points}, {0: prompts})
    shapes = (*shapes, {0: prompts})
    names = [t.name for t in c.DECODER_INPUTS]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            Sam2Modules(sam).eval(),
            args,
            dynamo=True,
            opset_version=18,
            input_names=names,
            output_names=[t.name for t in c.DECODER_OUTPUTS],
            dynamic_shapes=shapes,
            optimize=True,
        )
        program.save(str(path), external_data=False)
        optimize_model(str(path), model_type="sam2", opt_level=1).save_model_to_file(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", default="1,8", help="prompt sets per call, comma-separated")
    parser.add_argument("--rounds", type=int, default=25)
    args = parser.parse_args()
    counts = [int(v) for v in args.prompts.split(",")]

    from sam2_triton.bench.compute import decoder_flops
    from sam2_triton.weights.variants import get_variant

    work = Path(tempfile.mkdtemp(prefix="decoder_graphs_"))
    sam = build_sam2_model("tiny", random_weights=True, seed=0, save_random_to=work / "w.pt")
    export_onnx(sam, work / "ours")
    export_sam2_modules(sam, work / "sam2.onnx")
    sessions = {
        "sam2 modules": create_session(work / "sam2.onnx"),
        "ours": create_session(work / "ours" / c.DECODER_FILE),
    }
    rng = np.random.default_rng(0)
    ours_features = {
        t.name: rng.standard_normal(t.dims, dtype=np.float32) for t in c.DECODER_FEATURES
    }
    nchw = sam_layout(ours_features)  # the same numbers in sam2's layout
    times: dict[tuple[str, int], list[float]] = {}
    differences = []
    for count in counts:
        coords = (rng.random((count, 1, 2)) * 1024).astype(np.float32)
        ours = decoder_feeds(ours_features, coords, np.ones((count, 1), np.int32))
        feeds = {"ours": ours, "sam2 modules": {**ours, **nchw}}
        outputs = {name: s.run(None, feeds[name]) for name, s in sessions.items()}
        differences.append(float(np.abs(outputs["ours"][0] - outputs["sam2 modules"][0]).max()))
        for _ in range(args.rounds):
            for name, session in sessions.items():
                start = time.perf_counter()
                session.run(None, feeds[name])
                times.setdefault((name, count), []).append((time.perf_counter() - start) / count)
    flops = decoder_flops(get_variant("tiny").config, work / "w.pt")
    gemm = gemm_flops_per_s()
    print(f"{cpu_model()}, {usable_cores()} cores; tiny decoder, {flops / 1e9:.2f} GFLOP per set")
    print(f"fp32 GEMM (2048^2, numpy): {gemm / 1e9:.0f} GFLOP/s")
    for count in counts:
        base = float(np.median(times[("sam2 modules", count)])) * 1e3
        ours = float(np.median(times[("ours", count)])) * 1e3
        print(
            f"{count:3d} prompt set(s) per call: sam2 modules {base:6.1f} ms, ours {ours:6.1f} ms "
            f"per set ({base / ours:.2f}x); utilization {flops / (base / 1e3) / gemm:.2f} -> "
            f"{flops / (ours / 1e3) / gemm:.2f}"
        )
    print(f"largest logit difference between the graphs: {max(differences):.2e}")


if __name__ == "__main__":
    main()
