"""What every Python-backend model of ours shares: reading inputs, turning errors into responses.

Imported only inside the Triton Python backend stub (``triton_python_backend_utils`` exists
only there); the logic it calls lives in plain modules that are tested without Triton.
"""

from __future__ import annotations

import faulthandler
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from sam2_triton import contract as c
from sam2_triton.contract import Tensor
from sam2_triton.errors import (
    CalleeError,
    ErrorKind,
    InvalidInputError,
    RequestCancelled,
    ServiceError,
)
from sam2_triton.families import FAMILIES, SAM2, Family
from sam2_triton.triton_models.metrics import ModelMetrics

# A stub that crashes (a segfault in the backend or an extension) writes each thread's Python
# stack to its stderr, which is the server's log: the crash says where it happened.
faulthandler.enable()

# The one place kinds meet Triton's codes: what a client is told, and (reversed) what a BLS
# callee's error code means to us. Every ErrorKind has an entry (tests check it). Names, not
# values: the stub attaches pb_utils.TritonError only after model.py has been imported.
TRITON_CODE_NAMES: dict[ErrorKind, str] = {
    ErrorKind.INVALID_INPUT: "INVALID_ARG",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.CANCELLED: "CANCELLED",
    ErrorKind.UNAVAILABLE: "UNAVAILABLE",
    ErrorKind.INTERNAL: "INTERNAL",
}


def triton_code(kind: ErrorKind) -> Any:
    """The ``pb_utils.TritonError`` code a client receives for ``kind``."""
    return getattr(pb_utils.TritonError, TRITON_CODE_NAMES[kind])


def error_kind(code: Any) -> ErrorKind:
    """A Triton error code -> our kind; codes we never send (UNKNOWN, ...) are INTERNAL."""
    for kind in ErrorKind:
        if triton_code(kind) == code:
            return kind
    return ErrorKind.INTERNAL


def model_parameters(args: dict[str, str]) -> dict[str, str]:
    """The ``parameters`` block of config.pbtxt as a plain dict of strings."""
    config = json.loads(args["model_config"])
    return {k: v["string_value"] for k, v in config.get("parameters", {}).items()}


def served_family(params: Mapping[str, str]) -> Family:
    """The model family the ``family`` parameter names (SAM 2.1 without one): its sizes."""
    return FAMILIES[params.get("family", SAM2.name)]


def read_inputs(request: Any, tensors: Sequence[Tensor]) -> dict[str, np.ndarray | None]:
    """Inputs by name; a missing optional input is None, a missing required one is an error.

    Triton lets a request omit a required input once a model declares optional ones, so the
    check is ours.
    """
    values: dict[str, np.ndarray | None] = {}
    for tensor in tensors:
        found = pb_utils.get_input_tensor_by_name(request, tensor.name)
        if found is None and not tensor.optional:
            raise InvalidInputError(tensor.name, "required input is missing")
        values[tensor.name] = None if found is None else found.as_numpy()
    return values


def response(outputs: dict[str, np.ndarray]) -> Any:
    return pb_utils.InferenceResponse([pb_utils.Tensor(n, v) for n, v in outputs.items()])


def error_response(exc: Exception, logger: Any) -> Any:
    """A ServiceError -> the code of its kind and its message (naming the field for bad input);
    anything else -> INTERNAL naming the exception, with its repr in the server log."""
    if isinstance(exc, ServiceError):
        if exc.kind is ErrorKind.INTERNAL:
            logger.log_error(f"internal error: {exc}")
        error = pb_utils.TritonError(str(exc), triton_code(exc.kind))
        return pb_utils.InferenceResponse(error=error)
    logger.log_error(f"internal error: {exc!r}")
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(
            f"internal error: {type(exc).__name__}: {exc}", triton_code(ErrorKind.INTERNAL)
        )
    )


def respond_each(
    requests: Sequence[Any],
    handle: Callable[[Any], dict[str, np.ndarray]],
    metrics: ModelMetrics,
) -> list:
    """One response per request, whatever happens to any one of them, each counted by outcome.

    A request its client has cancelled while it waited (e.g. a click superseded by a newer one)
    is answered CANCELLED without running it.
    """
    logger = pb_utils.Logger
    responses = []
    for request in requests:
        error: Exception | None = None
        if request.is_cancelled():
            error = RequestCancelled("cancelled by the client")
        else:
            try:
                responses.append(response(handle(request)))
            except Exception as exc:  # noqa: BLE001 - every request gets an answer
                error = exc
        if error is not None:
            responses.append(error_response(error, logger))
        metrics.answered(error)
    return responses


def bls_request(
    model: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]
) -> pb_utils.InferenceRequest:
    """A BLS request to ``model`` of this server: ``inputs`` as contiguous tensors."""
    return pb_utils.InferenceRequest(
        model_name=model,
        requested_output_names=list(output_names),
        inputs=[pb_utils.Tensor(n, np.ascontiguousarray(v)) for n, v in inputs.items()],
    )


def infer(model: str, inputs: Mapping[str, np.ndarray], output_names: Sequence[str]) -> dict:
    """A BLS call to another model of this server; its error becomes ours (a CalleeError naming
    it) with the kind of its code. tritonserver 2.51's Python backend hands a BLS caller every
    callee error as INTERNAL, so where the kind matters to the client the callee writes it into
    the message (``video_calls``: sam2_video_sessions)."""
    result = bls_request(model, inputs, output_names).exec()
    if result.has_error():
        error = result.error()
        raise CalleeError(model, error_kind(error.code()), error.message())
    return {n: pb_utils.get_output_tensor_by_name(result, n).as_numpy() for n in output_names}


class BlsGraph:
    """Another model of this server called as ONNX Runtime's session is: ``run(output_names,
    feeds)`` (SAM 3's graphs on the GPU target, for ``concepts.find.ConceptGraphs``)."""

    def __init__(self, model: str) -> None:
        self.model = model

    def run(self, output_names: Sequence[str], feeds: Mapping[str, np.ndarray]) -> list:
        outputs = infer(self.model, feeds, output_names)
        return [outputs[name] for name in output_names]


def encode_image(image_1024: np.ndarray) -> dict[str, np.ndarray]:
    """sam2_image_encoder through BLS: [1,3,1024,1024] -> the three feature maps."""
    return infer(c.IMAGE_ENCODER, {"image": image_1024}, [t.name for t in c.ENCODER_OUTPUTS])


def decode_prompts(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """sam2_mask_decoder through BLS: one image's features + N prompt sets -> all four mask
    tokens per set."""
    return infer(c.MASK_DECODER, inputs, [t.name for t in c.DECODER_OUTPUTS])


def chosen_decoder(
    args: dict[str, str], params: dict[str, str]
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """The decoder a model's ``decoder`` parameter names: ``sam2_mask_decoder`` through BLS
    ("bls", the GPU target), or the decoder ONNX file beside model.py run in this process
    (embedded target: no second stub, no 16.8 MB of features through shared memory).

    ORT's thread spinning stays off as everywhere else: with it on, the pools of the idle
    instances a click just left keep spinning and slow the next click (docs/performance.md).
    """
    choice = params.get("decoder", "bls")
    if choice == "bls":
        return decode_prompts
    # Imported here: the GPU image has no onnxruntime (its models call the GPU decoder).
    from sam2_triton.runtime.runners import onnx_function

    version_dir = Path(args["model_repository"]) / args["model_version"]
    return onnx_function(
        version_dir / choice,
        [t.name for t in c.DECODER_OUTPUTS],
        int(params.get("intra_op_num_threads", "0")),
        params.get("precision", "fp32"),
    )
