"""Concurrent requests (which Triton may batch together) each get their own, correct answer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from sam2_triton.client import SegmentClient
from tests.test_e2e_segment import CASES, image_bytes

pytestmark = pytest.mark.e2e

REQUESTS = [
    (image, case, protocol)
    for image, case, protocol in [
        ("astronaut.png", "one_point_multimask", "http"),
        ("coffee.jpg", "box", "grpc"),
        ("astronaut.png", "pos_neg_points", "grpc"),
        ("coffee.jpg", "box_and_points", "http"),
        ("coffee.jpg", "one_point_single", "grpc"),
        ("astronaut.png", "box", "http"),
    ]
]


def _call(triton, image: str, case_name: str, protocol: str):
    case = CASES[case_name]
    size = {"astronaut.png": (512, 512), "coffee.jpg": (600, 400)}[image]
    url = triton.http_url if protocol == "http" else triton.grpc_url
    with SegmentClient(url, protocol) as client:
        return client.segment(image_bytes(image), *case.arrays(*size), case.multimask)


def test_concurrent_requests_get_unmixed_results(triton):
    expected = [_call(triton, *request) for request in REQUESTS]  # one at a time
    with ThreadPoolExecutor(len(REQUESTS)) as pool:
        futures = [pool.submit(_call, triton, *request) for request in REQUESTS]
        results = [future.result(timeout=600) for future in futures]
    for request, got, want in zip(REQUESTS, results, expected, strict=True):
        assert got.masks.shape == want.masks.shape, request
        agreement = np.mean(got.masks == want.masks)
        assert agreement >= 0.999, f"{request}: {agreement:.5f}"
        np.testing.assert_allclose(got.iou_scores, want.iou_scores, atol=1e-4, err_msg=str(request))
