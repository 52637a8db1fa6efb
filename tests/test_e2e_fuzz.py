"""Hostile requests drawn by Hypothesis (tests/fuzzing.py) against every public model of a real
tritonserver, over HTTP and gRPC: none crashes a stub or gets a 500 / INTERNAL, every refusal is
a 400 / INVALID_ARGUMENT (or 404 / NOT_FOUND) naming an input, and the server is healthy after.
A concurrent burst of them too. ``benchmarks/fuzz.py`` runs 10,000 and reports the tally."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sam2_triton.server.watchdog import server_ready, stubs_of
from tests import fuzzing

pytestmark = pytest.mark.e2e
EXAMPLES = 120  # per protocol; benchmarks/fuzz.py runs 10,000
BROKEN_EXAMPLES = 60  # per protocol: many reach the encoder (about 2 s each on 2 cores)


@pytest.fixture(autouse=True)
def _same_examples():
    with fuzzing.same_examples_whatever_ran_before():
        yield


def _url(server, protocol: str) -> str:
    return server.http_url if protocol == "http" else server.grpc_url


def _stub_pids(server) -> set[int]:
    return {stub.pid for stub in stubs_of(server.process.pid)}


def _check(outcome: fuzzing.Outcome, request: fuzzing.Request) -> None:
    summary = [(i.name, i.datatype, i.shape, len(i.data)) for i in request.inputs]
    assert outcome.kind != "failure", (request.model, summary, request.size_skew, outcome)
    if outcome.kind == "refused":
        assert fuzzing.names_an_input(outcome, request), (request.model, summary, outcome)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize(
    ("strategy", "examples"),
    [
        (fuzzing.requests, EXAMPLES),
        # mistakes that get past the first checks: each request valid but for one input
        (fuzzing.one_broken_input, BROKEN_EXAMPLES),
    ],
    ids=["random", "one_broken_input"],
)
def test_hostile_requests_are_refused_naming_the_input(triton, protocol, strategy, examples):
    stubs = _stub_pids(triton)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=strategy())
    def one(request: fuzzing.Request) -> None:
        _check(fuzzing.send(protocol, _url(triton, protocol), request), request)

    one()
    assert server_ready(triton.http_url)
    assert _stub_pids(triton) == stubs  # no stub died and was restarted


def test_a_concurrent_burst_of_them(triton):
    stubs = _stub_pids(triton)
    drawn = st.lists(fuzzing.requests(), min_size=24, max_size=24)
    burst = _fixed_burst(drawn)
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(
            pool.map(
                lambda item: fuzzing.send(item[0], _url(triton, item[0]), item[1]),
                [("http" if k % 2 else "grpc", r) for k, r in enumerate(burst)],
            )
        )
    for outcome, request in zip(outcomes, burst, strict=True):
        _check(outcome, request)
    assert server_ready(triton.http_url)
    assert _stub_pids(triton) == stubs


def _fixed_burst(strategy) -> list[fuzzing.Request]:
    """One draw of ``strategy`` with a fixed seed (Hypothesis' own example() is random)."""
    found = []

    @settings(
        max_examples=1, database=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(value=strategy)
    def take(value) -> None:
        found.append(value)

    take()
    return found[0]
