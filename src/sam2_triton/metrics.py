"""The service's own metrics, exported beside Triton's on the metrics port (:8002): their names,
labels and buckets, in one place read by the Triton models, the dashboards, the alert rules and
their tests.

Triton counts a Python-backend request whose response carries an error as a success
(``nv_inference_request_success``), so the outcome of each request is counted here, by error
kind. Encoder and decoder time is measured where a request of ours waits for it (in process or
through BLS), labelled with the model that waited.
"""

from __future__ import annotations

import json

from sam2_triton.errors import ErrorKind, ServiceError

REQUESTS = "sam2_requests_total"
ENCODE_SECONDS = "sam2_encode_seconds"
DECODE_SECONDS = "sam2_decode_seconds"
CACHE_HITS = "sam2_session_cache_hits"
CACHE_MISSES = "sam2_session_cache_misses"
CACHE_EVICTIONS = "sam2_session_cache_evictions"
CACHE_BYTES = "sam2_session_cache_bytes"
CACHE_ENTRIES = "sam2_session_cache_entries"
#: sam3_concepts' cache of images' backbone features (111 MB an image), counted apart: its bytes
#: and entries mean something else than sessions' embeddings (16.8 MB).
CONCEPTS_CACHE_HITS = "sam3_concepts_cache_hits"
CONCEPTS_CACHE_MISSES = "sam3_concepts_cache_misses"
CONCEPTS_CACHE_EVICTIONS = "sam3_concepts_cache_evictions"
CONCEPTS_CACHE_BYTES = "sam3_concepts_cache_bytes"
CONCEPTS_CACHE_ENTRIES = "sam3_concepts_cache_entries"
#: Each cache's series: hits, misses, evictions, bytes, entries.
SESSION_CACHE = (CACHE_HITS, CACHE_MISSES, CACHE_EVICTIONS, CACHE_BYTES, CACHE_ENTRIES)
CONCEPTS_CACHE = (CONCEPTS_CACHE_HITS, CONCEPTS_CACHE_MISSES, CONCEPTS_CACHE_EVICTIONS,
                  CONCEPTS_CACHE_BYTES, CONCEPTS_CACHE_ENTRIES)  # fmt: skip
VIDEO_SESSIONS = "sam2_video_sessions"
VIDEO_BYTES = "sam2_video_bytes"
VIDEO_EVICTIONS = "sam2_video_evictions"  # label reason: one of EVICTION_REASONS
VIDEO_FRAMES = "sam2_video_frames_tracked"
#: Why a video session was closed by the server: idle too long, too many sessions, too many bytes.
EVICTED_IDLE, EVICTED_FOR_SESSIONS, EVICTED_FOR_BYTES = "idle", "sessions", "bytes"
EVICTION_REASONS = (EVICTED_IDLE, EVICTED_FOR_SESSIONS, EVICTED_FOR_BYTES)

STUB_RESTARTS = "sam2_stub_restarts"  # label cause: one of RESTART_CAUSES
#: Why the watchdog replaced a model's stub: it died, or it hung (alive but answering nothing).
RESTART_CAUSES = ("dead", "hung")
#: The file (JSON {model: {cause: count}}) in which the watchdog counts its restarts, named to
#: tritonserver and its stubs by this environment variable: a model reloaded reads its counts.
RESTARTS_FILE_ENV = "SAM2_TRITON_RESTARTS_FILE"

SUCCESS = "success"
OUTCOMES: tuple[str, ...] = (SUCCESS, *(kind.value for kind in ErrorKind))
CLIENT_ERRORS: tuple[str, ...] = (
    ErrorKind.INVALID_INPUT.value,
    ErrorKind.NOT_FOUND.value,
    ErrorKind.CANCELLED.value,
)

# An encoder pass is 0.05 s on a GPU to tens of seconds for large on 2 cores; a decoder pass is
# milliseconds (GPU) to a second (a big segment-everything chunk on a CPU).
ENCODE_BUCKETS: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 60)
DECODE_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)

# Every series name a scrape of our server holds (histograms: their _bucket/_sum/_count).
SERIES: tuple[str, ...] = (
    REQUESTS,
    *(f"{h}{s}" for h in (ENCODE_SECONDS, DECODE_SECONDS) for s in ("_bucket", "_sum", "_count")),
    *SESSION_CACHE,
    *CONCEPTS_CACHE,
    STUB_RESTARTS,
)


def read_restarts(path: str | None) -> dict[str, dict[str, int]]:
    """The watchdog's restart counts ({model: {cause: count}}); none if it has not written any."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            counts = json.load(file)
    except (OSError, ValueError):
        return {}
    return counts if isinstance(counts, dict) else {}


def outcome(error: BaseException | None) -> str:
    """The ``outcome`` label of a request answered with ``error`` (None: success)."""
    if error is None:
        return SUCCESS
    if isinstance(error, ServiceError):
        return error.kind.value
    return ErrorKind.INTERNAL.value


#: ... and those of a server that tracks video too (ServingOptions.video).
VIDEO_SERIES: tuple[str, ...] = (VIDEO_SESSIONS, VIDEO_BYTES, VIDEO_EVICTIONS, VIDEO_FRAMES)
