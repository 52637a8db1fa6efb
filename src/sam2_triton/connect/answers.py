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

from sam2_triton.connect import runs

#: "  0," to "255," as 32-bit words: each byte's number and comma in four characters, the
#: JSON whitespace before it filling the rest (no copy to drop padding, 12 % more text).
_BYTE_TEXT = np.frombuffer(b"".join(f"{v:>3},".encode() for v in range(256)), "<u4")


@dataclass(frozen=True)
class EncodedJson:
    """An answer already JSON (a tool's mask as millions of numbers: written by numpy, where
    ``json.dumps`` of a list would take a second for a 12 MP photo's mask): bytes, or the
    buffer numpy wrote them into (not copied again)."""

    body: bytes | memoryview


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
    """Bytes as a JSON list of their values, [  0-255, ...] (a million of them in 1 ms)."""
    if not data:
        return RawJson(b"[]")
    return RawJson(b"[" + _BYTE_TEXT[np.frombuffer(data, np.uint8)].tobytes()[:-1] + b"]")


_PAIR = ord("0") | ord(",") << 8  # a digit and the comma after it, as a little-endian uint16


def digits_json(mask: np.ndarray, prefix: bytes = b"", suffix: bytes = b"") -> memoryview:
    """A 0/1 array as JSON numbers, [[0,1,…],…] for [H, W] and [0,1,…] for [N], between
    ``prefix`` and ``suffix``. A 12 MP mask is 24 MB of text: it is written into one buffer,
    each digit and its comma as one 2-byte word (a JSON space after ``prefix`` aligns them),
    from the rows of a column-major mask (pycocotools') transposed by OpenCV first, and
    returned as that buffer (a copy to bytes took 10 ms more, most of it the new pages)."""
    nested = mask.ndim == 2
    values = runs.row_major(mask) if nested else np.asarray(mask, np.uint8).reshape(1, -1)
    rows, width = values.shape
    head = prefix + (b" " if len(prefix) % 2 == 0 else b"") + (b"[" if nested else b"")
    stride = 2 * width + 2  # "[", the digit pairs (the last one's "]"), the separator
    out = np.empty(len(head) + rows * stride + len(suffix) + 1, np.uint8)
    out[: len(head)] = np.frombuffer(head, np.uint8)
    begin = len(head)  # odd: every row's pairs start at an even offset
    grid = out[begin : begin + rows * stride].reshape(rows, stride)
    grid[:, 0], grid[:, -1] = ord("["), ord(",")
    pairs = out[begin + 1 : begin + 1 + rows * stride].view("<u2").reshape(rows, width + 1)
    np.add(values, _PAIR, out=pairs[:, :width], casting="unsafe")
    pairs[:, width - 1] += (ord("]") - ord(",")) << 8
    end = begin + rows * stride - 1  # the last row's separator: the outer "]", or dropped
    if nested:
        out[end] = ord("]")
        end += 1
    out[end : end + len(suffix)] = np.frombuffer(suffix, np.uint8)
    return memoryview(out[: end + len(suffix)])
