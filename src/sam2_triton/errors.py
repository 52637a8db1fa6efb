"""The service's errors and their kinds, free of Triton.

Each error carries an ``ErrorKind``; ``triton_models.common`` maps kinds to Triton error codes
in one table, so the request logic (tested without Triton) decides what the client is told
(bad input, unknown id, cancelled, ...) and a callee's kind survives a BLS hop.
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, as the client should learn it (one Triton error code each)."""

    INVALID_INPUT = "invalid_input"  # the client must fix the request
    NOT_FOUND = "not_found"  # an id is unknown or evicted: the client resends the data
    CANCELLED = "cancelled"  # the client gave up; no one is waiting for the answer
    UNAVAILABLE = "unavailable"  # a model cannot serve now; retrying later may work
    INTERNAL = "internal"  # our fault; details are in the server log


class ServiceError(Exception):
    """Base of the errors a request may end with on purpose; ``kind`` says which code to send."""

    kind: ErrorKind = ErrorKind.INTERNAL


class InvalidInputError(ServiceError, ValueError):
    """A request field is malformed. ``str()`` names the field and the problem.

    A ValueError too, so code that catches ValueError around parsing keeps working.
    """

    kind = ErrorKind.INVALID_INPUT

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownImageError(InvalidInputError):
    """The image id is not (or no longer) cached: the client must send the image again.

    NOT_FOUND (HTTP 404) rather than INVALID_ARG: the id was well formed, only its data is gone.
    Still an InvalidInputError, so callers catching bad input catch it.
    """

    kind = ErrorKind.NOT_FOUND


class RequestCancelled(ServiceError):
    """The client cancelled the request; long work stops at the next check."""

    kind = ErrorKind.CANCELLED


class CalleeError(ServiceError):
    """A model we called (BLS) answered with an error: its kind and message pass on unchanged,
    prefixed by its name, so e.g. its NOT_FOUND reaches our client as NOT_FOUND, not INTERNAL."""

    def __init__(self, model: str, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{model}: {message}")
        self.model = model
        self.kind = kind
        self.message = message


class ExportCheckError(RuntimeError):
    """Exported ONNX files that do not reproduce the PyTorch model (SAM 2.1's or SAM 3's):
    ``sam2-triton export`` refuses to place them."""
