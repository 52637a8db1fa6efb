"""Build a Triton model repository from one description.

Every ``config.pbtxt`` is rendered from ``sam2_triton.contract`` through Triton's own
``ModelConfig`` protobuf (so a config that does not parse cannot be written), every ``model.py``
is a two-line adapter importing this package, and the ONNX files come from an export folder.

Layout written (embedded target)::

    <out>/sam2_segment/{config.pbtxt,1/model.py,1/image_encoder.onnx,1/mask_decoder.onnx}
    <out>/sam2_image_encoder/{config.pbtxt,1/model.py,1/model.onnx}
    <out>/sam2_mask_decoder/{config.pbtxt,1/model.py,1/model.onnx}
    <out>/sam2_session/{config.pbtxt,1/model.py,1/mask_decoder.onnx}
    <out>/sam2_automatic/{config.pbtxt,1/model.py}
    <out>/build.json                                 (what it was built from)

The GPU target (``target="gpu"``, for the NGC tritonserver image) serves the same tensors under
the same names. Its ``sam2_segment`` is an ensemble (``sam2_preprocess`` -> encoder -> decoder ->
``sam2_postprocess``) so that the encoder's dynamic batching serves every request; the encoder and
decoder run on Triton's onnxruntime backend on GPUs (``sam2_triton.gpu_config``), so their folders
hold ``config.pbtxt`` and ``1/model.onnx`` only. ``ServingOptions(segment_in_process=False)``
gives the embedded target the ensemble too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.gpu_config import GpuOptions, gpu_model_config
from sam2_triton.processing import DEFAULT_MAX_IMAGE_PIXELS, DEFAULT_MAX_POINTS

ENCODER_FILE = c.ENCODER_FILE
DECODER_FILE = c.DECODER_FILE
BUILD_INFO = "build.json"
SESSION_DECODER = "decoder"  # sam2_session's parameter: how it runs the decoder
#: Parameters naming an ONNX file a Python model runs itself (placed beside its model.py).
LOCAL_ONNX_PARAMETERS = ("encoder", SESSION_DECODER)
#: embedded: the CPU-only tritonserver of ``serve``; gpu: the NGC image (docker-compose.yml).
TARGETS = ("embedded", "gpu")


@dataclass(frozen=True)
class ServingOptions:
    """Deployment knobs: instance counts, batching, limits (a change rebuilds the repository)."""

    # One encoder instance: its ORT threads already use every core; two on a 2-core CPU
    # oversubscribe it (measured: docs/benchmarks.md). Concurrent images are batched instead.
    encoder_instances: int = 1
    decoder_instances: int = 2
    python_instances: int = 2
    encoder_max_batch: int = 4
    decoder_max_batch: int = 16
    queue_delay_us: int = 2000
    intra_op_threads: int = 0
    # Embedded target: "fp32" (ONNX Runtime) or "bf16" (OpenVINO; CPUs with AVX512-BF16/AMX)
    cpu_precision: str = "fp32"
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    max_points: int = DEFAULT_MAX_POINTS
    # sam2_session: instances bound how many requests it serves at once (one each); the
    # embedding cache is shared by all of them and bounded in bytes (16.8 MB per image).
    session_instances: int = 4
    session_cache_bytes: int = 1 << 30
    # Embedded target: sam2_session runs the decoder ONNX itself rather than through a BLS call
    # to sam2_mask_decoder, sparing each click a second stub and 16.8 MB of features through
    # shared memory (docs/performance.md). The GPU target always calls the GPU decoder.
    session_decoder_in_process: bool = True
    # Embedded target: sam2_segment is one Python model running preprocessing, encoder, decoder
    # and postprocessing itself, instead of the ensemble of four models (the GPU target's): no
    # image or features through shared memory, 3-8 % off a request on a CPU, where the encoder's
    # dynamic batching bought no throughput (docs/benchmarks.md). It has encoder_instances
    # instances, each with its own encoder.
    segment_in_process: bool = True
    automatic_instances: int = 2  # each serves one (long) segment-everything request at a time
    # sam2_automatic sends its point grid to the decoder this many rows per call (capped by
    # decoder_max_batch). Each row carries its own copy of the image features, so the decoder's
    # memory grows with it; on a CPU a row costs the same time in any batch size.
    automatic_decoder_chunk: int = 4


@dataclass(frozen=True)
class ModelSpec:
    """One model of the repository, as data."""

    name: str
    inputs: Sequence[c.Tensor]
    outputs: Sequence[c.Tensor]
    python_module: str | None = None  # sam2_triton.triton_models.<module>
    onnx_file: str | None = None  # file in the export folder, copied to 1/model.onnx
    max_batch_size: int = 0
    instances: int = 1
    dynamic_batching: bool = False
    parameters: dict[str, str] = field(default_factory=dict)


def uses_ensemble(options: ServingOptions, target: str = "embedded") -> bool:
    """Whether sam2_segment is the ensemble (GPU target, or asked for) or one Python model."""
    return target == "gpu" or not options.segment_in_process


def model_specs(options: ServingOptions, target: str = "embedded") -> list[ModelSpec]:
    """The repository's models for ``target`` (the ensemble's own config is ``ensemble_config``)."""
    # how the Python-backend models run ONNX files (the GPU target drops these for its own)
    runner = {
        "intra_op_num_threads": str(options.intra_op_threads),
        "precision": options.cpu_precision,
    }
    limits = {
        "max_image_pixels": str(options.max_image_pixels),
        "max_points": str(options.max_points),
    }
    if uses_ensemble(options, target):
        segment = [
            ModelSpec(
                c.PREPROCESS,
                c.SEGMENT_INPUTS,
                c.PREPROCESS_OUTPUTS,
                python_module="preprocess",
                instances=options.python_instances,
                parameters=limits,
            ),
            ModelSpec(
                c.POSTPROCESS,
                c.POSTPROCESS_INPUTS,
                c.SEGMENT_OUTPUTS,
                python_module="postprocess",
                instances=options.python_instances,
            ),
        ]
    else:
        segment = [
            ModelSpec(
                c.SEGMENT,
                c.SEGMENT_INPUTS,
                c.SEGMENT_OUTPUTS,
                python_module="segment",
                instances=options.encoder_instances,
                parameters={**limits, **runner, "encoder": ENCODER_FILE, "decoder": DECODER_FILE},
            )
        ]
    return [
        *segment,
        ModelSpec(
            c.IMAGE_ENCODER,
            c.ENCODER_INPUTS,
            c.ENCODER_OUTPUTS,
            python_module="onnx_model",
            onnx_file=ENCODER_FILE,
            max_batch_size=options.encoder_max_batch,
            instances=options.encoder_instances,
            dynamic_batching=True,
            parameters=runner,
        ),
        ModelSpec(
            c.MASK_DECODER,
            c.DECODER_INPUTS,
            c.DECODER_OUTPUTS,
            python_module="onnx_model",
            onnx_file=DECODER_FILE,
            max_batch_size=options.decoder_max_batch,
            instances=options.decoder_instances,
            dynamic_batching=True,
            parameters=runner,
        ),
        ModelSpec(
            c.SESSION,
            c.SESSION_INPUTS,
            c.SESSION_OUTPUTS,
            python_module="session",
            instances=options.session_instances,
            parameters={
                **limits,
                **runner,
                "cache_bytes": str(options.session_cache_bytes),
                # the decoder ONNX file beside model.py (copied there), or "bls"
                SESSION_DECODER: DECODER_FILE if options.session_decoder_in_process else "bls",
            },
        ),
        ModelSpec(
            c.AUTOMATIC,
            c.AUTOMATIC_INPUTS,
            c.AUTOMATIC_OUTPUTS,
            python_module="automatic",
            instances=options.automatic_instances,
            parameters={
                "max_image_pixels": str(options.max_image_pixels),
                "decoder_chunk": str(
                    min(options.automatic_decoder_chunk, options.decoder_max_batch)
                ),
            },
        ),
    ]


def _tensor_config(tensor: c.Tensor, message: type) -> object:
    kwargs = {"name": tensor.name, "data_type": getattr(mc, f"TYPE_{tensor.dtype}")}
    kwargs["dims"] = list(tensor.dims)
    if tensor.optional and message is mc.ModelInput:
        kwargs["optional"] = True
    return message(**kwargs)


def model_config(spec: ModelSpec, queue_delay_us: int) -> mc.ModelConfig:
    config = mc.ModelConfig(name=spec.name, backend="python", max_batch_size=spec.max_batch_size)
    config.input.extend(_tensor_config(t, mc.ModelInput) for t in spec.inputs)
    config.output.extend(_tensor_config(t, mc.ModelOutput) for t in spec.outputs)
    config.instance_group.append(
        mc.ModelInstanceGroup(count=spec.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    )
    if spec.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = queue_delay_us
    for key, value in spec.parameters.items():
        config.parameters[key].string_value = value
    return config


def target_model_config(
    spec: ModelSpec,
    options: ServingOptions,
    target: str = "embedded",
    gpu: GpuOptions | None = None,
) -> mc.ModelConfig:
    """``spec`` rendered for ``target``: the GPU target changes only how ONNX models run."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    config = model_config(spec, options.queue_delay_us)
    if target == "gpu" and spec.onnx_file:
        return gpu_model_config(config, spec, options, gpu or GpuOptions())
    if target == "gpu" and SESSION_DECODER in spec.parameters:
        config.parameters[SESSION_DECODER].string_value = "bls"  # the decoder on the GPUs
    return config


def local_onnx_files(config: mc.ModelConfig) -> list[str]:
    """The ONNX files a Python model runs itself (embedded sam2_segment and sam2_session)."""
    values = [config.parameters[k].string_value for k in LOCAL_ONNX_PARAMETERS]
    return [v for v in values if v in (ENCODER_FILE, DECODER_FILE)]


def runs_in_python(spec: ModelSpec, target: str) -> bool:
    """Whether ``spec`` is a Python-backend model (with a ``model.py``) on ``target``."""
    return spec.python_module is not None and not (target == "gpu" and spec.onnx_file)


def ensemble_config() -> mc.ModelConfig:
    """sam2_segment: preprocess -> encoder -> decoder -> postprocess in one call."""
    config = mc.ModelConfig(name=c.SEGMENT, platform="ensemble", max_batch_size=0)
    config.input.extend(_tensor_config(t, mc.ModelInput) for t in c.SEGMENT_INPUTS)
    config.output.extend(_tensor_config(t, mc.ModelOutput) for t in c.SEGMENT_OUTPUTS)
    same = {t.name: t.name for t in c.SEGMENT_INPUTS}
    steps = [
        (c.PREPROCESS, same, {t.name: t.name for t in c.PREPROCESS_OUTPUTS}),
        (c.IMAGE_ENCODER, {"image": "image_1024"}, {t.name: t.name for t in c.ENCODER_OUTPUTS}),
        (
            c.MASK_DECODER,
            {
                **{t.name: t.name for t in c.ENCODER_OUTPUTS},
                "point_coords": "point_coords_1024",
                "point_labels": "point_labels_1024",
                "mask_input": "mask_input_1024",
                "has_mask_input": "has_mask_input",
            },
            {t.name: t.name for t in c.DECODER_OUTPUTS},
        ),
        (
            c.POSTPROCESS,
            {t.name: t.name for t in c.POSTPROCESS_INPUTS},
            {t.name: t.name for t in c.SEGMENT_OUTPUTS},
        ),
    ]
    for model, input_map, output_map in steps:
        step = config.ensemble_scheduling.step.add(model_name=model, model_version=-1)
        step.input_map.update(input_map)
        step.output_map.update(output_map)
    return config


def render(config: mc.ModelConfig) -> str:
    return text_format.MessageToString(config)


def model_py(module: str) -> str:
    return (
        f'"""Generated by sam2-triton build-repo; code: sam2_triton.triton_models.{module}."""\n'
        f"from sam2_triton.triton_models.{module} import TritonPythonModel  # noqa: F401\n"
    )


def _place_file(source: Path, target: Path) -> None:
    """Hard-link when possible (the ONNX files are large), else copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _fingerprint(
    export_dir: Path, options: ServingOptions, target: str, gpu: GpuOptions | None
) -> str:
    digest = hashlib.sha256(json.dumps(options.__dict__, sort_keys=True).encode())
    digest.update(target.encode())
    for spec in model_specs(options, target):
        digest.update(render(target_model_config(spec, options, target, gpu)).encode())
    if uses_ensemble(options, target):
        digest.update(render(ensemble_config()).encode())
    for name in (ENCODER_FILE, DECODER_FILE):
        stat = (export_dir / name).stat()
        digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class RepositoryError(RuntimeError):
    """The repository cannot be built; the message says what to run first."""


def build_repository(
    export_dir: Path,
    out_dir: Path,
    options: ServingOptions | None = None,
    force: bool = False,
    target: str = "embedded",
    gpu: GpuOptions | None = None,
) -> bool:
    """Write the ``target`` repository for the export in ``export_dir`` into ``out_dir``.

    Returns False when ``out_dir`` already holds exactly this build (nothing rewritten).
    """
    options = options or ServingOptions()
    gpu = (gpu or GpuOptions()) if target == "gpu" else None
    missing = [n for n in (ENCODER_FILE, DECODER_FILE) if not (export_dir / n).exists()]
    if missing:
        raise RepositoryError(
            f"no ONNX export in {export_dir} (missing {', '.join(missing)}): run "
            "`sam2-triton export --model MODEL --checkpoint PATH` or `--random-weights` first"
        )
    fingerprint = _fingerprint(export_dir, options, target, gpu)
    info_path = out_dir / BUILD_INFO
    if not force and info_path.exists():
        if json.loads(info_path.read_text()).get("fingerprint") == fingerprint:
            return False
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for spec in model_specs(options, target):
        version_dir = out_dir / spec.name / "1"
        version_dir.mkdir(parents=True)
        config = target_model_config(spec, options, target, gpu)
        (out_dir / spec.name / "config.pbtxt").write_text(render(config))
        if spec.python_module and runs_in_python(spec, target):
            (version_dir / "model.py").write_text(model_py(spec.python_module))
        if spec.onnx_file:
            _place_file(export_dir / spec.onnx_file, version_dir / "model.onnx")
        for name in local_onnx_files(config):
            _place_file(export_dir / name, version_dir / name)
    if uses_ensemble(options, target):
        (out_dir / c.SEGMENT / "1").mkdir(parents=True)
        (out_dir / c.SEGMENT / "config.pbtxt").write_text(render(ensemble_config()))
    export_info = export_dir / c.EXPORT_METADATA_FILE
    info = {
        "fingerprint": fingerprint,
        "export_dir": str(export_dir.resolve()),
        "export": json.loads(export_info.read_text()) if export_info.exists() else None,
        "options": options.__dict__,
        "target": target,
        "gpu": gpu.__dict__ if gpu else None,
    }
    info_path.write_text(json.dumps(info, indent=2))
    return True
