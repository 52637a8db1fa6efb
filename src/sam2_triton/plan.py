"""What runs where: the one place that decides a target's models, runtimes and files.

Two targets serve the same models and tensors (``sam2_triton.contract``):

- ``embedded``: the CPU-only ``tritonserver`` of the nvidia-pytriton wheel (``sam2-triton serve``).
  It has no onnxruntime backend, so every model is a Python-backend model and the ONNX files run
  inside them (ONNX Runtime fp32 or OpenVINO bf16). ``sam2_segment`` and ``sam2_session`` run
  their ONNX files in-process by default: nothing crosses shared memory between stubs.
- ``gpu``: the NGC tritonserver image (``model_repository/``, docker-compose.yml). The encoder
  and decoder run on Triton's onnxruntime backend on GPUs (TensorRT for the encoder);
  ``sam2_segment`` is an ensemble so that the GPU encoder's dynamic batching serves every request,
  and every Python model reaches the ONNX models through BLS (the image has no onnxruntime).

``repository_plan`` turns a target and its options into a list of ``ModelPlan``; the repository
builder renders exactly that, and nothing else decides.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sam2_triton import contract as c
from sam2_triton.serving_options import INSTANCE_OPTIONS, ServingOptions

#: embedded: the CPU-only tritonserver of ``serve``; gpu: the NGC image (docker-compose.yml).
TARGETS = ("embedded", "gpu")
#: Box corners travel as two extra points, so the decoder sees up to max_points + 2.
BOX_POINTS = 2
#: The parameter naming how sam2_session and sam2_automatic run the decoder: an ONNX file
#: beside them, or "bls".
DECODER_PARAMETER = "decoder"
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


@dataclass(frozen=True)
class GpuPlacement:
    """How one ONNX model runs on the GPU target (rendered by ``sam2_triton.gpu_config``)."""

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


def repository_plan(
    target: str, options: ServingOptions | None = None, gpu: GpuOptions | None = None
) -> list[ModelPlan]:
    """Every model ``target`` serves, with options applied (defaults when None)."""
    from sam2_triton.plan_video import video_models  # it builds on this module's types

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    options = options or ServingOptions()
    gpu = gpu or GpuOptions()
    on_gpu = target == "gpu"
    segment = (
        _ensemble(options) if on_gpu or not options.segment_in_process else [_segment(options)]
    )
    onnx = _gpu_onnx(options, gpu) if on_gpu else _cpu_onnx(options)
    return [
        *segment,
        *onnx,
        _session(options, in_process=not on_gpu and options.decoder_in_process),
        _automatic(
            options,
            in_process=not on_gpu and options.decoder_in_process,
            chunk=gpu.automatic_decoder_chunk if on_gpu else options.automatic_decoder_chunk,
            max_grid_points=(
                gpu.automatic_max_grid_points if on_gpu else options.automatic_max_grid_points
            ),
        ),
        *(video_models(options, gpu if on_gpu else None) if _video(target, options, gpu) else []),
    ]


def _video(target: str, options: ServingOptions, gpu: GpuOptions) -> bool:
    """Embedded: when the export has the tracker (build-repo turns ``video`` on); GPU: unless
    ``GpuOptions.video`` is off (the committed repository serves it)."""
    return gpu.video if target == "gpu" else options.video


def model_names(target: str, options: ServingOptions | None = None) -> list[str]:
    return [p.name for p in repository_plan(target, options)]


def cpu_instance_models(target: str, options: ServingOptions | None = None) -> list[str]:
    """The models whose instance count ``--instances MODEL=N`` sets on ``target``: its Python
    models (the GPU target's ONNX models take GpuOptions.instances per GPU)."""
    plans = repository_plan(target, options)
    return [p.name for p in plans if p.runtime is Runtime.PYTHON and p.name in INSTANCE_OPTIONS]


def _runner(options: ServingOptions) -> dict[str, str]:
    """How a Python model runs ONNX files itself (embedded target)."""
    return {
        "intra_op_num_threads": str(options.intra_op_threads),
        "precision": options.cpu_precision,
    }


def _limits(options: ServingOptions) -> dict[str, str]:
    return {
        "max_image_pixels": str(options.max_image_pixels),
        "max_points": str(options.max_points),
        # prompt sets per request: one decoder call
        "max_prompt_sets": str(options.decoder_max_prompts),
    }


def _ensemble(options: ServingOptions) -> list[ModelPlan]:
    return [
        ModelPlan(
            c.SEGMENT,
            "image bytes + prompts -> masks: an ensemble of the four models below",
            Runtime.ENSEMBLE,
            c.SEGMENT_INPUTS,
            c.SEGMENT_OUTPUTS,
        ),
        ModelPlan(
            c.PREPROCESS,
            "decode and check the image and prompts, resize and normalise to 1024x1024",
            Runtime.PYTHON,
            c.SEGMENT_INPUTS,
            c.PREPROCESS_OUTPUTS,
            python_module="preprocess",
            instances=options.preprocess_instances,
            parameters=_limits(options),
        ),
        ModelPlan(
            c.POSTPROCESS,
            "choose the masks, upsample them to the image's size, encode (PNG, RLE, cut-out)",
            Runtime.PYTHON,
            c.POSTPROCESS_INPUTS,
            c.SEGMENT_OUTPUTS,
            python_module="postprocess",
            instances=options.postprocess_instances,
        ),
    ]


def _segment(options: ServingOptions) -> ModelPlan:
    return ModelPlan(
        c.SEGMENT,
        "image bytes + prompts -> masks, the four steps in one process",
        Runtime.PYTHON,
        c.SEGMENT_INPUTS,
        c.SEGMENT_OUTPUTS,
        python_module="segment",
        local_files=(c.ENCODER_FILE, c.DECODER_FILE),
        instances=options.segment_instances,
        parameters={
            **_limits(options),
            **_runner(options),
            "encoder": c.ENCODER_FILE,
            "decoder": c.DECODER_FILE,
        },
    )


_ENCODER_SUMMARY = "the image encoder: [B,3,1024,1024] -> image embedding + high-res features"
_DECODER_SUMMARY = "prompt + mask decoder: one image's features, N prompt sets -> 4 masks each"


def _cpu_onnx(options: ServingOptions) -> list[ModelPlan]:
    return [
        ModelPlan(
            c.IMAGE_ENCODER,
            _ENCODER_SUMMARY,
            inputs=c.ENCODER_INPUTS,
            outputs=c.ENCODER_OUTPUTS,
            model_file=c.ENCODER_FILE,
            max_batch_size=options.encoder_max_batch,
            instances=options.encoder_instances,
            runtime=Runtime.PYTHON,
            python_module="onnx_model",
            dynamic_batching=True,
            parameters=_runner(options),
        ),
        ModelPlan(
            c.MASK_DECODER,
            _DECODER_SUMMARY,
            inputs=c.DECODER_INPUTS,
            outputs=c.DECODER_OUTPUTS,
            model_file=c.DECODER_FILE,
            instances=options.decoder_instances,
            parameters={
                **_runner(options),
                "max_prompts": str(options.decoder_max_prompts),
                # prompt points, box corners and SAM's padding point
                "max_points": str(options.max_points + BOX_POINTS),
            },
            runtime=Runtime.PYTHON,
            python_module="onnx_model",
        ),
    ]


def _gpu_onnx(options: ServingOptions, gpu: GpuOptions) -> list[ModelPlan]:
    max_points = options.max_points + BOX_POINTS
    decoder_on = "TensorRT" if gpu.decoder_tensorrt else "CUDA"
    return [
        ModelPlan(
            c.IMAGE_ENCODER,
            f"{_ENCODER_SUMMARY} (TensorRT)",
            inputs=c.ENCODER_INPUTS,
            outputs=c.ENCODER_OUTPUTS,
            model_file=c.ENCODER_FILE,
            max_batch_size=options.encoder_max_batch,
            gpu=GpuPlacement(
                queue_delay_us=gpu.encoder_queue_delay_us,
                smallest_preferred_batch=2,
                tensorrt=True,
                opt_batch=gpu.encoder_opt_batch,
                opt_points=1,
                max_points=max_points,
            ),
            runtime=Runtime.ONNXRUNTIME,
            instances=gpu.instances,
            dynamic_batching=True,
        ),
        ModelPlan(
            c.MASK_DECODER,
            f"{_DECODER_SUMMARY} ({decoder_on})",
            inputs=c.DECODER_INPUTS,
            outputs=c.DECODER_OUTPUTS,
            model_file=c.DECODER_FILE,
            runtime=Runtime.ONNXRUNTIME,
            instances=gpu.instances,
            gpu=GpuPlacement(
                queue_delay_us=0,
                smallest_preferred_batch=1,
                tensorrt=gpu.decoder_tensorrt,
                opt_batch=gpu.decoder_opt_prompts,
                opt_points=gpu.decoder_opt_points,
                max_points=max_points,
                max_prompts=options.decoder_max_prompts,
            ),
        ),
    ]


def _decoder_runner(options: ServingOptions, in_process: bool) -> dict[str, str]:
    """How a Python model reaches the decoder: the ONNX file beside it, or BLS."""
    if in_process:
        return {DECODER_PARAMETER: c.DECODER_FILE, **_runner(options)}
    return {DECODER_PARAMETER: BLS}


def _session(options: ServingOptions, in_process: bool) -> ModelPlan:
    decoder = _decoder_runner(options, in_process)
    return ModelPlan(
        c.SESSION,
        "encode once, click many: cached embeddings, one decoder run per click",
        Runtime.PYTHON,
        c.SESSION_INPUTS,
        c.SESSION_OUTPUTS,
        python_module="session",
        local_files=(c.DECODER_FILE,) if in_process else (),
        instances=options.session_instances,
        parameters={**_limits(options), "cache_bytes": str(options.session_cache_bytes), **decoder},
    )


def _automatic(
    options: ServingOptions, in_process: bool, chunk: int, max_grid_points: int
) -> ModelPlan:
    return ModelPlan(
        c.AUTOMATIC,
        "segment everything: a point grid through the decoder, filtered and deduplicated",
        Runtime.PYTHON,
        c.AUTOMATIC_INPUTS,
        c.AUTOMATIC_OUTPUTS,
        python_module="automatic",
        local_files=(c.DECODER_FILE,) if in_process else (),
        instances=options.automatic_instances,
        parameters={
            "max_image_pixels": str(options.max_image_pixels),
            "decoder_chunk": str(min(chunk, options.decoder_max_prompts)),
            "max_grid_points": str(max_grid_points),
            **_decoder_runner(options, in_process),
        },
    )
