"""A real Prometheus for tests: the committed configuration of deploy/observability/ (rules
included) scraping other targets, and the Grafana dashboard's queries ready to send to it.

Prometheus and promtool are external tools (Debian's ``prometheus`` package): ``require`` fails
a test in CI (env CI set) where one is missing, and skips it elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from sam2_triton.cluster.dashboard import VARIABLES
from sam2_triton.cluster.dashboard import dashboard_queries as queries_of
from sam2_triton.cluster.prometheus import Prometheus, query
from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
CONFIG = OBSERVABILITY / "prometheus.yml"
RULES = OBSERVABILITY / "rules"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "sam2-triton.json"


require = require_tool  # promtool, prometheus: Debian's prometheus package


@contextmanager
def running_prometheus(
    targets: list[str], tmp_path: Path, port: int, timeout: float = 60
) -> Iterator[str]:
    """The Prometheus ``sam2-triton cluster`` runs (our configuration and rules, a copy whose
    targets.json lists ``targets``) on 127.0.0.1:``port``; yields its base URL once ready and
    stops it afterwards."""
    require("prometheus")
    prometheus = Prometheus(tmp_path / "prometheus", OBSERVABILITY, targets, port=port)
    prometheus.start(timeout)
    try:
        yield prometheus.url
    finally:
        prometheus.stop()


def dashboard_queries(variables: dict[str, str] = VARIABLES) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query of the committed dashboard (see
    ``sam2_triton.cluster.dashboard.dashboard_queries``)."""
    return queries_of(DASHBOARD, variables)


def wait_for_result(base_url: str, expr: str, timeout: float = 60) -> list[dict]:
    """The first non-empty result of ``expr`` (e.g. once enough scrapes happened)."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(base_url, expr)["result"]
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{expr}: no result after {timeout} s")
        time.sleep(0.5)


def rules(base_url: str) -> list[dict]:
    """Every recording and alerting rule Prometheus loaded, with its health and last error."""
    response = requests.get(f"{base_url}/api/v1/rules", timeout=30)
    response.raise_for_status()
    return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]]
