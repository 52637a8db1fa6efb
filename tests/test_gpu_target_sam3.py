"""The GPU target's SAM 3 models, checked without a GPU: the configs of SAM 3's graphs (models
of their own on the onnxruntime backend) against the exported graphs, sam3_concepts wired to
them through BLS, and build-repo serving them for an export that has SAM 3. Served through the
GPU image's Python: tests/test_gpu_runtime.py."""

from __future__ import annotations

from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.cli.build_repo import with_video_if_exported
from sam2_triton.families import SAM2, SAM3
from sam2_triton.repository.model_plan import GpuOptions
from sam2_triton.repository.options import ServingOptions
from tests.gpu_configs import build, parse_profile, trt_parameters

ONNX_DTYPES = {1: "TYPE_FP32", 6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL"}
GRAPHS = {c.SAM3_VISION: "vision", c.SAM3_TEXT: "text", c.SAM3_DETECTOR: "detector"}


def _declared(config: mc.ModelConfig, tensor) -> tuple[str, list[int]]:
    """A config tensor's dtype and its shape as the ONNX file has it (batch axis first)."""
    dims = list(tensor.dims)
    return mc.DataType.Name(tensor.data_type), [-1, *dims] if config.max_batch_size else dims


def _graph(values) -> dict[str, tuple[str, list[int]]]:
    return {
        v.name: (
            ONNX_DTYPES[v.type.tensor_type.elem_type],
            [d.dim_value or -1 for d in v.type.tensor_type.shape.dim],
        )
        for v in values
    }


def _loads_as_exported(config: mc.ModelConfig, repo, onnx_file) -> None:
    """What the onnxruntime backend checks when it loads (names, dtypes, batch axis, shapes),
    and the file hard-linked from the export."""
    import onnx

    name = config.name
    graph = onnx.load(onnx_file, load_external_data=False).graph
    inputs, outputs = _graph(graph.input), _graph(graph.output)
    assert [t.name for t in config.input] == list(inputs), name  # every input, in order
    assert {t.name for t in config.output} <= set(outputs), name
    for tensor in [*config.input, *config.output]:
        dtype, shape = {**inputs, **outputs}[tensor.name]
        declared_dtype, dims = _declared(config, tensor)
        # the backend's check: the same rank, the batch axis dynamic in the file, every size
        # the file fixes declared as it is (the backbone's maps are dynamic in the file)
        assert declared_dtype == dtype and len(dims) == len(shape), f"{name}.{tensor.name}"
        assert all(f in (-1, d) for f, d in zip(shape, dims, strict=True)), (shape, dims)
        assert not config.max_batch_size or shape[0] == -1, f"{name}.{tensor.name}"
    model_file = repo / name / "1" / "model.onnx"
    assert model_file.stat().st_ino == onnx_file.stat().st_ino  # hard-linked, not copied


def test_sam3_graphs_run_on_gpus_as_exported_and_sam3_concepts_calls_them(served_export, tmp_path):
    """What the onnxruntime backend checks when it loads (names, dtypes, batch axis, shapes);
    the backbone on TensorRT FP16 with its LayerNorms in FP32 and a profile over its batch; the
    text encoder and the detector on the CUDA EP; sam3_concepts on the CPU with the vocabulary
    beside it and ``graphs: bls``."""
    options = ServingOptions(concepts=True)
    repo = tmp_path / "gpu"
    configs = build(served_export, repo, "gpu", options, concepts_max_batch=3)
    for name, graph_name in GRAPHS.items():
        config = configs[name]
        assert config.backend == "onnxruntime" and config.default_model_filename == "model.onnx"
        assert {g.kind for g in config.instance_group} == {mc.ModelInstanceGroup.KIND_GPU}
        _loads_as_exported(config, repo, served_export / c.SAM3_FILES[graph_name])
    # the backbone: the detector's three maps of its six outputs (the others are the
    # interactive model's), on TensorRT
    assert [t.name for t in configs[c.SAM3_VISION].output] == ["fpn_288", "fpn_144", "fpn_72"]
    vision = trt_parameters(configs[c.SAM3_VISION])
    assert vision["precision_mode"] == "FP16" and vision["trt_layer_norm_fp32_fallback"] == "1"
    assert parse_profile(vision["trt_profile_max_shapes"]) == {"image": [3, 3, 1008, 1008]}
    assert configs[c.SAM3_VISION].max_batch_size == 3
    assert trt_parameters(configs[c.SAM3_TEXT]) is None
    assert trt_parameters(configs[c.SAM3_DETECTOR]) is None
    assert configs[c.SAM3_TEXT].max_batch_size == options.concepts_max_phrases
    concepts = configs[c.CONCEPTS]
    assert concepts.backend == "python"
    assert {g.kind for g in concepts.instance_group} == {mc.ModelInstanceGroup.KIND_CPU}
    assert concepts.parameters["graphs"].string_value == "bls"
    assert "intra_op_num_threads" not in concepts.parameters
    beside = {p.name for p in (repo / c.CONCEPTS / "1").iterdir()}
    assert beside == {"model.py", c.VOCABULARY_FILE}  # no graph runs in its process


def test_build_repo_serves_sam3_on_either_target_when_the_export_has_it(
    served_export, sam3_export, fake_export
):
    """Concepts wherever SAM 3's graphs are; SAM 3's clicks only where SAM 2.1's are not."""
    cases = (
        (served_export, True, SAM2),
        (sam3_export, True, SAM3),
        (fake_export, False, SAM2),
    )
    for target in ("embedded", "gpu"):
        for export, served, family in cases:
            options, _ = with_video_if_exported(ServingOptions(), export, target, GpuOptions())
            assert options.concepts is served, (target, export)
            assert options.family == family.name, (target, export)


def test_sam3s_interactive_model_answers_clicks_on_gpus(sam3_export, tmp_path):
    """SAM 3's export alone on the GPU target: the image encoder is its backbone (TensorRT FP16,
    LayerNorms in FP32) with the interactive model's three outputs, the decoder its interactive
    decoder, both as exported; sam2_segment's ensemble and the Python models at SAM 3's sizes;
    no video models (SAM 3's tracker is not exported)."""
    options, gpu = with_video_if_exported(ServingOptions(), sam3_export, "gpu", GpuOptions())
    repo = tmp_path / "gpu"
    configs = build(sam3_export, repo, "gpu", options, video=gpu.video)
    _loads_as_exported(configs[c.IMAGE_ENCODER], repo, sam3_export / SAM3.encoder_file)
    _loads_as_exported(configs[c.MASK_DECODER], repo, sam3_export / SAM3.decoder_file)
    encoder = configs[c.IMAGE_ENCODER]
    assert [list(t.dims) for t in encoder.output] == [[5184, 256], [20736, 128], [5184, 256]]
    assert trt_parameters(encoder)["trt_layer_norm_fp32_fallback"] == "1"
    dims = {m: {t.name: list(t.dims) for t in [*configs[m].input, *configs[m].output]}
            for m in (c.SEGMENT, c.SESSION, c.PREPROCESS, c.POSTPROCESS)}  # fmt: skip
    assert dims[c.SESSION]["mask_input"] == [1, 288, 288]
    assert dims[c.SESSION]["low_res_logits"] == dims[c.SEGMENT]["low_res_logits"] == [-1, 288, 288]
    assert dims[c.PREPROCESS]["image_1024"] == [1, 3, 1008, 1008]
    assert dims[c.POSTPROCESS]["low_res_masks"] == [-1, 4, 288, 288]
    for model in (c.SESSION, c.AUTOMATIC, c.PREPROCESS, c.POSTPROCESS):
        assert configs[model].parameters["family"].string_value == "sam3", model
    assert not {c.VIDEO, c.VIDEO_SESSIONS, c.TRACKING_DECODER} & set(configs)
