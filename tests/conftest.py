"""Shared fixtures: one random-weight tiny export per source version, one real tritonserver.

The export (~1-2 min on 2 cores) is cached under ``build/test-cache/`` keyed by a hash of the
export code, so a rerun after a change elsewhere does not pay for it again; CI starts clean.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import exports, prebuild, servers
from tests.reduced_model import SEED, TinyExport, build_test_model
from tests.references import AutomaticReference, Reference

ROOT = Path(__file__).resolve().parents[1]


#: Fixtures that start a real tritonserver: a test using one is end-to-end, marked or not, so
#: that ``-m "not e2e"`` starts no server (modules with servers of their own mark themselves).
SERVER_FIXTURES = {"triton", "routed_triton"}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    servers.join_stopping()
    prebuild.stop_all()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config) -> None:
    lines = servers.report()
    if lines:
        terminalreporter.section("stubs that crashed and were reloaded by the watchdog")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


# A session fixture is finished after the last test that uses it, not at the end of the run: a
# server, a browser or a torch model that no later test needs gives its memory back (with every
# one alive to the end, the suite's machine reached 22.7 of its 24 GB during test_gpu_runtime).
_LAST_USER: dict[str, pytest.Item] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _LAST_USER.clear()
    for item in session.items:  # the order they run in, after selection
        for name in getattr(item, "fixturenames", ()):
            _LAST_USER[name] = item
    # The other exports (and the GPU image's venv) in processes of their own beside SAM 2.1's
    # reduced export, when the run needs it: each keeps one core busy (tests/exports.py)
    exports.start_beside(_LAST_USER)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator:
    """pytest's own teardown, then the session fixtures ``item`` was the last to use. (Private
    API, ``_fixtureinfo``, ``FixtureDef.finish``: pytest is pinned, pyproject.toml.)"""
    result = yield
    info = getattr(item, "_fixtureinfo", None)
    if nextitem is not None and info is not None:  # at the end, pytest finishes everything
        for name, defs in info.name2fixturedefs.items():
            if _LAST_USER.get(name) is item and defs[-1].scope == "session":
                defs[-1].finish(item._request)  # its dependants first, as at the end
    return result


@pytest.fixture(scope="session")
def tiny_export() -> TinyExport:
    """SAM 2.1 tiny (``REDUCED``) with random weights (seed 0), its checkpoint and ONNX files."""
    from sam2_triton.weights.variants import get_variant

    variant = get_variant("tiny")
    cache = exports.tiny_folder()
    checkpoint = cache / f"random-seed{SEED}.pt"
    if not exports.exported(cache):
        from sam2_triton.export import export_onnx

        export_onnx(build_test_model(save_random_to=checkpoint), cache)
    return TinyExport(export_dir=cache, checkpoint=checkpoint, config=variant.config)


@pytest.fixture(scope="session")
def tracker_export(tiny_export: TinyExport) -> Path:
    """The tiny export with the video tracker's graphs beside it, in a folder of its own (the
    image files hard-linked): servers of ``tiny_export`` stay image-only, whatever ran first.
    The tracker's graphs are made apart (``exports.make_tracker_export``, beside the image
    export when both are needed) from the same seeded weights, checked to be the same."""
    from sam2_triton.contract import TRACKER_CONSTANTS_FILE

    source = tiny_export.export_dir
    folder = source.with_name(source.name + "-video")
    if not exports.tracked(folder):  # its constants are linked last
        tracker = exports.tracker_folder()
        prebuild.wait(tracker)  # started at collection when the run also exports the model
        if not exports.tracked(tracker):
            exports.make_tracker_export(tracker)
        weights = tracker / exports.TRACKER_WEIGHTS
        assert exports.same_weights(weights, tiny_export.checkpoint), "seeded weights differ"
        files = [p for p in (*source.iterdir(), *tracker.iterdir()) if p != weights]
        exports.link_files(sorted(files, key=lambda p: p.name == TRACKER_CONSTANTS_FILE), folder)
    return folder


@pytest.fixture(scope="session")
def sam3_export() -> Path:
    """The reduced SAM 3 as ``sam2-triton export --sam3 --random-weights`` exports it
    (``cli/export_sam3.export_sam3_model`` with the reduced builder): seeded weights saved in
    the official layout beside the folder, its four graphs and the vocabulary, checked against
    sam3 (the export fails otherwise); cached in ``build/test-cache/`` like ``tiny_export``."""
    folder = exports.sam3_folder()
    prebuild.wait(folder)  # started at collection when the run also exports SAM 2.1
    if not exports.sam3_done(folder):
        exports.make_sam3_export(folder)
    return folder


@pytest.fixture(scope="session")
def full_depth_export() -> Path:
    """``make_full_depth_export``'s folder, cached like ``tiny_export``."""
    folder = exports.full_depth_folder()
    prebuild.wait(folder)  # started at collection when the run also exports the reduced model
    if not exports.exported(folder):
        exports.make_full_depth_export(folder)
    return folder


@pytest.fixture(scope="session")
def sam3_model(sam3_export: Path):
    """The weights of ``sam3_export``, read back from its checkpoint by ``load_sam3``: the
    concept model and its interactive model."""
    from sam2_triton.concepts.tokens import clip_vocabulary
    from sam2_triton.export.sam3_export import load_sam3

    model = load_sam3(exports.sam3_checkpoint(sam3_export), clip_vocabulary(), exports.reduced_sam3)
    return model, model.inst_interactive_predictor.model


@pytest.fixture(scope="session")
def sam3_clicks_reference(sam3_model):
    """Meta's answers for clicks on ``sam3_helpers.clicks_image`` (``predict_inst`` over
    ``Sam3Processor.set_image``, the image set once for the in-process and served tests)."""
    from tests.sam3_helpers import clicks_image, interactive_reference

    return interactive_reference(sam3_model, clicks_image())


@pytest.fixture(scope="session")
def served_export(tracker_export: Path, sam3_export: Path) -> Path:
    """What ``triton`` serves: the tiny export with its tracker and SAM 3's graphs beside it
    (hard links), so one server answers both families."""
    folder = tracker_export.with_name(f"{tracker_export.name}-{sam3_export.name}")
    return exports.link_files([*tracker_export.iterdir(), *sam3_export.iterdir()], folder)


@pytest.fixture
def fake_export(tmp_path: Path) -> Path:
    """An export folder whose ONNX files are a few bytes: enough for repository tests."""
    from sam2_triton import contract as c

    export = tmp_path / "export"
    export.mkdir()
    (export / c.ENCODER_FILE).write_bytes(b"encoder")
    (export / c.DECODER_FILE).write_bytes(b"decoder")
    for name in (
        c.TRACKING_DECODER_FILE,
        c.MEMORY_ATTENTION_FILE,
        c.MEMORY_ENCODER_FILE,
        c.TRACKER_CONSTANTS_FILE,
    ):  # the video tracker's (the GPU target serves video by default)
        (export / name).write_bytes(name.encode())
    return export


def load_configs(repo: Path) -> dict:
    """Every model folder's config.pbtxt, parsed as Triton parses it (name -> ModelConfig)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    configs = {}
    for path in sorted(repo.glob("*/config.pbtxt")):
        config = text_format.Parse(path.read_text(), mc.ModelConfig())
        assert config.name == path.parent.name
        configs[config.name] = config
    return configs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One cached image embedding as stored by sam2_session (three float32 feature maps, .npy headers).
EMBEDDING_BYTES = 4 * (256 * 64 * 64 + 32 * 256 * 256 + 64 * 128 * 128) + 1024
TEST_CACHE_IMAGES = 4  # small, so that eviction can be tested in a few encoder runs


def model_statistics(server, model: str) -> tuple[int, int]:
    """(requests or batch rows, executions) of ``model`` on ``server`` so far (Triton's
    statistics API), once settled: Triton counts a request when it is released, which can be
    after its response reached the client, so a count read at once may miss the last one."""
    import requests

    def read() -> tuple[int, int]:
        stats = requests.get(
            f"http://{server.http_url}/v2/models/{model}/stats",
            timeout=10,
            headers={"Connection": "close"},
        ).json()["model_stats"][0]
        return int(stats["inference_count"]), int(stats["execution_count"])

    counts = read()
    for _ in range(50):  # two reads 0.1 s apart agree: nothing was still being counted
        time.sleep(0.1)
        counts, last = read(), counts
        if counts == last:
            break
    return counts


def model_runs(server, model: str) -> int:
    """Requests ``model`` has run on ``server`` so far."""
    return model_statistics(server, model)[0]


def running_server(export_dir: Path, tmp_path_factory: pytest.TempPathFactory, options) -> Iterator:
    """A real embedded tritonserver for ``export_dir`` with ServingOptions ``options``."""
    from sam2_triton.repository.build import build_repository

    repo = tmp_path_factory.mktemp("model_repository")
    build_repository(export_dir, repo, options)
    yield from serve_repository(repo, tmp_path_factory)


def serve_repository(
    repo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    python=None,
    runtime_dir: Path | None = None,
) -> Iterator:
    """A real tritonserver on free loopback ports serving ``repo``, watched as ``serve`` watches
    it (tests/servers.py); ``python``: the StubPython its Python models run on (default: this
    one)."""
    from sam2_triton.server.embedded import Ports

    log = tmp_path_factory.mktemp("logs") / "tritonserver.log"
    ports = Ports(free_port(), free_port(), free_port())
    runtime = runtime_dir or ROOT / "build" / "tritonserver"
    yield from servers.serve_watched(repo, log, ports, runtime, python)


#: The options of ``triton``, the server most end-to-end tests share.
TRITON_OPTIONS_KW = {
    "session_cache_bytes": TEST_CACHE_IMAGES * EMBEDDING_BYTES,
    "video": True,
    "concepts": True,
}


@pytest.fixture(scope="session")
def triton(served_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A real embedded tritonserver serving the tiny export, the video tracker included, and
    SAM 3's concept prompts, on free loopback ports: one server for every end-to-end module
    that needs no options of its own."""
    from sam2_triton.repository.options import ServingOptions

    yield from running_server(served_export, tmp_path_factory, ServingOptions(**TRITON_OPTIONS_KW))


@pytest.fixture(scope="session")
def ui(triton) -> Iterator[str]:
    """``sam2-triton ui`` against ``triton`` (tests/ui_browser.py): its URL, for every web app
    module."""
    from tests.ui_browser import gateway

    with gateway(triton.grpc_url) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's chromium through Playwright, one for every web app module."""
    from tests.ui_browser import chromium

    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def routed_triton(tiny_export: TinyExport, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """A server routed as the GPU target is: sam2_segment is the ensemble of four models and
    sam2_session calls sam2_mask_decoder through BLS (the embedded default runs both in-process)."""
    from sam2_triton.repository.options import ServingOptions

    options = ServingOptions(
        segment_in_process=False, decoder_in_process=False, session_instances=1
    )
    yield from running_server(tiny_export.export_dir, tmp_path_factory, options)


@pytest.fixture(scope="session")
def reference_predictor(tiny_export: TinyExport):
    """Meta's SAM2ImagePredictor on exactly the weights the server runs."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor(tiny_export.build())


@pytest.fixture(scope="session")
def reference(reference_predictor) -> Reference:
    return Reference(reference_predictor)


@pytest.fixture(scope="session")
def automatic_reference(reference_predictor) -> AutomaticReference:
    return AutomaticReference(reference_predictor.model)


@pytest.fixture(scope="module")
def gateway(triton) -> Iterator[str]:
    """``sam2-triton connect`` in-process against ``triton``: its URL (tests/connect_helpers)."""
    from tests.connect_helpers import running_gateway

    yield from running_gateway(triton)


@pytest.fixture(scope="session")
def tracker_models(tracker_export: Path):
    """The tracker's graphs in-process (ONNX Runtime), loaded once for every in-process test,
    each frame encoded once (``video_helpers.EncodeOnce``)."""
    from sam2_triton.video.runtime import OnnxTrackerModels
    from tests.video_helpers import EncodeOnce

    return EncodeOnce(OnnxTrackerModels(tracker_export))


@pytest.fixture(scope="session")
def video_predictor(tiny_export: TinyExport):
    """Meta's SAM2VideoPredictor on exactly the weights the server runs (as on a GPU: see
    ``video_helpers.reference_video_predictor``)."""
    from tests.video_helpers import reference_video_predictor

    return reference_video_predictor(tiny_export)


@pytest.fixture(scope="session")
def script_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """The script's synthetic video: its folder of JPEG frames and the decoded frames."""
    from tests.video_helpers import SCRIPT_FRAMES, synthetic_video

    folder = tmp_path_factory.mktemp("script_video")
    return folder, synthetic_video(folder, SCRIPT_FRAMES)


@pytest.fixture(scope="session")
def video_reference(video_predictor, script_video) -> list:
    """Meta's answers to ``video_helpers.SCRIPT``, computed once for every test that replays
    the script (in-process and through the server)."""
    from tests.video_helpers import run_script

    state = video_predictor.init_state(video_path=str(script_video[0]))
    return run_script(video_predictor, state)
