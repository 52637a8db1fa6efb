"""Meta's image predictors as the tests compare against them (the fixtures ``reference`` and
``automatic_reference``): each image's embedding and each grid's masks computed once."""

from __future__ import annotations

import copy
import hashlib
import io

import numpy as np
from PIL import Image


class Reference:
    """SAM2ImagePredictor.predict on encoded image bytes, each image's embedding computed once."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor
        self.states: dict[str, tuple] = {}

    def predict(self, image: bytes, **kwargs):
        key = hashlib.sha256(image).hexdigest()
        p = self.predictor
        if key not in self.states:
            p.set_image(np.array(Image.open(io.BytesIO(image)).convert("RGB")))
            self.states[key] = (p._features, p._orig_hw)
        p._features, p._orig_hw = self.states[key]
        p._is_image_set = True
        return p.predict(**kwargs)


class AutomaticReference:
    """Meta's SAM2AutomaticMaskGenerator on the test weights, its masks (``_generate_masks``,
    the point grid through the model) computed once per image and parameters: output modes only
    encode the same masks differently, in Meta's own ``generate``."""

    def __init__(self, model) -> None:
        self.model = model
        self.masks: dict[tuple, object] = {}

    def generator(self, **params):
        from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

        generator = SAM2AutomaticMaskGenerator(self.model, **params)
        options = tuple(sorted((k, v) for k, v in params.items() if k != "output_mode"))
        compute = generator._generate_masks

        def cached(image):
            key = (hashlib.sha256(image.tobytes()).hexdigest(), image.shape, options)
            if key not in self.masks:
                self.masks[key] = compute(image)
            return copy.deepcopy(self.masks[key])  # generate() adds to what it is given

        generator._generate_masks = cached
        return generator
