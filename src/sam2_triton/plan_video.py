"""The video models of a repository plan (``sam2_triton.plan`` decides when they are served)."""

from __future__ import annotations

from sam2_triton import contract as c
from sam2_triton.plan import ModelPlan, Runtime, ServingOptions, _runner

#: The export files sam2_video runs in-process (embedded target).
VIDEO_FILES = (
    c.ENCODER_FILE,
    c.TRACKING_DECODER_FILE,
    c.MEMORY_ATTENTION_FILE,
    c.MEMORY_ENCODER_FILE,
    c.TRACKER_CONSTANTS_FILE,
)


def video_models(options: ServingOptions) -> list[ModelPlan]:
    """sam2_video and sam2_video_stream (embedded target, ``options.video``)."""
    return [
        ModelPlan(
            c.VIDEO,
            "video tracking sessions: prompts on frames, propagation through SAM 2's memory",
            Runtime.PYTHON,
            c.VIDEO_INPUTS,
            c.VIDEO_OUTPUTS,
            python_module="video",
            local_files=VIDEO_FILES,
            instances=1,  # the sessions live in this one process
            parameters={
                **_runner(options),
                "max_image_pixels": str(options.max_image_pixels),
                "max_points": str(options.max_points),
                "max_sessions": str(options.video_max_sessions),
                "max_bytes": str(options.video_max_bytes),
                "idle_seconds": str(options.video_idle_seconds),
                "max_frames": str(options.video_max_frames),
                "page_frames": str(options.video_page_frames),
                "memory_frames": str(options.video_memory_frames),
            },
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
    ]
