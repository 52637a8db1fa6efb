"""Gather the requests Triton's dynamic batcher hands a model into as few runs as possible.

Requests can only share a run when every input has the same shape past the batch axis (the
decoder's point axis differs between prompts), so they are grouped by that signature,
concatenated, run once per group and split back per request, in the original order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

Arrays = Mapping[str, np.ndarray]


def shape_signature(inputs: Arrays) -> tuple[tuple[str, tuple[int, ...], str], ...]:
    """Everything but the batch axis: requests with equal signatures can be concatenated."""
    return tuple(sorted((name, a.shape[1:], a.dtype.str) for name, a in inputs.items()))


def run_grouped(
    requests: Sequence[Arrays], run: Callable[[Arrays], dict[str, np.ndarray]]
) -> list[dict[str, np.ndarray] | Exception]:
    """Run ``run`` once per group of shape-compatible requests; results in request order.

    ``run`` maps batched inputs to batched outputs (first axis = rows of all requests). If a
    group's run raises, each of its requests gets the exception in place of a result and the
    other groups are unaffected.
    """
    groups: dict[tuple, list[int]] = {}
    for index, inputs in enumerate(requests):
        groups.setdefault(shape_signature(inputs), []).append(index)
    results: list[dict[str, np.ndarray] | Exception] = [RuntimeError("not run")] * len(requests)
    for indices in groups.values():
        names = requests[indices[0]].keys()
        try:
            if len(indices) == 1:
                batched = dict(requests[indices[0]])
            else:
                batched = {n: np.concatenate([requests[i][n] for i in indices]) for n in names}
            outputs = run(batched)
        except Exception as exc:  # noqa: BLE001 - reported per request by the caller
            for index in indices:
                results[index] = exc
            continue
        rows = np.cumsum([len(next(iter(requests[i].values()))) for i in indices])[:-1]
        split = {name: np.split(value, rows) for name, value in outputs.items()}
        for position, index in enumerate(indices):
            results[index] = {name: parts[position] for name, parts in split.items()}
    return results
