"""The GPU target, checked without a GPU: every config.pbtxt parsed into Triton's ModelConfig.

What a GPU would add (engines built, masks compared) is listed in docs/gpu.md; everything Triton
and its onnxruntime backend check from the files alone is checked here.
"""

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
from sam2_triton.repository.gpu_configs import preferred_batch_sizes
from sam2_triton.repository.model_plan import BOX_POINTS, GpuOptions
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import model_names
from tests.conftest import load_configs
from tests.gpu_configs import build, parse_profile, trt_parameters

ONNX_MODELS = (c.IMAGE_ENCODER, c.MASK_DECODER)
PYTHON_MODELS = (c.SESSION, c.AUTOMATIC)  # and the ensemble's steps, where there is one
TARGETS = ("embedded", "gpu")

# Every key Triton's onnxruntime backend accepts for its "tensorrt" accelerator (src/onnxruntime.cc,
# 24.04 and later); any other key fails the model's load with "unknown parameter".
ORT_BACKEND_TRT_KEYS = {
    "precision_mode",
    "max_workspace_size_bytes",
    "trt_max_partition_iterations",
    "trt_min_subgraph_size",
    "int8_calibration_table_name",
    "int8_use_native_calibration_table",
    "trt_dla_enable",
    "trt_dla_core",
    "trt_engine_cache_enable",
    "trt_engine_cache_path",
    "trt_engine_cache_prefix",
    "trt_dump_subgraphs",
    "trt_force_sequential_engine_build",
    "trt_context_memory_sharing_enable",
    "trt_layer_norm_fp32_fallback",
    "trt_timing_cache_enable",
    "trt_timing_cache_path",
    "trt_force_timing_cache",
    "trt_detailed_build_log",
    "trt_build_heuristics_enable",
    "trt_sparsity_enable",
    "trt_builder_optimization_level",
    "trt_auxiliary_streams",
    "trt_tactic_sources",
    "trt_extra_plugin_lib_paths",
    "trt_profile_min_shapes",
    "trt_profile_max_shapes",
    "trt_profile_opt_shapes",
    "trt_cuda_graph_enable",
    "trt_dump_ep_context_model",
    "trt_ep_context_file_path",
    "trt_ep_context_embed_mode",
}


@pytest.mark.parametrize("in_process", [True, False])
def test_both_targets_declare_the_same_models_and_tensors(fake_export, tmp_path, in_process):
    """Clients see the same models and tensors; only the GPU target's sam2_segment is an
    ensemble over two more (internal) models, unless the embedded one is asked for it too, and
    its sam2_video calls the tracker's graphs as three models of their own."""
    options = ServingOptions(segment_in_process=in_process, video=True)
    embedded = build(fake_export, tmp_path / "embedded", "embedded", options)
    gpu = build(fake_export, tmp_path / "gpu", "gpu", options)
    assert set(embedded) == set(model_names("embedded", options))
    ensemble_steps = {c.PREPROCESS, c.POSTPROCESS}
    tracker = {c.TRACKING_DECODER, c.MEMORY_ATTENTION, c.MEMORY_ENCODER}
    assert set(gpu) == set(embedded) | ensemble_steps | tracker
    assert (c.PREPROCESS in embedded) is not in_process
    for name, config in embedded.items():
        other = gpu[name]
        assert list(config.input) == list(other.input), name
        assert list(config.output) == list(other.output), name
        assert config.max_batch_size == other.max_batch_size, name
    assert gpu[c.SEGMENT].platform == "ensemble"
    if not in_process:
        assert embedded[c.SEGMENT] == gpu[c.SEGMENT]


def test_onnx_models_run_on_the_onnxruntime_backend_on_gpus(fake_export, tmp_path):
    repo = tmp_path / "gpu"
    configs = build(fake_export, repo, "gpu", instances=3, gpus=(0, 2))
    for name, onnx_file in [(c.IMAGE_ENCODER, ENCODER_FILE), (c.MASK_DECODER, DECODER_FILE)]:
        config = configs[name]
        assert config.backend == "onnxruntime" and not config.platform
        assert config.default_model_filename == "model.onnx"
        assert [(g.kind, g.count, list(g.gpus)) for g in config.instance_group] == [
            (mc.ModelInstanceGroup.KIND_GPU, 3, [0, 2])
        ]
        assert not config.parameters  # the Python backend's ORT thread settings stay behind
        assert (repo / name / "1" / "model.onnx").read_bytes() == (
            fake_export / onnx_file
        ).read_bytes()
        assert not (repo / name / "1" / "model.py").exists()


def test_default_gpu_instances_and_all_gpus(fake_export, tmp_path):
    configs = build(fake_export, tmp_path / "gpu", "gpu")
    for name in ONNX_MODELS:
        [group] = configs[name].instance_group
        assert (group.kind, group.count, list(group.gpus)) == (
            mc.ModelInstanceGroup.KIND_GPU,
            2,
            [],
        )


def test_python_models_stay_on_cpu_on_both_targets(fake_export, tmp_path):
    for target in TARGETS:
        repo = tmp_path / target
        configs = build(fake_export, repo, target)
        steps = (c.PREPROCESS, c.POSTPROCESS) if target == "gpu" else (c.SEGMENT,)
        for name in (*PYTHON_MODELS, *steps):
            config = configs[name]
            assert config.backend == "python", (target, name)
            assert {g.kind for g in config.instance_group} == {mc.ModelInstanceGroup.KIND_CPU}
            source = (repo / name / "1" / "model.py").read_text()
            assert "from sam2_triton.triton_models." in source


def test_gpu_sessions_call_the_gpu_decoder(fake_export, tmp_path):
    repo = tmp_path / "gpu"
    configs = build(fake_export, repo, "gpu")
    assert configs[c.SESSION].parameters["decoder"].string_value == "bls"
    assert sorted(p.name for p in (repo / c.SESSION / "1").iterdir()) == ["model.py"]


def test_encoder_tensorrt_fp16_with_cache_layernorm_and_batch_profile(fake_export, tmp_path):
    configs = build(fake_export, tmp_path / "gpu", "gpu", trt_cache_dir="/cache/trt")
    encoder = configs[c.IMAGE_ENCODER]
    params = trt_parameters(encoder)
    assert params is not None
    assert set(params) <= ORT_BACKEND_TRT_KEYS
    assert params["precision_mode"] == "FP16"
    assert int(params["max_workspace_size_bytes"]) == GpuOptions().workspace_bytes
    assert params["trt_layer_norm_fp32_fallback"] == "1"
    assert params["trt_engine_cache_enable"] == "1"
    assert params["trt_engine_cache_path"] == params["trt_timing_cache_path"] == "/cache/trt"
    low, opt, high = (
        parse_profile(params[f"trt_profile_{k}_shapes"]) for k in ("min", "opt", "max")
    )
    dims = list(c.ENCODER_INPUTS[0].dims)
    assert low == {"image": [1, *dims]}
    assert opt == {"image": [1, *dims]}
    assert high == {"image": [encoder.max_batch_size, *dims]}
    assert configs[c.MASK_DECODER].optimization.ByteSize() == 0  # CUDA EP by default


def test_fp32_precision_is_passed_through(fake_export, tmp_path):
    configs = build(fake_export, tmp_path / "gpu", "gpu", precision="FP32")
    assert trt_parameters(configs[c.IMAGE_ENCODER])["precision_mode"] == "FP32"
    with pytest.raises(ValueError, match="precision"):
        build(fake_export, tmp_path / "bad", "gpu", precision="INT8")


def test_decoder_on_tensorrt_gets_a_profile_for_every_input_and_axis(fake_export, tmp_path):
    options = ServingOptions()
    configs = build(fake_export, tmp_path / "gpu", "gpu", decoder_tensorrt=True)
    decoder = configs[c.MASK_DECODER]
    params = trt_parameters(decoder)
    assert params is not None and set(params) <= ORT_BACKEND_TRT_KEYS
    low, opt, high = (
        parse_profile(params[f"trt_profile_{k}_shapes"]) for k in ("min", "opt", "max")
    )
    declared = {i.name: list(i.dims) for i in decoder.input}
    assert set(low) == set(opt) == set(high) == set(declared)
    assert decoder.max_batch_size == 0  # one image per call: its axes are all in dims
    most_points = options.max_points + BOX_POINTS
    for name, dims in declared.items():
        # the first -1 is the prompt-set axis, a later one the point axis
        want_low = [1 if d == -1 else d for d in dims]
        want_high = [
            (options.decoder_max_prompts if i == 0 else most_points) if d == -1 else d
            for i, d in enumerate(dims)
        ]
        assert low[name] == want_low and high[name] == want_high, name
        assert all(
            lo <= o <= hi for lo, o, hi in zip(low[name], opt[name], high[name], strict=True)
        )
    assert low["image_embed"] == high["image_embed"] == [1, 4096, 256]  # one image, always


def test_warmup_covers_the_smallest_and_largest_shape_of_the_contract(fake_export, tmp_path):
    options = ServingOptions()
    configs = build(fake_export, tmp_path / "gpu", "gpu")
    most_points = options.max_points + BOX_POINTS
    for name in ONNX_MODELS:
        config = configs[name]
        declared = {i.name: i for i in config.input}
        batched = config.max_batch_size > 0
        rows = config.max_batch_size if batched else options.decoder_max_prompts
        assert [w.batch_size for w in config.model_warmup] == [1, rows if batched else 1]
        for warmup, size in zip(config.model_warmup, ((1, 1), (rows, most_points)), strict=True):
            assert set(warmup.inputs) == set(declared), name
            for input_name, sample in warmup.inputs.items():
                tensor = declared[input_name]
                assert sample.data_type == tensor.data_type
                want = [
                    (size[0] if i == 0 and not batched else size[1]) if d == -1 else d
                    for i, d in enumerate(tensor.dims)
                ]
                assert list(sample.dims) == want, (name, input_name)
                assert sample.zero_data
    # and the contract's shapes are what the warmup sends (not just what the config says)
    encoder_warmup = configs[c.IMAGE_ENCODER].model_warmup[0].inputs["image"]
    assert tuple(encoder_warmup.dims) == c.ENCODER_INPUTS[0].dims


def test_dynamic_batching_is_tuned_per_model(fake_export, tmp_path):
    gpu = GpuOptions()
    configs = build(fake_export, tmp_path / "gpu", "gpu")
    encoder, decoder = configs[c.IMAGE_ENCODER], configs[c.MASK_DECODER]
    sizes = list(encoder.dynamic_batching.preferred_batch_size)
    assert sizes == sorted(set(sizes)) and sizes[-1] == encoder.max_batch_size
    assert all(1 <= s <= encoder.max_batch_size for s in sizes)
    assert encoder.dynamic_batching.max_queue_delay_microseconds == gpu.encoder_queue_delay_us
    # the decoder batches prompt sets within a call (one image's), never images across calls
    assert decoder.max_batch_size == 0 and not decoder.HasField("dynamic_batching")


def test_preferred_batch_sizes():
    assert preferred_batch_sizes(4, 2) == [2, 4]
    assert preferred_batch_sizes(16, 4) == [4, 8, 16]
    assert preferred_batch_sizes(12, 4) == [4, 8, 12]
    assert preferred_batch_sizes(1, 2) == [1]


@pytest.mark.parametrize("target", TARGETS)
def test_ensemble_wiring_matches_each_models_declared_tensors(fake_export, tmp_path, target):
    options = ServingOptions(segment_in_process=False)  # the embedded target's default is one model
    configs = build(fake_export, tmp_path / target, target, options)
    segment = configs[c.SEGMENT]
    available = {i.name: (i.data_type, list(i.dims)) for i in segment.input}
    for step in segment.ensemble_scheduling.step:
        model = configs[step.model_name]
        batch = [1] if model.max_batch_size > 0 else []  # the ensemble sends one row
        inputs = {i.name: i for i in model.input}
        required = {name for name, i in inputs.items() if not i.optional}
        assert set(step.input_map) <= set(inputs), step.model_name
        assert required <= set(step.input_map), step.model_name
        for model_input, tensor in step.input_map.items():
            assert tensor in available, f"{step.model_name} reads {tensor} before it exists"
            dtype, dims = available[tensor]
            declared = inputs[model_input]
            assert dtype == declared.data_type, (step.model_name, model_input)
            expected = batch + list(declared.dims)
            assert len(dims) == len(expected), (step.model_name, model_input, dims, expected)
            assert all(a == b or -1 in (a, b) for a, b in zip(dims, expected, strict=True))
        outputs = {o.name: o for o in model.output}
        for model_output, tensor in step.output_map.items():
            assert model_output in outputs, step.model_name
            # Triton infers each ensemble tensor's shape once: a second writer is an error.
            assert tensor not in available, f"{step.model_name} redefines ensemble tensor {tensor}"
            output = outputs[model_output]
            available[tensor] = (output.data_type, batch + list(output.dims))
    for output in segment.output:
        assert output.name in available
        assert available[output.name][0] == output.data_type


def test_switching_target_is_refused_unless_forced(fake_export, tmp_path):
    """`serve --repository model_repository` must not turn the GPU repository into the CPU one."""
    repo = tmp_path / "repo"
    assert build_repository(fake_export, repo) is True
    with pytest.raises(RepositoryError, match="holds the embedded target"):
        build_repository(fake_export, repo, target="gpu")
    assert build_repository(fake_export, repo, target="gpu", force=True) is True
    assert not (repo / c.IMAGE_ENCODER / "1" / "model.py").exists()
    assert build_repository(fake_export, repo, target="gpu") is False
    assert build_repository(fake_export, repo, target="gpu", gpu=GpuOptions(instances=1)) is True
    assert build_repository(fake_export, repo, force=True) is True
    assert (repo / c.IMAGE_ENCODER / "1" / "model.py").exists()


def test_unknown_target_is_refused(fake_export, tmp_path):
    with pytest.raises(ValueError, match="unknown target"):
        build_repository(fake_export, tmp_path / "repo", target="tpu")


def test_cli_builds_the_gpu_target_into_its_own_folder(fake_export, tmp_path, monkeypatch, capsys):
    (tmp_path / "exports").mkdir()
    fake_export.rename(tmp_path / "exports" / "small")
    monkeypatch.chdir(tmp_path)
    argv = ["build-repo", "--model", "small", "--target", "gpu", "--gpu-instances", "4"]
    assert cli.main([*argv, "--gpus", "1", "--trt-cache-dir", "/engines"]) == 0
    configs = load_configs(tmp_path / paths.REPOSITORY_DIR)
    [group] = configs[c.IMAGE_ENCODER].instance_group
    assert (group.count, list(group.gpus)) == (4, [1])
    assert trt_parameters(configs[c.IMAGE_ENCODER])["trt_engine_cache_path"] == "/engines"
    assert "gpu model repository built" in capsys.readouterr().out
    assert not (tmp_path / paths.EMBEDDED_REPOSITORY_DIR).exists()
    assert cli.main(["build-repo", "--model", "small"]) == 0
    embedded = load_configs(tmp_path / paths.EMBEDDED_REPOSITORY_DIR)
    assert embedded[c.IMAGE_ENCODER].backend == "python"


def test_gpu_build_points_at_fused_exports(fake_export, tmp_path, monkeypatch, capsys):
    (fake_export / c.EXPORT_METADATA_FILE).write_text('{"optimized": true, "weights": "random"}')
    (tmp_path / "exports").mkdir()
    fake_export.rename(tmp_path / "exports" / "tiny")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["build-repo", "--target", "gpu"]) == 0
    err = capsys.readouterr().err
    assert "--no-ort-fusions" in err and "RANDOM weights" in err
