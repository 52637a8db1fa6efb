"""The gateway's answers as JSON text. The tools take masks as long lists of numbers (CVAT a
mask's pixels, Label Studio its brush RLE's bytes), which ``json.dumps`` writes a number at a
time: here numpy writes them and the rest of the answer is spliced around them."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np

#: "0," to "255," as bytes, padded with zeros (dropped when written).
_BYTE_TEXT = np.zeros((256, 4), np.uint8)
for _value in range(256):
    _text = f"{_value},".encode()
    _BYTE_TEXT[_value, : len(_text)] = np.frombuffer(_text, np.uint8)


@dataclass(frozen=True)
class EncodedJson:
    """An answer already JSON (a tool's mask as millions of numbers: written by numpy, where
    ``json.dumps`` of a list would take a second for a 12 MP photo's mask)."""

    body: bytes


@dataclass(frozen=True)
class RawJson:
    """JSON text standing for a value inside an answer (``encode_answer`` puts it there)."""

    text: bytes


def encode_answer(answer: Any) -> EncodedJson:
    """``answer`` as JSON, each RawJson in it written as its text, in one pass."""
    if isinstance(answer, EncodedJson):
        return answer
    marker = secrets.token_hex(8)
    fragments: list[bytes] = []

    def placeholder(value: Any) -> str:
        if not isinstance(value, RawJson):
            raise TypeError(f"{type(value).__name__} is not JSON")
        fragments.append(value.text)
        return f"{marker}:{len(fragments) - 1}"

    text = json.dumps(answer, default=placeholder).encode()
    if not fragments:
        return EncodedJson(text)
    found = re.compile(rb'"' + marker.encode() + rb':(\d+)"')
    return EncodedJson(found.sub(lambda m: fragments[int(m.group(1))], text))


def bytes_json(data: bytes) -> RawJson:
    """Bytes as a JSON list of their values, [0-255, ...] (200,000 of them in 1-2 ms)."""
    if not data:
        return RawJson(b"[]")
    chars = _BYTE_TEXT[np.frombuffer(data, np.uint8)].reshape(-1)
    return RawJson(b"[" + chars[chars != 0].tobytes()[:-1] + b"]")


def digits_json(mask: np.ndarray) -> bytes:
    """A 0/1 array as JSON numbers: [[0,1,…],…] for [H, W], [0,1,…] for [N]."""
    values = np.asarray(mask, np.uint8).reshape(-1, mask.shape[-1]) if mask.ndim else mask
    rows, width = values.shape
    chars = np.full((rows, 2 * width + 1), ord(","), np.uint8)
    chars[:, 0], chars[:, -1] = ord("["), ord("]")
    chars[:, 1:-1:2] = values + ord("0")
    if mask.ndim == 1:
        return chars.tobytes()
    return b"[" + b",".join(row.tobytes() for row in chars) + b"]"
