"""``sam2-triton export --sam3``. The suite's SAM 3 export is made by the command's own
function with the tests' reduced model (conftest's ``sam3_export``): seeded random weights
saved in the official layout, the graphs exported and checked against sam3, and every SAM 3
test then runs on those weights read back by ``load_sam3`` (conftest's ``sam3_model``). Here:
what that export holds, the check failing a model that is not the exported one, the export
linked beside a SAM 2.1 export and served with it, and a checkpoint of another model refused."""

from __future__ import annotations

import copy
import json
import os

from sam2_triton import contract as c
from sam2_triton.cli import main as cli_main
from sam2_triton.concepts.graphs import FILES


def test_the_export_is_checked_linked_beside_sam2_and_served(
    sam3_export, sam3_model, tiny_export, tmp_path, monkeypatch
):
    from sam2_triton.cli.build_repo import build_repo
    from sam2_triton.cli.export_sam3 import link_beside
    from sam2_triton.concepts.tokens import clip_vocabulary
    from sam2_triton.export.sam3_check import RELATIVE_TOLERANCE, check_sam3
    from sam2_triton.export.sam3_export import perturbed

    record = json.loads((sam3_export / "sam3.json").read_text())
    assert (record["weights"], record["seed"]) == ("random", 0)
    assert {*FILES.values(), c.VOCABULARY_FILE} <= {p.name for p in sam3_export.iterdir()}
    other = perturbed(copy.deepcopy(sam3_model[0]), 1)  # the check is not a formality
    assert check_sam3(other, sam3_export, clip_vocabulary()).worst > RELATIVE_TOLERANCE

    monkeypatch.chdir(tmp_path)
    tiny = tmp_path / "exports" / "tiny"
    tiny.mkdir(parents=True)
    for path in tiny_export.export_dir.iterdir():
        os.link(path, tiny / path.name)
    link_beside(sam3_export, "tiny")
    link_beside(sam3_export, "tiny")  # again: its own links replaced
    for name in (*FILES.values(), c.VOCABULARY_FILE):
        assert (tiny / name).stat().st_ino == (sam3_export / name).stat().st_ino, name
    repo = build_repo("tiny", tmp_path / "repo")  # as serve builds it
    assert (repo / c.CONCEPTS / "config.pbtxt").is_file()


def test_a_checkpoint_of_another_model_is_refused_by_name(tiny_export, capsys):
    assert cli_main(["export", "--sam3", "--checkpoint", str(tiny_export.checkpoint)]) == 2
    error = capsys.readouterr().err
    assert str(tiny_export.checkpoint) in error and "not a SAM 3 checkpoint key" in error
