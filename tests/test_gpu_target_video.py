"""The GPU target's video models, checked without a GPU: their configs against the exported
tracker graphs, the BLS wiring of sam2_video_sessions, and builds with and without video."""

from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import cli
from sam2_triton import contract as c
from sam2_triton.cli import paths
from sam2_triton.repository.build import (
    DECODER_FILE,
    ENCODER_FILE,
    RepositoryError,
    build_repository,
)
from sam2_triton.repository.model_plan import GpuOptions
from tests.conftest import load_configs
from tests.gpu_configs import TRACKER_MODELS, build, parse_profile, trt_parameters

ONNX_DTYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL"}


def test_gpu_configs_match_the_exported_onnx_graphs(tracker_export, tmp_path):
    """What the onnxruntime backend checks when it loads: names, dtypes, batch axis, ranks."""
    import onnx

    configs = build(tracker_export, tmp_path / "gpu", "gpu", decoder_tensorrt=True)
    for name, onnx_file in [
        (c.IMAGE_ENCODER, ENCODER_FILE),
        (c.MASK_DECODER, DECODER_FILE),
        (c.TRACKING_DECODER, c.TRACKING_DECODER_FILE),
        (c.MEMORY_ATTENTION, c.MEMORY_ATTENTION_FILE),
        (c.MEMORY_ENCODER, c.MEMORY_ENCODER_FILE),
    ]:
        config = configs[name]
        graph = onnx.load(tracker_export / onnx_file, load_external_data=False).graph
        for declared, values in [(config.input, graph.input), (config.output, graph.output)]:
            onnx_tensors = {v.name: v.type.tensor_type for v in values}
            assert {t.name for t in declared} == set(onnx_tensors), name
            for tensor in declared:
                onnx_type = onnx_tensors[tensor.name]
                assert ONNX_DTYPES[onnx_type.elem_type] == mc.DataType.Name(tensor.data_type)
                shape = [d.dim_value or -1 for d in onnx_type.shape.dim]
                dims = list(tensor.dims)
                if config.max_batch_size > 0:
                    assert shape[0] == -1, f"{name}.{tensor.name}: the batch axis must be dynamic"
                    dims = [-1, *dims]
                # every declared -1 is dynamic in the file, every fixed size the file's size
                assert len(shape) == len(dims), f"{name}.{tensor.name}"
                assert all(a == b for a, b in zip(shape, dims, strict=True)), (shape, dims)
        if name in TRACKER_MODELS:  # CUDA EP: no TensorRT profile
            assert trt_parameters(config) is None
            continue
        profile = parse_profile(trt_parameters(config)["trt_profile_max_shapes"])
        assert set(profile) == {v.name for v in graph.input}


def test_gpu_video_calls_the_tracker_models_it_declares(fake_export, tmp_path):
    """sam2_video_sessions reaches the tracker's graphs by BLS, with only their constants beside
    it, one instance behind the stateless public models, not decoupled (its frame scheduler
    answers through the response sender; a decoupled callee would need decoupled BLS, which
    crashed the callers' stubs); the three graphs are GPU models whose warmups send shapes the
    graphs accept (every memory frame with its temporal row, every pointer with its position)."""
    repo = tmp_path / "gpu"
    configs = build(fake_export, repo, "gpu", instances=1)
    video = configs[c.VIDEO_SESSIONS]
    assert video.backend == "python" and video.parameters["tracker"].string_value == "bls"
    assert sorted(p.name for p in (repo / c.VIDEO_SESSIONS / "1").iterdir()) == [
        "model.py",
        c.TRACKER_CONSTANTS_FILE,
    ]
    assert [g.count for g in video.instance_group] == [1]  # the sessions' one process
    assert not video.model_transaction_policy.decoupled
    assert int(video.parameters["step_wait_us"].string_value) > 0
    assert sorted(p.name for p in (repo / c.VIDEO / "1").iterdir()) == ["model.py"]
    public = configs[c.VIDEO]  # the same tensors
    assert not public.model_transaction_policy.decoupled
    assert [(i.name, list(i.dims)) for i in public.input] == [
        (i.name, list(i.dims)) for i in video.input
    ]
    assert configs[c.VIDEO_STREAM].model_transaction_policy.decoupled
    for name in TRACKER_MODELS:
        config = configs[name]
        assert config.backend == "onnxruntime" and config.max_batch_size == 0
        assert [(g.kind, g.count) for g in config.instance_group] == [
            (mc.ModelInstanceGroup.KIND_GPU, 1)
        ]
        assert trt_parameters(config) is None
        declared = {i.name: i for i in config.input}
        assert config.model_warmup
        for warmup in config.model_warmup:
            assert set(warmup.inputs) == set(declared), name
            shapes = {n: list(i.dims) for n, i in warmup.inputs.items()}
            for input_name, dims in shapes.items():
                want = list(declared[input_name].dims)
                assert len(dims) == len(want) and all(
                    w in (-1, d) for d, w in zip(dims, want, strict=True)
                ), (name, input_name, dims)
            if name == c.MEMORY_ATTENTION:
                assert shapes["memory"][:2] == shapes["memory_tpos"]
                assert shapes["obj_ptrs"][:2] == shapes["obj_ptr_tpos"]
                assert shapes["memory"][0] == shapes["obj_ptrs"][0] == shapes["vision_feat"][0]
    largest = configs[c.MEMORY_ATTENTION].model_warmup[-1].inputs["vision_feat"].dims[0]
    assert largest == GpuOptions().video_max_objects_per_call


def test_gpu_build_leaves_video_out_for_an_export_without_the_tracker(
    fake_export, tmp_path, monkeypatch, capsys
):
    (fake_export / c.TRACKER_CONSTANTS_FILE).unlink()
    (tmp_path / "exports").mkdir()
    fake_export.rename(tmp_path / "exports" / "tiny")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["build-repo", "--target", "gpu"]) == 0
    assert "export --video" in capsys.readouterr().out
    configs = load_configs(tmp_path / paths.REPOSITORY_DIR)
    assert not {c.VIDEO, c.VIDEO_SESSIONS} & set(configs) and not set(TRACKER_MODELS) & set(configs)
    assert c.SEGMENT in configs
    # a repository rendered with video names what to export when the files are missing
    with pytest.raises(RepositoryError, match="--video"):
        build_repository(tmp_path / "exports" / "tiny", tmp_path / "v", target="gpu")


def test_gpu_build_without_video_on_request(fake_export, tmp_path, monkeypatch):
    (tmp_path / "exports").mkdir()
    fake_export.rename(tmp_path / "exports" / "tiny")  # with the tracker's files
    monkeypatch.chdir(tmp_path)
    assert cli.main(["build-repo", "--target", "gpu", "--out", "with"]) == 0
    assert c.VIDEO in load_configs(tmp_path / "with")
    assert cli.main(["build-repo", "--target", "gpu", "--no-video", "--out", "without"]) == 0
    configs = load_configs(tmp_path / "without")
    assert not {c.VIDEO, c.VIDEO_SESSIONS} & set(configs) and not set(TRACKER_MODELS) & set(configs)
