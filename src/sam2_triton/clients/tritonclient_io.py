"""What every tritonclient caller here shares: the protocols, default URLs, inputs and timeouts.

tritonclient.http and tritonclient.grpc have the same calls for what we use, but differ in
their timeouts' units and in how an input's bytes travel; this is the one place that knows.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

import numpy as np

Protocol = Literal["http", "grpc"]
DEFAULT_URLS = {"http": "127.0.0.1:8000", "grpc": "127.0.0.1:8001"}


def tritonclient_module(protocol: Protocol) -> ModuleType:
    """tritonclient.http or tritonclient.grpc (same API for what we use)."""
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
    return module


def is_not_found(error: Exception) -> bool:
    """True for sam2_session's "unknown image_id" answer (HTTP 404, gRPC NOT_FOUND): the image
    was evicted or never sent, so send it again."""
    status = getattr(error, "status", None)
    return callable(status) and str(status()) in ("404", "StatusCode.NOT_FOUND")


def timeout_kwargs(protocol: Protocol, timeout_s: float | None) -> dict[str, Any]:
    """tritonclient's per-request timeout: microseconds over HTTP, seconds over gRPC."""
    if timeout_s is None:
        return {}
    if protocol == "grpc":
        return {"client_timeout": timeout_s}
    return {"timeout": int(timeout_s * 1e6)}


def make_input(tc: Any, protocol: Protocol, name: str, value: np.ndarray) -> Any:
    """A tritonclient input of ``value`` (binary over HTTP: no JSON of pixels)."""
    tensor = tc.InferInput(name, list(value.shape), _DTYPES[value.dtype.kind, value.itemsize])
    if protocol == "http":
        tensor.set_data_from_numpy(value, binary_data=True)
    else:
        tensor.set_data_from_numpy(value)
    return tensor


# (numpy kind, itemsize) -> KServe v2 datatype
_DTYPES = {
    ("u", 1): "UINT8",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
    ("i", 4): "INT32",
    ("b", 1): "BOOL",
    ("O", 8): "BYTES",
}


def close_once(client: Any) -> None:
    """Close a tritonclient client, once: its gRPC client closes the channel again from
    ``__del__``, and a channel closed a second time at interpreter exit under gevent (Locust)
    can wait on a lock forever (seen: ``Channel._close`` in a futex, the run never ending)."""
    client.close()
    client.close = lambda: None  # what __del__ calls
