"""The video models of a repository plan (``repository.plan`` decides when they are served).

The sessions live in sam2_video_sessions; sam2_video and sam2_video_stream call it, a
propagation a frame a call, so that sessions interleave frame by frame and its frame scheduler
tracks those propagating at once together. On the embedded target it runs the tracker's
graphs in-process. On the GPU target they are onnxruntime-backend models of their own (CUDA
EP) that it calls through BLS, with the objects tracked together in one call; the frames'
encoder is sam2_image_encoder.
"""

from __future__ import annotations

from sam2_triton import contract as c
from sam2_triton.repository.model_plan import (
    BLS,
    BOX_POINTS,
    GpuOptions,
    GpuPlacement,
    ModelPlan,
    Runtime,
    runner,
)
from sam2_triton.repository.options import ServingOptions

#: The export files sam2_video_sessions runs in-process (embedded target).
VIDEO_FILES = (c.ENCODER_FILE, *c.VIDEO_EXPORT_FILES)
#: The parameter naming how sam2_video_sessions runs the tracker: "onnx" (the files beside it)
#: or "bls".
TRACKER_PARAMETER = "tracker"
#: Memory frames and pointers of SAM 2.1's tracking (num_maskmem 7, max_obj_ptrs 16): the
#: shapes the GPU models are warmed up with.
WARMUP_MEMORIES, WARMUP_POINTERS = 7, 16


def video_models(options: ServingOptions, gpu: GpuOptions | None = None) -> list[ModelPlan]:
    """sam2_video and sam2_video_stream (stateless: they page and stream a propagation a frame
    a request) in front of sam2_video_sessions, and on the GPU target (``gpu`` given) the
    tracker's three graphs as onnxruntime models."""
    on_gpu = gpu is not None
    tracker = (
        {
            TRACKER_PARAMETER: BLS,
            "objects_per_call": str(gpu.video_max_objects_per_call),
            "encoder_batch": str(options.encoder_max_batch),
        }
        if on_gpu
        else {TRACKER_PARAMETER: "onnx", **runner(options)}
    )
    page = {"page_frames": str(options.video_page_frames)}
    return [
        ModelPlan(
            c.VIDEO,
            "video tracking sessions: prompts on frames, propagation through SAM 2's memory",
            Runtime.PYTHON,
            c.VIDEO_INPUTS,
            c.VIDEO_OUTPUTS,
            python_module="video",
            instances=options.video_instances,
            parameters=page,
        ),
        ModelPlan(
            c.VIDEO_STREAM,
            "sam2_video's propagation streamed, one response per frame (gRPC)",
            Runtime.PYTHON,
            c.VIDEO_INPUTS,
            c.VIDEO_OUTPUTS,
            python_module="video_stream",
            instances=options.video_stream_instances,
            decoupled=True,
        ),
        ModelPlan(
            c.VIDEO_SESSIONS,
            "internal: the video sessions (sam2_video's and the stream's requests, a frame a "
            "call); propagations of different videos tracked together, frame by frame",
            Runtime.PYTHON,
            c.VIDEO_INPUTS,
            c.VIDEO_OUTPUTS,
            python_module="video_sessions",
            local_files=(c.TRACKER_CONSTANTS_FILE,) if on_gpu else VIDEO_FILES,
            instances=1,  # the sessions live in this one process
            # Not decoupled: execute hands requests to the frame scheduler and returns None;
            # the scheduler sends each request's one response (default mode's response
            # sender). A decoupled callee would need decoupled BLS, whose response iterator
            # crashes the caller's stub (docs/operations.md).
            parameters={
                **tracker,
                **page,
                "max_image_pixels": str(options.max_image_pixels),
                "max_points": str(options.max_points),
                "max_sessions": str(options.video_max_sessions),
                "max_bytes": str(options.video_max_bytes),
                "idle_seconds": str(options.video_idle_seconds),
                "max_frames": str(options.video_max_frames),
                "memory_frames": str(options.video_memory_frames),
                "step_wait_us": str(options.video_step_wait_us),
            },
        ),
        *(_gpu_tracker(options, gpu) if on_gpu else []),
    ]


def _gpu_tracker(options: ServingOptions, gpu: GpuOptions) -> list[ModelPlan]:
    objects = gpu.video_max_objects_per_call

    def placement(max_prompts: int, max_points: int, warmup=None) -> GpuPlacement:  # noqa: ANN001
        return GpuPlacement(
            queue_delay_us=0,
            smallest_preferred_batch=1,
            tensorrt=False,  # dynamic memory and pointer counts: CUDA EP (docs/gpu.md)
            opt_batch=1,
            opt_points=1,
            max_points=max_points,
            max_prompts=max_prompts,
            warmup_shapes=warmup,
        )

    def shapes(memories: int, pointers: int, rows: int) -> dict[str, tuple[int, ...]]:
        return {
            "vision_feat": (rows, c.PIXELS, c.EMBED_DIM),
            "memory": (rows, memories, c.PIXELS, c.MEMORY_DIM),
            "memory_tpos": (rows, memories),
            "obj_ptrs": (rows, pointers, c.EMBED_DIM),
            "obj_ptr_tpos": (rows, pointers),
            "mask_logits": (rows, 1, c.IMAGE_SIZE, c.IMAGE_SIZE),
            "object_score_logits": (rows, 1),
            "binarize": (1,),
        }

    small, large = shapes(1, 1, 1), shapes(WARMUP_MEMORIES, WARMUP_POINTERS, objects)
    graphs = [
        (
            c.TRACKING_DECODER,
            "the decoder with SAM 2's object pointer and object score",
            c.TRACKING_DECODER_INPUTS,
            c.TRACKING_DECODER_OUTPUTS,
            c.TRACKING_DECODER_FILE,
            placement(objects, options.max_points + BOX_POINTS),
        ),
        (
            c.MEMORY_ATTENTION,
            "a frame's features conditioned on each object's memories",
            c.MEMORY_ATTENTION_INPUTS,
            c.MEMORY_ATTENTION_OUTPUTS,
            c.MEMORY_ATTENTION_FILE,
            placement(objects, WARMUP_MEMORIES, (small, large)),
        ),
        (
            c.MEMORY_ENCODER,
            "each object's mask and the frame's features -> its memory",
            c.MEMORY_ENCODER_INPUTS,
            c.MEMORY_ENCODER_OUTPUTS,
            c.MEMORY_ENCODER_FILE,
            placement(objects, 1, (small, large)),
        ),
    ]
    return [
        ModelPlan(
            name,
            f"video: {summary} (CUDA)",
            Runtime.ONNXRUNTIME,
            inputs,
            outputs,
            model_file=file,
            instances=gpu.instances,
            gpu=where,
        )
        for name, summary, inputs, outputs, file, where in graphs
    ]
