"""The tests' model: SAM 2.1 tiny at reduced depth, with seeded random weights.

Hiera keeps its four stages and every kind of block (windowed, global, pooling: stages
[1, 1, 2, 1], the global block inside stage 3) and memory attention keeps one of its four layers;
every tensor between the graphs keeps its shape, so the served models, the clients and the
references run the code users run. The encoder costs half of tiny's, memory attention a quarter
(the suite is compute-bound: docs/testing.md). The full depth is exported and checked once
(``test_export_parity``'s full-depth test); users' exports are never reduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED = 0

#: Added to the object-score head's last bias: random weights put a frame's object score within
#: about 0.2 of 0 whatever the frame (seeds 0-3 of this model: -0.18 to +0.08), so its sign, not
#: the video, decided whether a tracked object was "absent" everywhere (its masks then empty and
#: video parity comparing nothing). A real model's present objects score far above 0; so do these.
#: The absent branch is checked on its own (``test_export_tracker``).
OBJECT_PRESENT_BIAS = 2.0

#: Hydra overrides of ``sam2.1_hiera_t.yaml`` (``build_sam2``'s ``hydra_overrides_extra``).
REDUCED = (
    "++model.image_encoder.trunk.stages=[1,1,2,1]",
    "++model.image_encoder.trunk.global_att_blocks=[3]",
    "++model.memory_attention.num_layers=1",
)


@dataclass(frozen=True)
class TinyExport:
    export_dir: Path
    checkpoint: Path
    config: str
    overrides: tuple[str, ...] = REDUCED

    def build(self, **kwargs):
        """sam2's own builder on the checkpoint the export saved (``build_sam2``'s keywords)."""
        from sam2.build_sam import build_sam2

        kwargs.setdefault("device", "cpu")
        return build_sam2(
            self.config, ckpt_path=str(self.checkpoint), hydra_overrides_extra=list(self.overrides),
            **kwargs,
        )  # fmt: skip


def build_test_model(seed: int = SEED, save_random_to: Path | None = None):
    """The tests' random-weight model in memory (``tiny_export``'s weights for seed 0),
    saved in the official layout to ``save_random_to`` if given."""
    import torch

    from sam2_triton.export import build_sam2_model, save_checkpoint
    from sam2_triton.export.model_builder import PROVENANCE_ATTR

    model = build_sam2_model("tiny", random_weights=True, seed=seed, overrides=REDUCED)
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias += OBJECT_PRESENT_BIAS
    provenance = getattr(model, PROVENANCE_ATTR)
    provenance["object_score_bias_added"] = OBJECT_PRESENT_BIAS
    if save_random_to is not None:
        save_checkpoint(model, save_random_to)
        provenance["saved_checkpoint"] = str(save_random_to)
    return model
