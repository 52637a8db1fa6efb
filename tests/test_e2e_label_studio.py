"""Label Studio itself (1.23.2, SQLite, in its own venv: ``make label-studio``) with
``sam2-triton connect`` as its ML backend, over a real tritonserver: a click with the smart
keypoint tool, asked of Label Studio's own API as its page asks it, comes back as the brush of
sam2_session's mask (decoded by the SDK, pixel for pixel), and opening the task pre-annotates
it with sam2_automatic's objects (tests/label_studio_client.py drives Label Studio)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from pycocotools import mask as mask_utils

from sam2_triton import SAM2RemoteVideoPredictor
from sam2_triton.clients.image import SegmentClient
from sam2_triton.connect.app import make_app
from sam2_triton.connect.config import ConnectConfig, LabelStudioConfig, ServerConfig
from tests.conftest import ROOT, free_port
from tests.connect_helpers import COFFEE, best, serving
from tests.helpers import PARAMS
from tests.test_e2e_video import _mp4
from tests.video_helpers import synthetic_video

pytestmark = pytest.mark.e2e

VENV = ROOT / "build" / "label-studio" / "bin"
EMAIL, PASSWORD = "sam2@example.com", "sam2-triton-test"


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A Label Studio on loopback: (its URL, its user's token)."""
    if not (VENV / "label-studio").exists():
        message = "Label Studio is not installed: make label-studio"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (make test installs it)")
        pytest.skip(message)
    data = tmp_path_factory.mktemp("label_studio")
    migrated = VENV.parent / "data"  # its database, migrated by make label-studio
    if migrated.is_dir():
        shutil.copytree(migrated, data, dirs_exist_ok=True)
    port, token = free_port(), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data),
        "LABEL_STUDIO_USERNAME": EMAIL,
        "LABEL_STUDIO_PASSWORD": PASSWORD,
        "LABEL_STUDIO_USER_TOKEN": token,
        # a backend on a loopback address is refused otherwise (docs/integrations.md)
        "ML_BLOCK_LOCAL_IP": "false",
        "SSRF_PROTECTION_ENABLED": "false",
    }
    log = data / "label-studio.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(VENV / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
             "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=data,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # the first start migrates its database
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).json().get("status") == "UP":
                    break
            except (requests.RequestException, ValueError):
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        yield url, token
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_label_studio_gets_sam2s_masks_through_the_gateway(label_studio, triton, tmp_path):
    url, token = label_studio
    port = free_port()
    config = ConnectConfig(
        server=ServerConfig(triton.grpc_url, "grpc"),
        label_studio=LabelStudioConfig(url=url, token=token),
        automatic=dict(PARAMS),
    )
    image = tmp_path / "coffee.png"
    image.write_bytes(COFFEE)
    frames = tmp_path / "frames"
    frames.mkdir()
    synthetic_video(frames, 3)
    clip = _mp4(frames, 3, tmp_path / "clip.mp4")
    gateway = f"http://127.0.0.1:{port}"
    with serving({port: make_app(config)}):
        run = subprocess.run(
            [str(VENV / "python"), str(ROOT / "tests" / "label_studio_client.py"), str(tmp_path),
             url, EMAIL, PASSWORD, token, gateway, str(image), str(clip)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    answer = json.loads((tmp_path / "answer.json").read_text())
    assert answer["task_image"].startswith("/data/upload/")  # fetched with the token

    click = answer["interactive"]
    assert (click["type"], click["from_name"], click["to_name"]) == ("brushlabels", "mask",
                                                                      "image")  # fmt: skip
    assert click["labels"] == ["cup"] and click["format"] == "rle"
    want = best(triton, point_coords=[[150, 100]], point_labels=[1])
    assert np.array_equal(np.load(tmp_path / "interactive.npy") == 255, want)

    (prediction,) = answer["preannotations"]
    with SegmentClient(triton.grpc_url, "grpc", network_timeout_s=300) as client:
        records = client.automatic(COFFEE, PARAMS)["annotations"]
    assert len(prediction["regions"]) == len(records) > 0
    for j, record in enumerate(records):
        rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
        got = np.load(tmp_path / f"pre_0_{j}.npy") == 255
        assert np.array_equal(got, mask_utils.decode(rle) > 0), j

    # a VideoRectangle keyframe on frame 1, tracked through the uploaded video: the region
    # comes back with its keyframe and frames 2 and 3, the boxes of SAM2RemoteVideoPredictor's
    # masks on the same file (in percent; random weights segment the whole frame for a box, so
    # this checks the protocol: test_e2e_connect_cvat checks a tracked session's masks)
    video = json.loads((tmp_path / "video.json").read_text())
    assert video["task_video"].startswith("/data/upload/")
    (region,) = video["result"]
    assert (region["type"], region["from_name"], region["to_name"]) == ("videorectangle", "box",
                                                                        "video")  # fmt: skip
    assert region["value"]["labels"] == ["square"]
    sequence = region["value"]["sequence"]
    assert [item["frame"] for item in sequence] == [1, 2, 3]
    box = [18.0, 38.0, 52.0, 72.0]  # the keyframe's 11.25 %, 31.67 %, 21.25 %, 28.33 %
    with SAM2RemoteVideoPredictor(triton.grpc_url, "grpc") as predictor:
        state = predictor.init_state(video_path=str(clip))
        predictor.add_new_points_or_box(state, 0, 1, box=box)
        for index, _, logits in predictor.propagate_in_video(state):
            ys, xs = np.nonzero(np.asarray(logits)[0, 0] > 0)
            want = [
                100 * xs.min() / 160,
                100 * ys.min() / 120,
                100 * (xs.max() + 1 - xs.min()) / 160,
                100 * (ys.max() + 1 - ys.min()) / 120,
            ]
            item = sequence[index]
            got = [item["x"], item["y"], item["width"], item["height"]]
            if index:  # tracked (the keyframe comes back as it was sent)
                assert got == pytest.approx(want, abs=1e-3), index
                assert item["enabled"] and item["time"] == pytest.approx(index / 10)
