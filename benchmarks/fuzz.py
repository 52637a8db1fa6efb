"""10,000 hostile requests against every public model, over HTTP and gRPC, and their tally.

    .venv/bin/python benchmarks/fuzz.py [--export-dir exports/tiny] [--requests 10000]
        [--seed 0]

The requests are drawn by ``tests/fuzzing.py`` (what the suite's fuzz test draws, a few hundred
of them): half fully random, half a valid request with one input broken. They are sent
alternately over HTTP and gRPC to one embedded server, in Hypothesis runs of 500 (one run
keeps everything it drew: 10,000 requests in one run grew this process to 13 GB). Tallied per model:
answered, refused (400 / INVALID_ARGUMENT, 404 / NOT_FOUND) with a message naming an input or
not, and failures (500 / INTERNAL, UNAVAILABLE, a dropped connection). At the end: the
server's health and whether any Python-backend stub was restarted. Goals: 0 failures, 0
refusals that name no input, 0 restarts, healthy. Writes ``fuzz.json`` next to the export.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/fuzzing.py

from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.server.watchdog import server_ready, stubs_of  # noqa: E402
from tests import fuzzing  # noqa: E402

CHUNK = 500  # requests per Hypothesis run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tally: Counter[tuple[str, str, str]] = Counter()
    failures: list[dict] = []
    unnamed: list[dict] = []
    sent = [0]
    server = bench_server(args.export_dir, ROOT / "build" / "fuzz")
    start = time.perf_counter()
    with server:
        stubs = {s.pid for s in stubs_of(server.process.pid)}

        def one(request: fuzzing.Request) -> None:
            protocol = "http" if sent[0] % 2 else "grpc"
            sent[0] += 1
            url = server.http_url if protocol == "http" else server.grpc_url
            outcome = fuzzing.send(protocol, url, request)
            tally[(request.model, outcome.kind, outcome.status)] += 1
            record = {
                "protocol": protocol,
                "model": request.model,
                "inputs": [
                    (i.name, i.datatype, list(i.shape), len(i.data)) for i in request.inputs
                ],
                "size_skew": request.size_skew,
                "status": outcome.status,
                "message": outcome.message[:300],
            }
            if outcome.kind == "failure":
                failures.append(record)
            elif outcome.kind == "refused" and not fuzzing.names_an_input(outcome, request):
                unnamed.append(record)
            if sent[0] % 500 == 0:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(
                    f"{sent[0]} requests, {len(failures)} failures; fuzzer peak RSS {peak:.0f} MB",
                    flush=True,
                )

        # Hypothesis keeps what it drew for the whole run (several GB over 10,000 requests of
        # image-sized blobs): a fresh run per chunk, each with its own seed, bounds the memory.
        for chunk, start_at in enumerate(range(0, args.requests, CHUNK)):
            count = min(CHUNK, args.requests - start_at)
            run = settings(
                max_examples=count,
                deadline=None,
                database=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(given(request=st.one_of(fuzzing.requests(), fuzzing.one_broken_input()))(one))
            seed(args.seed * 1_000_003 + chunk)(run)()
        healthy = server_ready(server.http_url)
        restarted = stubs - {s.pid for s in stubs_of(server.process.pid)}
    report = {
        "machine": machine.summary(),
        "requests": sent[0],
        "seconds": time.perf_counter() - start,
        "tally": [
            {"model": m, "kind": k, "status": s, "count": n}
            for (m, k, s), n in sorted(tally.items())
        ],
        "failures": failures,
        "refusals_naming_no_input": unnamed,
        "stubs_restarted": len(restarted),
        "healthy_after": healthy,
    }
    out = args.export_dir / "fuzz.json"
    out.write_text(json.dumps(report, indent=2))
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {sent[0]} requests in {report['seconds']:.0f} s")
    kinds = Counter()
    for (model, kind, status), count in sorted(tally.items()):
        kinds[kind] += count
        print(f"  {model:20s} {kind:8s} {status:18s} {count:6d}")
    print(
        f"answered {kinds['ok']}, refused {kinds['refused']} ({len(unnamed)} naming no input), "
        f"failures {len(failures)}; stubs restarted {len(restarted)}; healthy after: {healthy}"
    )
    for record in failures[:10]:
        print("  failure:", json.dumps(record)[:400])
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
