"""SAM 3's official checkpoint: where it is, what it hashes to, how its keys are laid out.

Meta publishes one file, ``sam3.pt`` in the Hugging Face repository ``facebook/sam3`` (gated:
accept the licence and log in; ``HF_TOKEN``), fetched by ``download_sam3`` as SAM 2.1's are
(resumed, sha256-checked before it takes its name). Its state dict keeps the concept model under
``detector.`` and the interactive (tracker) model under ``tracker.``; sam3's builder
(``model_builder._load_checkpoint``) maps them onto ``Sam3Image`` and its
``inst_interactive_predictor.model``. Random weights are saved in the same layout, so that the
same loader reads both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

from sam2_triton.weights.checkpoints import URL_BASE_ENV, Download, fetch, mirrored_url

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


#: A Hugging Face token (read access to facebook/sam3), as huggingface_hub reads it; else the
#: file ``huggingface-cli login`` writes.
TOKEN_ENV = "HF_TOKEN"
LICENCE_PAGE = "https://huggingface.co/facebook/sam3"


def hf_token() -> str | None:
    """``$HF_TOKEN``, else the token ``huggingface-cli login`` saved (``$HF_HOME/token``,
    ``~/.cache/huggingface/token`` by default), else None."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
    saved = home / "token"
    return (saved.read_text().strip() or None) if saved.is_file() else None


def sam3_download(url: str | None = None, token: str | None = None) -> Download:
    """SAM 3's checkpoint: the official URL (or ``$SAM2_TRITON_CHECKPOINT_URL_BASE/sam3.pt``, a
    mirror). The token (default ``hf_token()``) goes to huggingface.co over HTTPS only, never
    to a mirror."""
    url = url or mirrored_url(SAM3.file, SAM3.url)
    token = hf_token() if token is None else token
    parsed = urlparse(url)
    to_hub = parsed.scheme == "https" and parsed.hostname == "huggingface.co"
    sent = bool(token) and to_hub
    return Download(
        file=SAM3.file,
        url=url,
        sha256=SAM3.sha256,
        label=f"SAM 3's checkpoint ({SAM3.repo}, {SAM3.size / 1e9:.2f} GB)",
        advice=(
            f"{SAM3.repo} is gated: accept its licence at {LICENCE_PAGE} while logged in, then "
            f"set {TOKEN_ENV} to a read token of that account or run `huggingface-cli login` "
            f"({'a token was sent' if sent else 'no token was sent'}).\nAlternatives:\n"
            "  * download sam3.pt yourself and export it:\n"
            "      sam2-triton export --sam3 --checkpoint PATH\n"
            "  * export with random weights (the masks are meaningless; for testing):\n"
            "      sam2-triton export --sam3 --random-weights\n"
            f"  * or point {URL_BASE_ENV} at a mirror that serves the same file."
        ),
        headers={"Authorization": f"Bearer {token}"} if sent else {},
    )


def download_sam3(
    dest_dir: Path, url: str | None = None, progress: bool = True, timeout: float = 30.0
) -> Path:
    """Fetch SAM 3's checkpoint into ``dest_dir`` (``checkpoints.download_checkpoint`` says
    how: resumed, sha256-checked, renamed into place) and return its path."""
    return fetch(sam3_download(url), dest_dir, progress, timeout)
