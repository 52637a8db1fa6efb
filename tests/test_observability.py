"""deploy/observability/: the Prometheus configuration, recording rules and alerts (checked and
unit-tested by promtool), the Grafana dashboard and its provisioning, and every dashboard query
run against a real Prometheus scraping a stand-in for Triton's metrics port.

promtool and prometheus are external tools: in CI (env CI set) a missing one fails these tests;
elsewhere they are skipped and say which tool is missing.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from sam2_triton import metrics as m
from tests.conftest import free_port
from tests.prometheus import (
    CONFIG,
    DASHBOARD,
    OBSERVABILITY,
    RULES,
    dashboard_queries,
    query,
    require,
    rules,
    running_prometheus,
    wait_for_result,
)

TESTS = OBSERVABILITY / "tests"
GRAFANA = OBSERVABILITY / "grafana"

# Triton's own series on the metrics port (nv_gpu_* only where it sees GPUs) and Prometheus's.
TRITON_METRICS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
    "nv_cpu_utilization",
    "nv_cpu_memory_used_bytes",
    "nv_cpu_memory_total_bytes",
    "nv_gpu_utilization",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_memory_total_bytes",
)
PROMETHEUS_METRICS = ("up",)
KNOWN_METRICS = frozenset((*TRITON_METRICS, *m.SERIES, *PROMETHEUS_METRICS))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    command = [require("promtool"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=OBSERVABILITY)


def rule_groups() -> list[dict]:
    return [
        g
        for path in sorted(RULES.glob("*.yml"))
        for g in yaml.safe_load(path.read_text())["groups"]
    ]


def alert_rules() -> list[dict]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recorded_names() -> set[str]:
    return {
        rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule
    }


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABEL_LIST = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels, keywords)."""
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = _LABEL_LIST.sub("", expr)
    return {name for name in _NAME.findall(expr) if name.lower() not in _KEYWORDS}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


# --- Prometheus configuration and rules --------------------------------------------------------


def test_config_is_valid_and_loads_every_rule_file():
    result = promtool("check", "config", CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    for path in RULES.glob("*.yml"):
        assert f"Checking {path.relative_to(OBSERVABILITY)}" in result.stdout


def test_config_scrapes_the_replicas_listed_in_targets_json():
    config = yaml.safe_load(CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "sam2-triton"
    assert job["file_sd_configs"] == [{"files": ["targets.json"]}]
    targets = json.loads((OBSERVABILITY / "targets.json").read_text())
    assert [t for group in targets for t in group["targets"]] == ["127.0.0.1:8002"]


def test_rules_are_valid():
    paths = [str(p.relative_to(OBSERVABILITY)) for p in sorted(RULES.glob("*.yml"))]
    assert paths, "no rule files"
    result = promtool("check", "rules", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass():
    paths = [str(p.relative_to(OBSERVABILITY)) for p in sorted(TESTS.glob("*.yml"))]
    assert paths, "no promtool unit tests"
    result = promtool("test", "rules", *paths)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing():
    firing, quiet = set(), set()
    for path in TESTS.glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names, "no alerts"
    assert names - firing == set(), "alerts no unit test makes fire"
    assert names - quiet == set(), "alerts no unit test shows quiet"
    assert (firing | quiet) - names == set(), "unit tests of alerts that do not exist"


def test_every_recording_rule_has_its_value_unit_tested():
    tested = set()
    for path in TESTS.glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("promql_expr_test", []):
                tested |= metric_names(case["expr"])
    assert recorded_names() - tested == set()


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_says_how_bad_what_it_means_and_what_to_do(rule):
    assert rule.get("for"), "fires on a single evaluation"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"].strip()
    assert len(rule["annotations"]["description"].split(".")) >= 3, "meaning and action"


def test_server_error_ratio_leaves_out_exactly_success_and_the_client_errors():
    (rule,) = [
        r
        for group in rule_groups()
        for r in group["rules"]
        if r.get("record") == "instance_model:sam2_requests_server_error:ratio_rate5m"
    ]
    (excluded,) = re.findall(r'outcome!~"([^"]+)"', rule["expr"])
    assert set(excluded.split("|")) == {m.SUCCESS, *m.CLIENT_ERRORS}
    assert set(m.OUTCOMES) - set(excluded.split("|")), "some outcome must count as server error"


# --- metric names ------------------------------------------------------------------------------


def test_metric_names_finds_selected_metrics_only():
    expr = (
        'sum by (model) (rate(nv_inference_count{model=~"$model", x="up"}[$__rate_interval]))'
        " / ignoring (le) group_left b / 1e6 > bool 0.5"
        " and on (instance) up offset 5m or a:b:rate1m"
    )
    assert metric_names(expr) == {"nv_inference_count", "b", "up", "a:b:rate1m"}


def test_rules_and_dashboard_use_only_known_metrics_and_recorded_names():
    known = KNOWN_METRICS | recorded_names()
    exprs = [r["expr"] for g in rule_groups() for r in g["rules"]]
    exprs += [expr for _, expr in dashboard_queries()]
    used = set().union(*(metric_names(e) for e in exprs))
    assert used - known == set()


def test_dashboard_shows_every_metric_of_ours():
    used = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    families = {m.REQUESTS, m.CACHE_HITS, m.CACHE_MISSES, m.CACHE_EVICTIONS, m.CACHE_BYTES}
    families |= {m.CACHE_ENTRIES, f"{m.ENCODE_SECONDS}_bucket", f"{m.DECODE_SECONDS}_bucket"}
    assert families - used == set()


# --- Grafana -----------------------------------------------------------------------------------


def test_dashboard_panels_each_query_prometheus():
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)) > 0
    for panel in board["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["refId"], panel["title"]


def test_gpu_panels_are_marked_as_gpu_target_only():
    for panel in dashboard()["panels"]:
        if any("nv_gpu_" in target["expr"] for target in panel["targets"]):
            assert "GPU target" in panel["title"] and "no data" in panel["description"]


def test_provisioned_datasource_is_the_dashboards_default():
    (variable,) = [v for v in dashboard()["templating"]["list"] if v["type"] == "datasource"]
    provisioning = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(provisioning.read_text())["datasources"]
    assert source["type"] == variable["query"] == "prometheus"
    assert source["uid"] == variable["current"]["value"]
    assert (
        source["jsonData"]["timeInterval"]
        == yaml.safe_load(CONFIG.read_text())["global"]["scrape_interval"]
    )


def test_dashboard_provider_reads_the_folder_the_readme_mounts():
    provisioning = GRAFANA / "provisioning" / "dashboards" / "sam2-triton.yml"
    (provider,) = yaml.safe_load(provisioning.read_text())["providers"]
    readme = (OBSERVABILITY / "README.md").read_text()
    mounts = dict(re.findall(r'-v "\$PWD/deploy/observability/([\w/]+):([^":]+)(?::ro)?"', readme))
    assert mounts["grafana/dashboards"] == provider["options"]["path"]
    assert mounts["grafana/provisioning"] == "/etc/grafana/provisioning"
    assert DASHBOARD.parent == OBSERVABILITY / "grafana" / "dashboards"


# --- against a real Prometheus -----------------------------------------------------------------


def exposition(scrape: int) -> str:
    """Triton's metrics port after ``scrape`` scrapes: every series the dashboard reads, with
    counters growing by scrape."""
    n = scrape
    lines = []
    for model in ("sam2_segment", "sam2_session"):
        v = f'model="{model}",version="1"'
        lines += [
            f"nv_inference_request_success{{{v}}} {4 * n}",
            f'nv_inference_request_failure{{{v},reason="REJECTED"}} {n}',
            f"nv_inference_count{{{v}}} {4 * n}",
            f"nv_inference_exec_count{{{v}}} {2 * n}",
            f"nv_inference_request_duration_us{{{v}}} {1000000 * n}",
            f"nv_inference_queue_duration_us{{{v}}} {200000 * n}",
            f"nv_inference_compute_input_duration_us{{{v}}} {10000 * n}",
            f"nv_inference_compute_infer_duration_us{{{v}}} {700000 * n}",
            f"nv_inference_compute_output_duration_us{{{v}}} {10000 * n}",
            f"nv_inference_pending_request_count{{{v}}} 1",
        ]
        for outcome in m.OUTCOMES:
            count = 4 * n if outcome == m.SUCCESS else n
            lines.append(f'{m.REQUESTS}{{model="{model}",outcome="{outcome}"}} {count}')
        for name, buckets in (
            (m.ENCODE_SECONDS, m.ENCODE_BUCKETS),
            (m.DECODE_SECONDS, m.DECODE_BUCKETS),
        ):
            for i, le in enumerate((*buckets, "+Inf")):
                lines.append(f'{name}_bucket{{model="{model}",le="{le}"}} {n * min(i, 4)}')
            lines += [
                f'{name}_sum{{model="{model}"}} {0.5 * n}',
                f'{name}_count{{model="{model}"}} {4 * n}',
            ]
    s = 'model="sam2_session"'
    lines += [
        f"{m.CACHE_HITS}{{{s}}} {3 * n}",
        f"{m.CACHE_MISSES}{{{s}}} {n}",
        f"{m.CACHE_EVICTIONS}{{{s}}} {n}",
        f"{m.CACHE_BYTES}{{{s}}} 16796436",
        f"{m.CACHE_ENTRIES}{{{s}}} 1",
        "nv_cpu_utilization 0.5",
        "nv_cpu_memory_used_bytes 4e9",
        "nv_cpu_memory_total_bytes 8e9",
        'nv_gpu_utilization{gpu_uuid="GPU-0"} 0.25',
        'nv_gpu_memory_used_bytes{gpu_uuid="GPU-0"} 1e9',
        'nv_gpu_memory_total_bytes{gpu_uuid="GPU-0"} 8e10',
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def metrics_port() -> Iterator[int]:
    """A local HTTP server answering /metrics with ``exposition``, one scrape more each time."""
    scrapes = iter(range(1, 1_000_000))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(next(scrapes)).encode()
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_dashboard_queries_and_rules_evaluate_on_a_real_prometheus(metrics_port, tmp_path):
    with running_prometheus([f"127.0.0.1:{metrics_port}"], tmp_path, free_port()) as url:
        (up,) = wait_for_result(url, 'up{job="sam2-triton"}')
        assert up["metric"]["instance"] == f"127.0.0.1:{metrics_port}"
        assert up["value"][1] == "1"
        wait_for_result(url, "rate(sam2_requests_total[1m]) > 0")  # two scrapes in

        for title, expr in dashboard_queries():
            assert query(url, expr)["result"], f"{title}: no data for {expr}"

        deadline = time.monotonic() + 30
        while any(r["health"] == "unknown" for r in rules(url)):  # not evaluated yet
            assert time.monotonic() < deadline, "rules not evaluated after 30 s"
            time.sleep(0.5)
        loaded = rules(url)
        assert {r["name"] for r in loaded} == recorded_names() | {r["alert"] for r in alert_rules()}
        assert [(r["name"], r["lastError"]) for r in loaded if r["health"] != "ok"] == []
