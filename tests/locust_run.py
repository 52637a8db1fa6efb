"""A short headless Locust run of loadtest/locustfile.py (shared by the load test against one
server and the one through the cluster's balancer)."""

from __future__ import annotations

import csv
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "loadtest" / "locustfile.py"
# 4 users: Locust's weighted assignment gives one user to each of the four user classes
# (one-shot and session, over HTTP and gRPC), all spawned at once; the stop timeout lets each
# user's task in flight finish, so every scenario is measured however slow the machine (a
# session user's first task alone is an embed and 3-8 clicks).
USERS, RUN_TIME, STOP_TIMEOUT_S = 4, "8s", 120
EXPECTED = {
    (protocol, name)
    for protocol in ("http", "grpc")
    for name in ("sam2_segment: new image", "sam2_session: embed", "sam2_session: click")
}


@dataclass(frozen=True)
class LocustRun:
    returncode: int
    stderr: str
    counts: dict[tuple[str, str], int]
    failures: int
    failure_rows: list[dict[str, str]]


def run_locust(http_url: str, grpc_url: str, out: Path, run_time: str = RUN_TIME) -> LocustRun:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        *("--host", f"http://{http_url}", "--grpc-host", grpc_url),
        *("--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", run_time),
        *("--stop-timeout", str(STOP_TIMEOUT_S)),
        *("--csv", str(out / "sam2"), "--html", str(out / "report.html")),
    ]
    run = subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=600)
    with open(out / "sam2_stats.csv", newline="") as file:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(file)}
    with open(out / "sam2_failures.csv", newline="") as file:
        failure_rows = list(csv.DictReader(file))
    return LocustRun(
        run.returncode,
        run.stderr,
        {key: int(row["Request Count"]) for key, row in rows.items()},
        int(rows[("", "Aggregated")]["Failure Count"]),
        failure_rows,
    )
