"""The service's own metrics on the metrics port of a real embedded server: every request counted
by model and outcome (Triton itself counts an error response as a success), encoder and decoder
time where a request waits for it, and the session cache's size."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from sam2_triton import contract as c
from sam2_triton import metrics as m
from sam2_triton.clients.image import SegmentClient
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import model_names
from tests.conftest import TRITON_OPTIONS_KW
from tests.helpers import Scrape, unique_png

pytestmark = pytest.mark.e2e

POINT = {"point_coords": np.array([[20.0, 20.0]], np.float32), "point_labels": np.array([1])}


def _delta(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)


def test_every_model_reports_every_outcome_from_the_start(triton):
    scrape = Scrape.of(triton)
    series = {(s["model"], s["outcome"]) for s in scrape.labels(m.REQUESTS)}
    served = model_names("embedded", ServingOptions(**TRITON_OPTIONS_KW))
    assert series == {(model, outcome) for model in served for outcome in m.OUTCOMES}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_session_requests_are_counted_by_outcome_and_timed(triton, protocol):
    url = triton.http_url if protocol == "http" else triton.grpc_url
    session = {"model": c.SESSION}
    before = Scrape.of(triton)
    with SegmentClient(url, protocol) as client:
        image_id = client.embed(unique_png(701 if protocol == "http" else 702))
        client.click(image_id, **POINT)
        client.click(image_id, **POINT)
        with pytest.raises(InferenceServerException):
            client.click("0" * 64, **POINT)  # unknown image
        with pytest.raises(InferenceServerException):
            client.click("not-an-id", **POINT)  # invalid input
    after = Scrape.of(triton)

    assert _delta(before, after, m.REQUESTS, **session, outcome="success") == 3
    assert _delta(before, after, m.REQUESTS, **session, outcome="not_found") == 1
    assert _delta(before, after, m.REQUESTS, **session, outcome="invalid_input") == 1
    assert _delta(before, after, m.REQUESTS, **session, outcome="internal") == 0
    assert _delta(before, after, m.ENCODE_SECONDS + "_count", **session) == 1
    assert _delta(before, after, m.DECODE_SECONDS + "_count", **session) == 2
    assert _delta(before, after, m.ENCODE_SECONDS + "_sum", **session) > 0
    assert _delta(before, after, m.CACHE_MISSES, **session) >= 1
    assert _delta(before, after, m.CACHE_HITS, **session) >= 2
    assert after.value(m.CACHE_ENTRIES, **session) >= 1
    assert after.value(m.CACHE_BYTES, **session) > 0
    # a histogram's buckets are cumulative and end in +Inf == _count
    inf = after.value(m.ENCODE_SECONDS + "_bucket", **session, le="+Inf")
    assert inf == after.value(m.ENCODE_SECONDS + "_count", **session)


def test_segment_requests_are_counted_and_timed(triton):
    segment = {"model": c.SEGMENT}
    before = Scrape.of(triton)
    with SegmentClient(triton.grpc_url, "grpc") as client:
        client.segment(unique_png(703), **POINT)
        with pytest.raises(InferenceServerException):
            client.segment(b"not an image", **POINT)
    after = Scrape.of(triton)
    assert _delta(before, after, m.REQUESTS, **segment, outcome="success") == 1
    assert _delta(before, after, m.REQUESTS, **segment, outcome="invalid_input") == 1
    assert _delta(before, after, m.ENCODE_SECONDS + "_count", **segment) == 1
    assert _delta(before, after, m.DECODE_SECONDS + "_count", **segment) == 1
