"""Driving the web app in Debian's chromium with Playwright (no browser download): the gateway
as a user starts it (``sam2-triton ui``), pages at a scaled display size, and what the page
drew read back from its canvases."""

from __future__ import annotations

import base64
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from tests.conftest import free_port
from tests.helpers import require_tool

#: smaller than the sample's 600 x 400 beside the panel: the image is shown scaled (0.73)
VIEWPORT = {"width": 800, "height": 600}
PREVIEW_ALPHA = 110  # view.js: the hover preview's opacity
PALETTE = np.array(  # objects.js's first colours
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]]
)


@contextmanager
def gateway(triton_url: str, *extra: str) -> Iterator[str]:
    """``sam2-triton ui --triton URL`` on a free port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sam2_triton.cli", "ui", "--triton", triton_url,
         "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise AssertionError(f"sam2-triton ui exited: {process.stdout.read()}")
            try:
                requests.get(f"{url}/api/health", timeout=5)
                break
            except requests.RequestException as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"sam2-triton ui did not answer at {url}: {exc}") from exc
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def chromium() -> Iterator:
    from playwright.sync_api import sync_playwright

    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


class App:
    """One page of the app and what the tests read from it."""

    def __init__(self, page, url: str) -> None:
        self.page = page
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")

    def open_sample(self, name: str = "coffee.jpg") -> str:
        self.page.select_option("#sample", label=name)
        return self._wait_for_image()

    def open_file(self, path: Path) -> None:
        self.page.set_input_files("#file", str(path))

    def _wait_for_image(self) -> str:
        self.page.wait_for_selector("body[data-image-id]")
        return self.page.evaluate("window.sam2ui.state.image.id")

    def state(self, expression: str):
        return self.page.evaluate(f"(() => {{ const s = window.sam2ui; return {expression}; }})()")

    def answered(self) -> int:
        return self.state("s.state.latencies.length")

    def wait_answers(self, count: int) -> None:
        self.page.wait_for_function(
            f"() => window.sam2ui.state.latencies.length >= {count} && "
            "!window.sam2ui.annotations.objects.some(o => o.pending)"
        )

    def at(self, fx: float, fy: float) -> tuple[float, float]:
        """Screen position of the fraction (fx, fy) of the displayed image."""
        box = self.page.locator("#mask-layer").bounding_box()
        return box["x"] + fx * box["width"], box["y"] + fy * box["height"]

    def image_coords(self, fx: float, fy: float) -> tuple[float, float]:
        """What that screen position is in image pixels, computed as a user would expect."""
        x, y = self.at(fx, fy)
        box = self.page.locator("#mask-layer").bounding_box()
        width, height = self.state("[s.view.width, s.view.height]")
        return (x - box["x"]) * width / box["width"], (y - box["y"]) * height / box["height"]

    def click(self, fx: float, fy: float, **kwargs) -> None:
        self.page.mouse.click(*self.at(fx, fy), **kwargs)

    def drag(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.page.mouse.move(*self.at(*start))
        self.page.mouse.down()
        self.page.mouse.move(*self.at(*end), steps=5)
        self.page.mouse.up()

    def mask_layer(self) -> np.ndarray:
        """The overlay canvas as RGBA [H, W, 4] at the image's own size."""
        url = self.page.evaluate("document.querySelector('#mask-layer').toDataURL('image/png')")
        data = base64.b64decode(url.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))

    def drawn(self) -> np.ndarray:
        """0/1: where the page drew any mask."""
        return (self.mask_layer()[..., 3] > 0).astype(np.uint8)

    def drawn_preview(self) -> np.ndarray:
        """0/1: where the page drew the hover preview (its own alpha, view.js PREVIEW_ALPHA)."""
        return (self.mask_layer()[..., 3] == PREVIEW_ALPHA).astype(np.uint8)

    def drawn_by_colour(self) -> np.ndarray:
        """Per pixel, the index in PALETTE of the colour drawn there (-1 where none)."""
        rgba = self.mask_layer().astype(np.int32)
        distance = np.abs(rgba[..., None, :3] - PALETTE[None, None]).sum(axis=-1)
        index = distance.argmin(axis=-1)
        return np.where(rgba[..., 3] > 0, index, -1)

    def download(self, button: str) -> bytes:
        with self.page.expect_download() as info:
            self.page.click(button)
        return Path(info.value.path()).read_bytes()

    def message(self) -> str:
        self.page.wait_for_selector("#message:not([hidden])")
        return self.page.inner_text("#message")


@contextmanager
def opened(
    browser, url: str, errors: list[str] | None = None, timeout_ms: int = 120_000
) -> Iterator[App]:
    """A page of the app at ``url`` in a context of its own (downloads accepted), closed after;
    the page's console errors and uncaught exceptions go to ``errors``. Waits get ``timeout_ms``:
    encodes on 2 cores outlast Playwright's 30 s."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    try:
        context.set_default_timeout(timeout_ms)
        page = context.new_page()
        if errors is not None:
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield App(page, url)
    finally:
        context.close()
