"""The deployment knobs both targets share: instances per model, batching, limits, video.

Kept apart from ``plan`` (which decides what runs where from them) so that the CLI, the
benchmarks and the Triton models can name an option without the planner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sam2_triton import contract as c
from sam2_triton.contract import CPU_PRECISIONS, DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_POINTS
from sam2_triton.families import FAMILIES, SAM2


@dataclass(frozen=True)
class ServingOptions:
    """Deployment knobs shared by both targets: instances per model, batching, limits."""

    # Instances of each model (CPU processes on both targets; the GPU target's ONNX models take
    # GpuOptions.instances per GPU instead). Each instance serves one request at a time.
    segment_instances: int = 1  # embedded sam2_segment: each holds its own encoder and decoder
    # One encoder instance: its ORT threads already use every core; two on a 2-core CPU
    # oversubscribe it (docs/benchmarks.md). Concurrent images are batched instead.
    encoder_instances: int = 1
    decoder_instances: int = 2
    preprocess_instances: int = 2  # the ensemble's steps (GPU target)
    postprocess_instances: int = 2
    session_instances: int = 4  # concurrent clicks; the embedding cache is shared by all
    automatic_instances: int = 2  # concurrent segment-everything requests
    encoder_max_batch: int = 4
    # Prompt sets one decoder call may carry (all on one image; the decoder has no batch axis
    # across images: each call brings one image's features and N prompt sets).
    decoder_max_prompts: int = 64
    queue_delay_us: int = 2000
    intra_op_threads: int = 0
    # Embedded target: "fp32" (ONNX Runtime) or "bf16" (OpenVINO; CPUs with AVX512-BF16/AMX)
    cpu_precision: str = "fp32"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = DEFAULT_MAX_POINTS
    session_cache_bytes: int = 1 << 30  # sam2_session's embeddings, 16.8 MB per image
    # Embedded target: sam2_session and sam2_automatic run the decoder ONNX themselves rather
    # than through a BLS call, sparing each call a second stub and 16.8 MB of features through
    # shared memory.
    decoder_in_process: bool = True
    # Embedded target: sam2_segment is one Python model running the four steps itself (no
    # image or features through shared memory) rather than the GPU target's ensemble.
    segment_in_process: bool = True
    # sam2_automatic decodes its point grid this many points per decoder call (capped by
    # decoder_max_prompts); the image's features go with each call once, whatever the count.
    automatic_decoder_chunk: int = 8
    # sam2_automatic refuses a request whose grids (all crop layers) exceed this many points:
    # about 4 minutes of decoder work on 2 CPU cores (Meta's default, 32 per side, is 1,024).
    automatic_max_grid_points: int = 8192
    # Video tracking (sam2_video, sam2_video_stream): served when the export has the tracker's
    # graphs (`sam2-triton export --video`). One sam2_video_sessions instance owns the sessions.
    video: bool = False
    video_instances: int = 2  # concurrent sam2_video requests (HTTP pages)
    video_stream_instances: int = 2  # concurrent streamed propagations
    # sam2_video_sessions holds the sessions in one process. Propagations reach it a frame a
    # request; those waiting together are tracked together (on a GPU, their objects in one
    # memory-attention call), and a step waits this long for the next frame of a propagation
    # under way (video.scheduler), so propagations of different videos fall into step.
    video_step_wait_us: int = 20000
    video_max_sessions: int = 8
    video_max_bytes: int = 4 << 30  # all sessions' frames and state
    video_idle_seconds: int = 900  # a session unused this long is closed
    video_max_frames: int = 3000  # per video
    video_page_frames: int = 8  # frames one (HTTP) propagate answer carries
    video_memory_frames: int = 16  # tracked frames' state kept per object (0: all, as sam2)
    # SAM 3's concept prompts (sam3_concepts): served when the export has SAM 3's concept graphs
    # (concepts.graphs.CONCEPT_FILES). Each instance holds the three graphs (about 3.4 GB at
    # full size); the images' backbone features (111 MB each) are shared through the cache.
    concepts: bool = False
    concepts_instances: int = 1
    concepts_cache_bytes: int = 2 << 30
    concepts_max_phrases: int = 16  # phrases one request may ask (a detector run each)
    # Which model answers clicks and boxes (sam2_segment, sam2_session, sam2_automatic): a
    # families.FAMILIES name. "sam3" serves SAM 3's interactive model under the same contract
    # at its sizes (build-repo chooses it when the export is SAM 3's alone).
    family: str = SAM2.name

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {self.family!r}")
        if self.cpu_precision not in CPU_PRECISIONS:
            raise ValueError(
                f"cpu_precision must be one of {CPU_PRECISIONS}, not {self.cpu_precision!r}"
            )
        positive = ("decoder_max_prompts", "automatic_decoder_chunk", "concepts_max_phrases")
        for name in (*INSTANCE_OPTIONS.values(), *positive):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")


#: Which ServingOptions field sets each model's instance count (CLI: --instances MODEL=N).
INSTANCE_OPTIONS: Mapping[str, str] = {
    c.SEGMENT: "segment_instances",
    c.IMAGE_ENCODER: "encoder_instances",
    c.MASK_DECODER: "decoder_instances",
    c.PREPROCESS: "preprocess_instances",
    c.POSTPROCESS: "postprocess_instances",
    c.SESSION: "session_instances",
    c.AUTOMATIC: "automatic_instances",
    c.VIDEO: "video_instances",
    c.VIDEO_STREAM: "video_stream_instances",
    c.CONCEPTS: "concepts_instances",
}
