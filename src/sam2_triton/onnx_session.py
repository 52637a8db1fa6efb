"""ONNX Runtime sessions configured the same way in the server, the benchmarks and the tests."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def create_session(
    onnx_path: Path, intra_op_threads: int = 0, level: str = "all"
) -> ort.InferenceSession:
    """A CPU session; ``level`` is ORT's graph optimisation at load time (the server uses "all").

    ``intra_op_threads=0`` lets ORT use one thread per physical core. Spinning is off: with
    several model instances sharing the cores, spinning threads steal time from working ones
    (measured on clicks: in one process spinning saves 8 ms of the decoder's 53; in the server,
    where a click's instance changes from one request to the next, it cost 10-20 ms).
    """
    if not Path(onnx_path).exists():
        raise FileNotFoundError(f"ONNX file not found: {onnx_path}")
    options = ort.SessionOptions()
    options.graph_optimization_level = LEVELS[level]
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
