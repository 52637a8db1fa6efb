"""The CPU runners of the ONNX files, configured the same way in the server, the benchmarks and
the tests.

fp32 (the default) is ONNX Runtime's CPU execution provider. bf16 is OpenVINO with its bf16
inference precision: on CPUs with AVX512-BF16 / AMX it runs the encoder several times faster
than ONNX Runtime fp32, the CPU's counterpart of the GPU target's TensorRT FP16 and the
precision of Meta's own examples (``torch.autocast(dtype=torch.bfloat16)``). OpenVINO at fp32
was barely faster than ONNX Runtime, so fp32 stays on ONNX Runtime (figures:
docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from sam2_triton.contract import CPU_PRECISIONS, DECODER_OUTPUTS, ENCODER_OUTPUTS

#: ORT's own fusion into SkipLayerNormalization, whose CPU kernel is several times slower than
#: the Add + LayerNormalization it replaces (2.6 vs 0.37 ms on [4096, 256]; docs/performance.md).
DISABLED_OPTIMIZERS = ["SkipLayerNormFusion"]

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class PrecisionUnavailableError(RuntimeError):
    """The requested CPU precision cannot run here (library missing or CPU without support)."""


def require_precision(precision: str) -> Any:
    """Check that ``precision`` can run on this machine; returns OpenVINO's Core for bf16."""
    if precision not in CPU_PRECISIONS:
        raise ValueError(f"CPU precision must be one of {CPU_PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return None
    try:
        import openvino as ov
    except ImportError:
        raise PrecisionUnavailableError(
            "bf16 on CPU runs on OpenVINO, which is not installed: "
            "pip install 'sam2-triton[openvino]' (or use fp32)"
        ) from None
    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        raise PrecisionUnavailableError(
            "this CPU has no bf16 support (AVX512-BF16 or AMX): use fp32"
        )
    return core


class OpenVinoSession:
    """An OpenVINO compiled model (bf16) with ONNX Runtime's ``run(output_names, feeds)``."""

    def __init__(
        self, onnx_path: Path, threads: int = 0, extra: Mapping[str, Any] | None = None
    ) -> None:
        core = require_precision("bf16")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY"}
        config.update(extra or {})
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(onnx_path), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.output_names = [port.get_any_name() for port in self.compiled.outputs]

    def input_ranks(self) -> dict[str, int]:
        return {
            p.get_any_name(): p.get_partial_shape().rank.get_length() for p in self.compiled.inputs
        }

    def run(
        self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]
    ) -> list[np.ndarray]:
        result = self.request.infer(dict(feeds))  # outputs copied out (share_outputs=False)
        return [result[self.compiled.output(n)] for n in output_names or self.output_names]


def create_session(
    onnx_path: Path,
    intra_op_threads: int = 0,
    level: str = "all",
    precision: str = "fp32",
    openvino_config: Mapping[str, Any] | None = None,
) -> ort.InferenceSession | OpenVinoSession:
    """A CPU session; ``level`` is ORT's graph optimisation at load time (the server uses "all").
    ``precision`` "bf16" returns an OpenVinoSession instead (same ``run``; ``level`` unused),
    with ``openvino_config`` added to its compile options.

    ``intra_op_threads=0`` lets ORT use one thread per physical core. Spinning is off: with
    several model instances sharing the cores, spinning threads steal time from working ones
    (measured on clicks: spinning helps a little in one process and costs more in the server,
    where a click's instance changes from one request to the next; docs/performance.md).
    """
    if not Path(onnx_path).exists():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    if precision != "fp32":
        require_precision(precision)
        return OpenVinoSession(Path(onnx_path), intra_op_threads, openvino_config)
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # Planned memory patterns keep every intermediate buffer of a run at once: off, the tiny
    # encoder's peak fell from 1.19 to 0.82 GB at the same speed (docs/performance.md).
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(onnx_path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=DISABLED_OPTIMIZERS,
    )


def onnx_function(
    onnx_path: Path, output_names: Sequence[str], intra_op_threads: int = 0, precision: str = "fp32"
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """An ONNX file as a function, feeds -> outputs by name (what a Python model runs itself)."""
    session = create_session(onnx_path, intra_op_threads, precision=precision)
    names = list(output_names)

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, dict(feeds)), strict=True))

    return run


def sam2_functions(
    encoder_path: Path, decoder_path: Path, intra_op_threads: int = 0, precision: str = "fp32"
) -> tuple[
    Callable[[np.ndarray], dict[str, np.ndarray]],
    Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]],
]:
    """(encode, decode) for ``sam2_triton.image.segment``: image_1024 -> the three feature maps, and
    the decoder's feeds -> low_res_masks, iou_predictions."""
    encoder = onnx_function(
        encoder_path, [t.name for t in ENCODER_OUTPUTS], intra_op_threads, precision
    )
    decoder = onnx_function(
        decoder_path, [t.name for t in DECODER_OUTPUTS], intra_op_threads, precision
    )
    return (lambda image_1024: encoder({"image": image_1024})), decoder


def input_ranks(session: ort.InferenceSession | OpenVinoSession) -> dict[str, int]:
    """Each input's rank, by name (what an export's graph takes)."""
    if isinstance(session, OpenVinoSession):
        return session.input_ranks()
    return {i.name: len(i.shape) for i in session.get_inputs()}
