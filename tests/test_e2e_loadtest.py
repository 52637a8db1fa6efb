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
