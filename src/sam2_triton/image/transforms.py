"""Pre- and postprocessing of SAM 2.1, numpy + Pillow only (no torch at serving time).

This is the single copy of what ``sam2.utils.transforms.SAM2Transforms`` and
``SAM2ImagePredictor.predict`` do to the image and the prompts before the network: image
decoding, resize to 1024x1024 and ImageNet normalisation, prompt coordinates checked and mapped to
the 1024 frame, a mask prompt shaped for the decoder. A ``families.Family`` gives another
family's sizes: SAM 3 (``Sam3Processor``, ``SAM3InteractiveImagePredictor``) resizes to 1008
with torchvision's uint8 kernel (``uint8_resize``) and normalises with mean = std = 0.5. The
mask half (token choice, upsampling) is ``image.masks``; parsing a request's other inputs is
``image.request``.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from sam2_triton.contract import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_POINTS,
    IMAGE_SIZE,
    LOW_RES_MASK_SIZE,
)
from sam2_triton.errors import InvalidInputError
from sam2_triton.families import SAM2, Family
from sam2_triton.image.uint8_resize import resize

PIXEL_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
PIXEL_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

LABEL_BACKGROUND, LABEL_FOREGROUND, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT = 0, 1, 2, 3
LABEL_PADDING = -1  # SAM's "not a point"


# --- images ------------------------------------------------------------------------------------


def decode_image(
    data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS, apply_exif: bool = True
) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, WebP, ...) to an RGB uint8 array [H, W, 3].

    EXIF orientation is applied unless ``apply_exif`` is False (what a viewer shows is what
    gets segmented; video frames are read unrotated, as SAM2VideoPredictor reads them);
    greyscale, CMYK, palette, 16-bit and alpha images are converted to 8-bit RGB. Images larger than
    ``max_pixels`` are refused before their pixels are decoded (decompression bombs).
    """
    if len(data) == 0:
        raise InvalidInputError("image", "is empty (0 bytes); send the encoded image file's bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidInputError(
                    "image",
                    f"{width}x{height} = {width * height} pixels exceeds the limit of "
                    f"{max_pixels} pixels",
                )
            image.load()
    except InvalidInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError("image", f"too many pixels ({exc})") from None
    except Image.UnidentifiedImageError:
        raise InvalidInputError(
            "image", f"{len(data)} bytes that are not a recognised image file (PNG, JPEG, ...)"
        ) from None
    except Exception as exc:  # Pillow raises many types for corrupt/truncated/non-image data
        raise InvalidInputError(
            "image", f"cannot be decoded as an image ({type(exc).__name__}: {exc})"
        ) from None
    if apply_exif:
        image = ImageOps.exif_transpose(image)
    return _to_rgb_uint8(image)


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit greyscale: scale to 8 bit instead of letting Pillow clip at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(np.rint(array * (255.0 / peak)), 0, 255).astype(np.uint8)
        return np.repeat(array[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent pixels on white (what users see in viewers), not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def check_rgb(rgb: np.ndarray) -> None:
    """An image array the models can take: uint8 [H, W, 3] with at least one pixel."""
    shape, dtype = getattr(rgb, "shape", None), getattr(rgb, "dtype", None)
    if dtype != np.uint8 or len(shape) != 3 or shape[2] != 3 or 0 in shape:
        raise InvalidInputError("image", f"expected RGB uint8 [H,W,3], got {dtype} {shape}")


def preprocess_image(rgb: np.ndarray, family: Family = SAM2) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> normalised float32 [1, 3, 1024, 1024] (SAM2Transforms).

    SAM 2 squashes the image to 1024x1024 (no aspect-preserving padding): bilinear with
    antialiasing, like torchvision's ``Resize`` on tensors, then ImageNet mean/std. SAM 3
    resizes the uint8 image (``uint8_resize``), then ``x * (1 / 255)`` and ``(x - 0.5) / 0.5``,
    the float32 operations torchvision runs.
    """
    check_rgb(rgb)
    if family.normalisation == "half":
        resized = resize(rgb, family.image_size).transpose(2, 0, 1)[None].astype(np.float32)
        scaled = resized * np.float32(1.0 / 255.0)
        return ((scaled - np.float32(0.5)) / np.float32(0.5)).astype(np.float32)
    scaled = rgb.astype(np.float32) / np.float32(255.0)
    channels = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(scaled[:, :, c]), mode="F").resize(
                (family.image_size, family.image_size), Image.Resampling.BILINEAR
            ),
            dtype=np.float32,
        )
        for c in range(3)
    ]
    resized = np.stack(channels)
    normalised = (resized - PIXEL_MEAN[:, None, None]) / PIXEL_STD[:, None, None]
    return normalised[None].astype(np.float32, copy=False)


# --- prompts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompts:
    """One prompt set in the 1024x1024 model frame: coords [1, M, 2], labels [1, M]."""

    coords: np.ndarray
    labels: np.ndarray


def prepare_prompts(
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
    box: np.ndarray | None,
    orig_hw: tuple[int, int],
    max_points: int = DEFAULT_MAX_POINTS,
    padding_label: bool = False,
    image_size: int = IMAGE_SIZE,
) -> Prompts:
    """Validate prompts given in original-image pixels and map them to the model frame.

    Mirrors ``SAM2ImagePredictor._prep_prompts`` + ``_predict``: a box becomes two points
    labelled 2 and 3 placed *before* the clicked points; x is scaled by 1024/W, y by 1024/H.
    ``padding_label`` also accepts SAM's padding label -1 (a point SAM embeds as "not a
    point", wherever it lies), so that batched sets with fewer points can be padded.
    """
    points = validate_points(point_coords, point_labels, orig_hw, max_points, padding_label)
    box_xyxy = validate_box(box, orig_hw)
    has_points = points is not None and bool(np.any(points[1] != LABEL_PADDING))
    if not has_points and box_xyxy is None:
        raise InvalidInputError(
            "point_coords", "no prompt given: send at least one point (not padding) or a box"
        )
    coords_parts: list[np.ndarray] = []
    label_parts: list[np.ndarray] = []
    if box_xyxy is not None:
        coords_parts.append(box_xyxy.reshape(2, 2))
        label_parts.append(np.array([LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=np.int32))
    if points is not None:
        coords_parts.append(points[0])
        label_parts.append(points[1])
    coords = np.concatenate(coords_parts).astype(np.float32)
    coords = transform_coords(coords, orig_hw, image_size)
    labels = np.concatenate(label_parts).astype(np.int32)
    return Prompts(coords=coords[None], labels=labels[None])


def transform_coords(
    coords: np.ndarray, orig_hw: tuple[int, int], image_size: int = IMAGE_SIZE
) -> np.ndarray:
    """(x, y) in original pixels -> the 1024 frame (``image_size``'s), in float32 like
    SAM2Transforms."""
    height, width = orig_hw
    out = np.array(coords, dtype=np.float32, copy=True)
    out[..., 0] = out[..., 0] / np.float32(width)
    out[..., 1] = out[..., 1] / np.float32(height)
    return out * np.float32(image_size)


def validate_points(
    point_coords: np.ndarray | None,
    point_labels: np.ndarray | None,
    orig_hw: tuple[int, int],
    max_points: int,
    padding_label: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    if point_coords is None and point_labels is None:
        return None
    if point_coords is None:
        raise InvalidInputError("point_coords", "missing while point_labels was given")
    if point_labels is None:
        raise InvalidInputError("point_labels", "missing while point_coords was given")
    coords = np.asarray(point_coords)
    labels = np.asarray(point_labels)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise InvalidInputError("point_coords", f"expected shape [N, 2], got {list(coords.shape)}")
    if labels.ndim != 1:
        raise InvalidInputError("point_labels", f"expected shape [N], got {list(labels.shape)}")
    if coords.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            "point_labels",
            f"has {labels.shape[0]} labels for {coords.shape[0]} points; they must match",
        )
    if coords.shape[0] == 0:
        return None
    if coords.shape[0] > max_points:
        raise InvalidInputError(
            "point_coords", f"{coords.shape[0]} points exceed the limit of {max_points}"
        )
    if not np.all(np.isfinite(coords)):
        raise InvalidInputError("point_coords", "contains NaN or infinite values")
    real = labels != LABEL_PADDING if padding_label else np.ones(labels.shape, bool)
    check_inside("point_coords", coords[real], orig_hw)
    allowed = (LABEL_BACKGROUND, LABEL_FOREGROUND, *((LABEL_PADDING,) if padding_label else ()))
    bad = ~np.isin(labels, allowed)
    if np.any(bad):
        padding = ", or -1 (padding)" if padding_label else ""
        raise InvalidInputError(
            "point_labels",
            f"must be 1 (foreground) or 0 (background){padding}, got {labels[bad][0]!r}",
        )
    return coords.astype(np.float32), labels.astype(np.int32)


def validate_box(box: np.ndarray | None, orig_hw: tuple[int, int]) -> np.ndarray | None:
    if box is None:
        return None
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    if values.shape[0] != 4:
        raise InvalidInputError("box", f"expected 4 values (x0, y0, x1, y1), got {values.shape[0]}")
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("box", "contains NaN or infinite values")
    x0, y0, x1, y1 = values
    if x1 < x0 or y1 < y0:
        raise InvalidInputError("box", f"is inverted: need x0 <= x1 and y0 <= y1, got {values}")
    check_inside("box", values.reshape(2, 2), orig_hw)
    return np.asarray(box, dtype=np.float32).reshape(4)


def check_inside(field: str, xy: np.ndarray, orig_hw: tuple[int, int]) -> None:
    """Points [N, 2] (x, y) within the image, edges included; the first outside is named."""
    height, width = orig_hw
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if np.any(outside):
        x, y = xy[outside][0]
        raise InvalidInputError(
            field,
            f"({x:g}, {y:g}) lies outside the {width}x{height} image (x in [0, W], y in [0, H])",
        )


def prepare_mask_input(
    mask_input: np.ndarray | None, size: int = LOW_RES_MASK_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """A previous ``low_res_logits`` entry [1, 256, 256] (``size``) -> decoder (mask_input,
    has_mask_input). Without one the decoder gets zeros and has_mask_input 0, as
    SAM2ImagePredictor does.
    """
    if mask_input is None:
        return np.zeros((1, 1, size, size), np.float32), np.zeros((1, 1), np.float32)
    values = np.asarray(mask_input)
    if values.shape != (1, size, size):
        raise InvalidInputError(
            "mask_input",
            f"expected shape [1, {size}, {size}] (one low_res_logits entry of an earlier "
            f"response), got {list(values.shape)}",
        )
    if not np.all(np.isfinite(values)):
        raise InvalidInputError("mask_input", "contains NaN or infinite values")
    return values.astype(np.float32).reshape(1, 1, size, size), np.ones((1, 1), np.float32)
