"""The GPU target's rendering of the ONNX models: Triton's onnxruntime backend with TensorRT.

``repository.target_model_config`` renders every model for the embedded target first and hands
the ONNX models' configs here, so both targets keep one description (``model_specs``) and one
tensor contract: only how the encoder and decoder run changes. The Python-backend models are left
as they are (``KIND_CPU``). Why each setting: ``docs/gpu.md``.

The TensorRT parameter names are the ones Triton's onnxruntime backend accepts (24.04 and later,
so the 24.10 image of ``docker-compose.yml``); an unknown name makes the model fail to load.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c

if TYPE_CHECKING:  # repository imports this module; only its types are needed here
    from sam2_triton.repository import ModelSpec, ServingOptions

PRECISIONS = ("FP16", "FP32")
#: Box corners travel as two extra points, so the decoder sees up to max_points + 2.
BOX_POINTS = 2


@dataclass(frozen=True)
class GpuOptions:
    """GPU-target knobs (the model names, tensors and batch limits stay ServingOptions')."""

    instances: int = 2  # KIND_GPU instances of each ONNX model, per GPU
    gpus: tuple[int, ...] = ()  # device ids; empty: every GPU the container sees
    precision: str = "FP16"  # TensorRT precision of the encoder (and decoder, if on TensorRT)
    workspace_bytes: int = 4 << 30  # TensorRT builder/runtime scratch memory per engine
    trt_cache_dir: str = "/trt_cache"  # writable, outside the (read-only) repository mount
    # The decoder stays on ONNX Runtime's CUDA EP unless asked: see docs/gpu.md, "Pitfalls".
    decoder_tensorrt: bool = False
    encoder_queue_delay_us: int = 2000  # ~5 % of a GPU encode; batches images that arrive close
    decoder_queue_delay_us: int = 500  # a decode is ~1-3 ms; clicks batch only at high load
    encoder_opt_batch: int = 1  # TensorRT tunes kernels for this batch (interactive: 1)
    decoder_opt_points: int = 2  # ... and for this many prompt points (when on TensorRT)


def preferred_batch_sizes(max_batch: int, smallest: int) -> list[int]:
    """Powers of two from ``smallest`` up to ``max_batch``, and ``max_batch`` itself."""
    sizes = []
    size = smallest
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


def _validate(gpu: GpuOptions, max_batch: int, max_points: int) -> None:
    if gpu.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {gpu.precision}")
    if gpu.instances < 1:
        raise ValueError(f"GPU instances must be at least 1, not {gpu.instances}")
    if not 1 <= gpu.encoder_opt_batch <= max_batch:
        raise ValueError(f"encoder_opt_batch {gpu.encoder_opt_batch} is outside 1..{max_batch}")
    if not 1 <= gpu.decoder_opt_points <= max_points:
        raise ValueError(f"decoder_opt_points {gpu.decoder_opt_points} is outside 1..{max_points}")


def _shape(tensor: c.Tensor, batch: int, points: int) -> list[int]:
    """The tensor's ONNX shape: the batch axis, then its dims with the point axis filled in."""
    return [batch, *(points if d == -1 else d for d in tensor.dims)]


def profile_shapes(inputs: Sequence[c.Tensor], batch: int, points: int) -> str:
    """ORT's profile syntax: ``name:1x3x1024x1024,other:...`` (every input, every axis)."""
    return ",".join(f"{t.name}:{'x'.join(map(str, _shape(t, batch, points)))}" for t in inputs)


def _tensorrt(
    spec: ModelSpec, gpu: GpuOptions, opt_batch: int, opt_points: int, max_points: int
) -> mc.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator:
    accelerator = mc.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator(name="tensorrt")
    accelerator.parameters.update(
        {
            "precision_mode": gpu.precision,
            "max_workspace_size_bytes": str(gpu.workspace_bytes),
            # LayerNorm's variance can exceed FP16's range (65504): keep LayerNorms in FP32.
            "trt_layer_norm_fp32_fallback": "1",
            # Engines are built once and reused across restarts (a volume in docker-compose).
            # One flat folder: ORT creates only one directory level and two instances loading
            # at once would race to create a per-model one.
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": gpu.trt_cache_dir,
            "trt_engine_cache_prefix": spec.name,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": gpu.trt_cache_dir,
            # One profile over the whole batch (and point) range: without it ORT rebuilds the
            # engine whenever a larger shape than any seen so far arrives - at request time.
            "trt_profile_min_shapes": profile_shapes(spec.inputs, 1, 1),
            "trt_profile_opt_shapes": profile_shapes(spec.inputs, opt_batch, opt_points),
            "trt_profile_max_shapes": profile_shapes(spec.inputs, spec.max_batch_size, max_points),
        }
    )
    return accelerator


def _has_points(spec: ModelSpec) -> bool:
    return any(-1 in t.dims for t in spec.inputs)


def _warmup(spec: ModelSpec, batch: int, points: int) -> mc.ModelWarmup:
    """Zeros of the exact shapes: the values do not matter to engine builds."""
    name = f"batch{batch}" + (f"_points{points}" if _has_points(spec) else "")
    warmup = mc.ModelWarmup(name=name, batch_size=batch, count=1)
    for tensor in spec.inputs:
        warmup.inputs[tensor.name].CopyFrom(
            mc.ModelWarmup.Input(
                data_type=getattr(mc, f"TYPE_{tensor.dtype}"),
                dims=_shape(tensor, batch, points)[1:],
                zero_data=True,
            )
        )
    return warmup


def gpu_model_config(
    config: mc.ModelConfig, spec: ModelSpec, options: ServingOptions, gpu: GpuOptions
) -> mc.ModelConfig:
    """The embedded config of an ONNX model, moved to the onnxruntime backend on GPUs.

    Name, inputs, outputs and max_batch_size are kept as rendered; backend, instances,
    batching, accelerators, warmup and parameters are the GPU target's.
    """
    is_encoder = spec.onnx_file == c.ENCODER_FILE
    max_points = options.max_points + BOX_POINTS
    _validate(gpu, spec.max_batch_size, max_points)
    gpu_config = mc.ModelConfig()
    gpu_config.CopyFrom(config)
    gpu_config.backend = "onnxruntime"
    gpu_config.default_model_filename = "model.onnx"
    gpu_config.ClearField("parameters")  # the Python-backend ORT session's threads
    del gpu_config.instance_group[:]
    gpu_config.instance_group.append(
        mc.ModelInstanceGroup(
            count=gpu.instances, kind=mc.ModelInstanceGroup.KIND_GPU, gpus=list(gpu.gpus)
        )
    )
    batching = gpu_config.dynamic_batching
    batching.max_queue_delay_microseconds = (
        gpu.encoder_queue_delay_us if is_encoder else gpu.decoder_queue_delay_us
    )
    del batching.preferred_batch_size[:]
    # Encodes are long, so dispatch from 2 images; decodes are short and launch-bound: from 4.
    batching.preferred_batch_size.extend(
        preferred_batch_sizes(spec.max_batch_size, 2 if is_encoder else 4)
    )
    if is_encoder or gpu.decoder_tensorrt:
        opt_batch = gpu.encoder_opt_batch if is_encoder else 1
        accelerators = gpu_config.optimization.execution_accelerators
        accelerators.gpu_execution_accelerator.append(
            _tensorrt(spec, gpu, opt_batch, gpu.decoder_opt_points, max_points)
        )
    # Smallest and largest shapes: the engine (or cuDNN's algorithm choice on the CUDA EP) is
    # settled while the model loads, not on a user's first request.
    gpu_config.model_warmup.extend(
        [_warmup(spec, 1, 1), _warmup(spec, spec.max_batch_size, max_points)]
    )
    return gpu_config


def export_notes(export_dir: Path) -> list[str]:
    """What the GPU target should know about an export (printed by ``build-repo``)."""
    info_path = export_dir / c.EXPORT_METADATA_FILE
    if not info_path.exists():
        return []
    info = json.loads(info_path.read_text())
    notes = []
    if info.get("optimized"):
        notes.append(
            "this export contains onnxruntime-only fused ops (com.microsoft Gelu, "
            "SkipLayerNormalization) that TensorRT cannot take: they run on the CUDA EP between "
            "TensorRT engines. For the GPU target re-export with `sam2-triton export "
            "--no-ort-fusions` (standard ONNX only)."
        )
    if info.get("weights") == "random":
        notes.append("this export has RANDOM weights: its masks are meaningless")
    return notes
