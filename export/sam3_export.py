"""SAM 3's export folder: its four graphs, CLIP's vocabulary and a record of what made them.

The vision backbone (both necks), the text encoder, the concept detector and the interactive
decoder, each by its own module here (``sam3_vision``, ``sam3_text``, ``sam3_detector``,
``sam3_interactive``), into one folder under ``concepts.graphs.FILES``' names, the folder the
repository builder serves ``sam3_concepts`` from. Written into a private folder and renamed into
place: a failed export leaves nothing half-written under the final name.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sam2_triton.concepts.graphs import FILES, VOCABULARY_FILE

METADATA_FILE = "sam3.json"


def export_sam3(
    model: nn.Module,
    tracker: nn.Module,
    folder: Path,
    vocabulary: Path,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """``model`` (sam3's ``Sam3Image``) and its interactive ``tracker`` (what
    ``model.inst_interactive_predictor.model`` holds) to ``folder``; ``vocabulary``: CLIP's
    ``bpe_simple_vocab_16e6.txt.gz``."""
    from sam2_triton.export.sam3_detector import export_detector_onnx
    from sam2_triton.export.sam3_interactive import export_interactive_onnx
    from sam2_triton.export.sam3_text import export_text_onnx
    from sam2_triton.export.sam3_vision import export_vision_onnx

    folder = Path(folder)
    if folder.exists() and not (folder / METADATA_FILE).is_file():
        raise FileExistsError(f"{folder} exists and is not a SAM 3 export: choose another folder")
    if model.training or tracker.training:
        raise ValueError("export a model in eval mode (model.eval())")
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    seconds = {}
    steps = {
        "vision": lambda path: export_vision_onnx(model.backbone, tracker, path),
        "text": lambda path: export_text_onnx(model.backbone.language_backbone, path),
        "detector": lambda path: export_detector_onnx(model, path),
        "interactive": lambda path: export_interactive_onnx(tracker, path),
    }
    for name, step in steps.items():
        start = time.perf_counter()
        step(staging / FILES[name])
        seconds[name] = round(time.perf_counter() - start, 2)
    shutil.copyfile(vocabulary, staging / VOCABULARY_FILE)
    record = {
        "family": "sam3",
        **(provenance or {}),
        "files": {**FILES, "vocabulary": VOCABULARY_FILE},
        "export_seconds": seconds,
        "versions": {name: _version(name) for name in ("torch", "onnx", "sam3")},
        "python": platform.python_version(),
    }
    (staging / METADATA_FILE).write_text(json.dumps(record, indent=2) + "\n")
    if folder.exists():
        shutil.rmtree(folder)  # a previous SAM 3 export (checked above), replaced
    staging.replace(folder)
    return folder


def perturbed(module: nn.Module, seed: int) -> nn.Module:
    """``module`` in eval mode, each parameter plus seeded noise of a tenth of its mean size:
    after sam3's default init LayerNorms are exactly 1 and 0 and its two necks copies of each
    other, so a graph that dropped an affine part or swapped the necks would still match."""
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for parameter in module.parameters():
            scale = parameter.abs().mean().clamp(min=0.02)
            parameter.add_(torch.randn(parameter.shape, generator=gen) * 0.1 * scale)
    return module.eval()


def build_random_sam3(vocabulary: Path, seed: int = 0, build: Callable | None = None) -> nn.Module:
    """SAM 3 at full size (``Sam3Image`` with its interactive model, 860 M parameters) with
    seeded random weights, on the CPU. sam3 leaves the text encoder's ``positional_embedding``
    and ``text_projection`` as ``torch.empty`` (garbage: every output of its own processor is
    then NaN); they get CLIP's init (std 0.01 and width^-0.5) before the noise. ``build``:
    another builder of the same modules (the tests' reduced one)."""
    torch.manual_seed(seed)
    model = (build or _build_sam3)(vocabulary)
    encoder = model.backbone.language_backbone.encoder
    with torch.no_grad():
        encoder.positional_embedding.normal_(0, 0.01)
        encoder.text_projection.normal_(0, encoder.text_projection.shape[0] ** -0.5)
    return perturbed(model, seed)


def load_sam3(checkpoint: Path, vocabulary: Path, build: Callable | None = None) -> nn.Module:
    """SAM 3 with the weights of a checkpoint in the official layout (``detector.*``,
    ``tracker.*``: Meta's ``sam3.pt`` or ``save_sam3``'s), on the CPU, in eval mode. Loaded
    with ``weights_only=True``; a file that leaves any of the model's weights unset is refused
    naming them (sam3's own loader only prints them)."""
    from sam2_triton.weights.sam3 import from_official

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a checkpoint (a state dict of tensors)")
    try:
        state = from_official(state)
    except ValueError as exc:
        raise ValueError(f"{checkpoint}: {exc}") from None
    model = (build or _build_sam3)(vocabulary)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(
            f"{checkpoint}: not SAM 3's weights: {len(missing)} of the model's tensors are "
            f"missing (first: {', '.join(missing[:3])})"
        )
    if unexpected:
        print(f"note: {checkpoint}: {len(unexpected)} tensors SAM 3's image model does not use")
    return model.eval()


def save_sam3(model: nn.Module, path: Path) -> None:
    """``model``'s weights in the official layout (what ``load_sam3`` and sam3's loader read)."""
    from sam2_triton.weights.sam3 import to_official

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_official(model.state_dict()), path)


def _build_sam3(vocabulary: Path) -> nn.Module:
    """sam3's builder on the CPU, with no weights loaded."""
    import sam3.model_builder as builder

    from sam2_triton.export.sam3_interactive import cpu_construction

    with cpu_construction():
        return builder.build_sam3_image_model(
            bpe_path=str(vocabulary), device="cpu", eval_mode=True, checkpoint_path=None,
            load_from_HF=False, enable_inst_interactivity=True,
        )  # fmt: skip


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
