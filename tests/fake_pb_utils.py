"""A stand-in for ``triton_python_backend_utils`` (it exists only inside Triton's stub), enough
to run our Python-backend models in-process."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The stub's flag ending a decoupled model's response stream (sam2_video_stream)
TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1


@dataclass
class Tensor:
    name: str
    value: np.ndarray

    def as_numpy(self) -> np.ndarray:
        return self.value


class TritonError:
    UNKNOWN = 2  # the values are gRPC's; only their distinctness matters
    INTERNAL = 13
    INVALID_ARG = 3
    NOT_FOUND = 5
    CANCELLED = 1
    UNAVAILABLE = 14
    UNSUPPORTED = 12
    ALREADY_EXISTS = 6

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


class InferenceResponse:
    """As in Triton: ``error()`` and ``has_error()`` are methods (BLS callers use them)."""

    def __init__(
        self, output_tensors: list[Tensor] | None = None, error: TritonError | None = None
    ) -> None:
        self.output_tensors = list(output_tensors or [])
        self._error = error

    def outputs(self) -> dict[str, np.ndarray]:
        return {t.name: t.value for t in self.output_tensors}

    def error(self) -> TritonError | None:
        return self._error

    def has_error(self) -> bool:
        return self._error is not None


# BLS callees by model name: a test puts a function here that answers a request.
MODELS: dict[str, Callable[[InferenceRequest], InferenceResponse]] = {}


@dataclass
class InferenceRequest:
    """A request given to a model (``inputs`` a dict) or, with ``model_name``, a BLS request
    (``inputs`` a list of Tensor, as in Triton) that ``exec`` hands to ``MODELS[model_name]``."""

    inputs: Any
    cancelled: bool = False
    model_name: str = ""
    requested_output_names: list[str] = field(default_factory=list)

    def is_cancelled(self) -> bool:
        return self.cancelled

    def exec(self) -> InferenceResponse:
        inputs = {t.name: t.value for t in self.inputs}
        return MODELS[self.model_name](InferenceRequest(inputs))


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    value = request.inputs.get(name)
    return None if value is None else Tensor(name, value)


def get_output_tensor_by_name(response: InferenceResponse, name: str) -> Tensor | None:
    return next((t for t in response.output_tensors if t.name == name), None)


class Logger:
    messages: list[str] = []

    @classmethod
    def log_error(cls, message: str) -> None:
        cls.messages.append(message)


class MetricFamily:
    """Custom metrics as in Triton (values kept in ``METRICS``, nothing exported)."""

    COUNTER, GAUGE, HISTOGRAM = 0, 1, 2

    def __init__(self, name: str, description: str, kind: int) -> None:
        self.name, self.description, self.kind = name, description, kind

    def Metric(  # noqa: N802 - Triton's name
        self, labels: dict[str, str] | None = None, buckets: list[float] | None = None
    ) -> Metric:
        if (self.kind == self.HISTOGRAM) != (buckets is not None):
            raise ValueError("buckets are required for a histogram and only for one")
        metric = Metric(self.name, labels or {}, buckets)
        METRICS.append(metric)
        return metric


@dataclass
class Metric:
    name: str
    labels: dict[str, str]
    buckets: list[float] | None = None
    value: float = 0.0
    observed: list[float] = field(default_factory=list)

    def increment(self, delta: float) -> None:
        self.value += delta

    def set(self, value: float) -> None:
        self.value = value

    def observe(self, value: float) -> None:
        self.observed.append(value)


METRICS: list[Metric] = []


def metric_value(name: str, **labels: str) -> float:
    """The sum over the metrics named ``name`` whose labels include ``labels``."""
    return sum(m.value for m in METRICS if m.name == name and labels.items() <= m.labels.items())
