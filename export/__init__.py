"""Export SAM 2.1 to ONNX for serving: build the model, split it, export, verify (needs torch)."""

from sam2_triton.export.model_builder import build_sam2_model, save_checkpoint
from sam2_triton.export.onnx_export import (
    DECODER_FILE,
    DEFAULT_EXPORTER,
    DEFAULT_OPSET,
    DEFAULT_OPTIMIZE,
    ENCODER_FILE,
    METADATA_FILE,
    ExportResult,
    VerifyReport,
    export_onnx,
    verify_onnx,
)
from sam2_triton.export.wrappers import ImageEncoder, PromptMaskDecoder

__all__ = [
    "DECODER_FILE",
    "DEFAULT_EXPORTER",
    "DEFAULT_OPSET",
    "DEFAULT_OPTIMIZE",
    "ENCODER_FILE",
    "METADATA_FILE",
    "ExportResult",
    "ImageEncoder",
    "PromptMaskDecoder",
    "VerifyReport",
    "build_sam2_model",
    "export_onnx",
    "save_checkpoint",
    "verify_onnx",
]
