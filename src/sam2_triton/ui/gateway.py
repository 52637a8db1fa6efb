"""The web app's gateway (aiohttp): the page, its static files and a small JSON API on one
origin, and nothing of Triton's own endpoints.

    GET    /                              the page
    GET    /api/health                    {"server_ready": bool}
    GET    /api/samples                   the bundled sample images: [{"name", "url"}]
    POST   /api/images                    body: the image file -> {image_id, width, height, ...}
    GET    /api/images/{id}/view          the image as the server decodes it (PNG)
    POST   /api/images/{id}/masks         {"points", "labels", "box"} -> candidates (COCO RLE)
    POST   /api/images/{id}/everything    segment-everything parameters -> a job
    POST   /api/images/{id}/find          {text, threshold}: SAM 3's instances of a phrase
    GET    /api/jobs/{job}                the job's state, estimated progress, annotations
    DELETE /api/jobs/{job}                cancel it (the server stops within one decoder call)

Every error is ``{"error": message}`` with a 4xx/5xx status. Calls into the service block, so
they run in a thread pool; the event loop only moves bytes.

Other sites cannot drive it from a visitor's browser: a request whose ``Origin`` is another
site, or whose ``Host`` is not an address the gateway listens on (DNS rebinding), is refused,
and JSON bodies must say they are JSON (no form can send that without a preflight).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from sam2_triton.ui import requests as ui_requests
from sam2_triton.ui.backend import GatewayError, UiBackend
from sam2_triton.ui.video import VideoBackend
from sam2_triton.ui.video_routes import add_video_routes

STATIC = Path(str(resources.files("sam2_triton.ui") / "static"))
SAMPLES = Path(str(resources.files("sam2_triton") / "assets"))
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
DEFAULT_MAX_UPLOAD_BYTES = 64 << 20
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; object-src 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def make_app(
    backend: UiBackend,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    hosts: tuple[str, ...] = LOOPBACK_NAMES,
    videos: VideoBackend | None = None,
) -> web.Application:
    """``hosts``: the host names requests may be addressed to (``Host``), ``()`` for any (a
    gateway bound to 0.0.0.0 on purpose); ``videos``: the video API too (ui.video_routes)."""
    app = web.Application(client_max_size=max_upload_bytes, middlewares=[_errors, _same_site])
    app["hosts"] = hosts
    app["backend"] = backend
    app["max_upload_bytes"] = max_upload_bytes
    app["pool"] = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sam2-ui")
    app.on_shutdown.append(_stop_pool)
    app.router.add_get("/", _page)
    app.router.add_get("/favicon.ico", _favicon)  # asked for by every browser, link or not
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/api/health", _health)
    app.router.add_get("/api/samples", _samples)
    app.router.add_get("/api/samples/{name}", _sample)
    app.router.add_post("/api/images", _open_image)
    app.router.add_get("/api/images/{image_id}/view", _view)
    app.router.add_post("/api/images/{image_id}/masks", _masks)
    app.router.add_post("/api/images/{image_id}/everything", _everything)
    app.router.add_post("/api/images/{image_id}/find", _find_all)
    app.router.add_get("/api/jobs/{job_id}", _job)
    app.router.add_delete("/api/jobs/{job_id}", _cancel_job)
    if videos is not None:
        add_video_routes(app, videos, _json_body, _run)
    app.on_response_prepare.append(_security_headers)
    return app


# --- handlers -------------------------------------------------------------------------------


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _favicon(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "favicon.svg", headers={"Content-Type": "image/svg+xml"})


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"server_ready": await _run(request, _backend(request).ready)})


def _sample_files() -> dict[str, Path]:
    return {p.name: p for p in sorted(SAMPLES.iterdir()) if p.suffix.lower() in SAMPLE_SUFFIXES}


async def _samples(request: web.Request) -> web.Response:
    return web.json_response([{"name": n, "url": f"/api/samples/{n}"} for n in _sample_files()])


async def _sample(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    known = _sample_files()
    if name not in known:
        raise GatewayError(404, f"sample {name[:80]!r}: unknown; known: {sorted(known)}")
    return web.FileResponse(known[name])


async def _open_image(request: web.Request) -> web.Response:
    data = await request.read()
    if not data:
        raise GatewayError(400, "image: the upload is empty; send an image file")
    start = time.perf_counter()
    image = await _run(request, _backend(request).open_image, data)
    return web.json_response(
        {
            "image_id": image.image_id,
            "width": image.width,
            "height": image.height,
            "bytes": len(data),
            "encode_ms": round((time.perf_counter() - start) * 1e3, 1),
        }
    )


async def _view(request: web.Request) -> web.Response:
    image_id = ui_requests.image_id(request.match_info["image_id"])
    png = await _run(request, _backend(request).view_png, image_id)
    return web.Response(body=png, content_type="image/png")


async def _masks(request: web.Request) -> web.Response:
    image_id = ui_requests.image_id(request.match_info["image_id"])
    prompts = ui_requests.parse_prompts(await _json_body(request))
    start = time.perf_counter()
    answer = await _run(request, _backend(request).click, image_id, prompts)
    answer["gateway_ms"] = round((time.perf_counter() - start) * 1e3, 2)
    answer["multimask"] = prompts.multimask
    return web.json_response(answer)


async def _everything(request: web.Request) -> web.Response:
    image_id = ui_requests.image_id(request.match_info["image_id"])
    params = ui_requests.parse_everything(await _json_body(request))
    job = await _run(request, _backend(request).start_everything, image_id, params)
    return web.json_response(job.snapshot(), status=202)


async def _find_all(request: web.Request) -> web.Response:
    image_id = ui_requests.image_id(request.match_info["image_id"])
    question = ui_requests.parse_find_all(await _json_body(request))
    return web.json_response(await _run(request, _backend(request).find_all, image_id, question))


async def _job(request: web.Request) -> web.Response:
    job = _backend(request).job(ui_requests.job_id(request.match_info["job_id"]))
    return web.json_response(job.snapshot())


async def _cancel_job(request: web.Request) -> web.Response:
    job_id = ui_requests.job_id(request.match_info["job_id"])
    job = await _run(request, _backend(request).cancel_job, job_id)
    return web.json_response(job.snapshot())


# --- plumbing -------------------------------------------------------------------------------


def _backend(request: web.Request) -> UiBackend:
    return request.app["backend"]


async def _run(request: web.Request, call: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(request.app["pool"], call, *args)


async def _json_body(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise ui_requests.BadRequest(
            f"body: Content-Type must be application/json, not {request.content_type[:80]!r}"
        )
    try:
        return json.loads(await request.read() or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ui_requests.BadRequest(f"body: not JSON ({str(exc)[:200]})") from None


@web.middleware
async def _same_site(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Requests from this page only: the Host one of ours, any Origin this very origin."""
    hosts = request.app["hosts"]
    name = request.host.rsplit(":", 1)[0] if not request.host.endswith("]") else request.host
    if hosts and name not in hosts:
        return _error(403, f"Host {request.host[:80]!r}: not an address of this gateway")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return _error(403, f"Origin {origin[:80]!r}: requests from other sites are refused")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return _error(exc.status, str(exc))
    except ui_requests.BadRequest as exc:
        return _error(400, str(exc))
    except web.HTTPRequestEntityTooLarge:
        cap = request.app["max_upload_bytes"]
        return _error(
            413,
            f"the upload is over this gateway's upload cap of {cap / 2**20:.0f} MiB "
            "(sam2-triton ui --max-upload-mb)",
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error(exc.status, f"{request.method} {request.path[:80]}: {exc.reason}")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(HEADERS)


async def _stop_pool(app: web.Application) -> None:
    app["pool"].shutdown(wait=False, cancel_futures=True)
