"""The model repository is generated from one description; check what Triton will read."""

from __future__ import annotations

from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.repository import (
    DECODER_FILE,
    ENCODER_FILE,
    RepositoryError,
    ServingOptions,
    build_repository,
)
from tests.test_gpu_target import load_configs

MODELS = (c.SEGMENT, c.IMAGE_ENCODER, c.MASK_DECODER, c.SESSION, c.AUTOMATIC)
ENSEMBLE_STEPS = (c.PREPROCESS, c.POSTPROCESS)


@pytest.fixture
def fake_export(tmp_path: Path) -> Path:
    export = tmp_path / "export"
    export.mkdir()
    (export / ENCODER_FILE).write_bytes(b"encoder")
    (export / DECODER_FILE).write_bytes(b"decoder")
    return export


def test_every_config_parses_and_declares_the_contract(fake_export, tmp_path):
    repo = tmp_path / "repo"
    build_repository(fake_export, repo, ServingOptions(encoder_instances=3))
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
    assert segment.instance_group[0].count == 3  # one encoder each: encoder_instances
    assert {i.name: i.optional for i in segment.input} == {
        "image": False,
        "point_coords": True,
        "point_labels": True,
        "box": True,
        "multimask_output": True,
        "mask_input": True,
        "output_format": True,
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
    assert not any((repo / c.SEGMENT / "1").iterdir())


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
    build_repository(fake_export, repo, ServingOptions(session_decoder_in_process=in_process))
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
