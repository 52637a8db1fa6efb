"""The video tracker's graphs run in-process by ONNX Runtime (``VideoSession``'s models on the
embedded target), loaded from an export folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sam2_triton.contract import (
    ENCODER_FILE,
    ENCODER_OUTPUTS,
    MEMORY_ATTENTION_FILE,
    MEMORY_ENCODER_FILE,
    TRACKER_CONSTANTS_FILE,
    TRACKING_DECODER_FILE,
)
from sam2_triton.onnx_session import create_session


class OnnxTrackerModels:
    """encode / decode / attend / encode_memory on ONNX Runtime sessions."""

    def __init__(
        self, export_dir: Path, intra_op_threads: int = 0, precision: str = "fp32"
    ) -> None:
        export_dir = Path(export_dir)

        def session(name: str):  # noqa: ANN202
            return create_session(export_dir / name, intra_op_threads, precision=precision)

        self._encoder = session(ENCODER_FILE)
        self._decoder = session(TRACKING_DECODER_FILE)
        self._attention = session(MEMORY_ATTENTION_FILE)
        self._memory_encoder = session(MEMORY_ENCODER_FILE)
        with np.load(export_dir / TRACKER_CONSTANTS_FILE, allow_pickle=False) as constants:
            self.no_mem_embed = constants["no_mem_embed"].reshape(-1).astype(np.float32)
            self.no_obj_ptr = constants["no_obj_ptr"].reshape(1, -1).astype(np.float32)
            self.mask_downsample_weight = constants["mask_downsample_weight"].astype(np.float32)
            self.mask_downsample_bias = constants["mask_downsample_bias"].astype(np.float32)

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._encoder.run(None, {"image": image})
        return {t.name: value for t, value in zip(ENCODER_OUTPUTS, outputs, strict=True)}

    def decode(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._decoder.run(None, feeds)

    def attend(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._attention.run(None, feeds)[0]

    def encode_memory(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._memory_encoder.run(None, feeds)[0]
