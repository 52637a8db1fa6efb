"""sam2-triton: Meta's SAM 2.1 served by NVIDIA Triton Inference Server."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``from sam2_triton import SAM2RemotePredictor`` (``SAM2RemoteVideoPredictor``,
    ``SAM2RemoteAutomaticMaskGenerator``, ``SAM3RemoteProcessor``)
    without importing tritonclient on ``import sam2_triton`` (the Triton model stubs import this
    package too)."""
    if name == "SAM2RemotePredictor":
        from sam2_triton.clients.image_predictor import SAM2RemotePredictor

        return SAM2RemotePredictor
    if name == "SAM2RemoteVideoPredictor":
        from sam2_triton.clients.video_predictor import SAM2RemoteVideoPredictor

        return SAM2RemoteVideoPredictor
    if name == "SAM2RemoteAutomaticMaskGenerator":
        from sam2_triton.clients.automatic_mask_generator import SAM2RemoteAutomaticMaskGenerator

        return SAM2RemoteAutomaticMaskGenerator
    if name == "SAM3RemoteProcessor":
        from sam2_triton.clients.sam3_processor import SAM3RemoteProcessor

        return SAM3RemoteProcessor
    raise AttributeError(f"module 'sam2_triton' has no attribute {name!r}")
