"""The GPU target's ONNX models on Triton's onnxruntime backend: TensorRT, instances, warmup.

``sam2_triton.repository.plan`` decides which models run here and how (``GpuPlacement``);
this module renders one such ``ModelPlan`` into its ``ModelConfig``. Why each setting:
``docs/gpu.md``.

The TensorRT parameter names are the ones Triton's onnxruntime backend accepts (24.04 and later,
so the 24.10 image of ``docker-compose.yml``); an unknown name makes the model fail to load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.repository.model_plan import (
    BOX_POINTS,
    PRECISIONS,
    GpuOptions,
    GpuPlacement,
    ModelPlan,
)
from sam2_triton.repository.python_configs import tensor_config

__all__ = ["BOX_POINTS", "GpuOptions", "onnxruntime_config", "preferred_batch_sizes"]


def preferred_batch_sizes(max_batch: int, smallest: int) -> list[int]:
    """Powers of two from ``smallest`` up to ``max_batch``, and ``max_batch`` itself."""
    sizes = []
    size = smallest
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return [*sizes, max_batch]


def _rows(plan: ModelPlan, placement: GpuPlacement) -> int:
    """The most rows one run takes: the batch axis, or the decoder's prompt-set axis."""
    return plan.max_batch_size or placement.max_prompts


def _validate(gpu: GpuOptions, plan: ModelPlan, placement: GpuPlacement) -> None:
    if gpu.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {gpu.precision}")
    if gpu.instances < 1:
        raise ValueError(f"GPU instances must be at least 1, not {gpu.instances}")
    if not 1 <= placement.opt_batch <= _rows(plan, placement):
        raise ValueError(
            f"{plan.name}: TensorRT opt batch {placement.opt_batch} is outside "
            f"1..{_rows(plan, placement)}"
        )
    if not 1 <= placement.opt_points <= placement.max_points:
        raise ValueError(
            f"{plan.name}: TensorRT opt points {placement.opt_points} is outside "
            f"1..{placement.max_points}"
        )


def _shape(tensor: c.Tensor, batched: bool, rows: int, points: int) -> list[int]:
    """The tensor's ONNX shape with ``rows`` on the batch axis (a batched model's implicit
    first axis, else a leading -1: the decoder's prompt sets) and ``points`` on the other -1."""
    if batched:
        return [rows, *(points if d == -1 else d for d in tensor.dims)]
    first, *rest = tensor.dims
    return [rows if first == -1 else first, *(points if d == -1 else d for d in rest)]


def profile_shapes(inputs: Sequence[c.Tensor], batched: bool, rows: int, points: int) -> str:
    """ORT's profile syntax: ``name:1x3x1024x1024,other:...`` (every input, every axis)."""
    return ",".join(
        f"{t.name}:{'x'.join(map(str, _shape(t, batched, rows, points)))}" for t in inputs
    )


def _tensorrt(
    spec: ModelPlan, gpu: GpuOptions, placement: GpuPlacement
) -> mc.ModelOptimizationPolicy.ExecutionAccelerators.Accelerator:
    opt_batch, opt_points, max_points = (
        placement.opt_batch,
        placement.opt_points,
        placement.max_points,
    )
    batched, rows = spec.max_batch_size > 0, _rows(spec, placement)
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
            "trt_profile_min_shapes": profile_shapes(spec.inputs, batched, 1, 1),
            "trt_profile_opt_shapes": profile_shapes(spec.inputs, batched, opt_batch, opt_points),
            "trt_profile_max_shapes": profile_shapes(spec.inputs, batched, rows, max_points),
        }
    )
    return accelerator


def _has_points(spec: ModelPlan) -> bool:
    return any(-1 in t.dims for t in spec.inputs)


def _warmup(spec: ModelPlan, rows: int, points: int) -> mc.ModelWarmup:
    """Zeros of the exact shapes: the values do not matter to engine builds."""
    batched = spec.max_batch_size > 0
    name = f"{'batch' if batched else 'prompts'}{rows}"
    name += f"_points{points}" if _has_points(spec) else ""
    shapes = {}
    for tensor in spec.inputs:
        shape = _shape(tensor, batched, rows, points)
        shapes[tensor.name] = shape[1:] if batched else shape
    return _warmup_of(spec, name, shapes, batch_size=rows if batched else 1)


def _warmup_of(
    spec: ModelPlan, name: str, shapes: Mapping[str, Sequence[int]], batch_size: int = 1
) -> mc.ModelWarmup:
    """Zeros of the given shapes (without the batch axis) for every input."""
    warmup = mc.ModelWarmup(name=name, batch_size=batch_size, count=1)
    for tensor in spec.inputs:
        warmup.inputs[tensor.name].CopyFrom(
            mc.ModelWarmup.Input(
                data_type=getattr(mc, f"TYPE_{tensor.dtype}"),
                dims=list(shapes[tensor.name]),
                zero_data=True,
            )
        )
    return warmup


def onnxruntime_config(plan: ModelPlan, gpu: GpuOptions) -> mc.ModelConfig:
    """``plan`` (Runtime.ONNXRUNTIME) on Triton's onnxruntime backend on GPUs."""
    placement = plan.gpu
    if placement is None:
        raise ValueError(f"{plan.name} has no GPU placement: it is not an onnxruntime model")
    _validate(gpu, plan, placement)
    config = mc.ModelConfig(
        name=plan.name,
        backend="onnxruntime",
        max_batch_size=plan.max_batch_size,
        default_model_filename="model.onnx",
    )
    config.input.extend(tensor_config(t, mc.ModelInput) for t in plan.inputs)
    config.output.extend(tensor_config(t, mc.ModelOutput) for t in plan.outputs)
    config.instance_group.append(
        mc.ModelInstanceGroup(
            count=gpu.instances, kind=mc.ModelInstanceGroup.KIND_GPU, gpus=list(gpu.gpus)
        )
    )
    if plan.max_batch_size > 0:  # the decoder has none: one image per call, N prompt sets
        batching = config.dynamic_batching
        batching.max_queue_delay_microseconds = placement.queue_delay_us
        batching.preferred_batch_size.extend(
            preferred_batch_sizes(plan.max_batch_size, placement.smallest_preferred_batch)
        )
    if placement.tensorrt:
        accelerators = config.optimization.execution_accelerators
        accelerators.gpu_execution_accelerator.append(_tensorrt(plan, gpu, placement))
    # Smallest and largest shapes: the engine (or cuDNN's algorithm choice on the CUDA EP) is
    # settled while the model loads, not on a user's first request.
    if placement.warmup_shapes is not None:
        config.model_warmup.extend(
            _warmup_of(plan, f"shapes{i}", shapes)
            for i, shapes in enumerate(placement.warmup_shapes)
        )
    else:
        config.model_warmup.extend(
            [_warmup(plan, 1, 1), _warmup(plan, _rows(plan, placement), placement.max_points)]
        )
    return config


def export_notes(export_dir: Path) -> list[str]:
    """What the GPU target should know about an export (printed by ``build-repo``)."""
    info_path = export_dir / c.EXPORT_METADATA_FILE
    if not info_path.exists():
        return []
    info = json.loads(info_path.read_text())
    notes = []
    if info.get("optimized"):
        notes.append(
            "this export contains onnxruntime-only fused ops (com.microsoft Gelu) that "
            "TensorRT cannot take: they run on the CUDA EP between "
            "TensorRT engines. For the GPU target re-export with `sam2-triton export "
            "--no-ort-fusions` (standard ONNX only)."
        )
    if info.get("weights") == "random":
        notes.append("this export has RANDOM weights: its masks are meaningless")
    return notes
