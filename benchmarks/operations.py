"""Faults and load, measured (figures for docs/operations.md; nothing here asserts a speed).

    .venv/bin/python benchmarks/operations.py recovery [--export-dir exports/tiny] [--repeats 3]
    .venv/bin/python benchmarks/operations.py batch-failover [--images 24]
    .venv/bin/python benchmarks/operations.py soak [--minutes 30] [--users 8]

- ``recovery``: one embedded server with the stub watchdog; for every model, SIGKILL one of its
  stubs and time until the watchdog has reloaded it and a request to the model succeeds again.
- ``batch-failover``: a 2-replica cluster, ``sam2-triton batch`` of a folder with a prompt per
  image through the balancer; one replica's tritonserver is SIGKILLed a third of the way in
  (the cluster restarts it). Checks every image is done exactly once.
- ``soak``: a 2-replica cluster under Locust on both ports for ``--minutes``; samples each
  replica's memory (PSS of tritonserver and its stubs) and cache bytes; plots memory over time
  and every dashboard query from the cluster's Prometheus into docs/img/.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests
from PIL import Image

from sam2_triton import contract as c
from sam2_triton.bench.machine import cpu_model, usable_cores
from sam2_triton.bench.server import free_port
from sam2_triton.clients.image import SegmentClient
from sam2_triton.cluster.dashboard import dashboard_queries
from sam2_triton.cluster.replicas import Cluster
from sam2_triton.repository.build import build_repository
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import model_names
from sam2_triton.server.embedded import Ports, TritonServer
from sam2_triton.server.watchdog import Watchdog, stubs_of

ROOT = Path(__file__).resolve().parents[1]
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "sam2-triton.json"
IMG = ROOT / "docs" / "img"
POINT = {"point_coords": np.array([[20.0, 20.0]], np.float32), "point_labels": np.array([1])}
SMALL_GRID = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
OPTIONS = ServingOptions(session_instances=1, decoder_instances=1, automatic_instances=1)


def photo(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def request_for(model: str, client: SegmentClient, seed: int) -> None:
    image = photo(seed)
    if model == c.SEGMENT:
        client.segment(image, **POINT)
    elif model in (c.SESSION, c.IMAGE_ENCODER):
        client.click(client.embed(image), **POINT)
    else:  # sam2_automatic, and the decoder it calls
        client.automatic(image, SMALL_GRID)


# --- recovery -------------------------------------------------------------------------------


def recovery(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="sam2-recovery-"))
    build_repository(args.export_dir, work / "repo", OPTIONS)
    server = TritonServer(
        work / "repo",
        (ROOT / "build" / "tritonserver").resolve(),
        ports=Ports(free_port(), free_port(), free_port()),
        log_file=work / "tritonserver.log",
        admin_key="bench",
    ).start()
    watchdog = Watchdog.of_server(server, log=lambda _: None).start()
    ready_url = f"http://{server.http_url}/v2/health/ready"
    print("| model | kill → reloaded, s | kill → request answered, s | reload, s |")
    print("|---|---|---|---|")
    try:
        for model in model_names("embedded", OPTIONS):
            to_ready, to_answer, reload = [], [], []
            for k in range(args.repeats):
                healed = len(watchdog.healings)
                victim = next(s for s in stubs_of(server.process.pid) if s.model == model)
                start = time.monotonic()
                os.kill(victim.pid, signal.SIGKILL)
                while len(watchdog.healings) == healed:
                    time.sleep(0.01)
                while requests.get(ready_url, timeout=5).status_code != 200:
                    time.sleep(0.01)
                to_ready.append(time.monotonic() - start)
                with SegmentClient(server.grpc_url, "grpc", network_timeout_s=300) as client:
                    while True:
                        try:
                            request_for(model, client, 1000 * k + len(to_answer))
                            break
                        except Exception:  # noqa: BLE001 - retried until the model answers
                            time.sleep(0.05)
                to_answer.append(time.monotonic() - start)
                reload.append(watchdog.healings[-1].seconds)
            print(
                f"| {model} | {statistics.median(to_ready):.2f} | "
                f"{statistics.median(to_answer):.2f} | {statistics.median(reload):.2f} |"
            )
    finally:
        watchdog.stop()
        server.stop()
    print(f"\nmedians of {args.repeats} kills per model; {cpu_model()}, {usable_cores()} cores")


# --- a cluster in this process --------------------------------------------------------------


def start_cluster(
    export_dir: Path, work: Path, replicas: int = 2
) -> tuple[Cluster, threading.Thread]:
    build_repository(export_dir, work / "repo", OPTIONS)
    cluster = Cluster.create(
        replicas,
        work / "repo",
        (ROOT / "build" / "tritonserver").resolve(),
        work,
        OBSERVABILITY,
        http_port=free_port(),
        grpc_port=free_port(),
        prometheus_port=free_port(),
        replica_base_port=21000 + (os.getpid() % 1000) * 10,
        log=lambda line: print(f"  [cluster] {line}", flush=True),
    ).start()
    supervisor = threading.Thread(target=cluster.run, daemon=True)
    supervisor.start()
    return cluster, supervisor


def balancer(cluster: Cluster, protocol: str) -> str:
    port = cluster.nginx.http_port if protocol == "http" else cluster.nginx.grpc_port
    return f"{cluster.nginx.host}:{port}"


def session_encodes(cluster: Cluster) -> float:
    total = 0.0
    for replica in cluster.replicas:
        text = requests.get(f"http://127.0.0.1:{replica.ports.metrics}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith('sam2_encode_seconds_count{model="sam2_session"}'):
                total += float(line.split()[-1])
    return total


# --- batch failover -------------------------------------------------------------------------


def batch_failover(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="sam2-batch-failover-"))
    images = work / "images"
    images.mkdir()
    prompts = {}
    for k in range(args.images):
        (images / f"{k:03d}.png").write_bytes(photo(5000 + k))
        prompts[f"{k:03d}.png"] = {"object": [[20, 20]]}
    (work / "prompts.json").write_text(json.dumps(prompts))
    cluster, _ = start_cluster(args.export_dir, work)
    out = work / "out"
    command = [
        sys.executable, "-m", "sam2_triton.cli", "batch", str(images), "--out", str(out),
        "--prompts", str(work / "prompts.json"), "--url", balancer(cluster, "grpc"),
        "--protocol", "grpc", "--concurrency", "4", "--no-report", "--no-progress",
    ]  # fmt: skip
    try:
        start = time.monotonic()
        log = work / "batch.log"  # a file: a full pipe would stop the child
        with open(log, "w") as handle:
            batch = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        while len(list((out / "annotations").glob("*.json"))) < args.images // 3:
            if batch.poll() is not None:
                raise SystemExit(f"batch exited early:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        victim = cluster.replicas[0].pid
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic() - start
        batch.wait(timeout=1800)
        output = log.read_text()
        wall = time.monotonic() - start
        done = sorted(p.stem for p in (out / "annotations").glob("*.json"))
        errors = list((out / "errors").glob("*")) if (out / "errors").exists() else []
        summary = json.loads((out / "summary.json").read_text())
        print(f"batch exit code {batch.returncode}; replica 0 killed at {killed_at:.1f} s; "
              f"wall {wall:.1f} s; restarts: {cluster.replicas[0].restarts}")  # fmt: skip
        print(f"images {args.images}, annotation files {len(done)} (distinct {len(set(done))}), "
              f"errors {len(errors)}, finished_total {summary['finished_total']}, "
              f"session encodes across replicas {session_encodes(cluster):.0f}")  # fmt: skip
        if batch.returncode != 0:
            print(output[-3000:])
    finally:
        cluster.stop()
    print(f"{cpu_model()}, {usable_cores()} cores")


# --- soak -----------------------------------------------------------------------------------


def tree_pss(pid: int) -> float:
    """PSS bytes of a process and its children (a replica: tritonserver and its stubs)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0.0
    for proc in procs:
        try:
            total += proc.memory_full_info().pss
        except psutil.NoSuchProcess:
            continue
    return total


def soak(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="sam2-soak-"))
    cluster, _ = start_cluster(args.export_dir, work)
    locust = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"),
        "--headless", "--host", f"http://{balancer(cluster, 'http')}",
        "--grpc-host", balancer(cluster, "grpc"), "--users", str(args.users),
        "--spawn-rate", str(args.users), "--run-time", f"{round(args.minutes * 60)}s",
        "--stop-timeout", "120", "--csv", str(work / "soak"),
    ]  # fmt: skip
    samples: list[tuple[float, list[float]]] = []
    try:
        start = time.time()
        log = work / "locust.log"  # a file: a full pipe would stop Locust (it logs every 2 s)
        with open(log, "w") as handle:
            proc = subprocess.Popen(locust, cwd=work, stdout=handle, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            samples.append((time.time() - start, [tree_pss(r.pid) for r in cluster.replicas]))
            time.sleep(args.sample_s)
        end = time.time()
        if not (work / "soak_stats.csv").exists():
            raise SystemExit(f"locust failed:\n{log.read_text()[-3000:]}")
        with open(work / "soak_stats.csv", newline="") as file:
            stats = list(csv.DictReader(file))
        report(cluster, samples, stats, start, end, args)
    finally:
        cluster.stop()


def report(cluster: Cluster, samples, stats, start: float, end: float, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    print(f"soak: {args.minutes} min, {args.users} Locust users through nginx, 2 replicas; "
          f"{cpu_model()}, {usable_cores()} cores")  # fmt: skip
    print("| request | count | failures | p50 ms | p95 ms | req/s |")
    print("|---|---|---|---|---|---|")
    for row in stats:
        print(f"| {row['Type']} {row['Name']} | {row['Request Count']} | {row['Failure Count']} | "
              f"{row['50%']} | {row['95%']} | {float(row['Requests/s']):.2f} |")  # fmt: skip
    times = np.array([t for t, _ in samples]) / 60
    memory = np.array([m for _, m in samples]) / 2**30
    settled = memory[len(memory) // 5 :]  # after the first fifth (caches filling)
    for i in range(memory.shape[1]):
        print(f"replica {i}: PSS min {np.nanmin(memory[:, i]):.2f} GiB, max "
              f"{np.nanmax(memory[:, i]):.2f} GiB; after the first fifth "
              f"{np.nanmin(settled[:, i]):.2f}–{np.nanmax(settled[:, i]):.2f} GiB; "
              f"restarts {cluster.replicas[i].restarts}")  # fmt: skip
    IMG.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for i in range(memory.shape[1]):
        ax.plot(times, memory[:, i], label=f"replica {i}")
    ax.set(xlabel="minutes", ylabel="PSS, GiB", title="Replica memory during the soak")
    ax.legend()
    fig.tight_layout()
    fig.savefig(IMG / "soak_memory.png", dpi=110)
    plot_dashboard(cluster, start, end, plt)


def plot_dashboard(cluster: Cluster, start: float, end: float, plt) -> None:
    """Every dashboard query over the run, as Grafana would draw it (one axis per panel)."""
    queries = [(t, q) for t, q in dashboard_queries(DASHBOARD) if not t.startswith("variable")]
    panels: dict[str, list[str]] = {}
    for title, expr in queries:
        panels.setdefault(title, []).append(expr)
    columns = 4
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.6 * rows), squeeze=False)
    for ax, (title, exprs) in zip(axes.flat, panels.items(), strict=False):
        for expr in exprs:
            reply = requests.get(
                f"{cluster.prometheus.url}/api/v1/query_range",
                params={"query": expr, "start": start, "end": end, "step": 15},
                timeout=30,
            ).json()
            for series in reply.get("data", {}).get("result", [])[:8]:
                t, v = zip(*series["values"], strict=True) if series["values"] else ((), ())
                label = ",".join(f"{k}={v}" for k, v in series["metric"].items() if k != "__name__")
                ax.plot((np.array(t, float) - start) / 60, np.array(v, float), label=label[:40])
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(IMG / "dashboard_queries.png", dpi=90)
    print(f"plots: {IMG / 'soak_memory.png'}, {IMG / 'dashboard_queries.png'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("recovery")
    p.add_argument("--repeats", type=int, default=3)
    p = sub.add_parser("batch-failover")
    p.add_argument("--images", type=int, default=24)
    p = sub.add_parser("soak")
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--sample-s", type=float, default=10)
    args = parser.parse_args()
    {"recovery": recovery, "batch-failover": batch_failover, "soak": soak}[args.what](args)


if __name__ == "__main__":
    main()
