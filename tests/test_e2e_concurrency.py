"""Sixteen clients at once, clicking on the same and on different images over HTTP and gRPC,
each get their own correct answer (checked against SAM2ImagePredictor on the same weights)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest
import skimage.data
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from tests.helpers import CASES, image_bytes

pytestmark = pytest.mark.e2e


@cache
def chelsea_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(skimage.data.chelsea()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


IMAGES = {
    "astronaut.png": lambda: image_bytes("astronaut.png"),
    "coffee.jpg": lambda: image_bytes("coffee.jpg"),
    "chelsea.jpg": chelsea_jpeg,
}


@dataclass(frozen=True)
class Client:
    """One simulated user: an image, a protocol, and either a session (embed, then clicks) or
    one-shot sam2_segment calls."""

    image: str
    protocol: str
    model: str
    cases: tuple[str, ...]


CASE_NAMES = list(CASES)
CLIENTS = [
    Client(
        image=list(IMAGES)[i % 3],
        protocol=("http", "grpc")[i % 2],
        model=c.SEGMENT if i % 4 == 3 else c.SESSION,
        cases=(CASE_NAMES[i % 5], CASE_NAMES[(i + 2) % 5]) if i % 4 != 3 else (CASE_NAMES[i % 5],),
    )
    for i in range(16)
]


def _run(triton, client: Client) -> list:
    data = IMAGES[client.image]()
    width, height = Image.open(io.BytesIO(data)).size
    url = triton.http_url if client.protocol == "http" else triton.grpc_url
    results = []
    with SegmentClient(url, client.protocol, network_timeout_s=180) as connection:
        image_id = connection.embed(data) if client.model == c.SESSION else None
        for name in client.cases:
            case = CASES[name]
            coords, labels, box = case.arrays(width, height)
            if image_id is None:
                results.append(connection.segment(data, coords, labels, box, case.multimask))
            else:
                results.append(connection.click(image_id, coords, labels, box, case.multimask))
    return results


def test_sixteen_concurrent_clients_get_their_own_correct_results(triton, reference):
    assert len(CLIENTS) >= 16 and len({(c.image, c.model) for c in CLIENTS}) >= 4
    with ThreadPoolExecutor(len(CLIENTS)) as pool:
        futures = [pool.submit(_run, triton, client) for client in CLIENTS]
        outcomes = [future.result(timeout=900) for future in futures]
    for client, results in zip(CLIENTS, outcomes, strict=True):
        data = IMAGES[client.image]()
        width, height = Image.open(io.BytesIO(data)).size
        for name, got in zip(client.cases, results, strict=True):
            want_masks, want_scores, _ = CASES[name].expected(reference, data, width, height)
            where = f"{client} {name}"
            assert got.masks.shape == want_masks.shape, where
            agreement = np.mean(got.masks == want_masks.astype(np.uint8))
            assert agreement >= 0.999, f"{where}: {agreement:.5f}"
            np.testing.assert_allclose(got.iou_scores, want_scores, atol=1e-3, err_msg=where)
