"""Hostile requests for every public model, drawn by Hypothesis, sent raw over HTTP and gRPC.

Shared by the suite's fuzz test (a few hundred examples) and ``benchmarks/fuzz.py`` (10,000).
A request is a list of raw inputs (name, datatype, shape, bytes) built from the model's
declared inputs (``contract``), each kept, dropped or mutated: other dtypes and shapes, NaN,
+-inf, huge and empty values, random and truncated bytes, real images in odd formats and sizes,
BYTES with odd encodings, unknown inputs, and (over HTTP) binary sizes that disagree with the
bytes sent. ``send`` classifies the answer: ok, refused (400 / INVALID_ARGUMENT, 404 /
NOT_FOUND), or a failure (anything else: 500 / INTERNAL, UNAVAILABLE, a dropped connection).
"""

from __future__ import annotations

import contextlib
import io
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from hypothesis import strategies as st
from PIL import Image

from sam2_triton import contract as c

#: The public models and their inputs; the encoder's batch axis is part of the request shape.
MODELS: dict[str, tuple[c.Tensor, ...]] = {
    c.SEGMENT: c.SEGMENT_INPUTS,
    c.SESSION: c.SESSION_INPUTS,
    c.AUTOMATIC: c.AUTOMATIC_INPUTS,
    c.MASK_DECODER: c.DECODER_INPUTS,
    c.IMAGE_ENCODER: c.ENCODER_INPUTS,
    c.CONCEPTS: c.CONCEPTS_INPUTS,
}
BATCHED = {c.IMAGE_ENCODER}  # max_batch_size > 0: a leading batch axis
DTYPES = {
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BOOL": np.bool_,
}
ALL_DATATYPES = (*DTYPES, "BYTES")
MAX_ELEMENTS = 1 << 16  # what a drawn tensor holds at most (a declared big one stays whole)
MAX_STRINGS = 64  # elements of a drawn BYTES tensor


@dataclass(frozen=True)
class RawInput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: bytes = field(repr=False)

    def __repr__(self) -> str:  # failure reports: the bytes' count, not the bytes
        return f"RawInput({self.name!r}, {self.datatype}, {list(self.shape)}, {len(self.data)} B)"


@dataclass(frozen=True)
class Request:
    model: str
    inputs: tuple[RawInput, ...]
    size_skew: int = 0  # HTTP: binary_data_size announced minus the bytes sent


@dataclass(frozen=True)
class Outcome:
    kind: str  # "ok", "refused", "failure"
    status: str  # "200", "400", "INVALID_ARGUMENT", ...
    message: str


# --- images -------------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@cache
def image_pool() -> tuple[bytes, ...]:
    """Real images in odd formats, modes and sizes, and a decompression bomb's header."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8))
    pool = [
        _encode(rgb, "PNG"),
        _encode(rgb, "JPEG", quality=30),
        _encode(rgb.convert("CMYK"), "JPEG"),
        _encode(rgb.convert("P"), "GIF"),
        _encode(rgb, "BMP"),
        _encode(rgb, "TIFF"),
        _encode(rgb, "WEBP"),
        _encode(rgb.convert("LA"), "PNG"),
        _encode(Image.fromarray(rng.integers(0, 65535, (20, 30), np.uint16)), "PNG"),
        _encode(Image.new("RGB", (1, 1)), "PNG"),
        _encode(Image.new("L", (4000, 1)), "PNG"),
        _encode(Image.new("1", (10000, 7000)), "PNG"),  # 70 MP of a few kB
    ]
    return tuple(pool)


@contextlib.contextmanager
def same_examples_whatever_ran_before() -> Iterator[None]:
    """Hypothesis biases its draws with the constants of every local module imported so far
    (``providers._get_local_constants``), so a derandomized test's examples depended on the
    tests that ran before it: in the whole suite, 7 of 120 random requests were valid 1024 x
    1024 encoder inputs (2.8 s each on a Zen 3), run alone none. Inside this block that pool is
    empty (its cache cleared on the way in and out): the same examples in any run."""
    from hypothesis.internal.conjecture import providers

    original = providers._get_local_constants
    providers.CONSTANTS_CACHE.cache.clear()
    providers._get_local_constants = providers.Constants  # an empty pool each time
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


# --- values -------------------------------------------------------------------------------

SPECIAL_FLOATS = (np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0, 1e-40, 65504.0, 3e38)
SPECIAL_INTS = (0, -1, 1, 2, 3, 255, 2**31 - 1, -(2**31), 10_000)


def _bytes_tensor(items: list[bytes]) -> bytes:
    """Triton's BYTES serialisation: a 4-byte little-endian length before each element."""
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@st.composite
def _array_bytes(draw: st.DrawFn, datatype: str, count: int) -> bytes:
    if datatype == "BYTES":
        element = st.one_of(
            st.sampled_from([b"", b"rle", b"polygons", b"raw", b"logits", b"\xff\xfe", b"0" * 64]),
            st.binary(max_size=80),
            st.text(max_size=20).map(lambda t: t.encode("utf-8")),
        )
        return _bytes_tensor(draw(st.lists(element, min_size=count, max_size=count)))
    dtype = np.dtype(DTYPES[datatype])
    kind = draw(st.sampled_from(["zeros", "special", "random", "plausible"]))
    if kind == "zeros" or count == 0:
        return np.zeros(count, dtype).tobytes()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype.kind == "f":
        if kind == "special":
            values = rng.choice(np.array(SPECIAL_FLOATS, np.float64), count)
        elif kind == "random":
            values = rng.standard_normal(count) * 10.0 ** rng.integers(-3, 8)
        else:
            values = rng.uniform(0, 64, count)
        with np.errstate(over="ignore", invalid="ignore"):
            return values.astype(dtype).tobytes()
    if dtype.kind == "b":
        return rng.integers(0, 2, count).astype(dtype).tobytes()
    if kind == "special":
        values = rng.choice(np.array(SPECIAL_INTS, np.int64), count)
    else:
        values = rng.integers(-5, 300, count)
    info = np.iinfo(dtype)
    return np.clip(values, info.min, info.max).astype(dtype).tobytes()


def _declared_shape(tensor: c.Tensor, batched: bool, draw: st.DrawFn) -> tuple[int, ...]:
    dims = [draw(st.integers(0, 4)) if d == -1 else d for d in tensor.dims]
    return (draw(st.integers(1, 2)), *dims) if batched else tuple(dims)


@st.composite
def raw_input(draw: st.DrawFn, tensor: c.Tensor, batched: bool) -> RawInput:
    """One input: as declared, or with another dtype, shape or payload."""
    if tensor.name == "image" and tensor.dtype == "UINT8":
        data = draw(
            st.one_of(
                st.sampled_from(image_pool()),
                st.sampled_from(image_pool()).flatmap(
                    lambda d: st.integers(0, len(d)).map(lambda n: d[:n])  # truncated
                ),
                st.binary(max_size=300),
            )
        )
        return RawInput(tensor.name, "UINT8", (len(data),), data)
    mutation = draw(st.sampled_from(["declared", "declared", "dtype", "shape", "bytes"]))
    datatype = tensor.dtype
    if datatype == "STRING":
        datatype = "BYTES"
    shape = _declared_shape(tensor, batched, draw)
    if mutation == "dtype":
        datatype = draw(st.sampled_from(ALL_DATATYPES))
    elif mutation == "shape":
        shape = tuple(draw(st.lists(st.integers(0, 6), max_size=5)))
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    too_many = count > MAX_ELEMENTS and not (mutation == "declared" and datatype != "BYTES")
    if too_many or (datatype == "BYTES" and count > MAX_STRINGS):
        shape, count = (1,) * len(shape), 1
    if mutation == "bytes":
        data = draw(st.binary(max_size=64))
    else:
        data = draw(_array_bytes(datatype, count))
    return RawInput(tensor.name, datatype, shape, data)


@st.composite
def requests(draw: st.DrawFn, model: str | None = None) -> Request:
    """A request for ``model`` (or any public model): each declared input kept or dropped, maybe
    an unknown input, maybe a binary size that disagrees with the bytes."""
    model = model or draw(st.sampled_from(sorted(MODELS)))
    batched = model in BATCHED
    inputs = []
    for tensor in MODELS[model]:
        keep = draw(st.floats(0, 1)) < (0.8 if not tensor.optional else 0.35)
        if keep:
            inputs.append(draw(raw_input(tensor, batched)))
    if draw(st.integers(0, 9)) == 0:
        name = draw(st.sampled_from(["", "images", "image ", "IMAGE", "x" * 300, "é", "box\n"]))
        inputs.append(RawInput(name, "FP32", (1,), np.zeros(1, np.float32).tobytes()))
    skew = draw(st.sampled_from([0] * 12 + [-1, 1, -4, 1000]))
    return Request(model, tuple(inputs), skew)


# --- sending ------------------------------------------------------------------------------

REFUSED_HTTP = {400, 404}
REFUSED_GRPC = {"INVALID_ARGUMENT", "NOT_FOUND"}


def send_http(url: str, request: Request, timeout_s: float = 300.0) -> Outcome:
    """POST with the binary extension: a JSON header, then each input's bytes."""
    import requests as http

    header_inputs = []
    body = b""
    for i, item in enumerate(request.inputs):
        size = len(item.data) + (request.size_skew if i == 0 else 0)
        header_inputs.append(
            {
                "name": item.name,
                "shape": list(item.shape),
                "datatype": item.datatype,
                "parameters": {"binary_data_size": max(size, 0)},
            }
        )
        body += item.data
    # outputs in binary, as Triton's own clients ask for them (JSON text of an encoder's
    # 16 MB of features takes the server seconds to write: time spent on no check)
    header = json.dumps(
        {"inputs": header_inputs, "parameters": {"binary_data_output": True}}
    ).encode()
    try:
        response = http.post(
            f"http://{url}/v2/models/{request.model}/infer",
            data=header + body,
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
                "Connection": "close",
            },
            timeout=timeout_s,
        )
    except Exception as error:  # a dropped connection is a failure, not a refusal
        return Outcome("failure", "connection", f"{type(error).__name__}: {error}")
    status = response.status_code
    if status == 200:
        return Outcome("ok", "200", "")
    try:
        message = str(response.json().get("error", response.text))
    except ValueError:
        message = response.text
    return Outcome("refused" if status in REFUSED_HTTP else "failure", str(status), message)


def send_grpc(url: str, request: Request, timeout_s: float = 300.0) -> Outcome:
    """ModelInfer with raw_input_contents: any dtype, shape and byte count."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    message = service_pb2.ModelInferRequest(model_name=request.model)
    for item in request.inputs:
        message.inputs.add(name=item.name, datatype=item.datatype, shape=list(item.shape))
        message.raw_input_contents.append(item.data)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with grpc.insecure_channel(url, options=options) as channel:
        try:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                message, timeout=timeout_s
            )
        except grpc.RpcError as error:
            code = error.code().name
            kind = "refused" if code in REFUSED_GRPC else "failure"
            return Outcome(kind, code, error.details() or "")
    return Outcome("ok", "OK", "")


def send(protocol: str, url: str, request: Request, timeout_s: float = 300.0) -> Outcome:
    if protocol == "http":
        return send_http(url, request, timeout_s)
    return send_grpc(url, request, timeout_s)


#: Triton's HTTP frontend answers a body longer than the binary sizes announce before any input
#: is read, with a 400 naming the model (its own text, which we cannot change).
FRAMING_MESSAGES = ("unexpected additional input data",)


def names_an_input(outcome: Outcome, request: Request) -> bool:
    """A refusal's message names one of the request's inputs or the model's (a missing one);
    for a request whose framing is off (``size_skew``), Triton's framing message will do."""
    if request.size_skew and any(m in outcome.message for m in FRAMING_MESSAGES):
        return True
    names = {i.name for i in request.inputs if i.name} | {t.name for t in MODELS[request.model]}
    quoted = {f"'{i.name}'" for i in request.inputs}  # an unknown input, even an empty name
    return any(n in outcome.message for n in names) or any(q in outcome.message for q in quoted)


# --- one broken input in an otherwise valid request ---------------------------------------------


@cache
def _valid_inputs() -> dict[str, tuple[RawInput, ...]]:
    """A request each model answers (segment-everything on a 2 x 2 grid, to stay quick)."""
    image = image_pool()[0]  # a 64 x 48 PNG
    point = (
        RawInput("point_coords", "FP32", (1, 2), np.array([[20, 20]], np.float32).tobytes()),
        RawInput("point_labels", "INT32", (1,), np.array([1], np.int32).tobytes()),
    )
    features = tuple(
        RawInput(t.name, "FP32", t.dims, np.zeros(t.dims, np.float32).tobytes())
        for t in c.DECODER_FEATURES
    )
    prompts = (
        RawInput("point_coords", "FP32", (1, 1, 2), np.full((1, 1, 2), 500, np.float32).tobytes()),
        RawInput("point_labels", "INT32", (1, 1), np.ones((1, 1), np.int32).tobytes()),
        RawInput(
            "mask_input", "FP32", (1, 1, 256, 256), np.zeros((1, 1, 256, 256), np.float32).tobytes()
        ),
        RawInput("has_mask_input", "FP32", (1, 1), np.zeros((1, 1), np.float32).tobytes()),
    )
    image_input = RawInput("image", "UINT8", (len(image),), image)
    grid = RawInput("points_per_side", "INT32", (1,), np.array([2], np.int32).tobytes())
    return {
        c.SEGMENT: (image_input, *point),
        c.SESSION: (image_input, *point),
        c.AUTOMATIC: (image_input, grid),
        c.MASK_DECODER: (*features, *prompts),
        c.CONCEPTS: (image_input, RawInput("text", "BYTES", (1,), _bytes_tensor([b"a cat"]))),
    }


@st.composite
def one_broken_input(draw: st.DrawFn, model: str | None = None) -> Request:
    """A valid request (``_valid_inputs``) with one input replaced by a drawn one, or one more
    declared input added: the mistakes reach past the first checks to the models' own."""
    valid = _valid_inputs()
    model = model or draw(st.sampled_from(sorted(valid)))
    inputs = list(valid[model])
    declared = {t.name: t for t in MODELS[model]}
    name = draw(st.sampled_from(sorted(declared)))
    replacement = draw(raw_input(declared[name], model in BATCHED))
    inputs = [i for i in inputs if i.name != name] + [replacement]
    return Request(model, tuple(inputs))
