"""Prometheus beside the replicas: Debian's ``prometheus``, started in the foreground with a copy
of ``deploy/observability/`` (its config, recording rules and alerts) whose ``targets.json`` lists
the replicas' metrics ports. The copy is ours to rewrite; the committed files stay as they are."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

from sam2_triton.server.embedded import port_in_use, spawn, stop_process

TARGETS_FILE = "targets.json"


class PrometheusError(RuntimeError):
    """prometheus is missing or did not start; the message says what to do."""


def write_config(source: Path, out: Path, targets: Sequence[str]) -> Path:
    """Copy ``source`` (prometheus.yml, rules/) into ``out`` with ``targets`` as the replicas;
    returns the config file to start Prometheus with."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "prometheus.yml", out / "prometheus.yml")
    if (out / "rules").exists():
        shutil.rmtree(out / "rules")
    shutil.copytree(source / "rules", out / "rules")
    (out / TARGETS_FILE).write_text(json.dumps([{"targets": list(targets), "labels": {}}]))
    return out / "prometheus.yml"


def query(base_url: str, expr: str) -> dict:
    """The ``data`` of an instant query (resultType, result); raises if Prometheus refuses it."""
    reply = requests.get(f"{base_url}/api/v1/query", params={"query": expr}, timeout=30)
    try:
        body = reply.json()
    except ValueError:
        reply.raise_for_status()
        raise
    if body.get("status") != "success":
        raise PrometheusError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


@dataclass
class Prometheus:
    """A prometheus process over a working folder of its own (config copy, data, log)."""

    workdir: Path
    source: Path  # deploy/observability
    targets: Sequence[str]
    host: str = "127.0.0.1"
    port: int = 9090
    retention: str = "1d"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> Prometheus:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            raise PrometheusError(
                "prometheus is not installed: apt-get install -y prometheus (Debian's package)"
            )
        if port_in_use(self.host, self.port):
            raise PrometheusError(f"port {self.host}:{self.port} is already in use")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = write_config(self.source, self.workdir / "config", self.targets)
        command = [
            binary,
            f"--config.file={config}",
            f"--web.listen-address={self.host}:{self.port}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--storage.tsdb.retention.time={self.retention}",
        ]
        self.process = spawn(command, self.workdir / "prometheus.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = (self.workdir / "prometheus.log").read_text(errors="replace")[-2000:]
                raise PrometheusError(f"prometheus exited: {tail}")
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise PrometheusError(f"prometheus was not ready after {timeout:.0f} s")

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector; raises on a query error."""
        return query(self.url, expr)["result"]

    def stop(self, timeout: float = 20.0) -> None:
        stop_process(self.process, signal.SIGTERM, timeout)
