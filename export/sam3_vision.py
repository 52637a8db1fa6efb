"""SAM 3's vision backbone (its ViT and both necks) as one ONNX graph: the features the concept
detector and the interactive model share, computed once per image (issue 34).

What is changed for the export, and nothing else:
- the ViT's 2-D RoPE multiplies complex numbers (``vitdet.apply_rotary_enc``), which ONNX has
  no type for; each attention's (even, odd) channel pairs are rotated here in real arithmetic
  with the cos/sin of the same ``freqs_cis`` (``tracker_graph.rotate_pairs``, as for SAM 2's
  memory attention);
- the interactive model's features leave as its decoder reads them: the 288 and 144 levels
  through its ``conv_s0``/``conv_s1`` and the 72 level plus ``no_mem_embed`` (what
  ``Sam3Processor.set_image`` and ``Sam3Image.predict_inst`` do), in the row layout of SAM 2's
  decoder graph (``decoder_layout``), under SAM 2's names: one decoder graph serves both;
- the position encodings of the feature maps depend only on the image size (1008 square) and are
  left out: the graphs that read the features take them as constants.
The module is a copy: the model it was made from (a reference, in the tests) is left as it was.
"""

from __future__ import annotations

import copy
import types
import warnings
from pathlib import Path

import torch
from torch import nn

from sam2_triton.concepts.graphs import IMAGE_SIZE
from sam2_triton.export.decoder_graph import decoder_layout
from sam2_triton.export.tracker_graph import rotate_pairs

#: The six outputs: the detector's feature pyramid [B, 256, S, S] (S = 288, 144, 72), then the
#: interactive model's features as SAM 2's decoder graph reads them (``contract.ENCODER_OUTPUTS``'
#: names): [B, 5184, 256], [B, 20736, 128], [B, 5184, 256].
OUTPUT_NAMES = (
    "fpn_288", "fpn_144", "fpn_72", "image_embed", "high_res_feats_0", "high_res_feats_1",
)  # fmt: skip


def _real_rope(self: nn.Module, q: torch.Tensor, k: torch.Tensor):
    """``Attention._apply_rope`` (sam3/model/vitdet.py) in real arithmetic."""
    cos, sin = self.rope_cos, self.rope_sin
    return rotate_pairs(q, cos, sin), rotate_pairs(k, cos, sin)


class VisionBackbone(nn.Module):
    """``SAM3VLBackbone.forward_image`` (sam3/model/vl_combiner.py) without the position
    encodings, and the interactive features as ``Sam3Image.predict_inst`` prepares them: image
    [B, 3, 1008, 1008], normalised as ``Sam3Processor`` does, to the six outputs of
    OUTPUT_NAMES. ``scalp`` levels (the coarsest) are dropped, as the model drops them."""

    def __init__(self, vl_backbone: nn.Module, tracker: nn.Module) -> None:
        super().__init__()
        neck = copy.deepcopy(vl_backbone.vision_backbone)
        if neck.sam2_convs is None:
            raise ValueError("build the model with enable_inst_interactivity=True: the "
                             "interactive model's neck is part of this graph")  # fmt: skip
        for attention in neck.trunk.modules():
            freqs = getattr(attention, "freqs_cis", None)
            if isinstance(freqs, torch.Tensor) and freqs.is_complex():
                del attention._buffers["freqs_cis"]
                attention.freqs_cis = None
                attention.register_buffer("rope_cos", freqs.real.float().contiguous())
                attention.register_buffer("rope_sin", freqs.imag.float().contiguous())
                attention._apply_rope = types.MethodType(_real_rope, attention)
        self.trunk, self.convs, self.interactive_convs = neck.trunk, neck.convs, neck.sam2_convs
        self.levels = len(neck.convs) - vl_backbone.scalp
        decoder = tracker.sam_mask_decoder
        self.conv_s0, self.conv_s1 = copy.deepcopy(decoder.conv_s0), copy.deepcopy(decoder.conv_s1)
        self.register_buffer("no_mem_embed", tracker.no_mem_embed.detach().reshape(1, -1, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.trunk(image)[-1]
        detector = [self.convs[i](x) for i in range(self.levels)]
        fine, middle, coarse = (self.interactive_convs[i](x) for i in range(self.levels))
        interactive = decoder_layout(
            coarse + self.no_mem_embed, self.conv_s0(fine), self.conv_s1(middle)
        )
        return (*detector, *interactive)


def export_vision_onnx(
    vl_backbone: nn.Module, tracker: nn.Module, path: Path, opset: int = 17
) -> Path:
    """Write ``VisionBackbone(vl_backbone, tracker)`` to ``path`` (TorchScript exporter, a
    dynamic batch axis), written beside and renamed into place: a failed export leaves nothing."""
    module = VisionBackbone(vl_backbone, tracker).eval()
    example = torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)
    names = ["image", *OUTPUT_NAMES]
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on sam3's shape checks
        torch.onnx.export(
            module, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=names[:1], output_names=names[1:],
            dynamic_axes={name: {0: "batch"} for name in names}, do_constant_folding=True,
        )  # fmt: skip
    tmp.replace(path)
    return path
