"""A short headless Locust run of loadtest/locustfile.py against the test server: every scenario
on both protocols made requests, none failed, and the CSV and HTML reports were written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.locust_run import EXPECTED, LOCUSTFILE, run_locust

pytestmark = pytest.mark.e2e


def test_short_headless_run_has_no_failures(triton, tmp_path):
    run = run_locust(triton.http_url, triton.grpc_url, tmp_path)
    assert run.returncode == 0, run.stderr[-5000:]
    assert EXPECTED <= set(run.counts), f"missing request names: {EXPECTED - set(run.counts)}"
    assert all(run.counts[key] > 0 for key in EXPECTED), run.counts
    assert run.failures == 0, run.stderr[-5000:]
    assert run.failure_rows == []
    assert "sam2_session: click" in (tmp_path / "report.html").read_text()


def test_without_a_server_it_stops_at_once_and_says_what_to_do(tmp_path):
    from tests.conftest import free_port

    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    # a run time past the subprocess timeout: only stopping at the check ends it in time
    command += ["--host", f"http://127.0.0.1:{free_port()}", "--run-time", "600s"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "no sam2-triton server at" in run.stderr and "make serve" in run.stderr
    assert "--run-time limit reached" not in run.stderr


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_closed_client_closes_its_connection_once(protocol, monkeypatch):
    """tritonclient's __del__ closes the client again; a gRPC channel closed twice can hang
    Locust's exit under gevent, so SegmentClient.close leaves nothing for __del__ to close."""
    from sam2_triton.clients.image import SegmentClient
    from tests.conftest import free_port

    client = SegmentClient(f"127.0.0.1:{free_port()}", protocol)  # connects lazily
    inner = client.client
    closes = []
    original = type(inner).close
    monkeypatch.setattr(type(inner), "close", lambda self: closes.append(1) or original(self))
    client.close()
    inner.__del__()
    assert closes == [1]
