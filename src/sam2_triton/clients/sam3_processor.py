"""``SAM3RemoteProcessor``: Meta's ``Sam3Processor`` (sam3/model/sam3_image_processor.py) with
the model on a server: the same methods, the same state dict, answered by ``sam3_concepts``.

``set_image`` sends the image once (a lossless PNG) and keeps its id; each prompt call sends the
phrase and every example box so far, as ``Sam3Processor`` re-runs the detector on its whole
prompt. The state holds ``scores`` [K], ``boxes`` [K, 4] (x0, y0, x1, y1 pixels) and ``masks``
[K, 1, H, W] (bool) as torch tensors, as Meta's does (numpy arrays where torch is not
installed); ``masks_logits`` (full-size probabilities) is not sent by the server and is absent.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from sam2_triton.clients.concepts import ConceptClient, Found
from sam2_triton.clients.tritonclient_io import Protocol

DEFAULT_THRESHOLD = 0.5  # Sam3Processor's


class SAM3RemoteProcessor:
    """``Sam3Processor(model, confidence_threshold=...)`` with ``model`` a server's URL."""

    def __init__(
        self,
        url: str | None = None,
        protocol: Protocol = "http",
        confidence_threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        self.client = ConceptClient(url, protocol)
        self.confidence_threshold = confidence_threshold

    def set_image(self, image: Any, state: dict | None = None) -> dict:
        """A PIL image or an [H, W, 3] uint8 array; the server caches its features."""
        state = {} if state is None else state
        rgb = _rgb(image)
        found = self.client.find(image=_png(rgb))
        state.update(original_height=rgb.shape[0], original_width=rgb.shape[1])
        state["image_id"] = found.image_id
        return state

    def set_image_batch(self, images: list, state: dict | None = None) -> dict:
        """Every image sent and cached (as Meta's, a batch state only records the sizes)."""
        if not isinstance(images, list) or not images:
            raise ValueError("Images must be a non-empty list of PIL images")
        state = {} if state is None else state
        arrays = [_rgb(image) for image in images]
        state["image_ids"] = [self.client.find(image=_png(rgb)).image_id for rgb in arrays]
        state["original_heights"] = [rgb.shape[0] for rgb in arrays]
        state["original_widths"] = [rgb.shape[1] for rgb in arrays]
        return state

    def set_text_prompt(self, prompt: str, state: dict) -> dict:
        """The phrase replaces any earlier one; example boxes stay."""
        _check_image(state)
        state["prompt"] = prompt
        state.setdefault("geometric_prompt", [])
        return self._ground(state)

    def add_geometric_prompt(self, box: list, label: bool, state: dict) -> dict:
        """An example box as Meta's takes it: [cx, cy, w, h] in [0, 1] of the image; True for a
        positive example. Without a phrase the box alone asks (sam3's "visual" prompt)."""
        _check_image(state)
        state.setdefault("geometric_prompt", []).append((list(map(float, box)), bool(label)))
        return self._ground(state)

    def reset_all_prompts(self, state: dict) -> None:
        for key in ("prompt", "geometric_prompt", "boxes", "masks", "scores"):
            state.pop(key, None)

    def set_confidence_threshold(self, threshold: float, state: dict | None = None):
        self.confidence_threshold = threshold
        if state is not None and "boxes" in state:
            return self._ground(state)
        return state

    def _ground(self, state: dict) -> dict:
        height, width = state["original_height"], state["original_width"]
        examples = state.get("geometric_prompt", [])
        boxes = labels = None
        if examples:
            scale = np.array([width, height, width, height], np.float64)
            boxes = np.array([_corners(box) for box, _ in examples]) * scale
            labels = np.array([int(label) for _, label in examples])
        found = self.client.find(
            image_id=state["image_id"],
            text=state.get("prompt"),
            boxes=boxes,
            box_labels=labels,
            confidence_threshold=self.confidence_threshold,
            output_format="rle",
        )
        state.update(_as_state(found, height, width))
        return state

    def close(self) -> None:
        self.client.close()


def _check_image(state: dict) -> None:
    if "image_id" not in state:
        raise ValueError("You must call set_image before set_text_prompt")


def _corners(box: list[float]) -> list[float]:
    cx, cy, w, h = box
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _as_state(found: Found, height: int, width: int) -> dict:
    masks = found.masks.astype(bool).reshape(len(found.scores), 1, height, width)
    values = {"scores": found.scores, "boxes": found.boxes, "masks": masks}
    try:
        import torch
    except ImportError:
        return values
    return {name: torch.from_numpy(np.array(v)) for name, v in values.items()}  # writable copies


def _rgb(image: Any) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"Image must be a PIL image or an [H, W, 3] uint8 array: {array.shape}")
    return array


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
