"""Encode once, click many: the request logic of ``sam2_session``, free of Triton.

A request carrying ``image`` is encoded unless its content id is cached and answered with that
id; a request carrying only ``image_id`` reuses the cached embedding, so a click costs one
decoder run. The encoder and decoder are passed in as functions (BLS calls inside Triton,
ONNX Runtime sessions in the unit tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from sam2_triton.contract import ENCODER_OUTPUTS, content_id, is_valid_id
from sam2_triton.errors import InvalidInputError, RequestCancelled, UnknownImageError
from sam2_triton.families import SAM2, Family
from sam2_triton.image.embedding_cache import EmbeddingCache
from sam2_triton.image.request import Limits, parse_request
from sam2_triton.image.segment import Decoder, Encoder, finish_request
from sam2_triton.image.transforms import decode_image, preprocess_image

ORIG_SIZE = "orig_size"  # stored beside the features: the image's (H, W)
IMAGE_FILE = "image_file"  # and the encoded file (small), for cut-outs of later clicks


class SessionService:
    """One ``handle`` call per request; thread- and process-safe through the cache."""

    def __init__(
        self,
        cache: EmbeddingCache,
        encode: Encoder,
        decode: Decoder,
        limits: Limits | None = None,
        family: Family = SAM2,
    ) -> None:
        self.cache = cache
        self.encode = encode
        self.decode = decode
        self.limits = limits or Limits()
        self.family = family  # the model encode and decode run

    def handle(
        self,
        inputs: Mapping[str, np.ndarray | None],
        is_cancelled: Callable[[], bool] = lambda: False,
    ) -> dict[str, np.ndarray]:
        """SESSION_INPUTS (None where omitted) -> SESSION_OUTPUTS.

        ``is_cancelled`` is asked before the decoder runs: a click superseded by a newer one
        while its embedding was being read costs no decoder run.
        """
        options = parse_request(inputs, self.limits, self.family)
        # Prompts are checked before an image is encoded: bad input costs no encoder run.
        check = options.prompt_sets if options.prompts_given else None
        image_id, features = self._features(inputs.get("image"), inputs.get("image_id"), check)
        orig_hw = (int(features[ORIG_SIZE][0]), int(features[ORIG_SIZE][1]))
        if not options.prompts_given and inputs.get("image") is not None:
            return self._embed_only(image_id, orig_hw)  # "encode this image", no click yet
        sets = options.prompt_sets(orig_hw)
        if is_cancelled():
            raise RequestCancelled("cancelled by the client")
        decoded = self.decode(sets.decoder_inputs(features))
        rgb = None
        if options.output_format.startswith("cutout"):
            data = np.asarray(features[IMAGE_FILE]).tobytes()
            rgb = decode_image(data, self.limits.max_image_pixels)
        outputs = finish_request(decoded, orig_hw, options, rgb)
        return {**outputs, "image_id": id_tensor(image_id)}

    def _features(
        self,
        image: np.ndarray | None,
        image_id: np.ndarray | None,
        check: Callable[[tuple[int, int]], object] | None,
    ) -> tuple[str, Mapping[str, np.ndarray]]:
        return cached_features(self.cache, image, image_id, lambda data: self._encode(data, check))

    def _encode(
        self, data: bytes, check: Callable[[tuple[int, int]], object] | None
    ) -> dict[str, np.ndarray]:
        rgb = decode_image(data, self.limits.max_image_pixels)
        if check is not None:
            check((rgb.shape[0], rgb.shape[1]))
        outputs = self.encode(preprocess_image(rgb, self.family))
        features = {t.name: np.asarray(outputs[t.name], np.float32) for t in ENCODER_OUTPUTS}
        features[ORIG_SIZE] = np.array(rgb.shape[:2], dtype=np.int64)
        features[IMAGE_FILE] = np.frombuffer(data, dtype=np.uint8)
        return features

    def _embed_only(self, image_id: str, orig_hw: tuple[int, int]) -> dict[str, np.ndarray]:
        height, width = orig_hw
        side = self.family.low_res
        return {
            "masks": np.zeros((0, height, width), np.uint8),
            "iou_scores": np.zeros((0,), np.float32),
            "low_res_logits": np.zeros((0, side, side), np.float32),
            "encoded_masks": np.array([], dtype=np.object_),
            "image_id": id_tensor(image_id),
        }


def cached_features(
    cache: EmbeddingCache,
    image: np.ndarray | None,
    image_id: np.ndarray | None,
    encode: Callable[[bytes], dict[str, np.ndarray]],
) -> tuple[str, Mapping[str, np.ndarray]]:
    """The id and cached features of the image a request sent (``encode``d unless cached) or
    named by ``image_id``; sam2_session's and sam3_concepts' one way to find them."""
    requested = None if image_id is None else parse_id(image_id)
    if image is not None:
        data = np.asarray(image, dtype=np.uint8).tobytes()
        key = content_id(data)
        if requested is not None and requested != key:
            raise InvalidInputError(
                "image_id",
                f"{requested!r} is not the id of the image sent with it ({key!r}); send "
                "either the image or its id",
            )
        features, _ = cache.get_or_compute(key, lambda: encode(data))
        return key, features
    if requested is None:
        raise InvalidInputError(
            "image",
            "missing: send the encoded image file's bytes (input 'image') or the image_id "
            "of an earlier response",
        )
    features = cache.get(requested)
    if features is None:
        raise UnknownImageError(
            "image_id",
            f"{requested!r} is unknown or was evicted from the cache: send the image again "
            "(input 'image') to re-encode it",
        )
    return requested, features


def parse_id(value: np.ndarray) -> str:
    flat = np.asarray(value, dtype=object).reshape(-1)
    if flat.shape[0] != 1:
        raise InvalidInputError("image_id", f"expected one id, got {flat.shape[0]}")
    raw = flat[0]
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    if not is_valid_id(text):
        raise InvalidInputError(
            "image_id",
            f"{text[:80]!r} is not an image id (64 hex digits, as returned in output image_id)",
        )
    return text


def id_tensor(image_id: str) -> np.ndarray:
    return np.array([image_id.encode()], dtype=np.object_)
