"""``sam2-triton batch``: every image of a folder through the server, concurrently, resumably.

A run lists INPUT_DIR's images, skips those whose annotation file already exists (a rerun picks
up where an interrupted one stopped), and keeps ``concurrency`` requests in flight so that
Triton's dynamic batcher and instances have work. An image that fails gets an error file and the
run goes on. Ctrl-C (or SIGTERM) stops queueing new images and lets the ones in flight finish (a
second Ctrl-C abandons them: what they would have written is simply redone next time). At the end
the summary and the report are written. With a shard (``--shard I/N``, ``sam2_triton.batch.shard``)
a run takes only that shard's images and writes its own summary and report beside the others'.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from sam2_triton.batch.jobs import segment_automatic, segment_prompted, segment_text
from sam2_triton.batch.prompts import ObjectPrompt, load_prompts
from sam2_triton.batch.shard import Shard
from sam2_triton.batch.store import ResultStore, atomic_write_json
from sam2_triton.clients.concepts import ConceptClient
from sam2_triton.clients.image import SegmentClient
from sam2_triton.clients.tritonclient_io import DEFAULT_URLS, Protocol
from sam2_triton.contract import AUTOMATIC, CONCEPTS, SESSION
from sam2_triton.image.polygons import DEFAULT_TOLERANCE

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
EXIT_INTERRUPTED = 130


class ServerUnavailableError(RuntimeError):
    """No ready server (or not the models a batch needs) at the given address."""


@dataclass
class BatchOptions:
    input_dir: Path
    out_dir: Path
    prompts: Path | None = None
    url: str | None = None
    protocol: Protocol = "http"
    concurrency: int = 4
    automatic_params: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 3600.0  # one request; segment-everything is minutes on CPU
    report: bool = True
    progress: bool = True
    shard: Shard | None = None  # None: every image of the folder
    segmentation: str = "rle"  # or "polygons": COCO polygon lists (and "holes")
    polygon_tolerance: float = DEFAULT_TOLERANCE
    # SAM 3: images without prompts get every instance of these phrases (sam3_concepts), not
    # segment-everything; ``threshold``: its confidence (None: the server's 0.5)
    text: tuple[str, ...] = ()
    threshold: float | None = None


@dataclass
class ImageOutcome:
    name: str
    seconds: float
    masks: int = 0
    error: str | None = None


@dataclass
class BatchResult:
    summary: dict[str, Any]
    interrupted: bool

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if self.summary["failed_this_run"] else 0


def find_images(input_dir: Path) -> list[str]:
    """Image files under ``input_dir`` (recursively, hidden ones skipped), as sorted posix paths
    relative to it: the keys of the prompts file and of the results."""
    root = Path(input_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"input folder {root} does not exist")
    names = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            names.append(relative.as_posix())
    return sorted(names)


def error_message(error: BaseException) -> str:
    """One line saying what went wrong: the server's own message for a refused request (it
    names the input at fault), else the exception's type and text."""
    message = getattr(error, "message", None)
    if callable(message):
        return str(message())
    return f"{type(error).__name__}: {error}"


def _check_server(options: BatchOptions, needs: set[str]) -> None:
    url = options.url or DEFAULT_URLS[options.protocol]
    try:
        with SegmentClient(options.url, options.protocol) as client:
            if not client.client.is_server_ready():
                raise ServerUnavailableError(f"the server at {url} is not ready")
            for model in sorted(needs):
                if not client.client.is_model_ready(model):
                    raise ServerUnavailableError(f"model {model} is not ready on {url}")
    except ServerUnavailableError:
        raise
    except Exception as error:
        raise ServerUnavailableError(
            f"no server answers at {url} over {options.protocol} ({error_message(error)}); "
            "start one with `sam2-triton serve`"
        ) from None


class _Worker:
    """What each pool thread runs; one tritonclient connection per thread."""

    def __init__(
        self,
        options: BatchOptions,
        store: ResultStore,
        prompts: dict[str, list[ObjectPrompt]],
        run: dict[str, Any],
    ) -> None:
        self.options = options
        self.store = store
        self.prompts = prompts
        self.run = run
        self.local = threading.local()

    @property
    def segmentation(self) -> tuple[str, float]:
        """How masks are written: (format, polygon tolerance)."""
        return self.options.segmentation, self.options.polygon_tolerance

    def client(self) -> SegmentClient:
        if not hasattr(self.local, "client"):
            self.local.client = SegmentClient(
                self.options.url, self.options.protocol, network_timeout_s=self.options.timeout_s
            )
        return self.local.client

    def concepts(self) -> ConceptClient:
        if not hasattr(self.local, "concepts"):
            self.local.concepts = ConceptClient(self.options.url, self.options.protocol)
        return self.local.concepts

    def __call__(self, name: str) -> ImageOutcome:
        mode = _mode(name, self.prompts, self.options)
        start = time.perf_counter()
        try:
            image = (self.options.input_dir / name).read_bytes()
            if mode == "prompts":
                document = segment_prompted(
                    self.client(), name, image, self.prompts[name], self.segmentation
                )
            elif mode == "text":
                document = segment_text(self.concepts(), name, image, self.options.text,
                                        self.options.threshold, self.segmentation)  # fmt: skip
            else:
                params = self.options.automatic_params
                document = segment_automatic(self.client(), name, image, params, self.segmentation)
        except Exception as error:
            seconds = time.perf_counter() - start
            message = error_message(error)
            record = {"file_name": name, "mode": mode, "error": message, **self.run}
            self.store.save_error(name, {**record, "seconds": seconds, "at": time.time()})
            return ImageOutcome(name, seconds, error=message)
        seconds = time.perf_counter() - start
        document["sam2_triton"] = {
            "mode": mode,
            "seconds": seconds,
            "finished_at": time.time(),
            **self.run,
        }
        if mode == "automatic":
            document["sam2_triton"]["automatic_params"] = self.options.automatic_params
        if mode == "text":
            document["sam2_triton"]["text"] = list(self.options.text)
            document["sam2_triton"]["threshold"] = self.options.threshold
        self.store.save(name, document)
        return ImageOutcome(name, seconds, masks=len(document["annotations"]))


def _mode(name: str, prompts: dict[str, list[ObjectPrompt]], options: BatchOptions) -> str:
    """prompts (sam2_session), text (sam3_concepts: the phrases) or automatic."""
    if name in prompts:
        return "prompts"
    return "text" if options.text else "automatic"


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_batch(options: BatchOptions) -> BatchResult:
    """Process every unfinished image of ``options.input_dir``; see the module docstring."""
    store = ResultStore(options.out_dir, options.shard)
    store.lock()
    store.remove_stale_temporaries()
    prompts = load_prompts(options.prompts) if options.prompts else {}
    folder = find_images(options.input_dir)
    images = options.shard.select(folder) if options.shard else folder
    todo = [name for name in images if not store.is_finished(name)]
    model = {"prompts": SESSION, "automatic": AUTOMATIC, "text": CONCEPTS}
    needs = {model[_mode(name, prompts, options)] for name in todo}
    if todo:
        _check_server(options, needs)
    run = {"run_id": uuid.uuid4().hex[:12], "run_started_at": time.time()}
    worker = _Worker(options, store, prompts, run)
    outcomes: list[ImageOutcome] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    progress = tqdm(total=len(todo), unit="img", disable=not options.progress, file=sys.stderr)
    pool = ThreadPoolExecutor(max_workers=max(1, options.concurrency))
    running: set[Future[ImageOutcome]] = set()
    try:
        try:
            for name in todo:  # keep `concurrency` in flight; never queue the whole folder
                running.add(pool.submit(worker, name))
                if len(running) >= options.concurrency:
                    running = _wait_for_one(running, outcomes, progress)
            while running:
                running = _wait_for_one(running, outcomes, progress)
        except KeyboardInterrupt:
            interrupted = True
            progress.write(
                f"interrupted: waiting for {len(running)} image(s) in flight "
                "(Ctrl-C again to abandon them; a rerun redoes them)"
            )
            try:
                while running:
                    running = _wait_for_one(running, outcomes, progress)
            except KeyboardInterrupt:
                running = set()
    finally:
        progress.close()
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=not interrupted, cancel_futures=True)
    skipped = len(images) - len(todo)
    summary = summarize(options, images, prompts, outcomes, run, skipped, interrupted, folder)
    atomic_write_json(store.summary, summary)
    if options.report:
        from sam2_triton.batch.report import write_report

        write_report(store, options.input_dir, summary)
    return BatchResult(summary, interrupted)


def _wait_for_one(
    running: set[Future[ImageOutcome]], outcomes: list[ImageOutcome], progress: tqdm
) -> set[Future[ImageOutcome]]:
    """Wait until at least one image is done, record it; returns the images still running."""
    done, running = wait(running, return_when=FIRST_COMPLETED)
    for future in done:
        outcome = future.result()
        outcomes.append(outcome)
        if outcome.error:
            progress.write(f"{outcome.name}: {outcome.error}")
        progress.update(1)
        progress.set_postfix(failed=sum(1 for o in outcomes if o.error), refresh=False)
    return running


def summarize(
    options: BatchOptions,
    images: list[str],
    prompts: dict[str, list[ObjectPrompt]],
    outcomes: list[ImageOutcome],
    run: dict[str, Any],
    skipped: int,
    interrupted: bool,
    folder: list[str] | None = None,
) -> dict[str, Any]:
    """What summary.json holds: this run's counts and timings, and the folder's state.

    ``skipped`` images were finished before this run; the ones done now are saved, so together
    they are the folder's (the shard's) finished images (no need to read every result again).
    ``folder``: every image of the folder, when ``images`` are one shard's."""
    done = [o for o in outcomes if o.error is None]
    failed = [o for o in outcomes if o.error is not None]
    wall = time.time() - run["run_started_at"]
    seconds = sorted(o.seconds for o in done)
    present = set(images if folder is None else folder)  # a shard's prompts name other shards'
    return {
        **run,
        "interrupted": interrupted,
        "input_dir": str(options.input_dir),
        "out_dir": str(options.out_dir),
        "server": options.url or DEFAULT_URLS[options.protocol],
        "protocol": options.protocol,
        "concurrency": options.concurrency,
        "shard": str(options.shard) if options.shard else None,
        "images_found": len(images),
        "finished_total": skipped + len(done),
        "finished_this_run": len(done),
        "skipped_already_finished": skipped,
        "failed_this_run": len(failed),
        "not_started": len(images) - skipped - len(outcomes),
        "masks_this_run": sum(o.masks for o in done),
        "wall_seconds": wall,
        "images_per_second": len(done) / wall if wall > 0 else 0.0,
        "seconds_per_image": {
            "median": statistics.median(seconds) if seconds else None,
            "max": seconds[-1] if seconds else None,
        },
        "failures": [{"file_name": o.name, "error": o.error} for o in failed],
        "prompts_without_image": sorted(set(prompts) - present),
        "automatic_params": options.automatic_params,
        "text": list(options.text),
        "threshold": options.threshold,
    }


def abandon(code: int) -> None:
    """Leave at once without joining threads still waiting for the server."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
