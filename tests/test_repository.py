"""The model repository is generated from one description; check what Triton will read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.cli import main as cli_main
from sam2_triton.repository.build import (
    DECODER_FILE,
    ENCODER_FILE,
    MARKER,
    RepositoryError,
    build_repository,
    refresh_exports,
    render_files,
    serving,
    stale_files,
    write_repository,
)
from sam2_triton.repository.options import INSTANCE_OPTIONS, ServingOptions
from tests.conftest import load_configs

MODELS = (c.SEGMENT, c.IMAGE_ENCODER, c.MASK_DECODER, c.SESSION, c.AUTOMATIC)
ENSEMBLE_STEPS = (c.PREPROCESS, c.POSTPROCESS)


def test_every_config_parses_and_declares_the_contract(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(encoder_instances=3, segment_instances=2))
    configs = load_configs(repo)
    assert set(configs) == set(MODELS)
    encoder = configs[c.IMAGE_ENCODER]
    assert encoder.backend == "python" and encoder.max_batch_size == 4
    assert encoder.instance_group[0].count == 3
    assert encoder.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    assert encoder.HasField("dynamic_batching")
    assert [i.name for i in configs[c.MASK_DECODER].input] == [t.name for t in c.DECODER_INPUTS]
    segment = configs[c.SEGMENT]
    assert segment.backend == "python" and segment.max_batch_size == 0
    assert segment.instance_group[0].count == 2  # segment_instances, each with its own encoder
    assert {i.name: i.optional for i in segment.input} == {
        "image": False,
        "point_coords": True,
        "point_labels": True,
        "box": True,
        "multimask_output": True,
        "mask_input": True,
        "output_format": True,
        "mask_size": True,
        "polygon_tolerance": True,
        "point_coords_batch": True,
        "point_labels_batch": True,
        "box_batch": True,
        "mask_input_batch": True,
    }
    outputs = ["masks", "iou_scores", "low_res_logits", "encoded_masks"]
    assert [o.name for o in segment.output] == outputs
    session = configs[c.SESSION]
    assert session.backend == "python" and session.max_batch_size == 0
    assert {i.name for i in session.input} == {i.name for i in segment.input} | {"image_id"}
    assert all(i.optional for i in session.input)  # image or image_id: checked by the model
    assert [o.name for o in session.output] == [*outputs, "image_id"]
    assert session.parameters["cache_bytes"].string_value == str(1 << 30)
    assert (repo / c.IMAGE_ENCODER / "1" / "model.onnx").read_bytes() == b"encoder"
    assert (repo / c.MASK_DECODER / "1" / "model.onnx").read_bytes() == b"decoder"


def test_segment_runs_the_onnx_files_beside_it_or_is_the_ensemble(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo)
    segment = load_configs(repo)[c.SEGMENT]
    assert segment.parameters["encoder"].string_value == ENCODER_FILE
    assert segment.parameters["decoder"].string_value == DECODER_FILE
    assert (repo / c.SEGMENT / "1" / ENCODER_FILE).read_bytes() == b"encoder"
    assert (repo / c.SEGMENT / "1" / DECODER_FILE).read_bytes() == b"decoder"
    assert not any((repo / name).exists() for name in ENSEMBLE_STEPS)

    build_repository(fake_export, repo, ServingOptions(segment_in_process=False))
    configs = load_configs(repo)
    assert set(configs) == {*MODELS, *ENSEMBLE_STEPS}
    assert configs[c.SEGMENT].platform == "ensemble"
    assert sorted(p.name for p in (repo / c.SEGMENT).iterdir()) == ["1", "config.pbtxt"]
    # the version folder Triton needs, kept in git by an empty file
    assert [p.name for p in (repo / c.SEGMENT / "1").iterdir()] == [".gitkeep"]


def test_ensemble_wiring_matches_each_models_declared_tensors(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(segment_in_process=False))
    configs = load_configs(repo)
    segment = configs[c.SEGMENT]
    available = {i.name for i in segment.input}
    for step in segment.ensemble_scheduling.step:
        model = configs[step.model_name]
        inputs = {i.name: i for i in model.input}
        required = {name for name, i in inputs.items() if not i.optional}
        assert set(step.input_map) <= set(inputs), step.model_name
        assert required <= set(step.input_map), step.model_name
        for tensor in step.input_map.values():
            assert tensor in available, f"{step.model_name} reads {tensor} before it exists"
        assert set(step.output_map) <= {o.name for o in model.output}
        available |= set(step.output_map.values())
    assert {o.name for o in segment.output} <= available


@pytest.mark.parametrize("in_process", [True, False])
def test_model_py_files_import_the_package_models(fake_export, tmp_path, in_process):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(segment_in_process=in_process))
    segment = [(c.SEGMENT, "segment")]
    if not in_process:
        segment = [(c.PREPROCESS, "preprocess"), (c.POSTPROCESS, "postprocess")]
    for name, module in [
        *segment,
        (c.IMAGE_ENCODER, "onnx_model"),
        (c.MASK_DECODER, "onnx_model"),
        (c.SESSION, "session"),
        (c.AUTOMATIC, "automatic"),
    ]:
        source = (repo / name / "1" / "model.py").read_text()
        assert f"from sam2_triton.triton_models.{module} import TritonPythonModel" in source


def test_rebuild_only_when_something_changed(fake_export, tmp_path):
    repo = tmp_path / "repo"
    assert build_repository(fake_export, repo) is True
    assert build_repository(fake_export, repo) is False
    assert build_repository(fake_export, repo, ServingOptions(decoder_instances=1)) is True
    (fake_export / DECODER_FILE).write_bytes(b"new decoder!")
    assert build_repository(fake_export, repo, ServingOptions(decoder_instances=1)) is True
    assert (repo / c.MASK_DECODER / "1" / "model.onnx").read_bytes() == b"new decoder!"


def test_missing_export_says_what_to_run(tmp_path):
    with pytest.raises(RepositoryError, match="sam2-triton export --model"):
        build_repository(tmp_path / "nothing", tmp_path / "repo")


@pytest.mark.parametrize("in_process", [True, False])
def test_session_runs_the_decoder_file_beside_it_or_calls_the_decoder_model(
    fake_export, tmp_path, in_process
):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(decoder_in_process=in_process))
    session = load_configs(repo)[c.SESSION]
    copied = repo / c.SESSION / "1" / DECODER_FILE
    if in_process:
        assert session.parameters["decoder"].string_value == DECODER_FILE
        assert copied.read_bytes() == b"decoder"
    else:
        assert session.parameters["decoder"].string_value == "bls"
        assert not copied.exists()


def test_cpu_precision_reaches_every_model_that_runs_onnx(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(cpu_precision="bf16"))
    configs = load_configs(repo)
    for name in (c.SEGMENT, c.IMAGE_ENCODER, c.MASK_DECODER, c.SESSION):
        assert configs[name].parameters["precision"].string_value == "bf16", name


def test_instances_are_set_per_model_by_name(fake_export, tmp_path, capsys):
    """Each model's instance count comes from its own option (CLI: --instances MODEL=N)."""
    counts = {name: 2 + i for i, name in enumerate(INSTANCE_OPTIONS)}
    fields = {INSTANCE_OPTIONS[name]: n for name, n in counts.items()}
    options = ServingOptions(segment_in_process=False, **fields)
    configs = load_configs(_built(fake_export, tmp_path / "repo", options))
    for name, config in configs.items():
        if name != c.SEGMENT:  # the ensemble has no instances of its own
            assert config.instance_group[0].count == counts[name], name
    with pytest.raises(SystemExit):  # argparse: exit 2, naming the valid models
        cli_main(["build-repo", "--instances", "sam2_bogus=2"])
    assert "sam2_session" in capsys.readouterr().err
    # a model the target runs elsewhere (on GPUs) or not at all is refused, not ignored
    gpu_out = str(tmp_path / "g")
    assert cli_main(["build-repo", "--target", "gpu", "--configs-only", "--out", gpu_out,
                     "--instances", "sam2_image_encoder=3"]) == 1  # fmt: skip
    assert "--gpu-instances" in capsys.readouterr().err
    assert cli_main(["build-repo", "--out", str(tmp_path / "e"), "--configs-only",
                     "--instances", "sam2_preprocess=3"]) == 1  # fmt: skip
    assert "no CPU instances of sam2_preprocess" in capsys.readouterr().err
    assert not (tmp_path / "g").exists() and not (tmp_path / "e").exists()


def test_a_folder_with_someone_elses_file_is_refused_and_kept(fake_export, tmp_path):
    for out in (tmp_path / "theirs", tmp_path / "ours"):
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        if out.name == "ours":  # a repository we wrote, with a file added by someone
            (out / "notes.txt").unlink()
            build_repository(fake_export, out)
            (out / c.SESSION / "notes.txt").write_text("mine")
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        with pytest.raises(RepositoryError, match="notes.txt|not written by sam2-triton"):
            build_repository(fake_export, out, ServingOptions(decoder_instances=1))
        assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
        assert "mine" in {p.read_text() for p in out.rglob("notes.txt")}


def test_a_file_where_the_folder_should_be_is_refused(fake_export, tmp_path):
    (tmp_path / "repo").write_text("mine")
    with pytest.raises(RepositoryError, match="is a file"):
        build_repository(fake_export, tmp_path / "repo")
    assert (tmp_path / "repo").read_text() == "mine"


def test_the_cli_refuses_with_a_clear_error(fake_export, tmp_path, monkeypatch, capsys):
    (tmp_path / "exports").mkdir()
    fake_export.rename(tmp_path / "exports" / "tiny")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "model.onnx").write_bytes(b"precious")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["build-repo", "--out", "mine"]) == 1
    assert "not written by sam2-triton" in capsys.readouterr().err
    assert (tmp_path / "mine" / "model.onnx").read_bytes() == b"precious"


def test_a_failed_build_leaves_the_old_repository_and_no_temporary_folder(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo)
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    (fake_export / DECODER_FILE).unlink()
    with pytest.raises(RepositoryError, match="missing mask_decoder.onnx"):
        build_repository(fake_export, repo, ServingOptions(decoder_instances=1))
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "repo"]


def test_a_served_repository_is_not_replaced(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo)
    with serving(repo):
        assert build_repository(fake_export, repo) is False  # up to date: nothing to replace
        with pytest.raises(RepositoryError, match="is serving"):
            build_repository(fake_export, repo, ServingOptions(decoder_instances=1))
        assert load_configs(repo)[c.MASK_DECODER].instance_group[0].count == 2
    assert build_repository(fake_export, repo, ServingOptions(decoder_instances=1)) is True


def test_files_the_server_writes_beside_model_py_do_not_block_a_rebuild(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo)
    cache = repo / c.SESSION / "1" / "__pycache__"
    cache.mkdir()
    (cache / "model.cpython-311.pyc").write_bytes(b"")
    assert build_repository(fake_export, repo, ServingOptions(decoder_instances=1)) is True


def test_configs_only_keeps_the_onnx_files_an_export_placed(fake_export, tmp_path):
    repo = tmp_path / "repo"
    write_repository(repo, "gpu", ServingOptions(session_instances=3))  # configs only
    assert not (repo / c.IMAGE_ENCODER / "1" / "model.onnx").exists()
    assert refresh_exports(repo, fake_export) is True  # what `sam2-triton export` does
    assert (repo / c.IMAGE_ENCODER / "1" / "model.onnx").read_bytes() == b"encoder"
    assert load_configs(repo)[c.SESSION].instance_group[0].count == 3  # its options kept
    assert refresh_exports(repo, fake_export) is False  # same export: nothing to do
    assert write_repository(repo, "gpu", ServingOptions(session_instances=1)) is True
    assert (repo / c.MASK_DECODER / "1" / "model.onnx").read_bytes() == b"decoder"
    assert load_configs(repo)[c.SESSION].instance_group[0].count == 1


def test_export_places_nothing_into_a_folder_sam2_triton_did_not_write(fake_export, tmp_path):
    (tmp_path / "theirs").mkdir()
    assert refresh_exports(tmp_path / "theirs", fake_export) is None
    assert not any((tmp_path / "theirs").iterdir())


def test_a_repository_an_earlier_version_wrote_is_replaced(fake_export, tmp_path):
    """Before the marker, build.json alone said a folder was ours: upgrades keep working."""
    repo = tmp_path / "repo"
    old_build_json = '{"fingerprint": "f", "export_dir": "e", "options": {}, "target": "embedded"}'
    build_repository(fake_export, repo)
    for name in (MARKER, "README.md"):
        (repo / name).unlink()
    (repo / "build.json").write_text(old_build_json)
    assert build_repository(fake_export, repo, ServingOptions(decoder_instances=1)) is True
    (repo / MARKER).unlink()
    (repo / "build.json").write_text(old_build_json)
    (repo / c.SEGMENT / "notes.txt").write_text("mine")
    with pytest.raises(RepositoryError, match="notes.txt"):
        build_repository(fake_export, repo)


def test_links_and_empty_folders_of_someone_else_are_foreign(fake_export, tmp_path):
    repo, theirs = tmp_path / "repo", tmp_path / "their_model"
    theirs.mkdir()
    (theirs / "config.pbtxt").write_text("name: 'theirs'")
    build_repository(fake_export, repo)
    (repo / "their_model").symlink_to(theirs, target_is_directory=True)
    with pytest.raises(RepositoryError, match="their_model"):
        build_repository(fake_export, repo, ServingOptions(decoder_instances=1))
    (repo / "their_model").unlink()
    (repo / "empty").mkdir()
    with pytest.raises(RepositoryError, match="empty/"):
        build_repository(fake_export, repo, ServingOptions(decoder_instances=1))
    assert (theirs / "config.pbtxt").exists() and (repo / "empty").is_dir()


def test_a_linked_repository_folder_is_rebuilt_where_the_link_points(fake_export, tmp_path):
    real, link = tmp_path / "real", tmp_path / "link"
    build_repository(fake_export, real)
    link.symlink_to(real, target_is_directory=True)
    assert build_repository(fake_export, link, ServingOptions(decoder_instances=1)) is True
    assert link.is_symlink() and link.resolve() == real
    assert load_configs(real)[c.MASK_DECODER].instance_group[0].count == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "link", "real"]


def test_the_repository_folder_is_readable_by_other_users(fake_export, tmp_path):
    """mkdtemp makes 0700 folders; a server running as another user must still read ours."""
    repo = tmp_path / "repo"
    build_repository(fake_export, repo)
    assert repo.stat().st_mode & 0o055 == 0o055 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_checkout_over_an_old_generated_model_repository_still_takes_an_export(
    fake_export, tmp_path
):
    """Before, model_repository/ was a git-ignored embedded build; a pull now brings the
    committed GPU files (and marker) over its leftovers, which must not block an export."""
    repo = tmp_path / "model_repository"
    build_repository(fake_export, repo)  # the embedded build an earlier version wrote ...
    (repo / MARKER).unlink()
    (repo / "README.md").unlink()
    (repo / "build.json").write_text('{"fingerprint": "f", "options": {}, "target": "embedded"}')
    for name, text in render_files("gpu").items():  # ... and what the checkout brings
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    assert refresh_exports(repo, fake_export) is True
    assert not (repo / c.SEGMENT / "1" / ENCODER_FILE).exists()  # the leftovers are gone
    assert (repo / c.IMAGE_ENCODER / "1" / "model.onnx").read_bytes() == b"encoder"
    assert not stale_files(repo, render_files("gpu"))


def _built(export: Path, out: Path, options: ServingOptions) -> Path:
    build_repository(export, out, options)
    return out
