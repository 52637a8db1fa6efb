"""SAM 3's concept detector as one ONNX graph: an image's features (the vision graph's detector
pyramid), phrases' features (the text graph's) and example boxes in; every query's score, box and
mask out (issue 34).

The graph is ``Sam3Image.forward_grounding`` (sam3/model/sam3_image.py) itself, traced: the
geometry encoder (example boxes, pooled from the image with RoIAlign, and its CLS token), the
fusion encoder (image attending to the prompt), the decoder (200 queries, a presence token,
box-relative position bias), the dot-product scoring and the segmentation head. One image and
one prompt a call, as ``Sam3Processor`` asks: a phrase (``text_features``, ``text_mask`` True on
padding) and up to MAX_BOXES example boxes (``boxes``, centre-size in [0, 1] of the image,
``box_labels`` 1 positive and 0 negative, ``box_mask`` True on padding). Every shape is fixed:
unused box slots are padding, masked out of every attention and pooling, which gives what
sam3 gives for the valid boxes alone (none: an empty box list). sam3's attention and RoIAlign
read sizes as Python numbers, which a trace fixes at the traced ones: prompts go one a call and
the box slots are always MAX_BOXES.

What sam3 does on the host stays on the host: thresholding ``sigmoid(pred_logits) *
sigmoid(presence_logit)``, the masks' resize to the image, the boxes' scale. The feature maps'
position encodings depend only on their sizes: computed here, they fold into constants.
"""

from __future__ import annotations

import contextlib
import copy
import types
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from sam2_triton.concepts.graphs import DETECTOR_INPUTS, DETECTOR_OUTPUTS, FEATURES, MAX_BOXES

INPUT_NAMES, OUTPUT_NAMES = DETECTOR_INPUTS, DETECTOR_OUTPUTS


@contextlib.contextmanager
def unpinned_memory() -> Iterator[None]:
    """sam3's geometry encoder pins a small tensor before moving it to the model's device
    (``_encode_boxes``); a machine without CUDA cannot pin. Inside this block pinning is a
    no-op, which changes no number."""
    original = torch.Tensor.pin_memory
    torch.Tensor.pin_memory = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.pin_memory = original


def _boxes_then_cls(
    self: nn.Module, geo_prompt, img_feats, img_sizes, img_pos_embeds=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``SequenceGeometryEncoder.forward`` (sam3/model/geometry_encoders.py) for example boxes
    alone, what ``Sam3Processor`` sends (no points, no masks), with the CLS token after every
    box slot rather than after the valid ones: no position reaches these tokens and padded
    slots are masked wherever they are read, so the order changes no number. (sam3 places it by
    a scatter at computed indices, ``concat_padded_sequences``, which does not export.)"""
    feats = self.img_pre_norm(img_feats[-1])  # [H*W, B, C]
    (height, width), (batch, channels) = img_sizes[-1], feats.shape[-2:]
    feats = feats.permute(1, 2, 0).view(batch, channels, height, width)
    embeds, mask = self._encode_boxes(
        geo_prompt.box_embeddings, geo_prompt.box_mask, geo_prompt.box_labels, feats
    )
    cls = self.cls_embed.weight.view(1, 1, self.d_model).repeat(1, embeds.shape[1], 1)
    embeds = torch.cat([embeds, cls], dim=0)
    mask = torch.cat([mask, torch.zeros_like(mask[:, :1])], dim=1)
    embeds = self.norm(self.final_proj(embeds))
    for layer in self.encode:
        embeds = layer(
            tgt=embeds, memory=img_feats[-1], tgt_key_padding_mask=mask, pos=img_pos_embeds[-1]
        )
    return self.encode_norm(embeds), mask


class ConceptDetector(nn.Module):
    """``Sam3Image.forward_grounding`` on tensors: the inputs of INPUT_NAMES (fpn maps
    [1, 256, S, S]; text [1, 32, 256] batch first; boxes [1, MAX_BOXES, 4], padded slots
    holding finite numbers) to OUTPUT_NAMES. Shares the detector's modules with ``model``, which
    must be in eval mode (it changes none; its geometry encoder is a copy, with the forward of
    ``_boxes_then_cls``); leaves out its backbone and its interactive model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.training:
            raise ValueError("put the model in eval mode: the graph shares its modules")
        if model.transformer.encoder.add_pooled_text_to_img_feat:
            raise ValueError("a fusion encoder that pools the prompt unmasked would read padding")
        detector = copy.copy(model)
        detector._modules = {
            name: module
            for name, module in model._modules.items()
            if name not in ("backbone", "inst_interactive_predictor")
        }
        detector._modules["inst_interactive_predictor"] = None
        geometry = copy.deepcopy(model.geometry_encoder)
        if geometry.encode_boxes_as_points or geometry.final_proj is None or not geometry.encode:
            raise ValueError("a geometry encoder built otherwise than sam3's builder builds it")
        geometry.forward = types.MethodType(_boxes_then_cls, geometry)
        detector._modules["geometry_encoder"] = geometry
        self.detector = detector
        self.position_encoding = model.backbone.vision_backbone.position_encoding

    def forward(
        self,
        fpn_288: torch.Tensor,
        fpn_144: torch.Tensor,
        fpn_72: torch.Tensor,
        text_features: torch.Tensor,
        text_mask: torch.Tensor,
        boxes: torch.Tensor,
        box_labels: torch.Tensor,
        box_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        from sam3.model.data_misc import FindStage
        from sam3.model.geometry_encoders import Prompt

        fpn = [fpn_288, fpn_144, fpn_72]
        backbone_out = {
            "backbone_fpn": fpn,
            "vision_pos_enc": [self.position_encoding(x).to(x.dtype) for x in fpn],
            "language_features": text_features.transpose(0, 1),
            "language_mask": text_mask,
        }
        zero = torch.zeros(1, dtype=torch.int64, device=fpn_72.device)
        find = FindStage(
            img_ids=zero, text_ids=zero, input_boxes=None, input_boxes_mask=None,
            input_boxes_label=None, input_points=None, input_points_mask=None,
        )  # fmt: skip
        geometry = Prompt(
            box_embeddings=boxes.transpose(0, 1),
            box_mask=box_mask,
            box_labels=box_labels.transpose(0, 1),
        )
        out = self.detector.forward_grounding(backbone_out, find, None, geometry)
        return (
            out["pred_logits"][..., 0],
            out["pred_boxes"],
            out["presence_logit_dec"],
            out["pred_masks"],
        )


def example_inputs(boxes: int = 2) -> dict[str, torch.Tensor]:
    """Tracing inputs in INPUT_NAMES' order: a phrase of 5 tokens and ``boxes`` example boxes
    (the last negative) in the MAX_BOXES slots."""
    gen = torch.Generator().manual_seed(0)
    sides = {name: int(name.split("_")[1]) for name in FEATURES}  # fpn_288: 288 x 288
    text_mask = torch.ones(1, 32, dtype=torch.bool)
    text_mask[:, :5] = False
    box_mask = torch.ones(1, MAX_BOXES, dtype=torch.bool)
    box_mask[:, :boxes] = False
    labels = torch.ones(1, MAX_BOXES, dtype=torch.int64)
    labels[0, boxes - 1] = 0
    centres = torch.rand(1, MAX_BOXES, 2, generator=gen) * 0.5 + 0.25
    sizes = torch.rand(1, MAX_BOXES, 2, generator=gen) * 0.3 + 0.1
    return {
        **{name: torch.randn(1, 256, side, side, generator=gen) for name, side in sides.items()},
        "text_features": torch.randn(1, 32, 256, generator=gen),
        "text_mask": text_mask,
        "boxes": torch.cat([centres, sizes], dim=-1),
        "box_labels": labels,
        "box_mask": box_mask,
    }


def export_detector_onnx(model: nn.Module, path: Path, opset: int = 17) -> Path:
    """Write ``ConceptDetector(model)`` to ``path`` (TorchScript exporter, fixed shapes),
    written beside and renamed into place: a failed export leaves nothing."""
    module = ConceptDetector(model).eval()
    inputs = example_inputs()
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), warnings.catch_warnings(), unpinned_memory():
        warnings.simplefilter("ignore")  # the tracer's notes on sam3's shape checks
        torch.onnx.export(
            module, tuple(inputs.values()), str(tmp), dynamo=False, opset_version=opset,
            input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
            do_constant_folding=True,
        )  # fmt: skip
    tmp.replace(path)
    return path
