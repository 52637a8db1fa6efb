"""The video tracker's graphs run in-process by ONNX Runtime or OpenVINO (``VideoSession``'s
models on the embedded target), loaded from an export folder; the tracker's constants, which
both targets load from the export's npz."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sam2_triton.contract import (
    ENCODER_FILE,
    ENCODER_OUTPUTS,
    MEMORY_ATTENTION_FILE,
    MEMORY_ATTENTION_INPUTS,
    MEMORY_ENCODER_FILE,
    TRACKER_CONSTANTS_FILE,
    TRACKING_DECODER_FILE,
)

#: OpenVINO fuses memory attention's products and softmax into a "snippets" kernel that runs
#: on AVX512-BF16 but not on AMX: unfused, the products run on AMX, 2x faster on a Xeon with it
#: (docs/benchmarks.md#video-tracking). The image encoder is faster fused; it keeps the default.
MEMORY_ATTENTION_OPENVINO = {"SNIPPETS_MODE": "DISABLE"}


class TrackerConstants:
    """SAM2Base's no_mem_embed, no_obj_ptr and mask_downsample, as ``TrackerModels`` has them."""

    def __init__(self, path: Path) -> None:
        with np.load(path, allow_pickle=False) as constants:
            self.no_mem_embed = constants["no_mem_embed"].reshape(-1).astype(np.float32)
            self.no_obj_ptr = constants["no_obj_ptr"].reshape(1, -1).astype(np.float32)
            self.mask_downsample_weight = constants["mask_downsample_weight"].astype(np.float32)
            self.mask_downsample_bias = constants["mask_downsample_bias"].astype(np.float32)


class OnnxTrackerModels(TrackerConstants):
    """encode / decode / attend / encode_memory on ONNX Runtime sessions."""

    def __init__(
        self, export_dir: Path, intra_op_threads: int = 0, precision: str = "fp32"
    ) -> None:
        # imported here: the GPU image has no onnxruntime (it runs the BLS models instead)
        from sam2_triton.runtime.runners import create_session, input_ranks

        export_dir = Path(export_dir)
        super().__init__(export_dir / TRACKER_CONSTANTS_FILE)

        def session(name: str, openvino_config: dict | None = None):  # noqa: ANN202
            return create_session(
                export_dir / name, intra_op_threads, precision=precision,
                openvino_config=openvino_config,
            )  # fmt: skip

        self._encoder = session(ENCODER_FILE)
        self._decoder = session(TRACKING_DECODER_FILE)
        self._attention = session(MEMORY_ATTENTION_FILE, MEMORY_ATTENTION_OPENVINO)
        want = {t.name: len(t.dims) for t in MEMORY_ATTENTION_INPUTS}
        if input_ranks(self._attention) != want:
            raise ValueError(
                f"{export_dir / MEMORY_ATTENTION_FILE} takes inputs of ranks "
                f"{input_ranks(self._attention)}, not {want}: it was exported by an older "
                "version; export again with `sam2-triton export --video`"
            )
        self._memory_encoder = session(MEMORY_ENCODER_FILE)

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._encoder.run(None, {"image": image})
        return {t.name: value for t, value in zip(ENCODER_OUTPUTS, outputs, strict=True)}

    def decode(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._decoder.run(None, feeds)

    def attend(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._attention.run(None, feeds)[0]

    def encode_memory(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._memory_encoder.run(None, feeds)[0]
