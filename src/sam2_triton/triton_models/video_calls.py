"""sam2_video_sessions through BLS, as sam2_video and sam2_video_stream call it: their
request's inputs with the batch axis it has added (one request each), its outputs without.

Its errors reach the client with their kind and message, not its name (it is internal). A BLS
caller gets every callee error as INTERNAL (tritonserver 2.51's Python backend drops the
code), so sam2_video_sessions tags its messages with the kind (``tagged``) and the callers
read it back here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from sam2_triton import contract as c
from sam2_triton.errors import CalleeError, ErrorKind, ServiceError
from sam2_triton.triton_models.common import infer

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
    batched = {name: np.asarray(value)[None] for name, value in feeds.items()}
    try:
        outputs = infer(c.VIDEO_SESSIONS, batched, OUTPUT_NAMES)
    except CalleeError as exc:
        found = _TAG.match(exc.message)
        if found is None:  # not one of its answers: a failure of the call itself
            raise
        raise SessionsError(ErrorKind(found.group(1)), exc.message[found.end() :]) from None
    return {name: value[0] for name, value in outputs.items()}
