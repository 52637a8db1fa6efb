"""Build a SAM 2.1 model on CPU from an official checkpoint, or with seeded random weights.

Random weights exist because the official checkpoints cannot always be downloaded (CI, offline
machines): the pipeline and the ONNX parity can be tested on any weights, as long as the same
weights reach both sides. So a random model is saved in the official ``{"model": state_dict}``
layout, and ``sam2.build_sam.build_sam2(cfg, ckpt_path=...)`` loads exactly what we exported.

Finding on sam2 1.1.0's default init (tiny: 471 tensors): every LayerNorm weight is exactly 1 and
bias exactly 0, Hiera's ``pos_embed``/``pos_embed_window`` are all zeros, and a few conv biases
(``mask_downscaling``, ``output_upscaling``, the memory encoder's downsampler) are zeros. With
those, a parity test cannot tell whether an exported graph drops a LayerNorm's affine part, the
absolute position embedding or a bias. ``no_mem_embed``, the mask/IoU tokens and point
embeddings are random (trunc-normal / normal) already. So after the seeded default init every
parameter whose elements are all equal gets seeded noise (see ``_perturb_constant_parameters``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sam2_triton.weights.checkpoints import load_state_dict, sha256_file
from sam2_triton.weights.variants import get_variant

#: Attribute set on built models so that ``export_onnx`` can record where the weights came from.
PROVENANCE_ATTR = "sam2_triton_provenance"


def build_sam2_model(
    variant_name: str,
    checkpoint: Path | None = None,
    random_weights: bool = False,
    seed: int = 0,
    save_random_to: Path | None = None,
    overrides: Sequence[str] = (),
) -> nn.Module:
    """Return the SAM 2.1 ``variant_name`` model in eval mode on CPU.

    Exactly one of ``checkpoint`` (an official ``{"model": state_dict}`` file, loaded strictly)
    and ``random_weights`` must be given. With random weights, ``seed`` makes them reproducible
    and ``save_random_to`` writes them as an official-format checkpoint. ``overrides`` are Hydra
    overrides of the variant's config (``build_sam2``'s ``hydra_overrides_extra``); the tests use
    them for a shallower model (``tests/conftest.py``), recorded in the export's metadata.
    """
    if (checkpoint is None) == (not random_weights):
        raise ValueError("give exactly one of checkpoint=PATH or random_weights=True")
    if save_random_to is not None and not random_weights:
        raise ValueError("save_random_to only applies to random_weights=True")
    variant = get_variant(variant_name)

    if random_weights:
        torch.manual_seed(seed)
        model = _build_empty(variant.config, overrides)
        _perturb_constant_parameters(model, seed)
        provenance: dict[str, Any] = {"variant": variant.name, "weights": "random", "seed": seed}
        if save_random_to is not None:
            save_checkpoint(model, save_random_to)
            provenance["saved_checkpoint"] = str(save_random_to)
    else:
        checkpoint = Path(checkpoint)
        model = _build_empty(variant.config, overrides)
        _load_strict(model, load_state_dict(checkpoint), checkpoint)
        provenance = {
            "variant": variant.name,
            "weights": "checkpoint",
            "checkpoint": str(checkpoint),
            "checkpoint_sha256": sha256_file(checkpoint),
        }
    if overrides:
        provenance["config_overrides"] = list(overrides)
    setattr(model, PROVENANCE_ATTR, provenance)
    return model.eval()


def save_checkpoint(model: nn.Module, path: Path) -> None:
    """Write ``{"model": state_dict}``, the layout ``build_sam2(cfg, ckpt_path=...)`` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".partial")
    torch.save({"model": state}, tmp)
    tmp.replace(path)  # never leave a truncated checkpoint under the final name


def _build_empty(config: str, overrides: Sequence[str] = ()) -> nn.Module:
    """The sam2 builder with the predictor's post-processing flags, no checkpoint, CPU, eval."""
    from sam2.build_sam import build_sam2  # imports hydra and initialises its config search path

    return build_sam2(
        config, ckpt_path=None, device="cpu", mode="eval", hydra_overrides_extra=list(overrides)
    )


def _load_strict(model: nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """``load_state_dict(strict=True)`` with an error naming the file and the offending keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_preview(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_preview(unexpected)}")
        if mismatched:
            shapes = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}" for k in mismatched]
            parts.append(f"{len(mismatched)} shape mismatch(es): {_preview(shapes)}")
        raise ValueError(
            f"{source} does not fit this model ({'; '.join(parts)}). "
            "Is it the checkpoint of another SAM 2 size or of SAM 2.0 instead of 2.1?"
        )
    model.load_state_dict(state, strict=True)


def _preview(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... (+{len(items) - limit})" if len(items) > limit else "")


@torch.no_grad()
def _perturb_constant_parameters(model: nn.Module, seed: int) -> list[str]:
    """Add seeded noise to every parameter whose elements are all equal; return their names.

    Noise is small relative to the value (10 %, or 0.02 absolute around zero) so that the random
    network stays numerically tame: LayerNorms still normalise, position embeddings stay small.
    """
    gen = torch.Generator().manual_seed(seed + 1)
    changed = []
    for name, param in model.named_parameters():
        flat = param.detach().reshape(-1)
        if flat.numel() < 2 or not bool((flat == flat[0]).all()):
            continue
        value = float(flat[0])
        scale = 0.1 * abs(value) if value != 0.0 else 0.02
        noise = torch.randn(param.shape, generator=gen, dtype=param.dtype) * scale
        param.add_(noise)
        changed.append(name)
    return changed
