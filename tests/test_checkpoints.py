"""Checkpoint download and loading, against a local Range-capable HTTP server (no network)."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sam2_triton.weights.checkpoints import (
    URL_BASE_ENV,
    CheckpointChecksumError,
    CheckpointDownloadError,
    download_checkpoint,
    fetch,
    load_state_dict,
)
from sam2_triton.weights.sam3 import LICENCE_PAGE, SAM3, sam3_download
from sam2_triton.weights.variants import get_variant

PAYLOAD = random.Random(0).randbytes(3 * 1024 * 1024 + 123)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FILE_NAME = get_variant("tiny").checkpoint_file


@dataclass
class ServerState:
    base: str = ""
    ignore_range: bool = False
    truncate_at: int | None = None  # stop a full (200) response after this many bytes
    ranges: list[str | None] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    authorizations: list[str | None] = field(default_factory=list)
    gated: bool = False  # 401 to every request, as Hugging Face answers a gated file without access

    @property
    def url(self) -> str:
        return f"{self.base}/{FILE_NAME}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: ServerState


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:
        st = self.server.state
        st.paths.append(self.path)
        rng = self.headers.get("Range")
        st.ranges.append(rng)
        st.authorizations.append(self.headers.get("Authorization"))
        if st.gated:
            self.send_error(401)
            return
        if self.path != f"/{FILE_NAME}":
            self.send_error(404)
            return
        size = len(PAYLOAD)
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not st.ignore_range:
            start = int(m.group(1))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = PAYLOAD[start:]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            body = PAYLOAD
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if st.truncate_at is not None and len(body) == size:
            body = body[: st.truncate_at]
        self.wfile.write(body)
        self.wfile.flush()
        st.bytes_sent += len(body)
        self.close_connection = True


@pytest.fixture
def server() -> Iterator[ServerState]:
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _download(server: ServerState, dest: Path, **kwargs: object) -> Path:
    opts: dict = {"url": server.url, "expected_sha256": PAYLOAD_SHA256, "progress": False}
    opts.update(kwargs)
    return download_checkpoint("tiny", dest, timeout=5.0, **opts)


def test_full_download_verified(server: ServerState, tmp_path: Path) -> None:
    path = _download(server, tmp_path, progress=True)
    assert path == tmp_path / FILE_NAME
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / (FILE_NAME + ".part")).exists()
    assert server.ranges == [None]
    assert server.bytes_sent == len(PAYLOAD)


def test_resume_partial_download(server: ServerState, tmp_path: Path) -> None:
    have = 1_000_000
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD[:have])
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={have}-"]
    assert server.bytes_sent == len(PAYLOAD) - have


def test_server_ignoring_range_restarts_from_zero(server: ServerState, tmp_path: Path) -> None:
    server.ignore_range = True
    # A .part whose bytes are wrong: appending the full body to it would corrupt the file.
    (tmp_path / (FILE_NAME + ".part")).write_bytes(b"x" * 500_000)
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == ["bytes=500000-"]
    assert server.bytes_sent == len(PAYLOAD)


def test_complete_part_file_gets_416_and_is_used(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD)
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert server.bytes_sent == 0


def test_oversized_part_file_after_416_starts_over(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD + b"junk")
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_interrupted_transfer_keeps_part_and_resumes(server: ServerState, tmp_path: Path) -> None:
    server.truncate_at = 1_234_567
    with pytest.raises(CheckpointDownloadError, match="resume"):
        _download(server, tmp_path)
    part = tmp_path / (FILE_NAME + ".part")
    assert part.exists() and 0 < part.stat().st_size <= 1_234_567
    assert not (tmp_path / FILE_NAME).exists()

    server.truncate_at = None
    have = part.stat().st_size
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges[-1] == f"bytes={have}-"


def test_wrong_sha256_deletes_download(server: ServerState, tmp_path: Path) -> None:
    with pytest.raises(CheckpointChecksumError, match="sha256 mismatch") as exc:
        _download(server, tmp_path, expected_sha256="0" * 64)
    assert isinstance(exc.value, CheckpointDownloadError)
    assert PAYLOAD_SHA256 in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host_names_alternatives(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/{FILE_NAME}"
    with pytest.raises(CheckpointDownloadError) as exc:
        download_checkpoint("tiny", tmp_path, url=url, progress=False, timeout=2.0)
    msg = str(exc.value)
    assert "could not be reached" in msg
    assert "sam2-triton export --model tiny --checkpoint PATH" in msg
    assert "sam2-triton export --model tiny --random-weights" in msg
    assert not (tmp_path / FILE_NAME).exists()


def test_http_error_is_download_error(server: ServerState, tmp_path: Path) -> None:
    with pytest.raises(CheckpointDownloadError, match="404") as exc:
        _download(server, tmp_path, url=f"{server.base}/missing.pt")
    assert "--random-weights" in str(exc.value) and "--checkpoint" in str(exc.value)
    assert not (tmp_path / FILE_NAME).exists()


def test_existing_verified_file_makes_no_request(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(PAYLOAD)
    path = _download(server, tmp_path)
    assert path == tmp_path / FILE_NAME
    assert server.paths == []


def test_existing_corrupt_file_is_replaced(server: ServerState, tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_bytes(b"not the checkpoint")
    path = _download(server, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.ranges == [None]


def test_url_base_env_var(
    server: ServerState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(URL_BASE_ENV, server.base + "/")
    path = download_checkpoint("tiny", tmp_path, expected_sha256=PAYLOAD_SHA256, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.paths == [f"/{FILE_NAME}"]


def test_unknown_hash_warns_loudly_but_keeps_file(
    server: ServerState, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _download(server, tmp_path, expected_sha256="")
    assert path.read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "could NOT be" in err and PAYLOAD_SHA256 in err


# --- SAM 3's checkpoint: the same fetch, a gated host -------------------------------------------


def test_sam3_is_fetched_and_checked_as_sam2s_and_no_token_goes_to_a_mirror(
    server: ServerState, tmp_path: Path
) -> None:
    download = replace(sam3_download(url=server.url, token="secret"), sha256=PAYLOAD_SHA256)
    assert fetch(download, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert (tmp_path / "sam3.pt").exists() and server.authorizations == [None]
    with pytest.raises(CheckpointChecksumError, match="SAM 3's checkpoint"):
        fetch(sam3_download(url=server.url), tmp_path / "other", progress=False)  # Meta's hash
    assert not (tmp_path / "other" / "sam3.pt").exists()


def test_the_hugging_face_token_is_read_as_huggingface_hub_reads_it_and_sent_to_it_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv(URL_BASE_ENV, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    assert sam3_download().headers == {}  # none saved
    (tmp_path / "token").write_text("saved\n")  # what `huggingface-cli login` writes
    assert sam3_download().headers == {"Authorization": "Bearer saved"}
    monkeypatch.setenv("HF_TOKEN", "from-env")
    official = sam3_download()
    assert official.url == SAM3.url and official.headers == {"Authorization": "Bearer from-env"}
    assert sam3_download(url=SAM3.url.replace("https:", "http:")).headers == {}  # not over HTTP
    monkeypatch.setenv(URL_BASE_ENV, "https://mirror.example/sam")
    mirrored = sam3_download()
    assert mirrored.url == "https://mirror.example/sam/sam3.pt" and mirrored.headers == {}


def test_a_gated_refusal_says_how_to_get_access(server: ServerState, tmp_path: Path) -> None:
    server.gated = True
    with pytest.raises(CheckpointDownloadError, match="401") as exc:
        fetch(sam3_download(url=server.url, token=""), tmp_path, progress=False)
    message = str(exc.value)
    for words in (LICENCE_PAGE, "HF_TOKEN", "huggingface-cli login", "no token was sent",
                  "export --sam3 --checkpoint PATH", "export --sam3 --random-weights"):  # fmt: skip
        assert words in message
    assert not list(tmp_path.iterdir())


def test_variant_table_has_hashes() -> None:
    for name in ("tiny", "small", "base_plus", "large"):
        assert re.fullmatch(r"[0-9a-f]{64}", get_variant(name).sha256), name


# --- load_state_dict ------------------------------------------------------------------------


def test_load_state_dict_official_format(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    weights = {"image_encoder.w": torch.arange(6.0).reshape(2, 3), "mask_decoder.b": torch.ones(4)}
    path = tmp_path / "ok.pt"
    torch.save({"model": weights}, path)
    state = load_state_dict(path)
    assert set(state) == set(weights)
    assert torch.equal(state["image_encoder.w"], weights["image_encoder.w"])


def test_load_state_dict_rejects_bare_state_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "bare.pt"
    torch.save({"image_encoder.w": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"bare\.pt.*without 'model'.*image_encoder\.w"):
        load_state_dict(path)


def test_load_state_dict_rejects_non_dict(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match=r"tensor\.pt.*found a Tensor"):
        load_state_dict(path)


def test_load_state_dict_rejects_garbage(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_state_dict(path)
