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

from sam2_triton import contract as c
from sam2_triton.families import FAMILIES, SAM2, Family, sized
from sam2_triton.repository.model_plan import (
    BLS,
    BOX_POINTS,
    DECODER_PARAMETER,
    GRAPHS_PARAMETER,
    TARGETS,
    GpuOptions,
    GpuPlacement,
    ModelPlan,
    Runtime,
    runner,
)
from sam2_triton.repository.options import INSTANCE_OPTIONS, ServingOptions
from sam2_triton.repository.video_plan import video_models


def repository_plan(
    target: str, options: ServingOptions | None = None, gpu: GpuOptions | None = None
) -> list[ModelPlan]:
    """Every model ``target`` serves, with options applied (defaults when None)."""
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
        # SAM 3's concept prompts, when the export has SAM 3 (build-repo turns them on)
        *(_sam3_gpu(options, gpu) if options.concepts and on_gpu else []),
        *([_concepts(options, in_process=not on_gpu)] if options.concepts else []),
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


def _limits(options: ServingOptions) -> dict[str, str]:
    return {
        "max_image_pixels": str(options.max_image_pixels),
        "max_points": str(options.max_points),
        # prompt sets per request: one decoder call
        "max_prompt_sets": str(options.decoder_max_prompts),
    }


def _family(options: ServingOptions) -> Family:
    return FAMILIES[options.family]


def _family_parameter(options: ServingOptions) -> dict[str, str]:
    """The ``family`` parameter of the models that prepare prompts or finish masks (none for
    SAM 2.1, their default: its configs stay as they were)."""
    return {} if options.family == SAM2.name else {"family": options.family}


def _ensemble(options: ServingOptions) -> list[ModelPlan]:
    family = _family(options)
    side = family.image_size
    return [
        ModelPlan(
            c.SEGMENT,
            "image bytes + prompts -> masks: an ensemble of the four models below",
            Runtime.ENSEMBLE,
            sized(c.SEGMENT_INPUTS, family),
            sized(c.SEGMENT_OUTPUTS, family),
        ),
        ModelPlan(
            c.PREPROCESS,
            f"decode and check the image and prompts, resize and normalise to {side}x{side}",
            Runtime.PYTHON,
            sized(c.SEGMENT_INPUTS, family),
            sized(c.PREPROCESS_OUTPUTS, family),
            python_module="preprocess",
            instances=options.preprocess_instances,
            parameters={**_limits(options), **_family_parameter(options)},
        ),
        ModelPlan(
            c.POSTPROCESS,
            "choose the masks, upsample them to the image's size, encode (PNG, RLE, cut-out)",
            Runtime.PYTHON,
            sized(c.POSTPROCESS_INPUTS, family),
            sized(c.SEGMENT_OUTPUTS, family),
            python_module="postprocess",
            instances=options.postprocess_instances,
            parameters=_family_parameter(options),
        ),
    ]


def _segment(options: ServingOptions) -> ModelPlan:
    family = _family(options)
    return ModelPlan(
        c.SEGMENT,
        "image bytes + prompts -> masks, the four steps in one process",
        Runtime.PYTHON,
        sized(c.SEGMENT_INPUTS, family),
        sized(c.SEGMENT_OUTPUTS, family),
        python_module="segment",
        local_files=(family.encoder_file, family.decoder_file),
        instances=options.segment_instances,
        parameters={
            **_limits(options),
            **runner(options),
            "encoder": family.encoder_file,
            "decoder": family.decoder_file,
            **_family_parameter(options),
        },
    )


def _encoder_summary(family: Family) -> str:
    side = family.image_size
    return f"the image encoder: [B,3,{side},{side}] -> image embedding + high-res features"


_DECODER_SUMMARY = "prompt + mask decoder: one image's features, N prompt sets -> 4 masks each"


def _cpu_onnx(options: ServingOptions) -> list[ModelPlan]:
    family = _family(options)
    return [
        ModelPlan(
            c.IMAGE_ENCODER,
            _encoder_summary(family),
            inputs=sized(c.ENCODER_INPUTS, family),
            outputs=sized(c.ENCODER_OUTPUTS, family),
            model_file=family.encoder_file,
            max_batch_size=options.encoder_max_batch,
            instances=options.encoder_instances,
            runtime=Runtime.PYTHON,
            python_module="onnx_model",
            dynamic_batching=True,
            parameters=runner(options),
        ),
        ModelPlan(
            c.MASK_DECODER,
            _DECODER_SUMMARY,
            inputs=sized(c.DECODER_INPUTS, family),
            outputs=sized(c.DECODER_OUTPUTS, family),
            model_file=family.decoder_file,
            instances=options.decoder_instances,
            parameters={
                **runner(options),
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
    family = _family(options)
    return [
        ModelPlan(
            c.IMAGE_ENCODER,
            f"{_encoder_summary(family)} (TensorRT)",
            inputs=sized(c.ENCODER_INPUTS, family),
            outputs=sized(c.ENCODER_OUTPUTS, family),
            model_file=family.encoder_file,
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
            inputs=sized(c.DECODER_INPUTS, family),
            outputs=sized(c.DECODER_OUTPUTS, family),
            model_file=family.decoder_file,
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
        return {DECODER_PARAMETER: _family(options).decoder_file, **runner(options)}
    return {DECODER_PARAMETER: BLS}


def _session(options: ServingOptions, in_process: bool) -> ModelPlan:
    decoder = _decoder_runner(options, in_process)
    family = _family(options)
    return ModelPlan(
        c.SESSION,
        "encode once, click many: cached embeddings, one decoder run per click",
        Runtime.PYTHON,
        sized(c.SESSION_INPUTS, family),
        sized(c.SESSION_OUTPUTS, family),
        python_module="session",
        local_files=(family.decoder_file,) if in_process else (),
        instances=options.session_instances,
        parameters={
            **_limits(options),
            "cache_bytes": str(options.session_cache_bytes),
            **decoder,
            **_family_parameter(options),
        },
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
        local_files=(_family(options).decoder_file,) if in_process else (),
        instances=options.automatic_instances,
        parameters={
            "max_image_pixels": str(options.max_image_pixels),
            "decoder_chunk": str(min(chunk, options.decoder_max_prompts)),
            "max_grid_points": str(max_grid_points),
            **_decoder_runner(options, in_process),
            **_family_parameter(options),
        },
    )


def _concepts(options: ServingOptions, in_process: bool) -> ModelPlan:
    """sam3_concepts: SAM 3's graphs beside it (embedded) or through BLS (``_sam3_gpu``)."""
    graphs = (
        {"intra_op_num_threads": str(options.intra_op_threads)}
        if in_process
        else {GRAPHS_PARAMETER: BLS}
    )
    return ModelPlan(
        c.CONCEPTS,
        "SAM 3: every instance of a phrase or example boxes; images' features cached by id",
        Runtime.PYTHON,
        c.CONCEPTS_INPUTS,
        c.CONCEPTS_OUTPUTS,
        python_module="concepts",
        local_files=c.CONCEPT_FILES if in_process else (c.VOCABULARY_FILE,),
        instances=options.concepts_instances,
        parameters={
            "max_image_pixels": str(options.max_image_pixels),
            "max_phrases": str(options.concepts_max_phrases),
            "cache_bytes": str(options.concepts_cache_bytes),
            **graphs,
        },
    )


def _sam3_gpu(options: ServingOptions, gpu: GpuOptions) -> list[ModelPlan]:
    """SAM 3's graphs on the GPU target: the backbone on TensorRT (its LayerNorms in FP32, as
    the SAM 2.1 encoder's), batching images that arrive together; the text encoder and the
    detector on ONNX Runtime's CUDA EP (the detector's 200 mask logits stay in FP32)."""
    cuda = {"queue_delay_us": 0, "smallest_preferred_batch": 1, "tensorrt": False}
    one = {"opt_batch": 1, "opt_points": 1, "max_points": 1}  # no point axis
    return [
        ModelPlan(
            c.SAM3_VISION,
            "SAM 3's backbone: [B,3,1008,1008] -> the detector's feature pyramid (TensorRT)",
            Runtime.ONNXRUNTIME,
            c.SAM3_VISION_INPUTS,
            c.SAM3_VISION_OUTPUTS,
            model_file=c.SAM3_FILES["vision"],
            max_batch_size=gpu.concepts_max_batch,
            instances=gpu.instances,
            dynamic_batching=True,
            gpu=GpuPlacement(
                queue_delay_us=gpu.encoder_queue_delay_us,
                smallest_preferred_batch=2,
                tensorrt=True,
                **one,
            ),
        ),
        ModelPlan(
            c.SAM3_TEXT,
            "SAM 3's text encoder: a phrase's 32 tokens -> its features (CUDA)",
            Runtime.ONNXRUNTIME,
            c.SAM3_TEXT_INPUTS,
            c.SAM3_TEXT_OUTPUTS,
            model_file=c.SAM3_FILES["text"],
            max_batch_size=options.concepts_max_phrases,
            instances=gpu.instances,
            dynamic_batching=True,
            gpu=GpuPlacement(**cuda, **one),
        ),
        ModelPlan(
            c.SAM3_DETECTOR,
            "SAM 3's detector: features, a phrase, example boxes -> 200 scored boxes, masks (CUDA)",
            Runtime.ONNXRUNTIME,
            c.SAM3_DETECTOR_INPUTS,
            c.SAM3_DETECTOR_OUTPUTS,
            model_file=c.SAM3_FILES["detector"],
            instances=gpu.instances,
            gpu=GpuPlacement(
                **cuda,
                **one,
                max_prompts=1,  # its one fixed row
                warmup_shapes=({t.name: t.dims for t in c.SAM3_DETECTOR_INPUTS},),
            ),
        ),
    ]
