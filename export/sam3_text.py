"""SAM 3's text encoder as an ONNX graph: token ids in, the phrase's features out (issue 34).

Tokenising (CLIP's byte-pair encoding, 32 tokens with start and end marks, zero-padded) stays in
Python; the graph is ``VETextEncoder.forward`` (sam3/model/text_encoder_ve.py) after its
tokenizer: the causal text transformer and the resizer to the detector's width. Its padding
mask is ``tokens == 0``, computed where the tokens are. A phrase's features are computed once
and cached: they do not depend on the image.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

CONTEXT_LENGTH = 32  # VETextEncoder's default, the one the checkpoint was trained with
INPUT_NAME, OUTPUT_NAME = "tokens", "text_features"


class TextEncoder(nn.Module):
    """tokens [B, 32] int64 -> text_features [B, 32, 256]: what ``VETextEncoder`` returns as
    its text memory, batch first (sam3 hands it on sequence first)."""

    def __init__(self, text_encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = copy.deepcopy(text_encoder.encoder)
        self.resizer = copy.deepcopy(text_encoder.resizer)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        _, memory = self.encoder(tokens)
        return self.resizer(memory)


def export_text_onnx(text_encoder: nn.Module, path: Path, opset: int = 17) -> Path:
    """Write ``TextEncoder(text_encoder)`` to ``path``, a dynamic batch axis (phrases)."""
    module = TextEncoder(text_encoder).eval()
    example = torch.zeros(2, CONTEXT_LENGTH, dtype=torch.int64)
    example[:, :3] = torch.tensor([49406, 320, 49407])  # start, a word, end
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp), dynamo=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )  # fmt: skip
    tmp.replace(path)
    return path
