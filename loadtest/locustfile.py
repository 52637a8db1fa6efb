"""Load test of a running sam2-triton server with Locust, over HTTP and gRPC.

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 \\
        [--grpc-host 127.0.0.1:8001] [--request-timeout 120] [-u USERS -r SPAWN_RATE -t RUN_TIME]
    make loadtest        # bounded headless run with CSV and HTML reports in outputs/loadtest/

The server must already be running (`make serve` in another shell). HTTP users talk to --host
(:8000); gRPC users to --grpc-host (default 127.0.0.1:8001, or env LOCUST_GRPC_HOST). A request
unanswered after --request-timeout seconds counts as failed (same limit on both protocols).

Two scenarios, each as an HTTP and a gRPC user class; class weights give the mix (sessions
dominate: 3 session users for each one-shot user):
- one-shot (weight 1): a new image per request to sam2_segment, one click, PNG masks back;
- session (weight 3): an annotator embeds a new image on sam2_session, then makes 3-8 clicks with
  think time, each adding a point and refining the previous best mask (mask_input), RLE masks
  back; if the server evicted the image (NOT_FOUND) it re-embeds it and clicks again.
Images are real photos at three sizes (workload.py), a different file for every new image.
Every request is reported to Locust with type = protocol and name = scenario step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

# gRPC under Locust's gevent: must run before any gRPC channel exists.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import gevent  # noqa: E402
import numpy as np  # noqa: E402
from locust import User, between, events, task  # noqa: E402
from locust.exception import RescheduleTask  # noqa: E402
from locust.stats import CSV_STATS_INTERVAL_SEC  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402
from workload import ClickState, next_click, photos  # noqa: E402

from sam2_triton.clients.image import SegmentClient, SegmentResponse  # noqa: E402

DEFAULT_GRPC_HOST = "127.0.0.1:8001"
DEFAULT_REQUEST_TIMEOUT_S = 120.0
SEGMENT = "sam2_segment: new image"
EMBED = "sam2_session: embed"
CLICK = "sam2_session: click"
EVICTED = "sam2_session: click on evicted image (NOT_FOUND)"
T = TypeVar("T")


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--grpc-host",
        default=DEFAULT_GRPC_HOST,
        env_var="LOCUST_GRPC_HOST",
        help=f"host:port of the server's gRPC endpoint (default {DEFAULT_GRPC_HOST})",
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        env_var="LOCUST_REQUEST_TIMEOUT",
        help="seconds after which a request counts as failed, on both protocols "
        f"(default {DEFAULT_REQUEST_TIMEOUT_S:g})",
    )


def _http_url(host: str | None) -> str:
    """--host (http://127.0.0.1:8000) as tritonclient.http wants it (127.0.0.1:8000)."""
    if not host:
        raise ValueError("no --host given: pass --host http://127.0.0.1:8000")
    return host.split("://", 1)[-1].rstrip("/")


@events.test_start.add_listener
def _check_server(environment: Any, **_: Any) -> None:
    """Fail fast with a hint instead of a run full of connection errors."""
    urls = {"http": _http_url(environment.host), "grpc": environment.parsed_options.grpc_host}
    for protocol, url in urls.items():
        try:
            with SegmentClient(url, protocol) as client:
                ready = client.client.is_server_ready()
        except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
            ready, reason = False, f"{type(error).__name__}: {error}"
        else:
            reason = "not ready"
        if not ready:
            logging.error(
                "no sam2-triton server at %s (%s, %s): start one first (make serve)",
                url,
                protocol,
                reason,
            )
            environment.process_exit_code = 2
            # Not at once: this listener runs inside runner.start(), which spawns the users
            # after it returns (a quit here would be undone, and the run would last --run-time).
            gevent.spawn(environment.runner.quit)
            return
    photos()  # encode the test images once, before users start


@events.quitting.add_listener
def _let_the_csv_catch_up(environment: Any, **_: Any) -> None:
    """Locust rewrites its --csv statistics once a second and not again at exit, so requests that
    ended in the last second (often the in-flight ones that --stop-timeout lets finish) would be
    missing from the CSV (not from the printed table or the HTML): wait for one more write."""
    options = environment.parsed_options
    if options is not None and getattr(options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)


def _response_bytes(response: SegmentResponse) -> int:
    """About what travelled back: the arrays and encoded masks of the response."""
    arrays = (response.masks, response.iou_scores, response.low_res_logits)
    return sum(a.nbytes for a in arrays) + sum(map(len, response.encoded_masks))


def _is_not_found(error: Exception) -> bool:
    return isinstance(error, InferenceServerException) and str(error.status()) in (
        "404",
        "StatusCode.NOT_FOUND",
    )


class Sam2User(User):
    """One client connection per simulated user; subclasses set the protocol and scenario."""

    abstract = True
    protocol = "http"
    wait_time = between(1, 5)

    def on_start(self) -> None:
        if self.protocol == "http":
            url = _http_url(self.host)
        else:
            url = self.environment.parsed_options.grpc_host
        timeout = self.environment.parsed_options.request_timeout
        self.client = SegmentClient(url, self.protocol, network_timeout_s=timeout)
        self.rng = np.random.default_rng()

    def on_stop(self) -> None:
        self.client.close()

    def call(self, name: str, request: Callable[[], T], not_found_ok: bool = False) -> T | None:
        """Run one request and report it to Locust's statistics.

        Returns None for an accepted NOT_FOUND (reported under EVICTED); any other error is
        reported as a failure of ``name`` and ends the current task.
        """
        started = time.perf_counter()
        try:
            result = request()
        except Exception as error:  # a stopped user's GreenletExit is not an Exception
            if not_found_ok and _is_not_found(error):
                self._report(EVICTED, started, 0, None)
                return None
            self._report(name, started, 0, error)
            raise RescheduleTask() from error
        length = _response_bytes(result) if isinstance(result, SegmentResponse) else 0
        self._report(name, started, length, None)
        return result

    def _report(self, name: str, started: float, length: int, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=self.protocol,
            name=name,
            response_time=1000 * (time.perf_counter() - started),
            response_length=length,
            exception=error,
            context={},
        )

    def photo(self) -> Any:
        return photos()[int(self.rng.integers(len(photos())))]


class OneShotUser(Sam2User):
    """A client with a new image every time: the whole pipeline (encoder + decoder) per request."""

    abstract = True
    weight = 1

    @task
    def segment_new_image(self) -> None:
        photo = self.photo()
        coords, labels = next_click(None, photo, self.rng).arrays()
        self.call(
            SEGMENT,
            lambda: self.client.segment(photo.unique(), coords, labels, output_format="png"),
        )


class SessionUser(Sam2User):
    """An annotator: one new image, several clicks on it (decoder only), refining the mask."""

    abstract = True
    weight = 3
    clicks = (3, 8)
    think_time_s = (0.3, 1.5)

    @task
    def annotate_new_image(self) -> None:
        photo = self.photo()
        image = photo.unique()
        image_id = self.call(EMBED, lambda: self.client.embed(image))
        state: ClickState | None = None
        for _ in range(int(self.rng.integers(self.clicks[0], self.clicks[1] + 1))):
            time.sleep(self.rng.uniform(*self.think_time_s))
            state = next_click(state, photo, self.rng)
            result = self._click(image_id, state)
            if result is None:  # evicted: send the image again, then the same click
                image_id = self.call(EMBED, lambda: self.client.embed(image))
                result = self._click(image_id, state, retry=False)
            best = int(np.argmax(result.iou_scores))
            state.mask_input = result.low_res_logits[best][None]

    def _click(self, image_id: str, state: ClickState, retry: bool = True) -> Any:
        coords, labels = state.arrays()
        first = state.mask_input is None
        return self.call(
            CLICK,
            lambda: self.client.click(
                image_id,
                coords,
                labels,
                multimask_output=first,  # ambiguous first click: 3 masks; then refine one
                mask_input=state.mask_input,
                output_format="rle",
            ),
            not_found_ok=retry,
        )


class HttpOneShotUser(OneShotUser):
    protocol = "http"


class GrpcOneShotUser(OneShotUser):
    protocol = "grpc"


class HttpSessionUser(SessionUser):
    protocol = "http"


class GrpcSessionUser(SessionUser):
    protocol = "grpc"
