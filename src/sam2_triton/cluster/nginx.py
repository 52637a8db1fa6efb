"""The balancer in front of the replicas: Debian's nginx, run in the foreground with a config of
ours, hashing on the image-id header for HTTP and for gRPC (h2c).

- Both upstreams list the replicas in the same order and hash the key modulo their number, so an
  image goes to the same replica over HTTP and over gRPC. nginx's ``consistent`` (ketama) ring
  is built from each server's host *and port*, so the HTTP and gRPC rings differ and would send
  one image to two replicas; its advantage, moving few keys when servers join or leave, does
  not apply to a fixed set of replicas (the Kubernetes Ingress, where pods come and go, does
  hash consistently: deploy/k8s/README.md).

- A request without the header (a one-shot ``sam2_segment`` call from a client that sends none)
  is hashed on nginx's random ``$request_id`` instead, so it still spreads over the replicas.
- A replica that refuses or drops a connection is marked failed for ``FAIL_TIMEOUT_S`` and the
  request goes to the next replica: our inference calls are safe to repeat, hence
  ``non_idempotent``; a slow answer is waited for (an hour), never sent elsewhere again. The
  new replica may not hold the image: it answers NOT_FOUND and the client re-sends the image
  (``SegmentClient.click_resending``).
- Only the inference API goes through: infer, model ready/metadata/config (Triton's own
  clients and perf_analyzer read the config first) and server health over HTTP, the same RPCs
  over gRPC; the repository, shared-memory, statistics, trace and logging APIs and the metrics
  port are not forwarded (a replica's statistics are not the cluster's).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sam2_triton.clients.affinity import NGINX_HEADER_VARIABLE
from sam2_triton.contract import AUTOMATIC, SEGMENT, SESSION
from sam2_triton.server.embedded import port_in_use, spawn, stop_process

FAIL_TIMEOUT_S = 10
MAX_BODY = "64m"  # an image request; the server caps pixels itself
GRPC_SERVICE = "inference.GRPCInferenceService"
GRPC_METHODS = ("ModelInfer", "ModelStreamInfer", "ModelReady", "ModelMetadata", "ModelConfig",
                "ServerReady", "ServerLive", "ServerMetadata")  # fmt: skip
PUBLIC_MODELS = (SEGMENT, SESSION, AUTOMATIC)  # the encoder and decoder are ours to call
HTTP_ALLOWED = (
    rf"^/v2/models/({'|'.join(PUBLIC_MODELS)})(/versions/[0-9]+)?(/infer|/ready|/config)?$",
    r"^/v2/health/(ready|live)$",
    r"^/v2$",
)


class NginxError(RuntimeError):
    """nginx is missing or did not start; the message says what to do."""


@dataclass(frozen=True)
class Upstream:
    host: str
    http_port: int
    grpc_port: int


def render_config(
    prefix: Path, host: str, http_port: int, grpc_port: int, upstreams: Sequence[Upstream]
) -> str:
    """nginx.conf for a balancer listening on ``host``:``http_port``/``grpc_port``."""
    key = "$sam2_affinity_key"

    def servers(port_of: str) -> str:
        return "\n".join(
            f"    server {u.host}:{getattr(u, port_of)} max_fails=1 fail_timeout={FAIL_TIMEOUT_S}s;"
            for u in upstreams
        )

    http_locations = "\n".join(
        f"    location ~ {pattern} {{\n      proxy_pass http://sam2_http;\n    }}"
        for pattern in HTTP_ALLOWED
    )
    grpc_locations = "\n".join(
        f"    location = /{GRPC_SERVICE}/{method} {{\n      grpc_pass grpc://sam2_grpc;\n    }}"
        for method in GRPC_METHODS
    )
    temp = prefix / "temp"
    return f"""# Written by sam2-triton cluster; regenerated at every start.
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  log_format sam2 '$remote_addr "$request" $status $request_time '
                  'upstream=$upstream_addr image=$http_sam2_image_id';
  access_log {prefix / "access.log"} sam2;
  client_body_temp_path {temp / "body"};
  proxy_temp_path {temp / "proxy"};
  fastcgi_temp_path {temp / "fastcgi"};
  uwsgi_temp_path {temp / "uwsgi"};
  scgi_temp_path {temp / "scgi"};
  client_max_body_size {MAX_BODY};
  client_body_buffer_size 8m;
  map {NGINX_HEADER_VARIABLE} {key} {{
    "" $request_id;
    default {NGINX_HEADER_VARIABLE};
  }}
  upstream sam2_http {{
    hash {key};
{servers("http_port")}
    keepalive 32;
  }}
  upstream sam2_grpc {{
    hash {key};
{servers("grpc_port")}
  }}
  server {{
    listen {host}:{http_port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_read_timeout 3600s;  # sam2_automatic takes minutes per image on a CPU
    proxy_next_upstream error non_idempotent;
{http_locations}
    location / {{
      return 404 "not part of the inference API\\n";
    }}
  }}
  server {{
    listen {host}:{grpc_port} http2;
    grpc_read_timeout 3600s;
    grpc_next_upstream error non_idempotent;
{grpc_locations}
    location / {{
      return 404;
    }}
  }}
}}
"""


@dataclass
class Nginx:
    """An nginx process with its own prefix folder (config, logs, temp files, pid)."""

    prefix: Path
    host: str
    http_port: int
    grpc_port: int
    upstreams: Sequence[Upstream]
    process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            raise NginxError("nginx is not installed: apt-get install -y nginx (Debian's package)")
        for port in (self.http_port, self.grpc_port):
            if port_in_use(self.host, port):
                raise NginxError(f"port {self.host}:{port} is already in use")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            folder = self.prefix / "temp" / sub
            folder.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:  # nginx started as root runs its workers as nobody
                shutil.chown(folder, "nobody", "nogroup")
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            render_config(self.prefix, self.host, self.http_port, self.grpc_port, self.upstreams)
        )
        command = [binary, "-p", str(self.prefix), "-c", str(conf)]
        self.process = spawn(command, self.prefix / "nginx.out")
        deadline = time.monotonic() + timeout
        while not all(port_in_use(self.host, p) for p in (self.http_port, self.grpc_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                errors = (self.prefix / "error.log").read_text(errors="replace")[-2000:]
                raise NginxError(f"nginx did not start: {errors}")
            time.sleep(0.1)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGQUIT: finish the requests in flight, then exit; SIGKILL if it takes too long."""
        stop_process(self.process, signal.SIGQUIT, timeout)
