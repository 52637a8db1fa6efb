"""The gateway's video API for the page (``ui.video``; docs/ui.md): open, frames, prompts,
tracking as a stream of frames, removing objects, closing.

Tracking answers as server-sent events (``text/event-stream``) read by ``fetch``: one
``data: {frame record}`` a tracked frame, as soon as the server sends it, then ``data:
{"done": true}``. A page that stops reading (Cancel, a closed tab) closes the stream, which
cancels the server's propagation: it stops stepping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

from aiohttp import web

from sam2_triton.ui import requests as ui_requests
from sam2_triton.ui.backend import GatewayError
from sam2_triton.ui.video import VideoBackend

log = logging.getLogger(__name__)


def add_video_routes(app: web.Application, videos: VideoBackend, json_body, run) -> None:
    """``json_body(request)`` and ``run(request, call, *args)``: the gateway's own helpers."""
    app["videos"] = videos

    async def open_video(request: web.Request) -> web.Response:
        data = await request.read()
        if not data:
            raise GatewayError(400, "video: the upload is empty; send a video file or a zip")
        video = await run(request, videos.open_video, data)
        return web.json_response(video.info())

    async def frame(request: web.Request) -> web.Response:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        index = ui_requests.frame_index(request.match_info["index"])
        jpeg = await run(request, videos.frame, video_id, index)
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "private, max-age=3600"})  # fmt: skip

    async def prompt(request: web.Request) -> web.Response:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        parsed = ui_requests.parse_video_prompt(await json_body(request))
        return web.json_response(await run(request, videos.prompt, video_id, parsed))

    async def remove_object(request: web.Request) -> web.Response:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        obj_id = ui_requests.frame_index(request.match_info["obj_id"], "obj_id")
        return web.json_response(await run(request, videos.remove_object, video_id, obj_id))

    async def export(request: web.Request) -> web.Response:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        name = request.match_info["name"]
        data, kind = await run(request, videos.export, video_id, name)
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}  # a known name
        return web.Response(body=data, content_type=kind, headers=disposition)

    async def close(request: web.Request) -> web.Response:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        await run(request, videos.close, video_id)
        return web.json_response({"closed": video_id})

    async def track(request: web.Request) -> web.StreamResponse:
        video_id = ui_requests.video_id(request.match_info["video_id"])
        body = await json_body(request)
        if not isinstance(body, dict) or set(body) - {"start", "reverse"}:
            raise ui_requests.BadRequest('body: {"start": frame, "reverse": false} only')
        start = ui_requests.frame_index(body.get("start", 0), "start")
        reverse = body.get("reverse", False)
        if not isinstance(reverse, bool):
            raise ui_requests.BadRequest(f"reverse: {str(reverse)[:40]!r} is not true or false")
        return await _stream(request, lambda: videos.track(video_id, start, reverse))

    app.router.add_post("/api/videos", open_video)
    app.router.add_get("/api/videos/{video_id}/frames/{index}", frame)
    app.router.add_post("/api/videos/{video_id}/prompts", prompt)
    app.router.add_post("/api/videos/{video_id}/track", track)
    app.router.add_delete("/api/videos/{video_id}/objects/{obj_id}", remove_object)
    app.router.add_get("/api/videos/{video_id}/export/{name}", export)
    app.router.add_delete("/api/videos/{video_id}", close)
    app.router.add_post("/api/videos/{video_id}/close", close)  # navigator.sendBeacon posts


async def _stream(request: web.Request, records) -> web.StreamResponse:
    """``records()``'s items as events, pumped by a worker thread (its gRPC stream is that
    thread's client's). A refusal before the first record is an HTTP error, one after it an
    ``{"error": ...}`` event."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        events = None
        try:
            events = records()
            for record in events:
                put(("record", record))
                if stop.is_set():
                    break
        except GatewayError as error:
            put(("error", error))
        except Exception as exc:  # a bug of ours: say what
            log.exception("ui: tracking failed")
            put(("error", GatewayError(500, f"the gateway failed: {type(exc).__name__}: {exc}")))
        finally:
            if events is not None:
                events.close()  # left early: the server's propagation is cancelled
            put(("end", None))

    worker = loop.run_in_executor(request.app["pool"], pump)
    kind, item = await queue.get()
    if kind == "error":
        await worker
        raise item
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})  # fmt: skip
    try:
        await response.prepare(request)
        while kind != "end":
            event = item if kind == "record" else {"error": str(item)}
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            kind, item = await _next(queue, request, stop)
        await response.write(b'data: {"done": true}\n\n')
        await response.write_eof()
    finally:
        stop.set()
        await worker
    return response


async def _next(queue: asyncio.Queue, request: web.Request, stop: threading.Event) -> Any:
    """The pump's next item; a page that has gone (its connection closing) stops the pump at
    once rather than at the next write, so the server tracks as few frames for nobody as it
    can (the frame under way finishes: a step is not interrupted)."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), 0.2)
        except TimeoutError:
            transport = request.transport
            if transport is None or transport.is_closing():
                stop.set()
                raise ConnectionResetError("the page stopped reading the tracking") from None
