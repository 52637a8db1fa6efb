"""N embedded servers behind one balancer, supervised: a replica whose tritonserver exited or whose
watchdog gave up on a model is started again (its embedding cache is then empty: clients
re-send the image on NOT_FOUND), while nginx routes its images around it.

The replicas and Prometheus listen on 127.0.0.1 whatever ``host`` is: only the balancer (the
inference API) is exposed. A replica that fails to start again ``MAX_FAILED_STARTS`` times in a
row, or a balancer that dies, ends the cluster with an error (``failed``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sam2_triton.cluster.nginx import Nginx, Upstream
from sam2_triton.cluster.prometheus import Prometheus
from sam2_triton.server.embedded import Ports, ServerError, TritonServer
from sam2_triton.server.watchdog import Watchdog, admin_key

Log = Callable[[str], None]
LOOPBACK = "127.0.0.1"
MAX_FAILED_STARTS = 5


def replica_ports(base: int, index: int) -> Ports:
    """Replica ``index`` listens on base+10i (HTTP), +1 (gRPC), +2 (metrics)."""
    port = base + 10 * index
    return Ports(port, port + 1, port + 2)


@dataclass
class Replica:
    """One embedded tritonserver with its stub watchdog."""

    index: int
    repository: Path
    runtime_dir: Path
    host: str
    ports: Ports
    log_file: Path
    log: Log = print
    restarts: int = 0
    failed_starts: int = 0  # in a row
    next_try: float = 0.0  # time.monotonic() of the next restart attempt
    server: TritonServer | None = None
    watchdog: Watchdog | None = None

    def start(self) -> Replica:
        key, _ = admin_key()  # the operator's TRITON_ADMIN_KEY opens every replica's
        self.server = TritonServer(
            repository=self.repository,
            runtime_dir=self.runtime_dir,
            host=self.host,
            ports=self.ports,
            log_file=self.log_file,
            admin_key=key,
        ).start()
        assert self.server.process is not None
        self.watchdog = Watchdog.of_server(
            self.server, log=lambda line: self.log(f"replica {self.index}: {line}")
        ).start()
        return self

    @property
    def pid(self) -> int | None:
        return (
            None if self.server is None or self.server.process is None else self.server.process.pid
        )

    def broken(self) -> str | None:
        """Why this replica needs a restart, or None."""
        if self.server is None or self.server.process is None:
            return "not started"
        code = self.server.process.poll()
        if code is not None:
            return f"tritonserver exited with code {code}"
        if self.watchdog is not None and self.watchdog.gave_up.is_set():
            return "a model could not be reloaded"
        return None

    def stop(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.server is not None:
            self.server.stop()


@dataclass
class Cluster:
    """Replicas, nginx in front, Prometheus scraping them; ``run`` supervises until ``stop``."""

    replicas: list[Replica]
    nginx: Nginx
    prometheus: Prometheus | None
    log: Log = print
    check_interval_s: float = 1.0
    stopping: threading.Event = field(default_factory=threading.Event)
    failed: str | None = None  # why the cluster gave up

    @classmethod
    def create(
        cls,
        count: int,
        repository: Path,
        runtime_dir: Path,
        workdir: Path,
        observability: Path | None,
        host: str = "127.0.0.1",
        http_port: int = 8000,
        grpc_port: int = 8001,
        prometheus_port: int = 9090,
        replica_base_port: int = 8100,
        log: Log = print,
    ) -> Cluster:
        workdir.mkdir(parents=True, exist_ok=True)
        replicas = [
            Replica(
                i,
                repository,
                runtime_dir,
                LOOPBACK,
                replica_ports(replica_base_port, i),
                workdir / f"replica-{i}.log",
                log,
            )
            for i in range(count)
        ]
        upstreams = [Upstream(LOOPBACK, r.ports.http, r.ports.grpc) for r in replicas]
        nginx = Nginx(workdir / "nginx", host, http_port, grpc_port, upstreams)
        prometheus = None
        if observability is not None:
            targets = [f"{LOOPBACK}:{r.ports.metrics}" for r in replicas]
            prometheus = Prometheus(
                workdir / "prometheus", observability, targets, LOOPBACK, prometheus_port
            )
        return cls(replicas, nginx, prometheus, log)

    def start(self) -> Cluster:
        try:
            for replica in self.replicas:
                replica.start()
                self.log(f"replica {replica.index} ready: HTTP {replica.server.http_url}")
            self.nginx.start()
            if self.prometheus is not None:
                self.prometheus.start()
        except Exception:
            self.stop()
            raise
        return self

    def run(self) -> None:
        """Restart broken replicas until ``stopping`` is set or the cluster ``failed``."""
        while not self.stopping.wait(self.check_interval_s):
            if self.nginx.process is None or self.nginx.process.poll() is not None:
                self.failed = "nginx exited (see its error.log)"
                return
            for replica in self.replicas:
                why = replica.broken()
                if why is None or self.stopping.is_set() or time.monotonic() < replica.next_try:
                    continue
                if not self._restart(replica, why):
                    return

    def _restart(self, replica: Replica, why: str) -> bool:
        """Start ``replica`` again; False once it failed ``MAX_FAILED_STARTS`` times in a row."""
        self.log(f"replica {replica.index}: {why}; restarting it")
        replica.stop()
        try:
            replica.start()
        except ServerError as exc:
            replica.failed_starts += 1
            replica.next_try = time.monotonic() + min(2.0**replica.failed_starts, 60.0)
            self.log(f"replica {replica.index} did not start again: {exc}")
            if replica.failed_starts >= MAX_FAILED_STARTS:
                self.failed = f"replica {replica.index} failed to start {MAX_FAILED_STARTS} times"
                return False
            return True
        replica.failed_starts = 0
        replica.restarts += 1
        self.log(f"replica {replica.index} restarted ({replica.restarts} so far)")
        return True

    def stop(self) -> None:
        """Balancer first (it finishes the requests in flight), then replicas, then Prometheus."""
        self.stopping.set()
        self.nginx.stop()
        for replica in self.replicas:
            replica.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
