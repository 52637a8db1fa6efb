"""``sam2-triton export --sam3``: SAM 3 (Meta's checkpoint, or random weights) -> its four ONNX
graphs and CLIP's vocabulary in ``exports/sam3/``, checked against sam3's own model, then linked
beside the SAM 2.1 export ``serve --model M`` serves, so that the server answers
``sam3_concepts`` beside SAM 2.1's models (the repository builder turns it on when that folder
holds SAM 3's graphs)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from sam2_triton import contract as c
from sam2_triton.cli.paths import CHECKPOINT_DIR, export_dir
from sam2_triton.errors import ExportCheckError

SAM3_EXPORT = "sam3"

RANDOM_WEIGHTS_WARNING = """
##############################################################################
  WARNING: RANDOM WEIGHTS. SAM 3's checkpoint is not available, so this model
  has random weights (fixed seed): it finds MEANINGLESS instances. Everything
  else (export, serving, protocol) is real. For real instances accept Meta's
  licence for facebook/sam3 on Hugging Face, fetch sam3.pt, then run
    sam2-triton export --sam3 --checkpoint PATH/sam3.pt
##############################################################################
"""


def random_checkpoint_path(seed: int) -> Path:
    return CHECKPOINT_DIR / f"sam3.random-seed{seed}.pt"


def export_sam3_model(
    checkpoint: Path | None,
    random_weights: bool,
    seed: int = 0,
    threads: int = 0,
    build: Callable | None = None,
    out: Path | None = None,
    save_to: Path | None = None,
) -> Path:
    """Export SAM 3 to ``out`` (default ``exports/sam3/``) and return that folder.
    ``build(vocabulary)``: the model without weights (default: sam3's builder, full size);
    random weights are seeded and saved in the official layout to ``save_to`` (default beside
    the downloads, as SAM 2.1's are)."""
    from sam2_triton.concepts.tokens import clip_vocabulary
    from sam2_triton.export.sam3_check import RELATIVE_TOLERANCE, check_sam3
    from sam2_triton.export.sam3_export import (
        build_random_sam3,
        export_sam3,
        load_sam3,
        save_sam3,
    )
    from sam2_triton.weights.sam3 import SAM3

    vocabulary = clip_vocabulary()
    if random_weights:
        print(RANDOM_WEIGHTS_WARNING, file=sys.stderr)
        model = build_random_sam3(vocabulary, seed, build)
        save_to = save_to or random_checkpoint_path(seed)
        save_sam3(model, save_to)
        print(f"random-weight checkpoint saved: {save_to}")
        provenance = {"weights": "random", "seed": seed, "checkpoint": str(save_to)}
    else:
        checkpoint = checkpoint or CHECKPOINT_DIR / SAM3.file
        if not checkpoint.is_file():
            raise FileNotFoundError(
                f"no SAM 3 checkpoint at {checkpoint}: `sam2-triton download --sam3` fetches "
                f"Meta's sam3.pt ({SAM3.url}, gated: accept the licence, set HF_TOKEN), or pass "
                "--checkpoint PATH, or --random-weights (testing only)"
            )
        model = load_sam3(checkpoint, vocabulary, build)
        provenance = {"weights": "checkpoint", "checkpoint": str(checkpoint)}
    out = out or export_dir(SAM3_EXPORT)
    tracker = model.inst_interactive_predictor.model
    export_sam3(model, tracker, out, vocabulary, provenance)
    print(f"exported SAM 3 to {out}")
    check = check_sam3(model, out, vocabulary, threads)
    print(check.format())
    if check.worst > RELATIVE_TOLERANCE:
        raise ExportCheckError(
            f"the ONNX graphs differ from sam3 by {check.worst:.1e} of an output's scale "
            f"(> {RELATIVE_TOLERANCE:g}); do not serve them"
        )
    return out


def link_beside(sam3_dir: Path, model: str) -> list[str]:
    """Hard-link SAM 3's files into ``model``'s export folder (written by ``sam2-triton
    export``: its ``export.json``), replacing only SAM 3's files there; their names."""
    target = export_dir(model)
    if not (target / "export.json").is_file():
        raise FileNotFoundError(
            f"{target} holds no SAM 2.1 export: run `sam2-triton export --model {model}` first "
            "(SAM 3 is served beside it)"
        )
    names = sorted({*c.SAM3_FILES.values(), c.VOCABULARY_FILE, "sam3.json"})
    for name in names:
        source, place = sam3_dir / name, target / name
        if not source.is_file():
            continue
        staged = place.with_name(place.name + ".linking")
        staged.unlink(missing_ok=True)
        os.link(source, staged)
        staged.replace(place)  # one of SAM 3's names: an earlier link of ours, replaced
    return names


def run(args) -> int:
    try:
        out = export_sam3_model(args.checkpoint, args.random_weights, args.seed)
    except (FileNotFoundError, ValueError, ExportCheckError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        link_beside(out, args.model)
    except FileNotFoundError as exc:
        print(f"note: {exc}", file=sys.stderr)
        return 0
    print(
        f"SAM 3 linked beside {export_dir(args.model)}: `sam2-triton serve --model "
        f"{args.model}` serves {c.CONCEPTS} with SAM 2.1's models"
    )
    return 0
