"""Helpers shared by several test modules: test images, the prompt cases the end-to-end tests
check against SAM2ImagePredictor, fake networks for the request logic, and the automatic-mask
parameters and matching."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "src" / "sam2_triton" / "assets"


# --- external tools -------------------------------------------------------------------------


def require_tool(tool: str, package: str | None = None) -> str:
    """The tool's path; a missing tool fails in CI (env CI set: .ci/run provides it) and skips
    the test elsewhere, saying what to install (Debian's ``package``, default ``tool``)."""
    import pytest

    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not on PATH: install Debian's {package or tool} package"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must provide it)")
        pytest.skip(message)
    return path


# --- commands run as a user runs them --------------------------------------------------------


def workdir_with_export(tmp_path: Path, export_dir: Path) -> Path:
    """A folder to run ``sam2-triton`` in whose ``exports/tiny`` is ``export_dir``."""
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "tiny").symlink_to(export_dir)
    return tmp_path


def wait_for_log(log: Path, text: str, process, timeout: float = 300) -> None:
    """Until ``text`` appears in the ``log`` file of ``process`` (fails if it exits first)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if text in log.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not in {log.name}:\n{log.read_text()[-4000:]}")


def child_tritonserver(pid: int) -> int:
    """The pid of the one tritonserver that process ``pid`` started."""
    import psutil

    (server,) = [p for p in psutil.Process(pid).children() if p.name() == "tritonserver"]
    return server.pid


# --- images ---------------------------------------------------------------------------------


@cache
def image_bytes(name: str) -> bytes:
    if name == "astronaut.png":  # square, lossless
        buffer = io.BytesIO()
        Image.fromarray(skimage.data.astronaut()).save(buffer, format="PNG")
        return buffer.getvalue()
    return (ASSETS / name).read_bytes()  # coffee.jpg: 600x400 JPEG, non-square


def png_bytes(height: int = 30, width: int = 40, value: int = 0) -> np.ndarray:
    """A uniform PNG file, as the UINT8 array the models' image input takes."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return np.frombuffer(buffer.getvalue(), np.uint8)


def unique_png(seed: int, size: tuple[int, int] = (96, 64)) -> bytes:
    """An image no other test sends (so it is not cached yet)."""
    pixels = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# --- prompt cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Prompts as fractions of (width, height), so they fit any image."""

    points: tuple[tuple[float, float, int], ...] = ()
    box: tuple[float, float, float, float] | None = None
    multimask: bool = True

    def arrays(self, width: int, height: int):
        coords = labels = box = None
        if self.points:
            coords = np.array([[x * width, y * height] for x, y, _ in self.points], np.float32)
            labels = np.array([label for *_, label in self.points], np.int32)
        if self.box:
            x0, y0, x1, y1 = self.box
            box = np.array([x0 * width, y0 * height, x1 * width, y1 * height], np.float32)
        return coords, labels, box

    def expected(self, reference, image: bytes, width: int, height: int):
        """SAM2ImagePredictor.predict on these prompts: (masks, iou_scores, low_res_logits)."""
        coords, labels, box = self.arrays(width, height)
        return reference.predict(
            image,
            point_coords=coords,
            point_labels=labels,
            box=box,
            multimask_output=self.multimask,
        )


CASES = {
    "one_point_multimask": Case(points=((0.5, 0.4, 1),)),
    "one_point_single": Case(points=((0.5, 0.4, 1),), multimask=False),
    "pos_neg_points": Case(points=((0.3, 0.3, 1), (0.6, 0.5, 1), (0.8, 0.8, 0)), multimask=False),
    "box": Case(box=(0.2, 0.2, 0.7, 0.8), multimask=False),
    "box_and_points": Case(
        points=((0.4, 0.5, 1), (0.25, 0.25, 0)), box=(0.2, 0.2, 0.7, 0.8), multimask=True
    ),
}


# --- fake networks --------------------------------------------------------------------------


class FakeNetworks:
    """Stands in for the encoder and decoder; records what they were given."""

    def __init__(self) -> None:
        self.encoded: list[np.ndarray] = []
        self.decoded: list[dict[str, np.ndarray]] = []

    def encode(self, image_1024: np.ndarray) -> dict[str, np.ndarray]:
        self.encoded.append(image_1024)
        return {
            "image_embed": np.full((1, 4096, 256), len(self.encoded), np.float32),
            "high_res_feats_0": np.zeros((1, 16384, 128), np.float32),
            "high_res_feats_1": np.zeros((1, 4096, 256), np.float32),
        }

    def decode(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.decoded.append(dict(inputs))
        rows = len(inputs["point_coords"])
        logits = np.full((rows, 4, 256, 256), -1.0, np.float32)
        logits[:, 1, :128] = 1.0  # top half of the image
        scores = np.tile(np.array([[0.1, 0.9, 0.5, 0.4]], np.float32), (rows, 1))
        return {"low_res_masks": logits, "iou_predictions": scores}


# --- automatic masks ------------------------------------------------------------------------

# Random-weight logits lie within about +-0.4 and predicted IoUs near 0.5, so the defaults
# (IoU > 0.8, stability >= 0.95 at offset 1.0) would drop every mask; these thresholds keep
# about a dozen masks while still exercising every filter and the NMS.
PARAMS = dict(
    points_per_side=8,
    points_per_batch=16,
    pred_iou_thresh=0.4,
    stability_score_thresh=0.2,
    stability_score_offset=0.005,
    mask_threshold=0.2,
    box_nms_thresh=0.7,
)


def match_annotations(got: list[dict], want: list[dict]) -> list[float]:
    """Same count; each reference mask's IoU with the best-matching one of ours."""
    from pycocotools import mask as mask_utils

    # an explicit message: pytest rewrites asserts in test modules only, not in this one
    assert len(got) == len(want), f"{len(got)} masks, the reference has {len(want)}"
    if not got:
        return []
    ours = [dict(a["segmentation"], counts=a["segmentation"]["counts"].encode()) for a in got]
    theirs = [dict(a["segmentation"], counts=a["segmentation"]["counts"].encode()) for a in want]
    ious = mask_utils.iou(theirs, ours, [0] * len(ours))
    return [float(row.max()) for row in np.atleast_2d(ious)]


# --- metrics --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One scrape of a server's metrics port, parsed by prometheus_client's parser."""

    samples: tuple  # prometheus_client Sample tuples

    @classmethod
    def of(cls, server) -> Scrape:
        """A TritonServer's metrics."""
        return cls.at(server.host, server.ports.metrics)

    @classmethod
    def at(cls, host: str, port: int) -> Scrape:
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://{host}:{port}/metrics"
        text = requests.get(url, timeout=10, headers={"Connection": "close"}).text
        families = text_string_to_metric_families(text)
        return cls(tuple(s for family in families for s in family.samples))

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``."""
        return sum(s.value for s in self._named(name) if labels.items() <= s.labels.items())

    def labels(self, name: str) -> list[dict[str, str]]:
        return [s.labels for s in self._named(name)]

    def _named(self, name: str) -> list:
        # The parser names a counter's samples <name>_total even where the server (and so
        # Prometheus) calls it <name>, as Triton's nv_* and our cache counters.
        names = {name, f"{name}_total"}
        return [s for s in self.samples if s.name in names]


def assert_same_as_batched_predict(got, want) -> None:
    """got: a response to B sets ([B * K, ...]); want: SAM2ImagePredictor's [B, K, ...]."""
    masks, scores, low_res = (np.asarray(w) for w in want)
    assert got.masks.shape == (masks.shape[0] * masks.shape[1], *masks.shape[2:])
    agreement = np.mean(got.masks == masks.reshape(got.masks.shape).astype(np.uint8))
    assert agreement >= 0.999, f"only {agreement:.5f} of mask pixels agree"
    np.testing.assert_allclose(got.iou_scores, scores.reshape(-1), atol=1e-3)
    np.testing.assert_allclose(
        got.low_res_logits, low_res.reshape(got.low_res_logits.shape), atol=1e-3
    )
