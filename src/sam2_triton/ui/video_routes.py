"""The gateway's video API for the page (``ui.video``; docs/ui.md): open, frames, prompts,
tracking as a stream of frames, removing objects, closing.

Tracking answers as server-sent events (``text/event-stream``) read by ``fetch``: one
``data: {frame record}`` a tracked frame, as soon as the server sends it, then ``data:
{"done": true}``. A page that stops reading (Cancel, a closed tab) closes the stream, which
cancels the server's propagation: it stops stepping.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, web

from sam2_triton.ui import requests as ui_requests
from sam2_triton.ui.backend import GatewayError
from sam2_triton.ui.video import VideoBackend
from sam2_triton.web.events import stream_events


def add_video_routes(app: web.Application, videos: VideoBackend, json_body, run) -> None:
    """``json_body(request)`` and ``run(request, call, *args)``: the gateway's own helpers."""
    app["videos"] = videos

    async def open_video(request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":  # a folder of frames
            data: bytes | list[tuple[str, bytes]] = await _folder(request)
        else:
            data = await request.read()
        if not data:
            raise GatewayError(400, "video: the upload is empty; send a video file, a zip or "
                                    "a folder of JPEG frames")  # fmt: skip
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
        return await stream_events(
            request, request.app["pool"], lambda: videos.track(video_id, start, reverse),
            expected=GatewayError, failed=lambda message: GatewayError(500, message),
            error_event=lambda error: {"error": str(error)}, last_event={"done": True},
        )  # fmt: skip

    app.router.add_post("/api/videos", open_video)
    app.router.add_get("/api/videos/{video_id}/frames/{index}", frame)
    app.router.add_post("/api/videos/{video_id}/prompts", prompt)
    app.router.add_post("/api/videos/{video_id}/track", track)
    app.router.add_delete("/api/videos/{video_id}/objects/{obj_id}", remove_object)
    app.router.add_get("/api/videos/{video_id}/export/{name}", export)
    app.router.add_delete("/api/videos/{video_id}", close)
    app.router.add_post("/api/videos/{video_id}/close", close)  # navigator.sendBeacon posts


async def _folder(request: web.Request) -> list[tuple[str, bytes]]:
    """A folder's files as the page sends them (a multipart form, a file part each), under the
    gateway's upload cap, which a multipart reader does not enforce by itself."""
    cap, total = request.app["max_upload_bytes"], 0
    files = []
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader) or part.filename is None:
            raise ui_requests.BadRequest("a folder upload holds files only")
        data = await part.read()
        total += len(data)
        if total > cap:
            raise web.HTTPRequestEntityTooLarge(max_size=cap, actual_size=total)
        files.append((part.filename, bytes(data)))
    return files
