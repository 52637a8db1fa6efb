"""The web app in a real browser (Debian's chromium, Playwright) through ``sam2-triton ui`` and
the real embedded server: what the page draws and downloads equals what sam2_session answers
for the same prompts."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image
from pycocotools import mask as mask_utils

from sam2_triton.clients.image import SegmentClient
from sam2_triton.image.encodings import rle_to_mask
from sam2_triton.image.transforms import decode_image
from tests.conftest import ROOT, TEST_CACHE_IMAGES, model_runs
from tests.helpers import ASSETS, PARAMS, unique_png
from tests.ui_browser import App, opened

pytestmark = pytest.mark.e2e
SAMPLE = (ASSETS / "coffee.jpg").read_bytes()
SCREENSHOT = ROOT / "outputs" / "ui" / "screenshot.png"


@pytest.fixture
def app(browser, ui):
    with opened(browser, ui) as app:
        yield app


@pytest.fixture(scope="module")
def client(triton):
    with SegmentClient(triton.grpc_url, "grpc") as client:
        yield client


def served(client, image_id, points=None, labels=None, box=None) -> np.ndarray:
    """sam2_session's mask for these prompts, chosen as the page chooses (the best score)."""
    lone = box is None and points is not None and len(points) == 1
    response = client.click(
        image_id,
        None if points is None else np.array(points, np.float32),
        None if labels is None else np.array(labels, np.int32),
        box=None if box is None else np.array(box, np.float32),
        multimask_output=lone,
    )
    return response.masks[int(np.argmax(response.iou_scores))]


def objects(app: App) -> list[dict]:
    return app.state("s.annotations.objects")


def test_a_click_draws_the_mask_sam2_session_answers_at_the_exact_image_pixel(app, client):
    image_id = app.open_sample()
    assert app.state("s.view.pixelRatio") > 1.2  # shown scaled down
    app.click(0.4, 0.55)
    app.wait_answers(1)
    [obj] = objects(app)
    np.testing.assert_allclose(obj["points"][0], app.image_coords(0.4, 0.55), atol=1e-3)
    assert len(obj["candidates"]) == 3  # a lone click: three candidates with their scores
    expected = served(client, image_id, obj["points"], [1])
    np.testing.assert_array_equal(app.drawn(), expected)
    latency = app.state("s.state.latencies[0]")
    assert latency["browser_ms"] >= latency["server_ms"] > 0
    assert "click → mask" in app.page.inner_text("#latency")

    # another candidate, by its button and by its key
    app.page.keyboard.press("3")
    assert objects(app)[0]["chosen"] == 2
    chosen = rle_to_mask(objects(app)[0]["candidates"][2]["rle"])
    np.testing.assert_array_equal(app.drawn(), chosen)


def test_background_points_and_a_box_refine_the_object(app, client):
    image_id = app.open_sample()
    app.click(0.4, 0.55)
    app.click(0.7, 0.3, button="right")
    app.page.keyboard.down("Shift")
    app.click(0.2, 0.2)
    app.page.keyboard.up("Shift")
    app.wait_answers(1)
    app.page.wait_for_function("() => window.sam2ui.annotations.objects[0].points.length === 3")
    app.wait_answers(1)
    [obj] = objects(app)
    assert obj["labels"] == [1, 0, 0] and len(obj["candidates"]) == 1
    np.testing.assert_array_equal(app.drawn(), served(client, image_id, obj["points"], [1, 0, 0]))

    app.page.keyboard.press("n")
    app.drag((0.1, 0.15), (0.6, 0.8))
    app.page.wait_for_function("() => window.sam2ui.annotations.objects[1].candidates !== null")
    box = objects(app)[1]["box"]
    np.testing.assert_allclose(
        box, [*app.image_coords(0.1, 0.15), *app.image_coords(0.6, 0.8)], atol=1e-3
    )
    by_colour = app.drawn_by_colour()
    np.testing.assert_array_equal(by_colour == 1, served(client, image_id, box=box))


def test_undo_redo_and_two_objects_each_in_its_colour(app, client):
    image_id = app.open_sample()
    app.click(0.3, 0.5)
    app.wait_answers(1)
    first = served(client, image_id, objects(app)[0]["points"], [1])
    app.page.click("#new-object")
    app.click(0.75, 0.4)
    app.wait_answers(2)
    second = served(client, image_id, objects(app)[1]["points"], [1])
    by_colour = app.drawn_by_colour()
    np.testing.assert_array_equal(by_colour == 1, second)  # the selected object on top
    np.testing.assert_array_equal(by_colour == 0, first & (1 - second))
    both = app.drawn()

    app.page.keyboard.press("Control+z")  # the second click
    app.page.keyboard.press("Control+z")  # the second object
    assert len(objects(app)) == 1
    np.testing.assert_array_equal(app.drawn(), first)
    app.page.keyboard.press("Control+Shift+z")
    app.page.keyboard.press("Control+Shift+z")
    assert [len(o["points"]) for o in objects(app)] == [1, 1]
    np.testing.assert_array_equal(app.drawn(), both)  # redone without asking the server again
    assert app.answered() == 2

    app.page.keyboard.press("Escape")  # clears the selected object's prompts
    assert objects(app)[1]["points"] == [] and objects(app)[1]["candidates"] is None
    np.testing.assert_array_equal(app.drawn(), first)
    app.page.click("#undo")
    np.testing.assert_array_equal(app.drawn(), both)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    app.page.set_viewport_size({"width": 1280, "height": 760})  # README's picture
    app.page.wait_for_timeout(200)
    app.page.screenshot(path=str(SCREENSHOT))


def test_downloads_coco_json_cutout_and_mask_png_hold_the_page_masks(app, client):
    image_id = app.open_sample()
    app.click(0.3, 0.5)
    app.page.keyboard.press("n")
    app.drag((0.5, 0.2), (0.9, 0.7))
    app.page.wait_for_function(
        "() => window.sam2ui.annotations.objects.length === 2 && "
        "window.sam2ui.annotations.objects.every(o => o.candidates)"
    )
    first, second = objects(app)
    masks = [
        served(client, image_id, first["points"], [1]),
        served(client, image_id, box=second["box"]),
    ]
    app.page.select_option("#export-scope", "all")
    coco = json.loads(app.download("#download-coco"))
    assert coco["images"] == [{"id": 1, "file_name": "coffee.jpg", "width": 600, "height": 400}]
    assert [a["prompts"]["points"] for a in coco["annotations"]] == [first["points"], []]
    assert coco["annotations"][1]["prompts"]["box"] == second["box"]
    for annotation, mask in zip(coco["annotations"], masks, strict=True):
        segmentation = dict(
            annotation["segmentation"], counts=annotation["segmentation"]["counts"].encode()
        )
        np.testing.assert_array_equal(mask_utils.decode(segmentation), mask)
        assert annotation["area"] == int(mask.sum())

    app.page.select_option("#export-scope", "selected")  # the box object
    rgb = decode_image(SAMPLE)
    cutout = np.asarray(Image.open(io.BytesIO(app.download("#download-cutout"))))
    assert cutout.shape == (400, 600, 4)
    np.testing.assert_array_equal(cutout[..., 3], masks[1] * 255)
    inside = masks[1].astype(bool)
    np.testing.assert_array_equal(cutout[..., :3][inside], rgb[inside])
    mask_png = np.asarray(Image.open(io.BytesIO(app.download("#download-masks"))).convert("L"))
    np.testing.assert_array_equal(mask_png > 0, masks[1].astype(bool))

    app.page.check("#crop")
    cropped = np.asarray(Image.open(io.BytesIO(app.download("#download-cutout"))))
    rows, cols = np.flatnonzero(masks[1].any(1)), np.flatnonzero(masks[1].any(0))
    window = masks[1][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    np.testing.assert_array_equal(cropped[..., 3], window * 255)


def test_segment_everything_shows_progress_and_its_masks_become_objects(app, client):
    app.open_sample()
    app.page.select_option("#points-per-side", "8")
    app.page.fill("#pred-iou", str(PARAMS["pred_iou_thresh"]))
    app.page.fill("#stability", str(PARAMS["stability_score_thresh"]))
    more = {
        k: v for k, v in PARAMS.items() if k not in ("pred_iou_thresh", "stability_score_thresh")
    }
    app.page.fill("#more-params", ", ".join(f"{k}={v}" for k, v in more.items()))
    app.page.click("#everything")
    app.page.wait_for_selector("#progress:not([hidden])")
    app.page.wait_for_function("() => window.sam2ui.state.found !== null", timeout=900_000)
    assert "done after" in app.page.inner_text("#progress-text")
    found = app.state("s.state.found")
    expected = client.automatic(SAMPLE, PARAMS)["annotations"]
    assert [a["segmentation"] for a in found] == [a["segmentation"] for a in expected]
    assert len(found) > 1

    label = _smallest_covering(found)
    y, x = np.argwhere(label == np.argmin([a["area"] for a in found]))[0]
    app.click((x + 0.5) / 600, (y + 0.5) / 400)
    at_x, at_y = app.image_coords((x + 0.5) / 600, (y + 0.5) / 400)
    pick = found[label[int(at_y), int(at_x)]]
    [obj] = objects(app)
    assert obj["candidates"][0]["rle"]["counts"] == pick["segmentation"]["counts"]
    app.page.keyboard.press("k")  # keeps the rest
    assert len(objects(app)) == len(found)
    np.testing.assert_array_equal(
        app.drawn(), np.any([rle_to_mask(a["segmentation"]) for a in found], axis=0)
    )


def test_find_all_picks_sam3s_instances_of_a_phrase_as_objects(app, triton):
    """ "Find all": the instances sam3_concepts finds for the phrase (ConceptClient's, for the
    same image, phrase and threshold) become pickable masks; K keeps them as objects holding
    each instance's box and mask."""
    from sam2_triton.clients.concepts import ConceptClient

    app.open_sample()
    with ConceptClient(triton.grpc_url, "grpc") as concepts:
        every = concepts.find(SAMPLE, text="a cup", confidence_threshold=0.0, output_format="rle")
        threshold = float(np.sort(every.scores)[-3] + np.sort(every.scores)[-4]) / 2  # three
        want = concepts.find(image_id=every.image_id, text="a cup", output_format="rle",
                             confidence_threshold=threshold)  # fmt: skip
    app.page.fill("#find-text", "a cup")
    app.page.fill("#find-threshold", str(threshold))
    app.page.click("#find-all")
    app.page.wait_for_function("() => window.sam2ui.state.found !== null")
    found = app.state("s.state.found")
    assert [json.dumps(a["segmentation"]["counts"]) for a in found] == [
        json.dumps(json.loads(e)["counts"]) for e in want.encoded_masks]  # fmt: skip
    app.page.keyboard.press("k")
    kept = objects(app)
    assert len(kept) == 3 and {o["source"] for o in kept} == {"found"}
    np.testing.assert_allclose([o["box"] for o in kept], want.boxes, atol=1e-3)
    assert [o["candidates"][0]["score"] for o in kept] == pytest.approx(want.scores.tolist())


def _smallest_covering(found: list[dict]) -> np.ndarray:
    """Per pixel, the index of the smallest found mask covering it (-1 where none): what a
    click there picks."""
    masks = [rle_to_mask(a["segmentation"]).astype(bool) for a in found]
    label = np.full(masks[0].shape, -1)
    for index in np.argsort([a["area"] for a in found])[::-1]:  # smaller masks painted last
        label[masks[index]] = index
    return label


def test_a_superseded_click_is_cancelled_and_only_the_newest_mask_is_drawn(app, client):
    image_id = app.open_sample()
    app.page.evaluate(
        """() => {
        const stage = document.querySelector('#stage');
        const r = document.querySelector('#mask-layer').getBoundingClientRect();
        for (const f of [0.3, 0.6]) {
          const at = {clientX: r.left + f * r.width, clientY: r.top + 0.5 * r.height,
                      button: 0, bubbles: true, pointerId: 1};
          stage.dispatchEvent(new PointerEvent('pointerdown', at));
          stage.dispatchEvent(new PointerEvent('pointerup', at));
        }
      }"""
    )
    app.wait_answers(1)
    assert app.state("s.state.cancelled") == 1 and app.answered() == 1
    [obj] = objects(app)
    expected = served(client, image_id, obj["points"], [1, 1])
    np.testing.assert_array_equal(app.drawn(), expected)


def test_an_evicted_image_is_sent_again_without_the_user_noticing(app, client, triton):
    image_id = app.open_sample()
    for seed in range(TEST_CACHE_IMAGES + 1):  # pushes the sample out of sam2_session's cache
        client.embed(unique_png(seed=700 + seed))
    app.click(0.5, 0.5)
    app.wait_answers(1)
    assert app.state("s.state.latencies[0].reembedded") is True
    assert not app.page.is_visible("#message")
    np.testing.assert_array_equal(
        app.drawn(), served(client, image_id, objects(app)[0]["points"], [1])
    )


def test_objects_are_renamed_deleted_and_their_candidates_chosen_from_the_list(app):
    app.open_sample()
    app.click(0.3, 0.5)
    app.wait_answers(1)
    app.page.fill("#objects li[data-object-id='1'] input.name", "cup")
    app.page.press("#objects li[data-object-id='1'] input.name", "Enter")
    assert objects(app)[0]["name"] == "cup"
    app.page.click("#objects li[data-object-id='1'] button.candidate[data-index='1']")
    assert objects(app)[0]["chosen"] == 1
    app.page.keyboard.press("n")
    assert len(objects(app)) == 2
    app.page.keyboard.press("Delete")  # the new, selected object
    assert [o["name"] for o in objects(app)] == ["cup"]
    app.page.click("#objects li[data-object-id='1'] button.delete")
    assert objects(app) == [] and app.drawn().sum() == 0
    app.page.keyboard.press("Control+z")
    assert [o["name"] for o in objects(app)] == ["cup"] and app.drawn().sum() > 0


def test_an_answer_for_undone_prompts_is_never_drawn(app):
    app.open_sample()
    app.click(0.3, 0.5)
    app.wait_answers(1)
    app.page.evaluate(
        """() => {  // a second click, undone and then cleared before its answer comes back
        const stage = document.querySelector('#stage');
        const r = document.querySelector('#mask-layer').getBoundingClientRect();
        const at = {clientX: r.left + 0.6 * r.width, clientY: r.top + 0.5 * r.height,
                    button: 0, bubbles: true, pointerId: 1};
        stage.dispatchEvent(new PointerEvent('pointerdown', at));
        stage.dispatchEvent(new PointerEvent('pointerup', at));
        const key = (init) => document.body.dispatchEvent(new KeyboardEvent('keydown', init));
        key({key: 'z', ctrlKey: true, bubbles: true});
        key({key: 'Escape', bubbles: true});
      }"""
    )
    app.page.wait_for_function("() => window.sam2ui.state.inflight.size === 0")
    [obj] = objects(app)
    assert obj["points"] == [] and obj["candidates"] is None
    assert app.drawn().sum() == 0


def test_the_hover_preview_is_the_clicks_mask_and_the_click_takes_it_without_a_console_error(
    browser, ui, client, triton
):
    """Issue 33: while the pointer rests, the page shows the mask a click there would give
    (sam2_session's, exactly); moving on drops the request in flight (never two at once); a
    click where the pointer rests keeps the preview with no second decoder run. Loading and
    using the page logs no console error (the favicon is served)."""
    errors: list[str] = []
    with opened(browser, ui, errors) as app:
        page = app.page
        image_id = app.open_sample()
        for fx in (0.2, 0.3, 0.4, 0.5, 0.6):  # passing over: each rest shorter than REST_MS
            page.mouse.move(*app.at(fx, 0.5))
            page.wait_for_timeout(30)
        page.mouse.move(*app.at(0.45, 0.55))
        page.wait_for_function("() => window.sam2ui.hover.preview !== null")
        x, y = app.image_coords(0.45, 0.55)
        expected = served(client, image_id, [[x, y]], [1])
        np.testing.assert_array_equal(app.drawn_preview(), expected)
        stats = app.state("s.hover.stats")
        # never two at once; passing over sends nothing unless a move came REST_MS late (a loaded
        # machine: the test's 30 ms waits are not the browser's), so at most one per rest
        assert stats["maxInflight"] == 1 and 1 <= stats["shown"] <= stats["sent"] <= 6, stats

        runs = model_runs(triton, "sam2_session")
        page.mouse.down()
        page.mouse.up()
        app.wait_answers(1)
        assert model_runs(triton, "sam2_session") == runs  # the preview's answer, kept
        assert app.state("s.state.latencies[0].from_preview")
        [obj] = objects(app)
        np.testing.assert_allclose(obj["points"][0], (x, y), atol=1e-3)
        np.testing.assert_array_equal(app.drawn(), expected)

        # over the selected object, the preview adds a point to its prompts
        page.mouse.move(*app.at(0.7, 0.3))
        page.wait_for_function("() => window.sam2ui.hover.preview !== null")
        x2, y2 = app.image_coords(0.7, 0.3)
        both = served(client, image_id, [[x, y], [x2, y2]], [1, 1])
        np.testing.assert_array_equal(app.drawn_preview(), both)
        page.mouse.move(*app.at(0.7, 0.3))  # not moved: nothing new is asked
        assert app.state("s.hover.stats.sent") == stats["sent"] + 1
        favicon = requests.get(f"{ui}/favicon.ico", timeout=10)
        assert favicon.headers["Content-Type"] == "image/svg+xml"
        assert errors == []
