"""The four SAM 2.1 sizes: Hydra config inside the ``sam2`` package, official checkpoint, sha256.

One table, read by ``download``, ``export`` and ``serve``; nothing else names a checkpoint file.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECKPOINT_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"


@dataclass(frozen=True)
class Variant:
    """One SAM 2.1 model size."""

    name: str
    config: str  # Hydra config name inside the installed sam2 package
    checkpoint_file: str
    sha256: str
    params_millions: float

    @property
    def url(self) -> str:
        return f"{CHECKPOINT_BASE_URL}/{self.checkpoint_file}"


# sha256 of the official 092824 files (Hugging Face serves the same bytes; its file page lists
# the LFS "SHA256"). Sources:
#   tiny       https://huggingface.co/facebook/sam2.1-hiera-tiny/blob/main/sam2.1_hiera_tiny.pt
#   small      https://huggingface.co/facebook/sam2.1-hiera-small/blob/main/sam2.1_hiera_small.pt
#   base_plus  https://huggingface.co/camenduru/sam2-1-hiera/commit/cdd35a45a78a3a93bc99988f4b56db40131a823a
#              (mirror of all four; its tiny/small hashes equal the facebook pages above; the
#              same base_plus hash is in https://huggingface.co/Promethe-us/sam2, commit d105770)
#   large      same camenduru commit; also in https://huggingface.co/spaces/wondervictor/Mask-Adapter
#              (sam2.1_hiera_large.pt, commit e31dd07) and datasets/phenanthra/tmp discussion #2
_SHA256 = {
    "tiny": "7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
    "small": "6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
    "base_plus": "a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
    "large": "2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
}

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "tiny",
            "configs/sam2.1/sam2.1_hiera_t.yaml",
            "sam2.1_hiera_tiny.pt",
            _SHA256["tiny"],
            38.9,
        ),
        Variant(
            "small",
            "configs/sam2.1/sam2.1_hiera_s.yaml",
            "sam2.1_hiera_small.pt",
            _SHA256["small"],
            46.0,
        ),
        Variant(
            "base_plus",
            "configs/sam2.1/sam2.1_hiera_b+.yaml",
            "sam2.1_hiera_base_plus.pt",
            _SHA256["base_plus"],
            80.8,
        ),
        Variant(
            "large",
            "configs/sam2.1/sam2.1_hiera_l.yaml",
            "sam2.1_hiera_large.pt",
            _SHA256["large"],
            224.4,
        ),
    )
}


def get_variant(name: str) -> Variant:
    """Look a variant up by name, with an error that lists the valid names."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(VARIANTS)}") from None
