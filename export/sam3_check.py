"""A SAM 3 export checked against sam3's own model on the same weights, as ``verify_onnx``
checks SAM 2.1's: one image and phrase through the exported graphs in process
(``concepts/find.py``) and through ``Sam3Processor`` (``set_image``, ``set_text_prompt``), the
detector's outputs compared. ``sam2-triton export --sam3`` refuses to place an export that
fails it; ``benchmarks/sam3_full_size.py`` prints it with the time each side takes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

PHRASE = "a red square"
#: ONNX Runtime against PyTorch, max |difference| over the output's largest magnitude: the
#: full-size export differs by about 1e-4 of the masks' scale, a broken one by whole units.
RELATIVE_TOLERANCE = 1e-2


@dataclass
class Sam3Check:
    """The largest difference of each detector output (and that output's scale), and the
    seconds each side took for the image and the phrase."""

    differences: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def worst(self) -> float:
        return max(d["max_abs"] / max(d["scale"], 1e-6) for d in self.differences.values())

    def format(self) -> str:
        parts = [f"{name} {d['max_abs']:.1e} of {d['scale']:.2g}" for name, d in
                 self.differences.items()]  # fmt: skip
        return "max |ONNX - sam3|: " + ", ".join(parts)


def check_image() -> np.ndarray:
    """A 420 x 300 photo-sized image: noise with a red square (sam3's smallest side is free)."""
    rgb = np.random.default_rng(5).integers(0, 256, (300, 420, 3), np.uint8)
    rgb[80:200, 100:260] = (200, 30, 30)
    return rgb


def check_sam3(model: nn.Module, folder: Path, vocabulary: Path, threads: int = 0) -> Sam3Check:
    """``model`` (``Sam3Image``, eval mode) against its export in ``folder``."""
    import torch
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam2_triton.concepts.find import ConceptGraphs, example_boxes
    from sam2_triton.concepts.graphs import DETECTOR_OUTPUTS
    from sam2_triton.export.sam3_detector import unpinned_memory

    check = Sam3Check()
    rgb = check_image()
    graphs = ConceptGraphs.onnx(folder, vocabulary, threads)
    start = time.perf_counter()
    image = graphs.image(rgb)
    check.seconds["ours_image"] = time.perf_counter() - start
    start = time.perf_counter()
    phrase = graphs.phrase(PHRASE)
    check.seconds["ours_phrase"] = time.perf_counter() - start
    slots, kinds, padding = example_boxes(None, None, image.orig_hw)
    feeds = {**image.maps, "text_features": phrase.features, "text_mask": phrase.mask,
             "boxes": slots, "box_labels": kinds, "box_mask": padding}  # fmt: skip
    start = time.perf_counter()
    ours = dict(zip(DETECTOR_OUTPUTS, graphs.detector.run(list(DETECTOR_OUTPUTS), feeds),
                    strict=True))  # fmt: skip
    check.seconds["ours_detector"] = time.perf_counter() - start

    captured: dict = {}
    grounding = model.forward_grounding

    def keep(*args, **kwargs):
        captured.update(grounding(*args, **kwargs))
        return captured

    model.forward_grounding = keep
    try:
        processor = Sam3Processor(model, device="cpu", confidence_threshold=0.0)
        with torch.no_grad(), unpinned_memory():
            start = time.perf_counter()
            state = processor.set_image(Image.fromarray(rgb))
            check.seconds["sam3_set_image"] = time.perf_counter() - start
            start = time.perf_counter()
            processor.set_text_prompt(PHRASE, state)
            check.seconds["sam3_set_text_prompt"] = time.perf_counter() - start
    finally:
        del model.forward_grounding  # the class's method again
    theirs = {
        "pred_logits": captured["pred_logits"][..., 0],
        "pred_boxes": captured["pred_boxes"],
        "presence_logit": captured["presence_logit_dec"],
        "pred_masks": captured["pred_masks"],
    }
    for name, value in theirs.items():
        value = value.numpy()
        if not np.isfinite(value).all():
            raise ValueError(f"sam3's own {name} is not finite: the weights are broken")
        check.differences[name] = {
            "max_abs": float(np.abs(ours[name] - value).max()),
            "scale": float(np.abs(value).max()),
        }
    check.seconds = {k: round(v, 2) for k, v in check.seconds.items()}
    return check
