"""The web app's gateway API over both of its protocols to the real server: it answers what
sam2_session and sam2_automatic answer, refuses what it must not forward with a message naming
the field, and exposes nothing of Triton."""

from __future__ import annotations

import http.client
import json
import time

import numpy as np
import pytest
import requests

from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.encodings import rle_to_mask
from tests.helpers import ASSETS, PARAMS
from tests.ui_browser import gateway

pytestmark = pytest.mark.e2e
SAMPLE = (ASSETS / "coffee.jpg").read_bytes()


@pytest.fixture(scope="module", params=["grpc", "http"])
def api(request, triton):
    url = triton.grpc_url if request.param == "grpc" else triton.http_url
    with gateway(url, "--protocol", request.param, "--max-upload-mb", "1") as base:
        yield base


def _open(api: str) -> dict:
    answer = requests.post(f"{api}/api/images", data=SAMPLE, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_clicks_answer_what_sam2_session_answers(api, triton):
    opened = _open(api)
    assert (opened["width"], opened["height"]) == (600, 400)
    prompts = {"points": [[250.5, 190.25], [400, 100]], "labels": [1, 0], "box": None}
    answer = requests.post(
        f"{api}/api/images/{opened['image_id']}/masks", json=prompts, timeout=60
    ).json()
    with SegmentClient(triton.grpc_url, "grpc") as client:
        expected = client.click(
            opened["image_id"],
            np.array(prompts["points"], np.float32),
            np.array(prompts["labels"], np.int32),
            multimask_output=False,
        )
    assert answer["multimask"] is False and len(answer["candidates"]) == 1
    np.testing.assert_array_equal(rle_to_mask(answer["candidates"][0]["rle"]), expected.masks[0])
    assert answer["candidates"][0]["score"] == pytest.approx(float(expected.iou_scores[0]))
    assert answer["gateway_ms"] >= answer["server_ms"] > 0


def test_segment_everything_runs_as_a_job_that_can_be_cancelled(api, triton, request):
    image_id = _open(api)["image_id"]
    start = requests.post(f"{api}/api/images/{image_id}/everything", json=PARAMS, timeout=60)
    assert start.status_code == 202 and start.json()["estimate_s"] > 0
    job = start.json()
    while job["state"] == "running":
        time.sleep(0.2)
        job = requests.get(f"{api}/api/jobs/{job['job_id']}", timeout=60).json()
    assert job["state"] == "done" and job["progress"] == 1.0
    with SegmentClient(triton.grpc_url, "grpc") as client:
        expected = client.automatic(SAMPLE, PARAMS)["annotations"]
    assert [a["segmentation"] for a in job["annotations"]] == [a["segmentation"] for a in expected]

    # Over gRPC the cancel reaches the server; over HTTP the server finishes the job, so a
    # 1024-point grid there would keep both cores busy for minutes under the tests that follow.
    grpc = request.node.callspec.params["api"] == "grpc"
    slow = dict(PARAMS, points_per_side=32) if grpc else PARAMS
    job = requests.post(f"{api}/api/images/{image_id}/everything", json=slow, timeout=60).json()
    cancelled = requests.delete(f"{api}/api/jobs/{job['job_id']}", timeout=60).json()
    assert cancelled["state"] == "cancelled" and cancelled["annotations"] is None


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("masks", {"points": [[1, 2]], "labels": [1, 0]}, 400, "labels: 2 labels for 1 points"),
        ("masks", {"points": [[1, float("nan")]], "labels": [1]}, 400, "nan is not a finite"),
        ("masks", {"points": [["1", 2]], "labels": [1]}, 400, "points[0]: '1' is not a finite"),
        ("masks", {"points": [[1, 2]], "labels": [7]}, 400, "labels[0]: 7 is neither"),
        ("masks", {"box": [1, 2, 3]}, 400, "box: must be a list of 4 numbers"),
        ("masks", {"points": []}, 400, "an object needs a point or a box"),
        ("masks", {"point": [[1, 2]]}, 400, "unknown field(s) ['point']"),
        ("masks", {"points": [[900, 2]], "labels": [1]}, 400, "lies outside the 600x400 image"),
        ("everything", {"points_per_side": 1e9}, 400, "points_per_side: 1000000000 is out of"),
        ("everything", {"crop_layers": 1}, 400, "crop_layers: unknown"),
        ("everything", {"points_per_side": 2.5}, 400, "not a whole number"),
    ],
)
def test_bad_requests_are_refused_naming_the_field(api, path, body, status, message):
    image_id = _open(api)["image_id"]
    data = json.dumps(body)  # NaN as Python writes it: not JSON, but what a hand-made one sends
    answer = requests.post(
        f"{api}/api/images/{image_id}/{path}",
        data=data,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]


def test_unknown_ids_big_uploads_and_triton_paths_are_refused(api):
    unknown = "0" * 64
    answer = requests.post(f"{api}/api/images/{unknown}/masks", json={"box": [1, 2, 3, 4]})
    assert answer.status_code == 404 and "not open here" in answer.json()["error"]
    answer = requests.post(f"{api}/api/images/nothex/masks", json={"box": [1, 2, 3, 4]})
    assert answer.status_code == 400 and "64-character hex id" in answer.json()["error"]
    assert requests.get(f"{api}/api/jobs/{'0' * 32}").status_code == 404
    big = requests.post(f"{api}/api/images", data=b"\xff" * (2 << 20), timeout=60)
    assert big.status_code == 413 and "upload cap of 1 MiB" in big.json()["error"]
    for path in ("/v2/models/sam2_session", "/v2/repository/index", "/metrics", "/v2"):
        assert requests.get(f"{api}{path}").status_code == 404
    page = requests.get(f"{api}/")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    host, port = api.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    for raw in ("/static/../backend.py", "/static/%2e%2e/backend.py", "/api/samples/..%2fui"):
        connection.request("GET", raw)  # sent as written, not normalised by a client library
        answer = connection.getresponse()
        answer.read()
        assert answer.status in (403, 404), raw
    connection.close()
    assert requests.get(f"{api}/api/health").json() == {"server_ready": True}


def test_other_sites_cannot_drive_the_gateway_from_a_visitors_browser(api):
    box = {"box": [1, 2, 3, 4]}
    url = f"{api}/api/images/{'0' * 64}/masks"
    cross = requests.post(url, json=box, headers={"Origin": "http://evil.example"}, timeout=30)
    assert cross.status_code == 403 and "other sites" in cross.json()["error"]
    rebound = requests.post(url, json=box, headers={"Host": "evil.example:7860"}, timeout=30)
    assert rebound.status_code == 403 and "not an address" in rebound.json()["error"]
    form = requests.post(url, data=json.dumps(box), headers={"Content-Type": "text/plain"})
    assert form.status_code == 400 and "must be application/json" in form.json()["error"]
    same = requests.post(url, json=box, headers={"Origin": api}, timeout=30)
    assert same.status_code == 404  # past the checks: the image is simply not open
