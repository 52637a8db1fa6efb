"""A stand-in for ``triton_python_backend_utils`` (it exists only inside Triton's stub), enough
to run our Python-backend models in-process."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tensor:
    name: str
    value: np.ndarray

    def as_numpy(self) -> np.ndarray:
        return self.value


class TritonError:
    INTERNAL = 13
    INVALID_ARG = 3
    NOT_FOUND = 5
    CANCELLED = 1

    def __init__(self, message: str, code: int = INTERNAL) -> None:
        self._message, self._code = message, code

    def message(self) -> str:
        return self._message

    def code(self) -> int:
        return self._code


@dataclass
class InferenceResponse:
    output_tensors: list[Tensor] = field(default_factory=list)
    error: TritonError | None = None

    def outputs(self) -> dict[str, np.ndarray]:
        return {t.name: t.value for t in self.output_tensors}


@dataclass
class InferenceRequest:
    inputs: dict[str, np.ndarray]
    cancelled: bool = False

    def is_cancelled(self) -> bool:
        return self.cancelled


def get_input_tensor_by_name(request: InferenceRequest, name: str) -> Tensor | None:
    value = request.inputs.get(name)
    return None if value is None else Tensor(name, value)


class Logger:
    messages: list[str] = []

    @classmethod
    def log_error(cls, message: str) -> None:
        cls.messages.append(message)
