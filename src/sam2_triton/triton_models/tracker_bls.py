"""The video tracker's graphs through BLS (GPU target): sam2_video's ``TrackerModels`` when the
graphs are onnxruntime-backend models of their own (``repository.video_plan``).

Frames are encoded by sam2_image_encoder (its dynamic batching serves the image models and
video at once; the frames of videos tracked together go in one call); objects reading as many
memories and pointers, of one video or several, are attended and encoded together in one call
of at most ``batch_objects`` (the GPU plan's ``video_max_objects_per_call``): on a GPU one
call of N objects costs little more than one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sam2_triton import contract as c
from sam2_triton.triton_models.common import encode_image, infer
from sam2_triton.video.runtime import TrackerConstants


class BlsTrackerModels(TrackerConstants):
    def __init__(self, constants: Path, objects_per_call: int, encoder_batch: int) -> None:
        super().__init__(constants)
        self.batch_objects = objects_per_call  # the graphs' warmed-up object axis
        self.encoder_batch = encoder_batch  # sam2_image_encoder's max_batch_size

    def encode(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return encode_image(image)

    def encode_many(self, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Frames of several videos, ``encoder_batch`` to a call: [1, 3, 1024, 1024] each."""
        features = []
        for start in range(0, len(images), self.encoder_batch):
            outputs = encode_image(np.concatenate(images[start : start + self.encoder_batch]))
            rows = next(iter(outputs.values())).shape[0]
            features += [{k: v[i : i + 1].copy() for k, v in outputs.items()} for i in range(rows)]
        return features

    def decode(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        names = [t.name for t in c.TRACKING_DECODER_OUTPUTS]
        outputs = infer(c.TRACKING_DECODER, feeds, names)
        return [outputs[n] for n in names]

    def attend(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (output,) = c.MEMORY_ATTENTION_OUTPUTS
        return infer(c.MEMORY_ATTENTION, feeds, [output.name])[output.name]

    def encode_memory(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        (output,) = c.MEMORY_ENCODER_OUTPUTS
        return infer(c.MEMORY_ENCODER, feeds, [output.name])[output.name]
