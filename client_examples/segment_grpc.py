"""Minimal standalone gRPC client for sam2_segment (KServe v2 protocol, tritonclient.grpc).

    python client_examples/segment_grpc.py IMAGE X Y [--url 127.0.0.1:8001] [--out mask.png]

Same request as segment_http.py over gRPC. Masks of a large image (K x H x W bytes) exceed
gRPC's 4 MiB default message size; tritonclient.grpc raises the channel limits to 2 GiB by
default, and we say so explicitly here for clients that build their own channel.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image

MAX_MESSAGE_BYTES = 2**31 - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("x", type=float)
    parser.add_argument("y", type=float)
    parser.add_argument("--url", default="127.0.0.1:8001")
    parser.add_argument("--out", default="mask.png")
    args = parser.parse_args()

    tensors = {
        "image": ("UINT8", np.fromfile(args.image, dtype=np.uint8)),
        "point_coords": ("FP32", np.array([[args.x, args.y]], dtype=np.float32)),
        "point_labels": ("INT32", np.array([1], dtype=np.int32)),
        "multimask_output": ("BOOL", np.array([True])),
    }
    inputs = []
    for name, (dtype, value) in tensors.items():
        tensor = grpcclient.InferInput(name, list(value.shape), dtype)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)

    client = grpcclient.InferenceServerClient(
        args.url,
        channel_args=[
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    # The image's id (sha256 of the file): behind several replicas, the balancer sends all
    # requests about one image to one replica (docs/operations.md).
    headers = {"sam2-image-id": hashlib.sha256(Path(args.image).read_bytes()).hexdigest()}
    result = client.infer("sam2_segment", inputs, headers=headers)
    masks = result.as_numpy("masks")
    scores = result.as_numpy("iou_scores")
    best = int(np.argmax(scores))
    Image.fromarray(masks[best] * 255).save(args.out)
    print(
        f"masks {list(masks.shape)} iou_scores {np.round(scores, 4).tolist()} "
        f"best {best} -> {args.out}"
    )


if __name__ == "__main__":
    main()
