"""Random weights in the official checkpoint format: saved and reloaded by sam2's own builder
bit for bit, no parameter left at a constant init (parity would miss it), reproducible per seed,
and strict loading that names a wrong key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sam2_triton import contract  # noqa: E402
from sam2_triton.export import build_sam2_model  # noqa: E402
from sam2_triton.export.wrappers import PromptMaskDecoder  # noqa: E402
from tests.reduced_model import REDUCED, SEED, build_test_model  # noqa: E402

MASK = contract.LOW_RES_MASK_SIZE


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    """The same random weights as ``tiny_export`` (seed 0), rebuilt in memory (~1 s)."""
    torch.set_num_threads(2)
    return build_test_model()


@pytest.fixture(scope="module")
def reference_model(tiny_export) -> torch.nn.Module:
    """sam2's own builder reading the checkpoint that the random-weight build saved."""
    return tiny_export.build(mode="eval")


def test_saved_random_checkpoint_reloads_identically(model, reference_model) -> None:
    own, loaded = model.state_dict(), reference_model.state_dict()
    assert own.keys() == loaded.keys()
    assert all(torch.equal(own[k], loaded[k]) for k in own)
    inputs = {
        name: torch.from_numpy(value)
        for name, value in {
            "image_embed": np.random.default_rng(0).normal(size=(1, 4096, 256)),
            "high_res_feats_0": np.random.default_rng(1).normal(size=(1, 16384, 128)),
            "high_res_feats_1": np.random.default_rng(2).normal(size=(1, 4096, 256)),
            "point_coords": np.array([[[500.0, 400.0], [10.0, 900.0]]]),
            "point_labels": np.array([[1, 0]]),
            "mask_input": np.zeros((1, 1, MASK, MASK)),
            "has_mask_input": np.zeros((1, 1)),
        }.items()
    }
    inputs = {k: v.int() if k == "point_labels" else v.float() for k, v in inputs.items()}
    with torch.no_grad():
        a = PromptMaskDecoder(model)(**inputs)
        b = PromptMaskDecoder(reference_model)(**inputs)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_random_init_leaves_no_constant_parameter(model) -> None:
    """Default init has LayerNorms at 1/0 and zero position embeddings: parity would miss them."""
    constant = [
        name
        for name, p in model.named_parameters()
        if p.numel() > 1 and bool((p.reshape(-1) == p.reshape(-1)[0]).all())
    ]
    assert constant == []
    weight = model.image_encoder.trunk.blocks[0].norm1.weight
    assert 0.5 < float(weight.detach().mean()) < 1.5  # perturbed around the default, not replaced


def test_random_weights_are_reproducible(model) -> None:
    again = build_test_model(SEED)
    other = build_test_model(SEED + 1)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in again.state_dict().items())
    assert not torch.equal(own["no_mem_embed"], other.state_dict()["no_mem_embed"])


def test_strict_loading_names_the_missing_key(model, tmp_path: Path) -> None:
    state = dict(model.state_dict())
    state.pop("no_mem_embed")
    state["not_a_sam2_key"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save({"model": state}, bad)
    with pytest.raises(ValueError, match=r"missing key\(s\): no_mem_embed.*unexpected key"):
        build_sam2_model("tiny", checkpoint=bad, overrides=REDUCED)


def test_builder_needs_exactly_one_weight_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        build_sam2_model("tiny")
    with pytest.raises(ValueError, match="exactly one"):
        build_sam2_model("tiny", checkpoint=tmp_path / "x.pt", random_weights=True)
