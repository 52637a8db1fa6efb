"""What the gateway's end-to-end tests share: the test image, a stand-in for Label Studio's
file URLs and token exchange, the gateway in-process (``gateway`` fixture, module-scoped:
``from tests.connect_helpers import gateway``), sam2_session's answer to a prompt, and Label
Studio's brush RLE read as its SDK reads it."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Iterator

import numpy as np
import requests
from aiohttp import web
from PIL import Image

from sam2_triton.clients.image import SegmentClient
from sam2_triton.connect.app import make_app
from sam2_triton.connect.config import (
    ConnectConfig,
    GatewayConfig,
    LabelStudioConfig,
    ServerConfig,
)
from tests.conftest import ROOT, free_port
from tests.helpers import PARAMS, image_bytes

X_ANYLABELING = ROOT / "build" / "x-anylabeling" / "bin" / "python"
TOKEN = "test-token-0123"


def _coffee_png() -> bytes:
    rgb = np.asarray(Image.open(io.BytesIO(image_bytes("coffee.jpg"))).convert("RGB"))[::2, ::2]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "PNG")
    return buffer.getvalue()  # 300 x 200


COFFEE = _coffee_png()


@contextlib.contextmanager
def serving(apps: dict[int, web.Application]) -> Iterator[None]:
    """aiohttp apps on loopback ports, in a thread of their own."""
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    started = threading.Event()

    async def start() -> None:
        for port, app in apps.items():
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)
        started.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()))
    thread.daemon = True
    thread.start()
    assert started.wait(30)
    try:
        yield
    finally:
        for runner in runners:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


#: a personal access token is a JWT (three dot-separated parts), exchanged for access tokens
PERSONAL_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl"


def label_studio_stub() -> web.Application:
    """Label Studio's upload URL for the tests' image, answering only with the legacy token or
    the current access token of the personal one (``/api/token/refresh/``: each exchange
    issues a new access token and expires the one before)."""
    issued: list[str] = []

    async def refresh(request: web.Request) -> web.Response:
        if (await request.json()).get("refresh") != PERSONAL_TOKEN:
            return web.json_response({"detail": "invalid"}, status=401)
        issued.append(f"access-{len(issued)}")
        return web.json_response({"access": issued[-1]})

    async def upload(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization")
        if given != f"Token {TOKEN}" and not (issued and given == f"Bearer {issued[-1]}"):
            return web.Response(status=401)
        return web.Response(body=COFFEE, content_type="image/png")

    async def expire(request: web.Request) -> web.Response:
        issued.append("expired")  # no one holds it: the next Bearer request gets a 401
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/data/upload/1/coffee.png", upload)
    app.router.add_post("/api/token/refresh/", refresh)
    app.router.add_post("/test/expire", expire)
    return app


STUDIO: dict[str, str] = {}  # the stand-in's URL, for the tests that call it themselves


def running_gateway(triton) -> Iterator[str]:
    """``sam2-triton connect``'s app in-process against ``triton``, with Label Studio's
    stand-in (conftest's ``gateway`` fixture)."""
    studio_port, port = free_port(), free_port()
    STUDIO["url"] = f"http://127.0.0.1:{studio_port}"
    config = ConnectConfig(
        server=ServerConfig(triton.grpc_url, "grpc"),
        gateway=GatewayConfig(max_body_mb=1),
        label_studio=LabelStudioConfig(url=f"http://127.0.0.1:{studio_port}", token=TOKEN),
        automatic=dict(PARAMS),
    )
    with serving({studio_port: label_studio_stub(), port: make_app(config)}):
        yield f"http://127.0.0.1:{port}"


def best(triton, **prompt) -> np.ndarray:
    """sam2_session's answer to the same prompt, as the gateway asks it (three candidates for a
    lone click, the best kept)."""
    with SegmentClient(triton.grpc_url, "grpc") as client:
        lone = len(prompt.get("point_coords", [])) == 1 and "box" not in prompt
        arrays = {k: np.asarray(v, np.float32 if k != "point_labels" else np.int32)
                  for k, v in prompt.items()}  # fmt: skip
        answer = client.click(client.embed(COFFEE), multimask_output=lone, **arrays)
    return answer.masks[int(np.argmax(answer.iou_scores.reshape(-1)))].astype(bool)


def uncrop(mask: np.ndarray, bounds: list[int], height: int = 200, width: int = 300):
    full = np.zeros((height, width), bool)
    x1, y1, x2, y2 = bounds
    full[y1 : y2 + 1, x1 : x2 + 1] = mask
    return full


def invoke(gateway: str, function: str, body: dict) -> requests.Response:
    headers = {"x-nuclio-function-name": function, "x-nuclio-path": "/",
               "x-nuclio-project-name": "cvat"}  # fmt: skip
    return requests.post(f"{gateway}/api/function_invocations", json=body, headers=headers,
                         timeout=300)  # fmt: skip


LABEL_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image"><Label value="cup"/></BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true"><Label value="cup"/></KeyPointLabels>
</View>"""


def decode_brush_rle(rle: list[int]) -> np.ndarray:
    """label_studio_sdk.converter.brush.decode_rle's reading of the format, for bytes this
    project wrote (the SDK itself needs numpy 2: the Label Studio test decodes with it)."""
    bits = "".join(f"{b:08b}" for b in rle)
    at = 0

    def read(n: int) -> int:
        nonlocal at
        at += n
        return int(bits[at - n : at], 2)

    count, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out, i = np.zeros(count, np.uint8), 0
    while i < count:
        series = read(1)
        j = i + 1 + read(sizes[read(2)])
        if series:
            out[i:j] = read(word)
        else:
            for k in range(i, j):
                out[k] = read(word)
        i = j
    return out
