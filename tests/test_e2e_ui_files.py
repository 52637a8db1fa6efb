"""Opening images in the web app, in a real browser through ``sam2-triton ui`` and the real
embedded server: files picked, dropped or pasted open alike; a file that is not an image, one
over the pixel cap and a server that is down are told in the page; the page shows the pixels the
server segments (its own decoding where the browser has none, EXIF orientation applied)."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from sam2_triton.image.transforms import decode_image
from tests.conftest import free_port
from tests.helpers import unique_png
from tests.ui_browser import gateway, opened

pytestmark = pytest.mark.e2e


@pytest.fixture
def app(browser, ui):
    with opened(browser, ui) as app:
        yield app


def test_bad_files_and_a_server_that_is_down_are_told_in_the_page(app, browser, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    app.open_file(text)
    assert "not a recognised image file" in app.message()
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 8000)).save(huge)  # 72 MP, over the 64 MP cap
    app.open_file(huge)
    app.page.wait_for_function(
        "() => document.querySelector('#message').textContent.includes('exceeds the limit')"
    )
    assert "72000000 pixels exceeds the limit of 64000000 pixels" in app.message()

    with gateway(f"127.0.0.1:{free_port()}") as url:  # nothing listens there
        with opened(browser, url) as down:
            down.page.select_option("#sample", label="coffee.jpg")
            assert "is not answering" in down.message()


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_an_image_dropped_or_pasted_opens_like_a_picked_one(app, how):
    png = unique_png(seed=900 if how == "drop" else 901, size=(120, 90))
    app.page.evaluate(
        """([how, bytes]) => {
        const file = new File([new Uint8Array(bytes)], 'shot.png', {type: 'image/png'});
        const data = new DataTransfer();
        data.items.add(file);
        if (how === 'drop') {
          const target = document.querySelector('#workspace');
          target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
        } else {
          document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true}));
        }
      }""",
        [how, list(png)],
    )
    app.page.wait_for_selector("body[data-image-id]")
    assert app.state("[s.state.image.name, s.view.width, s.view.height]") == ["shot.png", 120, 90]
    assert app.state("s.state.image.id") == hashlib.sha256(png).hexdigest()


@pytest.mark.parametrize("kind", ["tiff", "exif-rotated jpeg"])
def test_the_page_shows_the_pixels_the_server_segments(app, tmp_path, kind):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (60, 100, 3), dtype=np.uint8)
    path = tmp_path / ("frame.tiff" if kind == "tiff" else "photo.jpg")
    if kind == "tiff":  # Chromium cannot decode TIFF: the page shows the server's decoding
        Image.fromarray(pixels).save(path)
    else:  # orientation 6: shown (and segmented) rotated, 60 wide and 100 high
        exif = Image.Exif()
        exif[0x0112] = 6
        Image.fromarray(pixels).save(path, quality=95, exif=exif)
    app.open_file(path)
    app.page.wait_for_selector("body[data-image-id]")
    server_rgb = decode_image(path.read_bytes())
    assert app.state("[s.view.width, s.view.height]") == [server_rgb.shape[1], server_rgb.shape[0]]
    url = app.page.evaluate("document.querySelector('#image-layer').toDataURL('image/png')")
    shown = np.asarray(
        Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")
    )
    if kind == "tiff":
        np.testing.assert_array_equal(shown, server_rgb)
    else:  # the browser's JPEG decoder may round differently from Pillow's
        assert np.abs(shown.astype(int) - server_rgb.astype(int)).mean() < 3
