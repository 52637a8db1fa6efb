"""A short headless Locust run of loadtest/locustfile.py against the test server: every scenario
on both protocols made requests, none failed, and the CSV and HTML reports were written."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
# 4 users: Locust's weighted assignment gives one user to each of the four user classes
# (one-shot and session, over HTTP and gRPC); the stop timeout lets the first requests finish.
USERS, RUN_TIME, STOP_TIMEOUT_S = 4, "25s", 120
EXPECTED = {
    (protocol, name)
    for protocol in ("http", "grpc")
    for name in ("sam2_segment: new image", "sam2_session: embed", "sam2_session: click")
}


def test_short_headless_run_has_no_failures(triton, tmp_path):
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        f"http://{triton.http_url}",
        "--grpc-host",
        triton.grpc_url,
        "--users",
        str(USERS),
        "--spawn-rate",
        str(USERS),
        "--run-time",
        RUN_TIME,
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--csv",
        str(tmp_path / "sam2"),
        "--html",
        str(tmp_path / "report.html"),
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-5000:]

    with open(tmp_path / "sam2_stats.csv", newline="") as file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    counts = {key: int(row["Request Count"]) for key, row in rows.items()}
    assert EXPECTED <= set(counts), f"missing request names: {EXPECTED - set(counts)}"
    assert all(counts[key] > 0 for key in EXPECTED), counts
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0, run.stderr[-5000:]
    with open(tmp_path / "sam2_failures.csv", newline="") as file:
        assert list(csv.DictReader(file)) == []
    assert "sam2_session: click" in (tmp_path / "report.html").read_text()


def test_without_a_server_it_stops_at_once_and_says_what_to_do(tmp_path):
    from tests.conftest import free_port

    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"]
    command += ["--host", f"http://127.0.0.1:{free_port()}", "--run-time", "60s"]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "no sam2-triton server at" in run.stderr and "make serve" in run.stderr
