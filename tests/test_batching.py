"""Grouping a dynamic batch of requests by shape, running once per group, splitting back."""

from __future__ import annotations

import numpy as np

from sam2_triton.runtime.grouping import run_grouped


def test_requests_with_equal_shapes_share_one_run_and_keep_their_order():
    calls = []

    def run(batch):
        calls.append(batch["x"].shape)
        return {"y": batch["x"] * 2, "n": batch["p"].sum(axis=(1, 2))}

    requests = [
        {"x": np.full((1, 3), i, np.float32), "p": np.ones((1, 1 + i % 2, 2), np.float32)}
        for i in range(5)
    ]
    results = run_grouped(requests, run)
    assert sorted(calls) == [(2, 3), (3, 3)]  # points 1 vs 2 cannot be concatenated
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full((1, 3), 2 * i))
        assert result["n"].tolist() == [2.0 * (1 + i % 2)]


def test_multi_row_requests_are_split_by_their_own_row_counts():
    requests = [
        {"x": np.arange(6, dtype=np.float32).reshape(3, 2)},
        {"x": np.ones((1, 2), np.float32)},
    ]
    results = run_grouped(requests, lambda b: {"y": b["x"] + 1})
    assert [r["y"].shape for r in results] == [(3, 2), (1, 2)]
    np.testing.assert_array_equal(results[1]["y"], np.full((1, 2), 2.0))


def test_a_failing_group_fails_only_its_own_requests():
    def run(batch):
        if batch["x"].shape[1] == 3:
            raise ValueError("bad group")
        return {"y": batch["x"]}

    requests = [{"x": np.ones((1, 2))}, {"x": np.ones((1, 3))}, {"x": np.ones((1, 2))}]
    results = run_grouped(requests, run)
    assert isinstance(results[1], ValueError)
    assert [r["y"].shape for r in (results[0], results[2])] == [(1, 2), (1, 2)]
