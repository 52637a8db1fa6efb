"""Call ``sam3_concepts`` over HTTP or gRPC with tritonclient: every instance of a phrase or of
example boxes in an image, the image sent once and named by its id afterwards.

Requests about an image carry its id in the ``sam2-image-id`` header, as the image clients' do,
so a balancer hashing on it keeps an image's phrases on the replica caching its features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sam2_triton.clients.affinity import affinity_headers
from sam2_triton.clients.tritonclient_io import (
    DEFAULT_URLS,
    Protocol,
    close_once,
    make_input,
    timeout_kwargs,
    tritonclient_module,
)
from sam2_triton.contract import CONCEPTS, CONCEPTS_OUTPUTS
from sam2_triton.image.encodings import decode_masks


@dataclass(frozen=True)
class Found:
    """Every instance one sam3_concepts request found: ``masks`` [K, H, W] uint8 0/1 whatever
    the format (decoded here from PNG, RLE or polygons), ``scores`` [K], ``boxes`` [K, 4]
    (x0, y0, x1, y1 pixels), ``phrase_index`` [K] (which phrase found each), the encoded masks
    as received and the image's id."""

    masks: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    phrase_index: np.ndarray
    image_id: str
    encoded_masks: list[bytes] = field(default_factory=list)


class ConceptClient:
    """A reusable connection to a server serving SAM 3 (``sam3_concepts``)."""

    def __init__(self, url: str | None = None, protocol: Protocol = "http") -> None:
        self.protocol = protocol
        self._tc = tritonclient_module(protocol)
        self.client = self._tc.InferenceServerClient(url or DEFAULT_URLS[protocol])

    def find(
        self,
        image: bytes | None = None,
        image_id: str | None = None,
        text: str | Sequence[str] | None = None,
        boxes: np.ndarray | None = None,
        box_labels: np.ndarray | None = None,
        confidence_threshold: float | None = None,
        output_format: str | None = None,
        polygon_tolerance: float | None = None,
        timeout_s: float | None = None,
    ) -> Found:
        """Every instance of each phrase of ``text`` (and/or like the example ``boxes``, x0 y0 x1
        y1 in pixels, labelled 1 positive or 0 negative) in ``image`` (encoded file bytes) or the
        image an earlier answer named ``image_id``. Without text or boxes the image is only
        cached (K = 0)."""
        values: dict[str, np.ndarray] = {}
        if image is not None:
            values["image"] = np.frombuffer(image, dtype=np.uint8)
        if image_id is not None:
            values["image_id"] = np.array([image_id.encode()], dtype=np.object_)
        if text is not None:
            phrases = [text] if isinstance(text, str) else list(text)
            values["text"] = np.array([p.encode() for p in phrases], dtype=np.object_)
        if boxes is not None:
            values["boxes"] = np.asarray(boxes, np.float32).reshape(-1, 4)
        if box_labels is not None:
            values["box_labels"] = np.asarray(box_labels, np.int32).reshape(-1)
        if confidence_threshold is not None:
            values["confidence_threshold"] = np.array([confidence_threshold], np.float32)
        if output_format is not None:
            values["output_format"] = np.array([output_format.encode()], dtype=np.object_)
        if polygon_tolerance is not None:
            values["polygon_tolerance"] = np.array([polygon_tolerance], np.float32)
        result = self.client.infer(
            CONCEPTS,
            [make_input(self._tc, self.protocol, name, value) for name, value in values.items()],
            outputs=[self._tc.InferRequestedOutput(t.name) for t in CONCEPTS_OUTPUTS],
            headers=affinity_headers(image, image_id),
            **timeout_kwargs(self.protocol, timeout_s),
        )
        encoded = [bytes(item) for item in result.as_numpy("encoded_masks").reshape(-1)]
        masks = result.as_numpy("masks")
        if output_format not in (None, "raw"):
            height, width = masks.shape[1:]
            masks = decode_masks(np.array(encoded, dtype=object), output_format) if encoded else (
                np.zeros((0, height, width), np.uint8))  # fmt: skip
        return Found(
            masks=masks,
            scores=result.as_numpy("scores"),
            boxes=result.as_numpy("boxes"),
            phrase_index=result.as_numpy("phrase_index"),
            image_id=bytes(result.as_numpy("image_id").reshape(-1)[0]).decode(),
            encoded_masks=encoded,
        )

    def close(self) -> None:
        close_once(self.client)

    def __enter__(self) -> ConceptClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
