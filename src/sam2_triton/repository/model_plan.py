"""A repository plan's types: a model, how it runs, and the GPU target's knobs, as data.

``repository.plan`` (the image models) and ``repository.video_plan`` (the video models) build
lists of ``ModelPlan`` from ``ServingOptions``; the renderers turn each into its config.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sam2_triton import contract as c
from sam2_triton.repository.options import ServingOptions

#: embedded: the CPU-only tritonserver of ``serve``; gpu: the NGC image (docker-compose.yml).
TARGETS = ("embedded", "gpu")
#: Box corners travel as two extra points, so the decoder sees up to max_points + 2.
BOX_POINTS = 2
#: The parameter naming how sam2_session and sam2_automatic run the decoder: an ONNX file
#: beside them, or "bls".
DECODER_PARAMETER = "decoder"
#: ... and how sam3_concepts runs SAM 3's graphs: the files beside it, or "bls".
GRAPHS_PARAMETER = "graphs"
BLS = "bls"


class Runtime(enum.Enum):
    """How Triton runs a model."""

    PYTHON = "python"  # a Python-backend model.py importing sam2_triton.triton_models.<module>
    ONNXRUNTIME = "onnxruntime"  # Triton's onnxruntime backend (GPU target only)
    ENSEMBLE = "ensemble"  # sam2_segment as preprocess -> encoder -> decoder -> postprocess


PRECISIONS = ("FP16", "FP32")


@dataclass(frozen=True)
class GpuOptions:
    """GPU-target knobs for the ONNX models (names, tensors and batch limits: ServingOptions')."""

    instances: int = 2  # KIND_GPU instances of each ONNX model, per GPU
    gpus: tuple[int, ...] = ()  # device ids; empty: every GPU the container sees
    precision: str = "FP16"  # TensorRT precision of the encoder (and decoder, if on TensorRT)
    workspace_bytes: int = 4 << 30  # TensorRT builder/runtime scratch memory per engine
    trt_cache_dir: str = "/trt_cache"  # writable, outside the (read-only) repository mount
    # The decoder stays on ONNX Runtime's CUDA EP unless asked: see docs/gpu.md, "Pitfalls".
    decoder_tensorrt: bool = False
    encoder_queue_delay_us: int = 2000  # ~5 % of a GPU encode; batches images that arrive close
    encoder_opt_batch: int = 1  # TensorRT tunes kernels for this batch (interactive: 1)
    decoder_opt_prompts: int = 1  # ... the decoder for this many prompt sets per call (a click)
    decoder_opt_points: int = 2  # ... and for this many prompt points (when on TensorRT)
    # sam2_automatic's grid points per decoder call here (ServingOptions' is the CPU's): a GPU
    # runs 64 prompt sets in about the time of a few, and the features cross to it once per call.
    automatic_decoder_chunk: int = 64
    # ... and accepts grids this large (a GPU decodes thousands of points a second)
    automatic_max_grid_points: int = 65536
    # Video tracking: the tracker's graphs as GPU models (the export needs `--video`), and the
    # most objects one memory-attention or memory-encoder call carries.
    video: bool = True
    video_max_objects_per_call: int = 8
    # SAM 3's backbone: the most images one TensorRT call carries (served with sam3_concepts
    # when the export has SAM 3: ServingOptions.concepts)
    concepts_max_batch: int = 4


@dataclass(frozen=True)
class GpuPlacement:
    """How one ONNX model runs on the GPU target (rendered by ``repository.gpu_configs``)."""

    queue_delay_us: int  # dynamic batching (models with a batch axis)
    smallest_preferred_batch: int  # encodes are long: batch from 2
    tensorrt: bool
    opt_batch: int  # batch (encoder) or prompt sets (decoder) TensorRT tunes for
    opt_points: int
    max_points: int  # the point axis' largest size (prompts + box corners)
    max_prompts: int = 0  # the decoder's prompt-set axis (it has no batch axis)
    # Warmup inputs' shapes by name, one dict per warmup, where axes are not just rows and
    # points (the video tracker's memories and pointers); None: the smallest and largest.
    warmup_shapes: tuple[Mapping[str, tuple[int, ...]], ...] | None = None


@dataclass(frozen=True)
class ModelPlan:
    """One model of a repository: its runtime, files and config, as data."""

    name: str
    summary: str  # one line for the repository's README
    runtime: Runtime
    inputs: Sequence[c.Tensor] = ()
    outputs: Sequence[c.Tensor] = ()
    python_module: str | None = None  # sam2_triton.triton_models.<module> (Runtime.PYTHON)
    model_file: str | None = None  # export file served as 1/model.onnx
    local_files: tuple[str, ...] = ()  # export files placed beside model.py, run in-process
    max_batch_size: int = 0
    instances: int = 1
    dynamic_batching: bool = False
    decoupled: bool = False  # any number of responses per request (streaming, gRPC only)
    parameters: Mapping[str, str] = field(default_factory=dict)
    gpu: GpuPlacement | None = None  # Runtime.ONNXRUNTIME only

    def export_files(self) -> dict[str, str]:
        """Path inside the model folder -> export file it is (hard-linked from ``exports/``)."""
        files = {f"1/{name}": name for name in self.local_files}
        if self.model_file:
            files["1/model.onnx"] = self.model_file
        return files


def runner(options: ServingOptions) -> dict[str, str]:
    """How a Python model runs ONNX files itself (embedded target)."""
    return {
        "intra_op_num_threads": str(options.intra_op_threads),
        "precision": options.cpu_precision,
    }
