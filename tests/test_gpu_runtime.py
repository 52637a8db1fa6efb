"""The GPU target's Python side, executed: the committed model_repository/ in the NGC image's
Python (3.10, docker/requirements-gpu.txt, the package as Dockerfile.gpu installs it), served by
the real tritonserver with the 3.10 stub. Only the two onnxruntime-backend models get CPU
stand-ins (tests/gpu_image.py); everything else is the committed repository as it is, with
SAM 3's models added as build-repo adds them for an export with SAM 3.

In CI a missing Python 3.10 fails these tests; elsewhere they are skipped saying what to install.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from google.protobuf import json_format
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.tritonclient_io import is_not_found
from sam2_triton.repository.model_plan import Runtime
from sam2_triton.repository.plan import repository_plan
from sam2_triton.server.embedded import (
    Ports,
    StubPython,
    TritonServer,
    prepare_runtime,
    server_environment,
)
from sam2_triton.server.watchdog import server_ready, stubs_of
from tests import prebuild
from tests.bad_requests import BAD, SESSION_ONLY, assert_refused
from tests.conftest import (
    ROOT,
    free_port,
    load_configs,
    model_runs,
    model_statistics,
    serve_repository,
)
from tests.gpu_image import (
    CACHE,
    INSTALL_HINT,
    find_python310,
    gpu_image_python,
    gpu_repository,
    image_env,
)
from tests.helpers import (
    CASES,
    PARAMS,
    assert_same_as_batched_predict,
    image_bytes,
    match_annotations,
)

pytestmark = pytest.mark.e2e
PROTOCOLS = ["http", "grpc"]
PYTHON_MODELS = [p.name for p in repository_plan("gpu") if p.runtime is Runtime.PYTHON]
# A subset of the embedded target's bad-input cases: one per kind of check.
BAD_SUBSET = [
    "corrupt image",
    "over the pixel cap",
    "nan point",
    "too many points",
    "inverted box",
    "unknown output format",
    "image as FP32",
    "unknown input name",
]


@pytest.fixture(scope="session")
def gpu_python() -> StubPython:
    python310 = find_python310()
    if python310 is None:
        if os.environ.get("CI"):
            pytest.fail(INSTALL_HINT)
        pytest.skip(INSTALL_HINT)
    env = image_env(CACHE)
    if prebuild.wait(env):  # made at collection, beside the first exports (conftest)
        return StubPython.of(env / "bin" / "python")
    return StubPython.of(gpu_image_python(CACHE, python310))


def _triton_args(name: str, repo) -> dict[str, str]:
    """What Triton hands ``initialize``: the config as JSON, the model's folder, its version."""
    config = load_configs(repo)[name]
    return {
        "model_config": json_format.MessageToJson(config, preserving_proto_field_name=True),
        "model_name": name,
        "model_repository": str(repo / name),
        "model_version": "1",
        "model_instance_kind": "CPU",
        "model_instance_name": f"{name}_0_0",
    }


def test_every_python_model_imports_and_initialises_in_the_image_python(
    gpu_python, served_export, sam3_export, tmp_path
):
    """As the stub does, in the image's Python with no onnxruntime importable (the export
    placed: sam2_video reads the tracker's constants; sam3_concepts, SAM 3's vocabulary); and
    the image models of SAM 3's export alone, whose configs name its family."""
    from sam2_triton.cli.build_repo import with_video_if_exported
    from sam2_triton.repository.build import build_repository
    from sam2_triton.repository.model_plan import GpuOptions
    from sam2_triton.repository.options import ServingOptions

    repo = gpu_repository(gpu_python, served_export, tmp_path / "placed", concepts=True)
    models = [*PYTHON_MODELS, c.CONCEPTS]
    options, gpu = with_video_if_exported(ServingOptions(), sam3_export, "gpu", GpuOptions())
    sam3_repo = tmp_path / "sam3"
    build_repository(sam3_export, sam3_repo, options, target="gpu", gpu=gpu)
    sam3_models = [c.SESSION, c.AUTOMATIC, c.PREPROCESS, c.POSTPROCESS]  # sam2_segment: ensemble
    shutil.copy(ROOT / "tests" / "fake_pb_utils.py", tmp_path / "triton_python_backend_utils.py")
    script = (
        "import importlib.util, json, sys\n"
        "sys.modules['onnxruntime'] = None  # not in the NGC image\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "for name, args in json.load(open(sys.argv[1])).items():\n"
        "    path = f\"{args['model_repository']}/1/model.py\"\n"
        "    spec = importlib.util.spec_from_file_location(f'{name}_model', path)\n"
        "    module = importlib.util.module_from_spec(spec)\n"
        "    spec.loader.exec_module(module)\n"
        "    model = module.TritonPythonModel()\n"
        "    getattr(model, 'initialize', lambda a: None)(args)\n"
        "    getattr(model, 'finalize', lambda: None)()\n"
        "    print('initialised', name, sys.version_info[:2])\n"
    )
    listed = tmp_path / "models.json"
    listed.write_text(json.dumps({
        **{n: _triton_args(n, repo) for n in models},
        **{f"sam3:{n}": _triton_args(n, sam3_repo) for n in sam3_models},
    }))  # fmt: skip
    run = subprocess.run(
        [str(gpu_python.executable), "-c", script, str(listed)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    names = [*models, *(f"sam3:{n}" for n in sam3_models)]
    assert run.stdout.splitlines() == [f"initialised {n} (3, 10)" for n in names]
    assert load_configs(sam3_repo)[c.SEGMENT].platform == "ensemble"


@pytest.fixture(scope="module")
def gpu_triton(gpu_python, served_export, tmp_path_factory):
    """The committed repository, the tiny export placed, and SAM 3's models as build-repo adds
    them for an export with SAM 3, served with the image's Python."""
    root = tmp_path_factory.mktemp("gpu")
    repo = gpu_repository(gpu_python, served_export, root, concepts=True)
    runtime = ROOT / "build" / f"tritonserver-py{gpu_python.version}"
    yield from serve_repository(repo, tmp_path_factory, gpu_python, runtime)


def _url(server, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case_name", list(CASES))
def test_the_segment_ensemble_matches_sam2_image_predictor(
    gpu_triton, reference, protocol, case_name
):
    case, image = CASES[case_name], image_bytes("coffee.jpg")
    width, height = Image.open(io.BytesIO(image)).size
    want_masks, want_scores, want_low_res = case.expected(reference, image, width, height)
    before = model_runs(gpu_triton, c.PREPROCESS)
    with SegmentClient(_url(gpu_triton, protocol), protocol) as client:
        got = client.segment(image, *case.arrays(width, height), case.multimask)
    assert model_runs(gpu_triton, c.PREPROCESS) == before + 1  # it went through the ensemble
    assert got.masks.shape == want_masks.shape
    for k in range(len(got.masks)):
        assert np.mean(got.masks[k] == want_masks[k].astype(np.uint8)) >= 0.999, k
    np.testing.assert_allclose(got.iou_scores, want_scores, atol=1e-3)
    np.testing.assert_allclose(got.low_res_logits, want_low_res, atol=1e-3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_ensemble_decodes_several_boxes_in_one_decoder_call(gpu_triton, reference, protocol):
    image = image_bytes("coffee.jpg")
    boxes = np.array([[60, 40, 300, 240], [240, 120, 540, 360], [120, 200, 360, 380]], np.float32)
    want = reference.predict(image, box=boxes, multimask_output=False)
    decodes = model_runs(gpu_triton, c.MASK_DECODER)
    with SegmentClient(_url(gpu_triton, protocol), protocol) as client:
        got = client.segment(image, box=boxes, multimask_output=False, batched=True)
    assert model_runs(gpu_triton, c.MASK_DECODER) == decodes + 1
    assert_same_as_batched_predict(got, want)


def test_the_ensemble_returns_polygons_of_its_masks(gpu_triton):
    image = image_bytes("coffee.jpg")
    click = dict(point_coords=np.array([[300.0, 200.0]], np.float32), point_labels=np.array([1]))
    with SegmentClient(gpu_triton.http_url) as client:
        raw = client.segment(image, **click)
        exact = client.segment(image, **click, output_format="polygons", polygon_tolerance=0.0)
    np.testing.assert_array_equal(exact.masks, raw.masks)  # rasterised back by the client


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_session_clicks_call_the_decoder_model_and_match(gpu_triton, reference, protocol):
    image = image_bytes("astronaut.png")
    width, height = Image.open(io.BytesIO(image)).size
    with SegmentClient(_url(gpu_triton, protocol), protocol) as client:
        image_id = client.embed(image)
        for name in ("one_point_single", "box_and_points"):
            case = CASES[name]
            want_masks, want_scores, _ = case.expected(reference, image, width, height)
            decodes = model_runs(gpu_triton, c.MASK_DECODER)
            coords, labels, box = case.arrays(width, height)
            got = client.click(image_id, coords, labels, box, multimask_output=case.multimask)
            assert model_runs(gpu_triton, c.MASK_DECODER) == decodes + 1  # BLS, as on GPUs
            assert np.mean(got.masks == want_masks.astype(np.uint8)) >= 0.999
            np.testing.assert_allclose(got.iou_scores, want_scores, atol=1e-3)
        with pytest.raises(Exception) as unknown:
            client.click("0" * 64, coords, labels)
        assert is_not_found(unknown.value), unknown.value  # 404 / NOT_FOUND, as on the CPU route


def test_automatic_gives_what_the_embedded_server_gives(gpu_triton, triton):
    image = image_bytes("coffee.jpg")
    results = []
    for server in (gpu_triton, triton):
        with SegmentClient(server.grpc_url, "grpc") as client:
            results.append(client.automatic(image, PARAMS)["annotations"])
    ious = match_annotations(results[0], results[1])
    assert results[1] and min(ious) >= 0.99


def test_concepts_reach_sam3s_graphs_through_bls_and_find_what_they_find_in_process(
    gpu_triton, sam3_export
):
    """sam3_concepts as the GPU target serves it: SAM 3's graphs are models of their own (CPU
    stand-ins here for the onnxruntime backend) reached through BLS; a phrase with an example
    box finds what the same graphs find in process (``ConceptGraphs.onnx``, the embedded
    target's path): the same eight instances, scores, boxes and masks."""
    from sam2_triton.clients.concepts import ConceptClient
    from sam2_triton.concepts.find import ConceptGraphs

    rgb = np.random.default_rng(5).integers(0, 256, (300, 420, 3), np.uint8)
    rgb[80:200, 100:260] = (200, 30, 30)
    box, phrase = np.array([[100.0, 80.0, 260.0, 200.0]]), "a red square"
    graphs = ConceptGraphs.onnx(sam3_export, sam3_export / c.VOCABULARY_FILE)
    every = graphs.find(graphs.image(rgb), graphs.phrase(phrase), box, np.ones(1), threshold=0.0)
    threshold = float(np.sort(every.scores)[::-1][7:9].mean())  # keeps eight
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    with ConceptClient(gpu_triton.http_url, "http") as client:
        found = client.find(buffer.getvalue(), text=phrase, boxes=box,
                            confidence_threshold=threshold)  # fmt: skip
    (kept,) = np.nonzero(every.scores > np.float32(threshold))
    assert len(found.scores) == len(kept) == 8
    np.testing.assert_allclose(found.scores, every.scores[kept], atol=1e-5)
    np.testing.assert_allclose(found.boxes, every.boxes[kept], atol=1e-3)
    for mask, k in zip(found.masks, kept, strict=True):
        np.testing.assert_array_equal(mask, every.mask(k))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model", [c.SEGMENT, c.SESSION])
@pytest.mark.parametrize("case", BAD_SUBSET)
def test_bad_input_is_refused_as_clearly_as_on_the_cpu_route(gpu_triton, protocol, model, case):
    tensors, words = BAD[case]
    assert_refused(gpu_triton, protocol, model, tensors, words)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_session_input_and_the_server_still_serves(gpu_triton, protocol):
    for tensors, words in SESSION_ONLY.values():
        assert_refused(gpu_triton, protocol, c.SESSION, tensors, words)
    with SegmentClient(_url(gpu_triton, protocol), protocol) as client:
        result = client.segment(image_bytes("coffee.jpg"), np.array([[100, 100]], np.float32),
                                np.array([1], np.int32), multimask_output=False)  # fmt: skip
    assert result.masks.shape[0] == 1


def test_the_image_entrypoint_reloads_a_model_whose_stub_died(gpu_python, tracker_export, tmp_path):
    """docker/sam2-tritonserver in the image's Python: the supervisor's watchdog reloads
    sam2_preprocess after its stub is killed, the ensemble answers again, SIGTERM exits 0."""
    repo = gpu_repository(gpu_python, tracker_export, tmp_path)
    runtime = ROOT / "build" / f"tritonserver-py{gpu_python.version}"
    prepare_runtime(runtime, gpu_python.version)
    server = TritonServer(repo, runtime, ports=Ports(free_port(), free_port(), free_port()))
    env = server_environment(gpu_python)
    env["PATH"] = f"{runtime / 'bin'}:{env['PATH']}"
    env["SAM2_PYTHON"] = str(gpu_python.executable)
    env.pop("TRITON_ADMIN_KEY", None)
    log = tmp_path / "entrypoint.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["sh", str(ROOT / "docker" / "sam2-tritonserver"), *server.command()[1:]],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while not server_ready(server.http_url):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        (tritonserver,) = psutil.Process(proc.pid).children()
        while "watchdog: watching" not in log.read_text():  # its first look at the stubs
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        victim = next(s for s in stubs_of(tritonserver.pid) if s.model == c.PREPROCESS)
        os.kill(victim.pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while f"{c.PREPROCESS} reloaded" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        with SegmentClient(server.http_url) as client:
            response = client.segment(
                image_bytes("coffee.jpg"),
                np.array([[300.0, 200.0]], np.float32),
                np.array([1], np.int32),
            )
        assert response.masks.shape[0] == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


#: The two objects tracked on the GPU target: a click and a box on frame 0.
TRACKED = ({"points": [[35.0, 55.0]], "labels": [1]}, {"box": [92, 3, 128, 38]})


@pytest.fixture(scope="module")
def tracked_in_process(tracker_models, tmp_path_factory) -> tuple[Path, list]:
    """A 4-frame video and the in-process session's propagation of both TRACKED objects."""
    from sam2_triton.video.session import VideoSession
    from tests.video_helpers import synthetic_video

    folder = tmp_path_factory.mktemp("gpu-video")
    local = VideoSession(synthetic_video(folder, 4), tracker_models)
    for obj_id, prompt in enumerate(TRACKED, start=1):
        local.add_new_points_or_box(0, obj_id, **prompt)
    return folder, list(local.propagate_in_video())


def test_video_tracks_through_the_gpu_models_as_in_process(gpu_triton, tracked_in_process):
    """sam2_video on the GPU target: frames encoded by sam2_image_encoder, the tracker's graphs
    reached by BLS, two objects that read the same memories attended in one call per frame;
    the masks are the in-process session's (paged over HTTP; streamed over gRPC below)."""
    from sam2_triton import SAM2RemoteVideoPredictor
    from tests.video_helpers import agreement

    folder, want = tracked_in_process
    runs = {m: model_runs(gpu_triton, m) for m in (c.IMAGE_ENCODER, c.MEMORY_ATTENTION)}
    with SAM2RemoteVideoPredictor(gpu_triton.http_url, "http") as predictor:
        state = predictor.init_state(video_path=str(folder))
        for obj_id, prompt in enumerate(TRACKED, start=1):
            predictor.add_new_points_or_box(state, 0, obj_id, **prompt)
        got = list(predictor.propagate_in_video(state))
        predictor.close_state(state)
    assert [(f, list(ids)) for f, ids, _ in got] == [(f, ids) for f, ids, _ in want]
    for (_, _, ours), (_, _, theirs) in zip(got, want, strict=True):
        assert min(agreement(np.asarray(ours), theirs)) >= 0.999
    assert model_runs(gpu_triton, c.IMAGE_ENCODER) - runs[c.IMAGE_ENCODER] >= len(want)
    # frames 1..3 tracked, both objects in one call each
    assert model_runs(gpu_triton, c.MEMORY_ATTENTION) - runs[c.MEMORY_ATTENTION] == 3


def test_videos_propagated_at_once_are_tracked_together(gpu_triton, tracked_in_process):
    """Two gRPC streams propagating two sessions of the video, one object each, the second
    started while the first is under way: sam2_video_sessions' frame scheduler brings them into
    step, their frames encoded in the same sam2_image_encoder calls from then on, and each
    session's object gets the masks it gets in the in-process session of both (objects are
    tracked apart: test_video_session). (The test server waits longer for a propagation's next
    frame, 1 s, than a GPU server, 20 ms: this CPU is slow and loaded.)"""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from sam2_triton import SAM2RemoteVideoPredictor
    from tests.video_helpers import agreement

    folder, both = tracked_in_process
    names = ("first", "second")
    want = {name: [masks[k : k + 1] for _, _, masks in both] for k, name in enumerate(names)}
    first_frame_out = threading.Event()

    def track(k: int) -> list[np.ndarray]:
        with SAM2RemoteVideoPredictor(gpu_triton.grpc_url, "grpc") as predictor:
            state = predictor.init_state(video_path=str(folder))
            predictor.add_new_points_or_box(state, 0, 1, **TRACKED[k])
            if k == 1:
                assert first_frame_out.wait(timeout=600)
            got = []
            for _, _, masks in predictor.propagate_in_video(state):
                got.append(np.asarray(masks))
                first_frame_out.set()
            predictor.close_state(state)
        return got

    before = model_statistics(gpu_triton, c.IMAGE_ENCODER)
    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(names, pool.map(track, range(2)), strict=True))
    for name in names:
        assert len(got[name]) == len(want[name]) == 4
        for ours, theirs in zip(got[name], want[name], strict=True):
            assert min(agreement(ours, theirs)) >= 0.999, name
    after = model_statistics(gpu_triton, c.IMAGE_ENCODER)
    images, calls = (a - b for a, b in zip(after, before, strict=True))
    assert calls < images, (images, calls)  # some calls encoded both videos' frames
