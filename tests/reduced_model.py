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


def build_test_model(seed: int = SEED, **kwargs):
    """The tests' random-weight model in memory: ``tiny_export``'s weights for seed 0."""
    from sam2_triton.export import build_sam2_model

    return build_sam2_model("tiny", random_weights=True, seed=seed, overrides=REDUCED, **kwargs)
