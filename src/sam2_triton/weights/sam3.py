"""SAM 3's official checkpoint: where it is, what it hashes to, how its keys are laid out.

Meta publishes one file, ``sam3.pt`` in the Hugging Face repository ``facebook/sam3`` (gated:
accept the licence and log in; ``HF_TOKEN``). Its state dict keeps the concept model under
``detector.`` and the interactive (tracker) model under ``tracker.``; sam3's builder
(``model_builder._load_checkpoint``) maps them onto ``Sam3Image`` and its
``inst_interactive_predictor.model``. Random weights are saved in the same layout, so that the
same loader reads both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

DETECTOR, TRACKER = "detector.", "tracker."
#: Where sam3 puts the tracker's weights inside Sam3Image.
INTERACTIVE = "inst_interactive_predictor.model."


@dataclass(frozen=True)
class Checkpoint:
    repo: str
    file: str
    revision: str
    sha256: str
    size: int

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/{self.revision}/{self.file}"


# The hash and size agree across independent mirrors and download checks (1038lab/sam3's
# README, catalogues that verify the download); the revision is facebook/sam3's commit they pin.
SAM3 = Checkpoint(
    repo="facebook/sam3",
    file="sam3.pt",
    revision="3c879f39826c281e95690f02c7821c4de09afae7",
    sha256="9999e2341ceef5e136daa386eecb55cb414446a00ac2b55eb2dfd2f7c3cf8c9e",
    size=3_450_062_241,
)


def to_official(state: Mapping[str, T]) -> dict[str, T]:
    """``Sam3Image.state_dict()`` keys -> the checkpoint's (``detector.``, ``tracker.``)."""
    return {(TRACKER + key[len(INTERACTIVE):] if key.startswith(INTERACTIVE) else DETECTOR + key): v
            for key, v in state.items()}  # fmt: skip


def from_official(state: Mapping[str, T]) -> dict[str, T]:
    """The checkpoint's keys -> ``Sam3Image``'s, as sam3's loader maps them; anything else in
    the file is an error (a file of another model)."""
    out = {}
    for key, value in state.items():
        if key.startswith(DETECTOR):
            out[key[len(DETECTOR) :]] = value
        elif key.startswith(TRACKER):
            out[INTERACTIVE + key[len(TRACKER) :]] = value
        else:
            raise ValueError(f"{key!r}: not a SAM 3 checkpoint key (detector.* or tracker.*)")
    return out
