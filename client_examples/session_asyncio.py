"""Interactive clicks on sam2_session with asyncio (tritonclient.grpc.aio): embed once, then a
stream of clicks in which a newer click cancels the one still in flight.

    python client_examples/session_asyncio.py IMAGE [--url 127.0.0.1:8001] [--click X,Y ...]
        [--clicks 8] [--interval-ms 20] [--out mask.png]

A user moving over an image produces clicks faster than the decoder answers, and only the newest
one matters: waiting for stale answers would make the UI lag. So each click is an asyncio task and
a new click cancels the previous task if it has not finished (cancelling the task cancels its
gRPC call). The server still finishes a click it has already started (Triton does not interrupt
a running model), so a UI should also not send clicks much faster than it can use. The image is
sent once; clicks carry only its image_id. If the server evicted the
image (NOT_FOUND), the click re-sends the image and retries once. Without --click, the clicks
walk across the middle of the image. Prints each click's latency or that it was cancelled, and
writes the best mask of the last click (a PNG made by the server) to --out.

Every request carries the image's id (sha256 of the file, the same as the image_id the server
returns) in the ``sam2-image-id`` header: behind several replicas (``sam2-triton cluster``, the
Kubernetes Ingress) the balancer sends all of them to the replica that caches the image.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

# Masks of a large image are K x H x W bytes (36 MB for 3 masks of 12 MP) when raw: far above
# gRPC's 4 MiB default. We ask for PNG masks, but raise the limits for raw masks too.
MAX_MESSAGE_BYTES = 2**31 - 1
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


@dataclass
class Click:
    index: int
    x: float
    y: float
    started: float = 0.0
    ended: float = 0.0
    scores: list[float] | None = None
    png: bytes = b""
    cancelled: bool = False
    reembedded: bool = False


def _tensor(name: str, value: np.ndarray, dtype: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(name, list(value.shape), dtype)
    tensor.set_data_from_numpy(value)
    return tensor


async def embed(client: grpcclient.InferenceServerClient, image: bytes) -> tuple[str, int, int]:
    """Send the image without prompts: the server encodes it once and returns its id (and the
    masks output is [0, H, W], which tells us the image size)."""
    inputs = [_tensor("image", np.frombuffer(image, np.uint8), "UINT8")]
    headers = {"sam2-image-id": hashlib.sha256(image).hexdigest()}
    result = await client.infer("sam2_session", inputs, headers=headers)
    _, height, width = result.as_numpy("masks").shape
    return result.as_numpy("image_id")[0].decode(), height, width


async def click(
    client: grpcclient.InferenceServerClient, state: dict[str, str], image: bytes, job: Click
) -> Click:
    """One click on the embedded image; re-embeds once if the server evicted it."""
    job.started = time.perf_counter()
    for attempt in range(2):
        inputs = [
            _tensor("image_id", np.array([state["image_id"].encode()], np.object_), "BYTES"),
            _tensor("point_coords", np.array([[job.x, job.y]], np.float32), "FP32"),
            _tensor("point_labels", np.array([1], np.int32), "INT32"),
            _tensor("output_format", np.array([b"png"], np.object_), "BYTES"),
        ]
        try:
            headers = {"sam2-image-id": state["image_id"]}
            result = await client.infer("sam2_session", inputs, headers=headers)
        except InferenceServerException as error:
            if attempt == 0 and "NOT_FOUND" in str(error.status()):
                state["image_id"], _, _ = await embed(client, image)
                job.reembedded = True
                continue
            raise
        scores = result.as_numpy("iou_scores")
        job.scores = [float(s) for s in scores]
        job.png = bytes(result.as_numpy("encoded_masks")[int(np.argmax(scores))])
        break
    job.ended = time.perf_counter()
    return job


async def run(args: argparse.Namespace) -> None:
    image = Path(args.image).read_bytes()
    async with grpcclient.InferenceServerClient(args.url, channel_args=CHANNEL_ARGS) as client:
        started = time.perf_counter()
        image_id, height, width = await embed(client, image)
        seconds = time.perf_counter() - started
        print(f"embedded {width}x{height} image {image_id[:12]} in {seconds:.2f} s")
        state = {"image_id": image_id}
        if args.click:
            points = [tuple(float(v) for v in text.split(",")) for text in args.click]
        else:
            xs = np.linspace(0.3 * width, 0.7 * width, args.clicks)
            points = [(float(np.round(x)), float(height // 2)) for x in xs]
        jobs = [Click(k, x, y) for k, (x, y) in enumerate(points)]
        tasks: list[asyncio.Task[Click]] = []
        for job in jobs:
            if tasks and not tasks[-1].done():
                tasks[-1].cancel()  # superseded: its answer would be stale
                jobs[len(tasks) - 1].ended = time.perf_counter()
            tasks.append(asyncio.create_task(click(client, state, image, job)))
            await asyncio.sleep(args.interval_ms / 1000)
        await asyncio.gather(*tasks, return_exceptions=True)
        for job, task in zip(jobs, tasks, strict=True):
            job.cancelled = task.cancelled()
            if not job.cancelled and task.exception() is not None:
                raise task.exception()  # e.g. the server refused the click

    for job in jobs:
        ms = 1000 * (job.ended - job.started)
        where = f"click {job.index} ({job.x:g}, {job.y:g})"
        if job.cancelled:
            print(f"{where}: cancelled after {ms:.1f} ms (superseded)")
        else:
            again = " (image re-sent: it had been evicted)" if job.reembedded else ""
            print(f"{where}: {ms:.1f} ms iou_scores {job.scores}{again}")
    last = jobs[-1]
    Path(args.out).write_bytes(last.png)
    done = sum(not job.cancelled for job in jobs)
    print(f"{done} answered, {len(jobs) - done} cancelled; best mask of click {last.index}", end="")
    print(f" -> {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--click", action="append", metavar="X,Y", help="a click (repeatable)")
    parser.add_argument("--clicks", type=int, default=8, help="clicks to make without --click")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="time between clicks")
    parser.add_argument("--out", default="mask.png")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
