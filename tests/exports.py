"""The suite's exports: where each is cached (keyed by the code that makes it), how it is made,
and which of them conftest starts in processes of their own at collection (``start_beside``).

Exporting is mostly tracing: one core busy and the other idle (the reduced tiny export took 50 s
of wall and 51 CPU-seconds on a 2-core Zen 3), so when a run needs the reduced export, the
others it needs are made beside it (tests/prebuild.py) and their fixtures wait for them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from sam2_triton.contract import EXPORT_METADATA_FILE
from tests import prebuild
from tests.reduced_model import SEED

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "sam2_triton"
CACHE = ROOT / "build" / "test-cache"


def export_key() -> str:
    """Changes when the export code or the ONNX files' tensor contract changes."""
    from sam2_triton import contract as c

    digest = hashlib.sha256()
    for path in sorted([*(ROOT / "export").glob("*.py"), SRC / "weights" / "variants.py"]):
        digest.update(path.read_bytes())
    onnx_contract = (c.ENCODER_INPUTS, c.ENCODER_OUTPUTS, c.DECODER_INPUTS, c.DECODER_OUTPUTS)
    digest.update(repr(onnx_contract).encode())
    digest.update((ROOT / "tests" / "reduced_model.py").read_bytes())
    return digest.hexdigest()[:16]


def sam3_key() -> str:
    """Changes when SAM 3's export code, its graphs' names or the test model change."""
    digest = hashlib.sha256()
    paths = [*(ROOT / "export").glob("sam3_*.py"), ROOT / "tests" / "sam3_helpers.py",
             SRC / "concepts" / "graphs.py", SRC / "contract.py", SRC / "cli" / "export_sam3.py",
             SRC / "weights" / "sam3.py"]  # fmt: skip
    for path in sorted(paths):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def reduced_sam3(vocabulary: Path):
    """sam3's builder for the tests: the reduced concept model, its interactive model inside."""
    from tests.sam3_helpers import reduced_concept_model

    return reduced_concept_model(interactive=True)


def sam3_folder() -> Path:
    return CACHE / f"sam3-{sam3_key()}"


def sam3_done(folder: Path) -> bool:
    return (folder / "sam3.json").exists()  # export.sam3_export.METADATA_FILE, without torch


def make_sam3_export(folder: Path | str) -> None:
    """``sam3_export``'s folder, made as ``sam2-triton export --sam3 --random-weights`` makes
    one (in the test process, or in a process of its own: tests/prebuild.py)."""
    from sam2_triton.cli.export_sam3 import export_sam3_model

    folder = Path(folder)
    export_sam3_model(None, True, seed=SEED, build=reduced_sam3, out=folder,
                      save_to=sam3_checkpoint(folder))  # fmt: skip


def tiny_folder() -> Path:
    """``tiny_export``'s folder: the reduced SAM 2.1 tiny, seed SEED."""
    return CACHE / f"tiny-seed{SEED}-{export_key()}"


def full_depth_folder() -> Path:
    return CACHE / f"tiny-full-seed{SEED}-{export_key()}"


def exported(folder: Path) -> bool:
    return (folder / EXPORT_METADATA_FILE).exists()  # written last


def make_full_depth_export(folder: Path | str) -> None:
    """What users export: SAM 2.1 tiny at its full depth, seed 0, ``export_onnx``'s defaults."""
    from sam2_triton.export import build_sam2_model, export_onnx

    export_onnx(build_sam2_model("tiny", random_weights=True, seed=SEED), Path(folder))


def tracker_folder() -> Path:
    folder = tiny_folder()
    return folder.with_name(folder.name + "-tracker")


def tracked(folder: Path) -> bool:
    from sam2_triton.contract import TRACKER_CONSTANTS_FILE

    return (folder / TRACKER_CONSTANTS_FILE).exists()  # written last


def make_tracker_export(folder: Path | str) -> None:
    """The video tracker's graphs of the tests' model, apart from its image export so that they
    can be made beside it: the same seeded weights built again, saved beside them for
    ``same_weights`` to compare with the image export's."""
    from sam2_triton.export import save_checkpoint
    from sam2_triton.export.tracker_export import export_tracker_onnx
    from tests.reduced_model import build_test_model

    folder = Path(folder)
    model = build_test_model()
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, folder / TRACKER_WEIGHTS)
    export_tracker_onnx(model, folder)


TRACKER_WEIGHTS = "weights.pt"


def link_files(paths: Iterable[Path], folder: Path) -> Path:
    """Hard-link the files of ``paths`` into ``folder``, in that order, keeping those already
    there (names are the files' own)."""
    folder.mkdir(exist_ok=True)
    for path in paths:
        if path.is_file() and not (folder / path.name).exists():
            os.link(path, folder / path.name)
    return folder


def same_weights(a: Path, b: Path) -> bool:
    """Whether two checkpoints (the official layout) hold the same tensors."""
    import torch

    first, second = (torch.load(p, map_location="cpu", weights_only=True)["model"] for p in (a, b))
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def gpu_image_folder() -> Path:
    from tests.gpu_image import image_env

    return image_env(CACHE)


def make_gpu_image_python(folder: Path | str) -> None:
    """The GPU image's Python (tests/gpu_image.py) in ``folder``, where Python 3.10 is found."""
    from tests.gpu_image import find_python310, gpu_image_python

    python310 = find_python310()
    if python310 is not None:
        gpu_image_python(Path(folder).parent, python310)


#: What a run may make in processes of their own at collection (tests/prebuild.py): the
#: fixture that needs it -> (its folder, whether that is made, the function here making it).
PREBUILT = {
    "sam3_export": (sam3_folder, sam3_done, "make_sam3_export"),
    "full_depth_export": (full_depth_folder, exported, "make_full_depth_export"),
    "tracker_export": (tracker_folder, tracked, "make_tracker_export"),
    "gpu_python": (gpu_image_folder, lambda folder: False, "make_gpu_image_python"),
}


def sam3_checkpoint(folder: Path) -> Path:
    return folder.with_name(folder.name + ".pt")


def start_beside(fixtures: Iterable[str]) -> None:
    """Start making, each in a process of its own, what ``fixtures`` (a run's) need that is not
    made yet, if they include the reduced export (the one made in the test process)."""
    fixtures = set(fixtures)
    if "tiny_export" not in fixtures:
        return
    for fixture, (folder, done, maker) in PREBUILT.items():
        if fixture in fixtures and not done(folder()):
            code = f"from tests.exports import {maker}; {maker}({str(folder())!r})"
            prebuild.start(folder(), code)
