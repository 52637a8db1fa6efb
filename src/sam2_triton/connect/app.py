"""The gateway's routes (aiohttp): each tool's protocol on one port, bound to loopback unless
told otherwise.

Calls into the service block (tritonclient), so they run in thread pools, one for clicks and
one for segment-everything (minutes on a CPU), so that clicks never wait behind those; the event
loop only moves bytes. Every refusal carries its problem three ways, since the tools show different
parts of it: the status, the reason phrase (Label Studio, CVAT and X-AnyLabeling show only
``str(HTTPError)``, which quotes it) and a JSON body in the tool's usual error shape. A POST
must say its body is JSON (no browser form can, without a CORS preflight this gateway never
answers).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from sam2_triton.connect import anylabeling, cvat
from sam2_triton.connect import anylabeling_video as video
from sam2_triton.connect.answers import encode_answer
from sam2_triton.connect.config import ConnectConfig
from sam2_triton.connect.label_studio import LabelStudioBackend
from sam2_triton.connect.service import SegmentService, ToolError
from sam2_triton.connect.tracking import LiveTracker
from sam2_triton.web.events import stream_events

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Call = Callable[[Any, web.Request], Any]
_POOLS = web.AppKey("pools", dict)
log = logging.getLogger(__name__)


def make_app(config: ConnectConfig, service: SegmentService | None = None) -> web.Application:
    service = service or SegmentService(config)
    tracker = LiveTracker(config)
    studio = LabelStudioBackend(service, config.label_studio, tracker)
    largest = max(config.gateway.max_body_mb, config.gateway.max_video_mb) << 20  # base64: 4/3
    app = web.Application(client_max_size=largest * 4 // 3 + (1 << 20))
    pools = {
        "clicks": ThreadPoolExecutor(16, thread_name_prefix="connect-clicks"),
        "everything": ThreadPoolExecutor(2, thread_name_prefix="connect-everything"),
    }
    app[_POOLS] = pools

    def route(shape: Callable[[ToolError], Any], call: Call, slow: Call = lambda b, r: False):
        """A handler: ``call(body, request)`` in the pool ``slow`` picks, its refusals in the
        tool's ``shape``; anything unforeseen is a 500 naming the exception, and logged."""

        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                body = await _json(request) if request.method == "POST" else None
                pool = pools["everything" if slow(body, request) else "clicks"]
                loop = asyncio.get_running_loop()
                answer = await loop.run_in_executor(pool, call, body, request)
                encoded = encode_answer(answer)
                return web.Response(body=encoded.body, content_type="application/json")
            except ToolError as error:
                return _refusal(error, shape(error))
            except Exception as exc:  # a bug of ours: say what, keep serving
                log.exception("connect: %s %s failed", request.method, request.path)
                error = ToolError(500, f"the gateway failed: {type(exc).__name__}: {exc}")
                return _refusal(error, shape(error))

        return handle

    def studio_everything(body: Any, request: web.Request) -> bool:
        params = body.get("params") if isinstance(body, dict) else None
        context = params.get("context") if isinstance(params, dict) else None
        return not (isinstance(context, dict) and context.get("result"))

    def cvat_everything(body: Any, request: web.Request) -> bool:
        return request.headers.get("x-nuclio-function-name") == config.cvat.detector

    def anylabeling_everything(body: Any, request: web.Request) -> bool:
        model = body.get("model") if isinstance(body, dict) else None
        return model == anylabeling.everything_model(config.anylabeling)

    def studio_error(error: ToolError) -> Any:
        return {"status": error.status, "detail": str(error)}

    def nuclio_error(error: ToolError) -> Any:
        return {"error": str(error)}

    def anylabeling_error(error: ToolError) -> Any:
        return {"success": False, "detail": str(error)}

    async def stream_propagation(request: web.Request) -> web.StreamResponse:
        """Server-sent events, a frame at a time (``web.events``); the propagation stops, its
        stream cancelled, when the client goes away. A refusal before the first event is an
        HTTP error, one after it an ``error`` event (the client reads both)."""
        try:
            body = await _json(request)
            anylabeling_auth(lambda b, r: None)(body, request)
            return await stream_events(
                request, pools["everything"], lambda: video.propagate(tracker, config, body),
                expected=ToolError, failed=lambda message: ToolError(500, message),
                error_event=lambda error: {"type": "error", "message": str(error)},
                empty=ToolError(502, "the propagation gave nothing"),
            )  # fmt: skip
        except ToolError as error:
            return _refusal(error, anylabeling_error(error))

    def anylabeling_auth(call: Callable[[Any, web.Request], Any]):
        def checked(body: Any, request: web.Request) -> Any:
            key = config.anylabeling.api_key
            if key and request.headers.get("Token") != key:
                raise ToolError(401, "Token: missing or wrong API key (remote_server_settings)")
            return call(body, request)

        return checked

    app.add_routes(
        [
            # Label Studio's ML backend
            web.get("/health", route(studio_error, lambda b, r: {"status": "UP",
                                                                  "model_class": "sam2-triton"})),
            web.post("/setup", route(studio_error, lambda b, r: studio.setup(b))),
            web.post("/predict", route(studio_error, lambda b, r: studio.predict(b),
                                       studio_everything)),
            web.post("/webhook", route(studio_error, lambda b, r: {"status": "ok"})),
        ]
    )  # fmt: skip
    if config.cvat.enabled:
        app.add_routes(
            [
            # CVAT, through its Nuclio dashboard client
            web.get("/api/functions", route(
                nuclio_error, lambda b, r: cvat.functions(config.cvat))),
            web.get("/api/functions/{name}", route(
                nuclio_error, lambda b, r: cvat.function(config.cvat, r.match_info["name"]))),
            web.post("/api/function_invocations", route(nuclio_error, lambda b, r: cvat.invoke(
                service, config.cvat, r.headers.get("x-nuclio-function-name"), b, tracker),
                cvat_everything)),
            ]
        )  # fmt: skip
    if config.anylabeling.enabled:
        app.add_routes(
            [
            # X-AnyLabeling's remote server
            web.get("/v1/models", route(anylabeling_error, anylabeling_auth(
                lambda b, r: anylabeling.models(config.anylabeling)))),
            web.post("/v1/predict", route(anylabeling_error, anylabeling_auth(
                lambda b, r: anylabeling.predict(service, config.anylabeling, b)),
                anylabeling_everything)),
            web.post("/v1/video/init", route(anylabeling_error, anylabeling_auth(
                lambda b, r: video.init(tracker, config, b)), lambda b, r: True)),
            web.post("/v1/video/prompt", route(anylabeling_error, anylabeling_auth(
                lambda b, r: video.prompt(tracker, config, b)))),
            web.post("/v1/video/cleanup/{session}", route(anylabeling_error, anylabeling_auth(
                lambda b, r: video.cleanup(tracker, r.match_info["session"])))),
            web.post("/v1/video/propagate/stream", stream_propagation),
            ]
        )  # fmt: skip

    async def shutdown(app: web.Application) -> None:
        for pool in pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    return app


async def _json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise ToolError(415, f"Content-Type: expected application/json, got {request.content_type}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ToolError(413, "the request body is over the gateway's limit (max_body_mb)") from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ToolError(400, f"the request body is not valid JSON ({exc})") from None


def _refusal(error: ToolError, body: Any) -> web.Response:
    reason = " ".join(str(error).split())[:300].encode("ascii", "replace").decode()
    return web.json_response(body, status=error.status, reason=reason)
