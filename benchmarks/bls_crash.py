"""Why sam2_video_sessions is not decoupled: a caller's stub doing BLS calls to a model that
answers from another thread, one response each, with the call decoupled (``exec(decoupled=True)``,
the callee decoupled) and plain (``exec()``, the callee in default mode with the response
sender), as sam2_video and sam2_video_stream call sam2_video_sessions.

    .venv/bin/python benchmarks/bls_crash.py [--seconds 60]

Each mode gets its own embedded tritonserver with two models written here: ``callee`` answers
each request from its own thread with three 64x64 float32 tensors; ``caller`` (two instances)
makes 20 BLS calls per request, keeping the first response, then allocates a little, as our
models do. Four client threads send requests for ``--seconds``. Prints, per mode, the BLS calls
made, the requests that failed and the caller stubs that died (the server log's "Stub process
... is not healthy" answers). Not a test: the crash is random, it needs load and time.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import tritonclient.http as http

from sam2_triton.bench import machine
from sam2_triton.server.embedded import Ports, TritonServer

CALLEE = """
import queue, threading
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        self.waiting = queue.Queue()
        threading.Thread(target=self.answer, daemon=True).start()

    def execute(self, requests):
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy().copy()
            self.waiting.put((x, r.get_response_sender()))
        return None

    def answer(self):
        while True:
            x, sender = self.waiting.get()
            outs = [pb_utils.Tensor(f"Y{i}", np.full((1, 64, 64), x[0], np.float32))
                    for i in range(3)]
            sender.send(pb_utils.InferenceResponse(outs),
                        flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
"""

CALLER = """
import numpy as np
import triton_python_backend_utils as pb_utils
DECOUPLED = {decoupled}

def call(x):
    request = pb_utils.InferenceRequest(model_name="callee", requested_output_names=["Y0"],
                                        inputs=[pb_utils.Tensor("X", x)])
    if DECOUPLED:
        for result in request.exec(decoupled=True):  # as video_calls did
            if result.has_error():
                raise RuntimeError(result.error().message())
            return pb_utils.get_output_tensor_by_name(result, "Y0").as_numpy()
    result = request.exec()
    if result.has_error():
        raise RuntimeError(result.error().message())
    return pb_utils.get_output_tensor_by_name(result, "Y0").as_numpy()

class TritonPythonModel:
    def execute(self, requests):
        answers = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "X").as_numpy()
            total = 0.0
            for _ in range(20):
                junk = [{{"k": (i, str(i))}} for i in range(200)]
                total += float(call(x).sum()) + len(junk)
            answers.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("S", np.array([total], np.float64))]))
        return answers
"""

CONFIG = """name: "{name}"
backend: "python"
max_batch_size: 0
model_transaction_policy {{ decoupled: {decoupled} }}
input [{{ name: "X" data_type: TYPE_FP32 dims: [1] }}]
output [{outputs}]
instance_group [{{ count: {count} kind: KIND_CPU }}]
"""


def write_repository(root: Path, decoupled: bool) -> None:
    tensor = '{{ name: "{}" data_type: {} dims: {} }}'
    callee = ", ".join(tensor.format(f"Y{i}", "TYPE_FP32", "[1, 64, 64]") for i in range(3))
    caller = tensor.format("S", "TYPE_FP64", "[1]")
    for name, code, outputs, count, mode in (
        ("callee", CALLEE, callee, 1, decoupled),
        ("caller", CALLER.format(decoupled=decoupled), caller, 2, False),
    ):
        (root / name / "1").mkdir(parents=True)
        (root / name / "1" / "model.py").write_text(textwrap.dedent(code))
        (root / name / "config.pbtxt").write_text(
            CONFIG.format(name=name, decoupled=str(mode).lower(), outputs=outputs, count=count)
        )


def client_loop(port: int, deadline: float, k: int) -> tuple[int, list[str]]:
    client = http.InferenceServerClient(f"127.0.0.1:{port}", network_timeout=120)
    done, errors = 0, []
    while time.monotonic() < deadline:
        x = http.InferInput("X", [1], "FP32")
        x.set_data_from_numpy(np.array([k], np.float32))
        try:
            client.infer("caller", [x])
            done += 1
        except Exception as exc:  # noqa: BLE001 - a dead stub fails every request after
            errors.append(str(exc))
    return done, errors


def run(decoupled: bool, seconds: float, runtime: Path, work: Path) -> dict[str, object]:
    root = work / ("decoupled" if decoupled else "plain")
    write_repository(root / "repo", decoupled)
    ports = Ports(18100, 18101, 18102)
    with TritonServer(root / "repo", runtime, ports=ports, log_file=root / "server.log"):
        deadline = time.monotonic() + seconds
        with cf.ThreadPoolExecutor(4) as pool:
            counts = list(pool.map(lambda k: client_loop(ports.http, deadline, k), range(4)))
    errors = [e for _, found in counts for e in found]
    return {
        "mode": "exec(decoupled=True)" if decoupled else "exec(), default-mode callee",
        "seconds": seconds,
        "bls_calls": 20 * sum(done for done, _ in counts),
        "failed_requests": len(errors),
        "dead_stubs": sorted({e.split("'")[1] for e in errors if "is not healthy" in e}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runtime", type=Path, default=Path("build/tritonserver"))
    args = parser.parse_args()
    print(machine.summary())
    with tempfile.TemporaryDirectory(prefix="bls-crash-") as work:
        for decoupled in (True, False):
            print(run(decoupled, args.seconds, args.runtime, Path(work)), flush=True)


if __name__ == "__main__":
    main()
