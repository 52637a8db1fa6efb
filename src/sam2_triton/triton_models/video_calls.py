"""sam2_video_sessions through BLS, as sam2_video and sam2_video_stream call it: its frame
scheduler answers each request with one response, later, from its own thread.

The call is a plain (not decoupled) BLS call. tritonserver 2.51's decoupled BLS frees the
response iterator's last responses on a thread of the stub that does not hold the GIL, which
corrupted the caller's Python heap: stubs died at random under load (docs/operations.md,
``benchmarks/bls_crash.py``).

Its errors reach the client with their kind and message, not its name (it is internal). A BLS
caller gets every callee error as INTERNAL (tritonserver 2.51's Python backend drops the
code), so sam2_video_sessions tags its messages with the kind (``tagged``) and the callers
read it back here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.errors import CalleeError, ErrorKind, ServiceError
from sam2_triton.triton_models.common import bls_request

OUTPUT_NAMES = [t.name for t in c.VIDEO_OUTPUTS]
_TAG = re.compile(r"^\[kind:(\w+)\] ")


class SessionsError(ServiceError):
    """An error of sam2_video_sessions: its kind and message, passed on as the client's own."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def tagged(error: ServiceError) -> SessionsError:
    """``error`` with its kind written into its message, for a caller across BLS."""
    return SessionsError(error.kind, f"[kind:{error.kind.value}] {error}")


def call_sessions(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    result = bls_request(c.VIDEO_SESSIONS, feeds, OUTPUT_NAMES).exec()
    if result.has_error():
        message = result.error().message()
        found = _TAG.match(message)
        if found is None:  # not one of its answers: a failure of the call itself
            raise CalleeError(c.VIDEO_SESSIONS, ErrorKind.INTERNAL, message)
        raise SessionsError(ErrorKind(found.group(1)), message[found.end() :])
    outputs = {n: pb_utils.get_output_tensor_by_name(result, n) for n in OUTPUT_NAMES}
    if any(tensor is None for tensor in outputs.values()):
        raise CalleeError(c.VIDEO_SESSIONS, ErrorKind.INTERNAL, "an answer without its outputs")
    return {name: tensor.as_numpy() for name, tensor in outputs.items()}
