"""Minimal standalone HTTP client for sam2_segment (KServe v2 protocol, tritonclient.http).

    python client_examples/segment_http.py IMAGE X Y [--url 127.0.0.1:8000] [--out mask.png]

Sends the encoded image file's bytes as a UINT8 tensor and one foreground click; writes the best
of the three masks as a PNG and prints the IoU scores. Needs only numpy, Pillow and tritonclient.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import tritonclient.http as httpclient
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("x", type=float)
    parser.add_argument("y", type=float)
    parser.add_argument("--url", default="127.0.0.1:8000")
    parser.add_argument("--out", default="mask.png")
    args = parser.parse_args()

    image = np.fromfile(args.image, dtype=np.uint8)  # the file's bytes, not decoded pixels
    tensors = {
        "image": image,
        "point_coords": np.array([[args.x, args.y]], dtype=np.float32),  # original pixels
        "point_labels": np.array([1], dtype=np.int32),  # 1 foreground, 0 background
        "multimask_output": np.array([True]),
    }
    dtypes = {
        "image": "UINT8",
        "point_coords": "FP32",
        "point_labels": "INT32",
        "multimask_output": "BOOL",
    }
    inputs = []
    for name, value in tensors.items():
        tensor = httpclient.InferInput(name, list(value.shape), dtypes[name])
        tensor.set_data_from_numpy(value, binary_data=True)
        inputs.append(tensor)

    client = httpclient.InferenceServerClient(args.url)
    # The image's id (sha256 of the file): behind several replicas, the balancer sends all
    # requests about one image to one replica (docs/operations.md).
    headers = {"sam2-image-id": hashlib.sha256(Path(args.image).read_bytes()).hexdigest()}
    result = client.infer("sam2_segment", inputs, headers=headers)
    masks = result.as_numpy("masks")  # UINT8 [3, H, W], 0/1
    scores = result.as_numpy("iou_scores")  # FP32 [3]
    best = int(np.argmax(scores))
    Image.fromarray(masks[best] * 255).save(args.out)
    print(
        f"masks {list(masks.shape)} iou_scores {np.round(scores, 4).tolist()} "
        f"best {best} -> {args.out}"
    )


if __name__ == "__main__":
    main()
