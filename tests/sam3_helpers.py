"""SAM 3 references for the tests, built from sam3's own constructors at reduced size.

sam3's builder has no size arguments and its full model has 860 M parameters (a 32-block ViT-L
on 1008 x 1008 images: about 30 s an image on these CPUs), so the tests build the same modules
with sam3's classes and the builder's arguments, fewer and narrower blocks: the same code paths
(windowed and global attention, 2-D RoPE interpolated from the 24 x 24 pretraining grid, the
tiled absolute position embedding, both necks). Every parameter then gets seeded noise: after
the default init LayerNorms are exactly 1 and 0 and the two necks are copies of each other, so
a graph that dropped an affine part or swapped the necks would pass."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from sam2_triton.concepts.tokens import clip_vocabulary  # noqa: F401 - the tests' import
from sam2_triton.export.sam3_export import perturbed


def reduced_vision_backbone(seed: int = 0, embed_dim: int = 128, depth: int = 2) -> nn.Module:
    """``SAM3VLBackbone`` (vision only) as ``model_builder._create_vision_backbone`` builds it
    with ``enable_inst_interactivity=True``, but ``depth`` blocks of ``embed_dim`` (the last
    global, the others windowed), in eval mode."""
    from sam3.model.necks import Sam3DualViTDetNeck
    from sam3.model.position_encoding import PositionEmbeddingSine
    from sam3.model.vitdet import ViT
    from sam3.model.vl_combiner import SAM3VLBackbone

    torch.manual_seed(seed)
    trunk = ViT(
        img_size=1008, pretrain_img_size=336, patch_size=14, embed_dim=embed_dim, depth=depth,
        num_heads=embed_dim // 32, mlp_ratio=4.625, norm_layer="LayerNorm", drop_path_rate=0.1,
        qkv_bias=True, use_abs_pos=True, tile_abs_pos=True, global_att_blocks=(depth - 1,),
        rel_pos_blocks=(), use_rope=True, use_interp_rope=True, window_size=24,
        pretrain_use_cls_token=True, retain_cls_token=False, ln_pre=True, ln_post=False,
        return_interm_layers=False, bias_patch_embed=False,
    )  # fmt: skip
    # precompute_resolution=None: the builder's 1008 fills a cache on CUDA (the same numbers)
    position = PositionEmbeddingSine(num_pos_feats=256, normalize=True, temperature=10000)
    neck = Sam3DualViTDetNeck(trunk=trunk, position_encoding=position, d_model=256,
                              scale_factors=[4.0, 2.0, 1.0, 0.5], add_sam2_neck=True)  # fmt: skip
    return perturbed(SAM3VLBackbone(visual=neck, text=None, scalp=1), seed)


def interactive_tracker(seed: int = 0) -> nn.Module:
    """SAM 3's interactive model at full size (``model_builder.build_tracker`` as
    ``build_sam3_image_model`` calls it: 12 M parameters, built in a fraction of a second)."""
    import sam3.model_builder as builder

    from sam2_triton.export.sam3_interactive import cpu_construction

    torch.manual_seed(seed)
    with cpu_construction():
        tracker = builder.build_tracker(apply_temporal_disambiguation=False)
    return perturbed(tracker, seed)


def reduced_text_encoder(seed: int = 0, width: int = 128, layers: int = 2) -> nn.Module:
    """``VETextEncoder`` as ``model_builder._create_text_encoder`` builds it (sam3's tokenizer,
    CLIP's vocabulary, 32 tokens) with ``layers`` blocks of ``width``, seeded weights (its
    positional embedding and projection are left uninitialised by sam3: ``torch.empty``)."""
    from sam3.model.text_encoder_ve import VETextEncoder
    from sam3.model.tokenizer_ve import SimpleTokenizer

    torch.manual_seed(seed)
    tokenizer = SimpleTokenizer(bpe_path=str(clip_vocabulary()))
    encoder = VETextEncoder(d_model=256, tokenizer=tokenizer, width=width, heads=width // 32,
                            layers=layers)  # fmt: skip
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for parameter in encoder.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=gen) * 0.05)
    return encoder.eval()


#: Layers of the fusion encoder kept (of sam3's 6, all alike): two, so that one layer's output
#: feeding the next is checked. The encoder is 60 % of the full detector's time on a CPU (its
#: self-attention over 72 x 72 tokens); the decoder keeps all 6 layers (under 1 % each).
ENCODER_LAYERS = 2


def reduced_concept_model(seed: int = 0, interactive: bool = False) -> nn.Module:
    """``Sam3Image`` as ``build_sam3_image_model`` assembles it (the builder's own fusion
    encoder, decoder, geometry encoder, segmentation head and scoring: the encoder's first
    ``ENCODER_LAYERS`` layers, the decoder's 6 layers and 200 queries) on the reduced vision
    backbone and text encoder above; with ``interactive``, its interactive model inside as the
    builder puts it. The detector's parameters get seeded noise too, in eval mode."""
    import sam3.model_builder as builder
    from sam3.model.vl_combiner import SAM3VLBackbone

    from sam2_triton.export.sam3_interactive import cpu_construction

    vision = reduced_vision_backbone(seed)
    backbone = SAM3VLBackbone(visual=vision.vision_backbone, text=reduced_text_encoder(seed),
                              scalp=1)  # fmt: skip
    torch.manual_seed(seed)
    with cpu_construction():
        parts = {
            "transformer": builder._create_sam3_transformer(),
            "input_geometry_encoder": builder._create_geometry_encoder(),
            "segmentation_head": builder._create_segmentation_head(),
            "dot_prod_scoring": builder._create_dot_product_scoring(),
        }
    encoder = parts["transformer"].encoder
    encoder.layers, encoder.num_layers = encoder.layers[:ENCODER_LAYERS], ENCODER_LAYERS
    for part in parts.values():
        perturbed(part, seed)
    predictor = None
    if interactive:
        from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor

        predictor = SAM3InteractiveImagePredictor(interactive_tracker(seed))
    return builder._create_sam3_model(
        backbone, *parts.values(), inst_interactive_predictor=predictor, eval_mode=True
    ).eval()


def interactive_reference(sam3_model, rgb):
    """Meta's path for SAM 3's clicks: ``Sam3Processor.set_image`` on the concept model's
    backbone, then ``predict_inst`` asks its ``SAM3InteractiveImagePredictor`` (the
    ``sam3_model`` fixture's weights). Returns ``predict(**kwargs)``: its (masks, iou,
    low-res logits) for a prompt."""
    from types import SimpleNamespace

    from PIL import Image
    from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
    from sam3.model.sam3_image import Sam3Image
    from sam3.model.sam3_image_processor import Sam3Processor

    concept_model, tracker = sam3_model
    model = SimpleNamespace(
        backbone=concept_model.backbone,
        inst_interactive_predictor=SAM3InteractiveImagePredictor(tracker),
    )
    with torch.no_grad():
        state = Sam3Processor(model, device="cpu").set_image(Image.fromarray(rgb))

    def predict(**kwargs):
        with torch.no_grad():
            return Sam3Image.predict_inst(model, state, **kwargs)

    return predict


def sam3_automatic_generator(sam3_model, **params):
    """Meta's ``SAM2AutomaticMaskGenerator`` over SAM 3's interactive model: its predictor a
    ``SAM3InteractiveImagePredictor`` (holes and sprinkles as the generator sets them, from
    ``min_mask_region_area``), whose ``set_image`` installs the features as ``predict_inst``
    does from ``Sam3Processor.set_image``'s state (the interactive model has no backbone)."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam3.model.sam1_task_predictor import SAM3InteractiveImagePredictor
    from sam3.model.sam3_image_processor import Sam3Processor

    concept_model, tracker = sam3_model
    area = params.get("min_mask_region_area", 0)
    predictor = SAM3InteractiveImagePredictor(tracker, max_hole_area=area, max_sprinkle_area=area)
    processor = Sam3Processor(concept_model, device="cpu")

    def set_image(image) -> None:  # Sam3Image.predict_inst's preparation, on this image
        with torch.no_grad():
            state = processor.set_image(Image.fromarray(image))
        backbone_out = state["backbone_out"]["sam2_backbone_out"]
        _, feats, _, _ = tracker._prepare_backbone_features(backbone_out)
        feats[-1] = feats[-1] + tracker.no_mem_embed
        pairs = zip(feats[::-1], predictor._bb_feat_sizes[::-1], strict=True)
        maps = [f.permute(1, 2, 0).view(1, -1, *size) for f, size in pairs][::-1]
        predictor._features = {"image_embed": maps[-1], "high_res_feats": maps[:-1]}
        predictor._orig_hw = [image.shape[:2]]
        predictor._is_image_set = True

    predictor.set_image = set_image
    generator = SAM2AutomaticMaskGenerator.__new__(SAM2AutomaticMaskGenerator)
    SAM2AutomaticMaskGenerator.__init__(generator, tracker, **params)  # its own checks
    generator.predictor = predictor
    return generator


CLICKS_HW = (300, 400)  # the clicks tests' image


def clicks_image() -> np.ndarray:
    """Noise with a flat region: random weights answer it with speckled, holed masks."""
    rgb = np.random.default_rng(3).integers(0, 255, (*CLICKS_HW, 3), dtype=np.uint8)
    rgb[100:200, 150:300] = (200, 40, 40)
    return rgb


def clicks_png() -> np.ndarray:
    """``clicks_image`` as a PNG file, the UINT8 array the image input takes."""
    buffer = io.BytesIO()
    Image.fromarray(clicks_image()).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


def assert_like_predict_inst(ours, masks, iou, low_res) -> None:
    """SESSION_OUTPUTS (ours) against predict_inst's answer to the same prompt: masks on
    >= 0.999 of pixels, IoU within 1e-4, low-res logits within 5e-4."""
    masks = np.asarray(masks).reshape(-1, *CLICKS_HW)
    assert ours["masks"].shape == masks.shape and ours["low_res_logits"].shape[1:] == (288, 288)
    np.testing.assert_allclose(ours["iou_scores"], np.asarray(iou).reshape(-1), atol=1e-4)
    np.testing.assert_allclose(ours["low_res_logits"], low_res.reshape(-1, 288, 288), atol=5e-4)
    agree = (ours["masks"] == masks.astype(np.uint8)).mean()
    assert agree >= 0.999, agree
