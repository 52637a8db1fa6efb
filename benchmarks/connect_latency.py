"""A click through each labelling tool's protocol (``sam2-triton connect``) against the same click
sent to sam2_session directly, and the encoder runs a re-sent image costs.

    .venv/bin/python benchmarks/connect_latency.py [--export-dir exports/tiny] [--clicks 15]

One embedded server and the gateway as a user runs it (``sam2-triton connect`` over gRPC).
For each image (the bundled 600 x 400 sample and the same photo upscaled to 12 MP), each tool
sends ``clicks`` lone clicks as it does: CVAT and X-AnyLabeling with the whole image in every
request (base64), Label Studio with the task's URL (served by a stand-in for Label Studio's
upload URL, with the token). The direct figure is ``SegmentClient.click`` on the image's id with
what the gateway asks (three candidates; RLE, or polygons for X-AnyLabeling; nothing decoded).
Medians;
``overhead_ms`` = tool - direct, against the goal max(10 %, 15 ms). ``protocol_ms`` is the
tool's traffic alone: the same requests, sent the same way, to an HTTP server that only reads
their JSON and answers the same bytes (the tool's answer to the first click), so
``overhead_ms`` beyond it is what the gateway's own work adds. ``encoder_runs`` counts
sam2_image_encoder's executions during the clicks (after each tool's first request opened the
image): 0 means no re-encoding. Writes ``connect_latency.json`` next to the export. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sam2_triton import contract as c  # noqa: E402
from sam2_triton.bench import machine  # noqa: E402
from sam2_triton.bench.server import bench_server  # noqa: E402
from sam2_triton.clients.image import SegmentClient  # noqa: E402
from tests.conftest import free_port, model_runs  # noqa: E402

SAMPLE = ROOT / "src" / "sam2_triton" / "assets" / "coffee.jpg"
TOKEN = "bench-token"
LABEL_CONFIG = (
    '<View><Image name="image" value="$image"/><BrushLabels name="mask" toName="image">'
    '<Label value="object"/></BrushLabels><KeyPointLabels name="click" toName="image" '
    'smart="true"><Label value="object"/></KeyPointLabels></View>'
)


def images() -> dict[str, bytes]:
    """The sample photo and the same photo upscaled to 12 MP, as JPEG files."""
    big = io.BytesIO()
    with Image.open(SAMPLE) as image:
        image.resize((4240, 2827), Image.Resampling.LANCZOS).save(big, "JPEG", quality=92)
    return {"600x400": SAMPLE.read_bytes(), "4240x2827": big.getvalue()}


def studio_stand_in(files: dict[str, bytes]) -> ThreadingHTTPServer:
    """Label Studio's /data/upload/ URLs for the images, answering only with the token."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            name = self.path.rsplit("/", 1)[-1]
            if self.headers.get("Authorization") != f"Token {TOKEN}" or name not in files:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(files[name])))
            self.end_headers()
            self.wfile.write(files[name])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def echo_server(port: int) -> None:
    """A tool's traffic and nothing else: each POST's JSON read, the bytes last PUT answered."""
    from aiohttp import web

    answer = {"body": b"{}"}

    async def put(request: web.Request) -> web.Response:
        answer["body"] = await request.read()
        return web.Response()

    async def post(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(body=answer["body"], content_type="application/json")

    app = web.Application(client_max_size=1 << 30)
    app.router.add_put("/answer", put)
    app.router.add_post("/{path:.*}", post)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def started(url: str, process: subprocess.Popen) -> None:
    """Wait for ``url`` to answer (a started gateway or echo server)."""
    while process.poll() is None:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{process.args} exited with {process.returncode}")


def tool_request(tool: str, name: str, data: bytes, size: tuple[int, int], point) -> tuple:
    """(path, headers, body) of one lone click as the tool sends it."""
    x, y = point
    if tool == "cvat":
        body = {"image": base64.b64encode(data).decode(), "pos_points": [[x, y]],
                "neg_points": [], "obj_bbox": []}  # fmt: skip
        return "/api/function_invocations", {"x-nuclio-function-name": "sam2-triton"}, body
    if tool == "x-anylabeling":
        uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()
        body = {"model": "sam2", "image": uri,
                "params": {"marks": [{"type": "point", "data": [x, y], "label": 1}]}}  # fmt: skip
        return "/v1/predict", {}, body
    keypoint = {"type": "keypointlabels", "is_positive": True,
                "original_width": size[0], "original_height": size[1],
                "value": {"x": 100 * x / size[0], "y": 100 * y / size[1],
                          "keypointlabels": ["object"]}}  # fmt: skip
    task = {"id": 1, "data": {"image": f"/data/upload/1/{name}"}}
    body = {"tasks": [task], "label_config": LABEL_CONFIG,
            "params": {"context": {"result": [keypoint]}}}  # fmt: skip
    return "/predict", {}, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=Path("exports/tiny"))
    parser.add_argument("--clicks", type=int, default=15)
    parser.add_argument("--echo-port", type=int, help=argparse.SUPPRESS)  # echo_server's
    args = parser.parse_args()
    if args.echo_port:
        echo_server(args.echo_port)
        return
    rng = np.random.default_rng(0)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        files = images()
        names = {key: f"{key}.jpg" for key in files}
        studio = studio_stand_in({names[k]: v for k, v in files.items()})
        config = Path(folder) / "connect.toml"
        config.write_text(
            f'[label_studio]\nurl = "http://127.0.0.1:{studio.server_address[1]}"\n'
            f'token = "{TOKEN}"\n'
        )
        port, echo_port = free_port(), free_port()
        with bench_server(args.export_dir, ROOT / "build" / "connect-bench") as server:
            gateway = subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "sam2-triton"), "connect", "--config", str(config),
                 "--triton", server.grpc_url, "--port", str(port)],
                stdout=subprocess.DEVNULL,
            )  # fmt: skip
            echo = subprocess.Popen([sys.executable, __file__, "--echo-port", str(echo_port)])
            url, echo_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{echo_port}"
            try:
                started(f"{url}/health", gateway)
                started(f"{echo_url}/health", echo)
                with SegmentClient(server.grpc_url, "grpc") as client:
                    for key, data in files.items():
                        with Image.open(io.BytesIO(data)) as image:
                            size = image.size
                        points = [tuple(float(v) for v in rng.uniform(0.1, 0.9, 2) * size)
                                  for _ in range(args.clicks)]  # fmt: skip
                        image_id = client.embed(data)
                        row: dict[str, dict] = {}
                        for tool in ("cvat", "x-anylabeling", "label-studio"):
                            path, headers, body = tool_request(tool, names[key], data, size,
                                                               points[0])  # fmt: skip
                            first = requests.post(url + path, json=body, headers=headers,
                                                  timeout=300)  # fmt: skip
                            answer = requests.put(f"{echo_url}/answer", data=first.content)
                            answer.raise_for_status()
                            runs_before = model_runs(server, c.IMAGE_ENCODER)
                            tool_ms, direct_ms, echo_ms = [], [], []
                            fmt = "polygons" if tool == "x-anylabeling" else "rle"
                            for point in points:
                                path, headers, body = tool_request(tool, names[key], data, size,
                                                                   point)  # fmt: skip
                                start = time.perf_counter()
                                reply = requests.post(url + path, json=body, headers=headers,
                                                      timeout=300)  # fmt: skip
                                tool_ms.append((time.perf_counter() - start) * 1e3)
                                reply.raise_for_status()
                                start = time.perf_counter()
                                client.click(image_id, np.array([point], np.float32),
                                             np.array([1], np.int32), multimask_output=True,
                                             output_format=fmt, with_masks=False)  # fmt: skip
                                direct_ms.append((time.perf_counter() - start) * 1e3)
                                start = time.perf_counter()
                                requests.post(echo_url + path, json=body, headers=headers,
                                              timeout=300).raise_for_status()  # fmt: skip
                                echo_ms.append((time.perf_counter() - start) * 1e3)
                            tool_med, direct_med = np.median(tool_ms), np.median(direct_ms)
                            row[tool] = {
                                "tool_ms": round(float(tool_med), 1),
                                "direct_ms": round(float(direct_med), 1),
                                "overhead_ms": round(float(tool_med - direct_med), 1),
                                "goal_ms": round(max(0.1 * float(direct_med), 15.0), 1),
                                "protocol_ms": round(float(np.median(echo_ms)), 1),
                                "answer_bytes": len(first.content),
                                "encoder_runs": model_runs(server, c.IMAGE_ENCODER) - runs_before,
                            }
                        results[key] = row
            finally:
                for process in (gateway, echo):
                    process.terminate()
                    process.wait(30)
                studio.shutdown()
    report = {
        "machine": machine.summary(),
        "model": json.loads((args.export_dir / "export.json").read_text()).get("variant"),
        "clicks": args.clicks,
        "images": results,
    }
    out = args.export_dir / "connect_latency.json"
    out.write_text(json.dumps(report, indent=2))
    host = report["machine"]
    print(f"{host['cpu']}, {host['cores']} cores; {report['model']}; medians of {args.clicks}")
    print(f"{'image':>10s} {'tool':>14s}{'tool ms':>9s}{'direct':>8s}{'over':>7s}{'goal':>7s}"
          f"{'traffic':>8s}{'answer MB':>10s}{'encodes':>8s}")  # fmt: skip
    for key, row in results.items():
        for tool, r in row.items():
            print(f"{key:>10s} {tool:>14s}{r['tool_ms']:9.1f}{r['direct_ms']:8.1f}"
                  f"{r['overhead_ms']:7.1f}{r['goal_ms']:7.1f}{r['protocol_ms']:8.1f}"
                  f"{r['answer_bytes'] / 1e6:10.2f}{r['encoder_runs']:8d}")  # fmt: skip
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
