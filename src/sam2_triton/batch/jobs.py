"""One image of a batch run -> one SA-1B-style document, through the running server.

Prompted images go through ``sam2_session``: the image is encoded once and each labelled object
costs one decoder run (masks come back as COCO RLE, never as raw pixels). Images without prompts go
through ``sam2_automatic``. Both produce the SA-1B layout::

    {"image": {"file_name", "height", "width"}, "annotations": [{"id", "segmentation": RLE,
     "area", "bbox": xywh, "predicted_iou", "point_coords", "crop_box", ...}]}

With phrases (``batch --text``, SAM 3's ``sam3_concepts``) the images without prompts get every
instance of each phrase, labelled with it and scored (``score``, ``box`` in pixels).
Prompted annotations add ``label`` and ``prompt``; automatic ones carry ``stability_score``
(SAM's stability score is computed on the automatic path only). With ``--segmentation polygons``
``segmentation`` holds COCO polygon lists and ``holes`` the holes' polygons.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from sam2_triton.batch.prompts import ObjectPrompt
from sam2_triton.clients.concepts import ConceptClient
from sam2_triton.clients.image import SegmentClient, SegmentResponse
from sam2_triton.image.polygons import DEFAULT_TOLERANCE, rle_to_polygons


def _click_object(
    client: SegmentClient, image: bytes, image_id: str, prompt: ObjectPrompt
) -> tuple[str, SegmentResponse]:
    """One decoder run for one object; re-sends the image once if the server evicted it."""
    # SAM's advice: one point is ambiguous, ask for three masks and keep the best scored.
    single_point = (
        prompt.box is None and prompt.point_coords is not None and len(prompt.point_coords) == 1
    )
    return client.click_resending(
        image,
        image_id,
        point_coords=prompt.point_coords,
        point_labels=prompt.point_labels,
        box=prompt.box,
        multimask_output=single_point,
        output_format="rle",
    )


def segment_prompted(
    client: SegmentClient,
    name: str,
    image: bytes,
    objects: list[ObjectPrompt],
    segmentation: tuple[str, float] = ("rle", DEFAULT_TOLERANCE),
) -> dict[str, Any]:
    """The document of an image with prompts: one annotation per labelled object.
    ``segmentation``: ("polygons", tolerance) writes COCO polygons (and "holes") instead of RLE,
    traced from the RLE by the server's code."""
    image_id = client.embed(image)
    annotations = []
    height = width = 0
    for index, prompt in enumerate(objects):
        image_id, response = _click_object(client, image, image_id, prompt)
        best = int(np.argmax(response.iou_scores))
        rle = json.loads(response.encoded_masks[best])
        height, width = (int(v) for v in rle["size"])
        annotation: dict[str, Any] = {
            "id": index,
            "label": prompt.label,
            "segmentation": {"size": rle["size"], "counts": rle["counts"]},
            "area": rle["area"],
            "bbox": rle["bbox"],
            "predicted_iou": float(response.iou_scores[best]),
            "point_coords": [] if prompt.point_coords is None else prompt.point_coords.tolist(),
            "crop_box": [0.0, 0.0, float(width), float(height)],
            "prompt": prompt.to_json(),
        }
        if segmentation[0] == "polygons":
            outer, holes = rle_to_polygons(annotation["segmentation"], segmentation[1])
            annotation.update(segmentation=outer, holes=holes)
        annotations.append(annotation)
    return {
        "image": {"file_name": name, "height": height, "width": width, "image_id": image_id},
        "annotations": annotations,
    }


def segment_automatic(
    client: SegmentClient,
    name: str,
    image: bytes,
    params: Mapping[str, Any],
    segmentation: tuple[str, float] = ("rle", DEFAULT_TOLERANCE),
) -> dict[str, Any]:
    """The document of an image without prompts: every object sam2_automatic finds."""
    if segmentation[0] == "polygons":
        result = client.automatic(
            image, params, segmentation_format="polygons", polygon_tolerance=segmentation[1]
        )
    else:
        result = client.automatic(image, params)
    annotations = [{"id": k, **record} for k, record in enumerate(result["annotations"])]
    return {"image": {"file_name": name, **result["image"]}, "annotations": annotations}


def segment_text(
    client: ConceptClient,
    name: str,
    image: bytes,
    phrases: tuple[str, ...],
    threshold: float | None = None,
    segmentation: tuple[str, float] = ("rle", DEFAULT_TOLERANCE),
) -> dict[str, Any]:
    """The document of an image asked for phrases: every instance sam3_concepts finds, labelled
    with its phrase."""
    found = client.find(image, text=list(phrases), confidence_threshold=threshold,
                        output_format="rle")  # fmt: skip
    height, width = (int(v) for v in found.masks.shape[1:])
    annotations = []
    for k, encoded in enumerate(found.encoded_masks):
        rle = json.loads(encoded)
        annotation: dict[str, Any] = {
            "id": k,
            "label": phrases[int(found.phrase_index[k])],
            "segmentation": {"size": rle["size"], "counts": rle["counts"]},
            "area": rle["area"],
            "bbox": rle["bbox"],
            "score": float(found.scores[k]),
            "box": [float(v) for v in found.boxes[k]],
        }
        if segmentation[0] == "polygons":
            outer, holes = rle_to_polygons(annotation["segmentation"], segmentation[1])
            annotation.update(segmentation=outer, holes=holes)
        annotations.append(annotation)
    return {
        "image": {"file_name": name, "height": height, "width": width, "image_id": found.image_id},
        "annotations": annotations,
    }
