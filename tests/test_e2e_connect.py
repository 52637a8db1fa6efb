"""``sam2-triton connect`` against the shared real tritonserver, driven as each tool drives it.

- X-AnyLabeling: its own client (``RemoteServer``, x-anylabeling-cvhub 4.2.1, in its own venv:
  ``make x-anylabeling``) clicks; its polygons are sam2_session's for the same click.
- CVAT: requests and answers shaped as its sources build and read them:
  ``cvat/apps/lambda_manager/views.py`` (the function list, ``/api/function_invocations`` with
  ``x-nuclio-function-name``, the interactor body ``pos_points``/``neg_points``/``obj_bbox``
  [[x1, y1], [x2, y2]]), ``cvat-ui/src/components/annotation-page/standard-workspace/
  controls-side-bar/tools-control.tsx`` (``mask`` cropped to inclusive ``bounds``) and the
  segmentation detectors' ``to_cvat_mask`` (``serverless/pytorch/ultralytics/…/main.py``: the
  crop's flat values then [xtl, ytl, xbr, ybr]).
- Label Studio: ``/predict`` as Label Studio 1.23.2 calls it (keypoints in percent,
  ``is_positive``), its image fetched with the token (a legacy token, and a personal access
  token exchanged and renewed); the brush RLE decoded as
  ``label_studio_sdk.converter.brush.decode_rle`` reads it (this project's venv cannot hold the
  SDK: it needs numpy 2; tests/test_connect.py holds the SDK's own bytes for two masks).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import os
import subprocess
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from aiohttp import web
from PIL import Image
from pycocotools import mask as mask_utils

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.connect.app import make_app
from sam2_triton.connect.config import (
    ConnectConfig,
    GatewayConfig,
    LabelStudioConfig,
    ServerConfig,
)
from sam2_triton.connect.service import ToolError
from sam2_triton.image.polygons import polygons_to_mask
from tests.conftest import ROOT, free_port, model_runs
from tests.helpers import PARAMS, image_bytes

pytestmark = pytest.mark.e2e

X_ANYLABELING = ROOT / "build" / "x-anylabeling" / "bin" / "python"
TOKEN = "test-token-0123"


def _coffee_png() -> bytes:
    rgb = np.asarray(Image.open(io.BytesIO(image_bytes("coffee.jpg"))).convert("RGB"))[::2, ::2]
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buffer, "PNG")
    return buffer.getvalue()  # 300 x 200


COFFEE = _coffee_png()


@contextlib.contextmanager
def _serving(apps: dict[int, web.Application]) -> Iterator[None]:
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


def _label_studio_stub() -> web.Application:
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


@pytest.fixture(scope="module")
def gateway(triton) -> Iterator[str]:
    studio_port, port = free_port(), free_port()
    STUDIO["url"] = f"http://127.0.0.1:{studio_port}"
    config = ConnectConfig(
        server=ServerConfig(triton.grpc_url, "grpc"),
        gateway=GatewayConfig(max_body_mb=1),
        label_studio=LabelStudioConfig(url=f"http://127.0.0.1:{studio_port}", token=TOKEN),
        automatic=dict(PARAMS),
    )
    with _serving({studio_port: _label_studio_stub(), port: make_app(config)}):
        yield f"http://127.0.0.1:{port}"


def _best(triton, **prompt) -> np.ndarray:
    """sam2_session's answer to the same prompt, as the gateway asks it (three candidates for a
    lone click, the best kept)."""
    with SegmentClient(triton.grpc_url, "grpc") as client:
        lone = len(prompt.get("point_coords", [])) == 1 and "box" not in prompt
        arrays = {k: np.asarray(v, np.float32 if k != "point_labels" else np.int32)
                  for k, v in prompt.items()}  # fmt: skip
        answer = client.click(client.embed(COFFEE), multimask_output=lone, **arrays)
    return answer.masks[int(np.argmax(answer.iou_scores.reshape(-1)))].astype(bool)


def _uncrop(mask: np.ndarray, bounds: list[int], height: int = 200, width: int = 300):
    full = np.zeros((height, width), bool)
    x1, y1, x2, y2 = bounds
    full[y1 : y2 + 1, x1 : x2 + 1] = mask
    return full


# --- X-AnyLabeling ---------------------------------------------------------------------------


def test_x_anylabeling_clicks_come_back_as_sam2_sessions_polygons(gateway, triton, tmp_path):
    if not X_ANYLABELING.exists():
        message = "X-AnyLabeling's client is not installed: make x-anylabeling"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (make test installs it)")
        pytest.skip(message)
    image = tmp_path / "coffee.png"
    image.write_bytes(COFFEE)
    marks = [{"type": "point", "data": [150, 100], "label": 1},
             {"type": "point", "data": [40, 30], "label": 0}]  # fmt: skip
    run = subprocess.run(
        [str(X_ANYLABELING), str(ROOT / "tests" / "anylabeling_client.py"), str(tmp_path),
         gateway, str(image), "0", json.dumps(marks)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["models"] == ["sam2", "sam2_everything"] and answer["messages"] == []
    shapes = answer["shapes"]
    assert shapes and {s["shape_type"] for s in shapes} == {"polygon"}
    want = _best(triton, point_coords=[[150, 100], [40, 30]], point_labels=[1, 0])
    rings = [[v for point in s["points"] for v in point] for s in shapes]
    got = polygons_to_mask(rings, [[] for _ in rings], 200, 300).astype(bool)
    # X-AnyLabeling's polygons hold no holes: the rasterised outer rings cover the mask
    assert np.all(got[want]) and (got & ~want).sum() <= 0.02 * want.sum()

    # the image re-sent (as X-AnyLabeling does with every click) costs one sam2_session request,
    # the click: the gateway sends no image (the server would find it cached, but only after
    # receiving and hashing it), and no encoder runs
    before = model_runs(triton, c.SESSION), model_runs(triton, c.IMAGE_ENCODER)
    body = {"model": "sam2", "image": "data:image/png;base64," + base64.b64encode(COFFEE).decode(),
            "params": {"marks": marks[:1]}}  # fmt: skip
    reply = requests.post(f"{gateway}/v1/predict", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json()["data"]["shapes"]
    after = model_runs(triton, c.SESSION), model_runs(triton, c.IMAGE_ENCODER)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 0)


# --- CVAT ------------------------------------------------------------------------------------


def _invoke(gateway: str, function: str, body: dict) -> requests.Response:
    headers = {"x-nuclio-function-name": function, "x-nuclio-path": "/",
               "x-nuclio-project-name": "cvat"}  # fmt: skip
    return requests.post(f"{gateway}/api/function_invocations", json=body, headers=headers,
                         timeout=300)  # fmt: skip


def test_cvat_lists_its_functions_and_the_interactor_answers_sam2_sessions_mask(gateway, triton):
    listed = requests.get(f"{gateway}/api/functions", timeout=10).json()
    interactor = listed["sam2-triton"]
    assert interactor["metadata"]["annotations"]["type"] == "interactor"
    assert int(interactor["metadata"]["annotations"]["version"]) >= 2
    assert "description" in interactor["spec"] and "status" in interactor
    detector = requests.get(f"{gateway}/api/functions/sam2-triton-everything", timeout=10).json()
    assert json.loads(detector["metadata"]["annotations"]["spec"]) == [
        {"name": "object", "type": "mask"}
    ]
    image = base64.b64encode(COFFEE).decode()
    clicks = {"image": image, "pos_points": [[150, 100]], "neg_points": [], "obj_bbox": []}
    answer = _invoke(gateway, "sam2-triton", clicks).json()
    want = _best(triton, point_coords=[[150, 100]], point_labels=[1])
    assert np.array_equal(_uncrop(np.array(answer["mask"], bool), answer["bounds"]), want)

    boxed = {**clicks, "obj_bbox": [[60, 40], [220, 170]], "neg_points": [[70, 50]]}
    answer = _invoke(gateway, "sam2-triton", boxed).json()
    want = _best(triton, point_coords=[[150, 100], [70, 50]], point_labels=[1, 0],
                 box=[60, 40, 220, 170])  # fmt: skip
    assert np.array_equal(_uncrop(np.array(answer["mask"], bool), answer["bounds"]), want)


def test_cvat_detector_answers_sam2_automatics_masks(gateway, triton):
    with SegmentClient(triton.grpc_url, "grpc", network_timeout_s=300) as client:
        records = client.automatic(COFFEE, PARAMS)["annotations"]
    sessions = model_runs(triton, c.SESSION)
    shapes = _invoke(gateway, "sam2-triton-everything",
                     {"image": base64.b64encode(COFFEE).decode()}).json()  # fmt: skip
    assert model_runs(triton, c.SESSION) == sessions  # nothing embedded for it
    assert len(shapes) == len(records) > 0
    for shape, record in zip(shapes, records, strict=True):
        assert (shape["label"], shape["type"]) == ("object", "mask")
        *values, x1, y1, x2, y2 = shape["mask"]
        crop = np.array(values, bool).reshape(y2 - y1 + 1, x2 - x1 + 1)
        rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
        assert np.array_equal(_uncrop(crop, [x1, y1, x2, y2]), mask_utils.decode(rle) > 0)
    image = base64.b64encode(COFFEE).decode()
    strict = _invoke(gateway, "sam2-triton-everything", {"image": image, "threshold": 0.9}).json()
    assert len(strict) == sum(r["predicted_iou"] >= 0.9 for r in records)


# --- Label Studio ----------------------------------------------------------------------------

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


def test_label_studio_click_answers_sam2_sessions_mask_as_a_brush(gateway, triton):
    keypoint = {"original_width": 300, "original_height": 200, "image_rotation": 0,
                "value": {"x": 50.0, "y": 50.0, "width": 0.5, "keypointlabels": ["cup"]},
                "is_positive": True, "id": "k1", "from_name": "tag2", "to_name": "image",
                "type": "keypointlabels", "origin": "manual"}  # fmt: skip
    task = {"id": 1, "data": {"image": "/data/upload/1/coffee.png"}}
    params = {"login": None, "password": None, "context": {"result": [keypoint]}}
    body = {"tasks": [task], "project": "1.1733000000", "label_config": LABEL_CONFIG,
            "params": params}  # fmt: skip
    reply = requests.post(f"{gateway}/predict", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    (prediction,) = reply.json()["results"]
    (region,) = prediction["result"]
    assert (region["type"], region["from_name"], region["to_name"]) == ("brushlabels", "tag",
                                                                        "image")  # fmt: skip
    assert region["value"]["brushlabels"] == ["cup"] and region["value"]["format"] == "rle"
    assert isinstance(prediction["model_version"], str)
    rgba = decode_brush_rle(region["value"]["rle"]).reshape(200, 300, 4)
    assert set(np.unique(rgba[..., 3])) <= {0, 255}
    want = _best(triton, point_coords=[[150, 100]], point_labels=[1])
    assert np.array_equal(rgba[..., 3] == 255, want)

    # pre-annotation (no context): every object sam2_automatic finds, one prediction per task
    reply = requests.post(f"{gateway}/predict", json={**body, "params": {}}, timeout=300)
    (prediction,) = reply.json()["results"]
    with SegmentClient(triton.grpc_url, "grpc", network_timeout_s=300) as client:
        records = client.automatic(COFFEE, PARAMS)["annotations"]
    assert len(prediction["result"]) == len(records) > 0
    for region, record in zip(prediction["result"], records, strict=True):
        assert region["value"]["brushlabels"] == ["cup"]
        assert region["score"] == pytest.approx(record["predicted_iou"], abs=1e-4)
        rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
        alpha = decode_brush_rle(region["value"]["rle"]).reshape(200, 300, 4)[..., 3]
        assert np.array_equal(alpha == 255, mask_utils.decode(rle) > 0)


def test_label_studio_personal_access_tokens_are_exchanged_and_renewed(gateway):
    from sam2_triton.connect.label_studio import ImageFetcher

    fetcher = ImageFetcher(LabelStudioConfig(url=STUDIO["url"], token=PERSONAL_TOKEN), 1 << 20)
    assert fetcher.fetch("/data/upload/1/coffee.png", 1) == COFFEE  # exchanged: Bearer
    requests.post(f"{STUDIO['url']}/test/expire", timeout=10)
    assert fetcher.fetch("/data/upload/1/coffee.png", 1) == COFFEE  # 401, renewed, again
    assert fetcher.headers("http://elsewhere.example/data/upload/1/coffee.png") == {}
    assert fetcher.headers(STUDIO["url"] + "/api/projects/") == {}  # only its file paths
    wrong = ImageFetcher(LabelStudioConfig(url=STUDIO["url"], token=PERSONAL_TOKEN[:-2]), 1 << 20)
    with pytest.raises(ToolError, match="refused the personal access token"):
        wrong.fetch("/data/upload/1/coffee.png", 1)


# --- bad input -------------------------------------------------------------------------------

IMAGE = base64.b64encode(COFFEE).decode()
BAD = [
    ("/v1/predict", {}, b"{not json", "not valid JSON"),
    ("/v1/predict", {}, {"model": "yolo", "image": IMAGE}, "unknown model 'yolo'"),
    ("/v1/predict", {}, {"model": "sam2", "image": base64.b64encode(b"GIF89 no").decode(),
                         "params": {"marks": [{"type": "point", "data": [1, 1]}]}}, "image:"),
    ("/v1/predict", {}, {"model": "sam2", "image": "A" * (2 << 20)}, "over the gateway's limit"),
    ("/v1/predict", {}, {"model": "sam2", "image": IMAGE,
                         "params": {"marks": [{"type": "point", "data": [5000, 3]}]}},
     "(5000, 3) lies outside the 300 x 200 image"),
    ("/api/function_invocations", {"x-nuclio-function-name": "siammask"}, {"image": IMAGE},
     "function 'siammask': unknown"),
    ("/api/function_invocations", {"x-nuclio-function-name": "sam2-triton"},
     {"image": IMAGE, "pos_points": [[float("nan"), 3]]}, "is not finite"),
    ("/predict", {}, {"tasks": [{"id": 9, "data": {"image": "/data/upload/1/missing.png"}}],
                      "label_config": LABEL_CONFIG}, "Label Studio answered 404"),
    ("/predict", {}, {"tasks": [], "label_config": LABEL_CONFIG}, "tasks: empty"),
]  # fmt: skip


def test_bad_requests_are_refused_in_each_tools_shape_naming_the_problem(gateway):
    for path, headers, body, problem in BAD:
        data = body if isinstance(body, bytes) else json.dumps(body)  # NaN as Python writes it
        reply = requests.post(f"{gateway}{path}", data=data, timeout=60,
                              headers={"Content-Type": "application/json", **headers})  # fmt: skip
        assert 400 <= reply.status_code < 600, (path, body)
        # what the tools show: str(requests' HTTPError), the status line with its reason
        shown = str(requests.HTTPError(f"{reply.status_code} Error: {reply.reason}"))
        assert problem in shown, (path, shown)
        assert problem in json.dumps(reply.json()), reply.text
    form = requests.post(f"{gateway}/v1/predict", data="x=1", timeout=10)
    assert form.status_code == 415
    # and it keeps serving
    assert requests.get(f"{gateway}/health", timeout=10).json()["status"] == "UP"
