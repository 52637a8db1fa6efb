"""Server-sent events from a blocking iterator: a video propagation read from its gRPC stream,
which belongs to the thread that opened it, so one worker thread pumps it into the event loop.

A refusal before the first item is the request's error (the caller answers it in its tool's
shape); one after it is an error event. A client that goes away stops the pump at once, not at
the next write, so the server tracks as few frames for nobody as it can (the frame under way
finishes: a step is not interrupted), and the iterator is closed, which cancels its stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)
POLL_S = 0.2  # how often a silent stream checks that its client is still there


async def stream_events(
    request: web.Request,
    pool: Executor,
    items: Callable[[], Iterator[Any]],
    *,
    expected: type[Exception],
    failed: Callable[[str], Exception],
    error_event: Callable[[Exception], dict],
    empty: Exception | None = None,
    last_event: dict | None = None,
) -> web.StreamResponse:
    """``items()``'s items as ``data:`` events. ``expected`` errors are the tool's refusals;
    anything else is logged and becomes ``failed(message)``; ``empty`` is raised when there is
    no item; ``last_event`` ends a stream that ran to its end."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        events = None
        try:
            events = items()
            for event in events:
                put(("event", event))
                if stop.is_set():
                    break
        except expected as error:
            put(("error", error))
        except Exception as exc:  # a bug of ours: say what
            log.exception("a streamed propagation failed")
            put(("error", failed(f"the gateway failed: {type(exc).__name__}: {exc}")))
        finally:
            if events is not None:
                events.close()  # left early: the server's propagation is cancelled
            put(("end", None))

    worker = loop.run_in_executor(pool, pump)
    kind, item = await queue.get()
    if kind == "error" or (kind == "end" and empty is not None):
        await worker
        raise item if kind == "error" else empty
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})  # fmt: skip
    try:
        await response.prepare(request)
        while kind != "end":
            event = item if kind == "event" else error_event(item)
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
            kind, item = await _next(queue, request, stop)
        if last_event is not None:
            await response.write(f"data: {json.dumps(last_event)}\n\n".encode())
        await response.write_eof()
    finally:
        stop.set()
        await worker
    return response


async def _next(queue: asyncio.Queue, request: web.Request, stop: threading.Event) -> Any:
    """The pump's next item, or ConnectionResetError (the pump told to stop) once the client
    has gone."""
    while True:
        try:
            return await asyncio.wait_for(queue.get(), POLL_S)
        except TimeoutError:
            transport = request.transport
            if transport is None or transport.is_closing():
                stop.set()
                raise ConnectionResetError("the client stopped reading the events") from None
