"""Export the SAM 2.1 encoder/decoder pair to ONNX, and check the files against PyTorch.

The files are what the CPU target serves through onnxruntime inside Triton Python-backend models,
and what a GPU deployment can feed to TensorRT. Tensor names come from ``sam2_triton.contract``.
The default exporter/opset/optimisation was chosen by measurement (``docs/export.md``,
``benchmarks/export_choices.py``).
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sam2_triton import contract
from sam2_triton.export.model_builder import PROVENANCE_ATTR
from sam2_triton.export.wrappers import ImageEncoder, PromptMaskDecoder, attention_in_query_chunks
from sam2_triton.runtime.runners import create_session

ENCODER_FILE = contract.ENCODER_FILE
DECODER_FILE = contract.DECODER_FILE
METADATA_FILE = contract.EXPORT_METADATA_FILE

EXPORTERS = ("torchscript", "dynamo")
#: Opset each exporter is used with: 17 is the TorchScript exporter's well-trodden one, 18 the
#: lowest the dynamo exporter (onnxscript) emits natively.
EXPORTER_OPSETS = {"torchscript": 17, "dynamo": 18}
DEFAULT_EXPORTER = "dynamo"
DEFAULT_OPSET = EXPORTER_OPSETS[DEFAULT_EXPORTER]
DEFAULT_OPTIMIZE = True

ENCODER_INPUT_NAMES = [t.name for t in contract.ENCODER_INPUTS]
ENCODER_OUTPUT_NAMES = [t.name for t in contract.ENCODER_OUTPUTS]
DECODER_INPUT_NAMES = [t.name for t in contract.DECODER_INPUTS]
DECODER_OUTPUT_NAMES = [t.name for t in contract.DECODER_OUTPUTS]

# Example sizes for tracing. Batch 2, not 1: dynamo specialises a size-1 axis to a constant
# (the encoder then rejects B=2, the decoder silently ignores it). The decoder's features are
# batch 1 on purpose: one image per call, shared by every prompt set.
_EXAMPLE_BATCH = 2
_EXAMPLE_PROMPTS = 2
_EXAMPLE_POINTS = 3


@dataclass(frozen=True)
class ExportResult:
    """Where the files went and how long each step took (seconds)."""

    out_dir: Path
    encoder_path: Path
    decoder_path: Path
    metadata_path: Path
    exporter: str
    opset: int
    optimized: bool
    encoder_seconds: float
    decoder_seconds: float
    optimize_seconds: float

    @property
    def total_seconds(self) -> float:
        return self.encoder_seconds + self.decoder_seconds + self.optimize_seconds


def export_onnx(
    model: nn.Module,
    out_dir: Path,
    *,
    opset: int | None = None,
    optimize: bool = DEFAULT_OPTIMIZE,
    exporter: str = DEFAULT_EXPORTER,
    provenance: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``image_encoder.onnx``, ``mask_decoder.onnx`` and ``export.json`` into ``out_dir``.

    ``opset`` defaults to the exporter's own (``EXPORTER_OPSETS``). ``optimize`` runs
    onnxruntime's SAM 2 graph fusions (attention, LayerNorm, GELU) on both files; it is refused
    for the TorchScript exporter, whose graph it turns into wrong masks.
    ``provenance`` (variant, seed or checkpoint sha256) defaults to what ``build_sam2_model``
    attached to the model.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f"unknown exporter {exporter!r}; choose one of {', '.join(EXPORTERS)}")
    if optimize and exporter == "torchscript":
        raise ValueError(
            "optimize=True needs the dynamo exporter: onnxruntime's sam2 fusions rewrite the "
            "TorchScript graph's LayerNorm2d into a wrong NHWC LayerNormalization (decoder "
            "logits off by ~0.5, see docs/export.md); use optimize=False with torchscript"
        )
    opset = EXPORTER_OPSETS[exporter] if opset is None else opset
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_path, decoder_path = out_dir / ENCODER_FILE, out_dir / DECODER_FILE
    encoder, decoder = ImageEncoder(model).eval(), PromptMaskDecoder(model).eval()

    t0 = time.perf_counter()
    with attention_in_query_chunks():  # the same numbers in half the memory (verified below)
        _export_module(encoder, example_encoder_inputs(), encoder_path, exporter, opset, "encoder")
    t1 = time.perf_counter()
    _export_module(decoder, example_decoder_inputs(), decoder_path, exporter, opset, "decoder")
    t2 = time.perf_counter()
    if optimize:
        for path in (encoder_path, decoder_path):
            optimize_onnx_file(path)
    t3 = time.perf_counter()

    result = ExportResult(
        out_dir=out_dir,
        encoder_path=encoder_path,
        decoder_path=decoder_path,
        metadata_path=out_dir / METADATA_FILE,
        exporter=exporter,
        opset=opset,
        optimized=optimize,
        encoder_seconds=round(t1 - t0, 2),
        decoder_seconds=round(t2 - t1, 2),
        optimize_seconds=round(t3 - t2, 2),
    )
    prov = dict(getattr(model, PROVENANCE_ATTR, {}) if provenance is None else provenance)
    _write_metadata(result, prov)
    return result


def example_encoder_inputs(batch: int = _EXAMPLE_BATCH) -> dict[str, torch.Tensor]:
    """Tracing inputs for the encoder (values do not matter, shapes and dtypes do)."""
    gen = torch.Generator().manual_seed(0)
    size = contract.IMAGE_SIZE
    return {"image": torch.randn(batch, 3, size, size, generator=gen)}


def example_decoder_inputs(
    prompts: int = _EXAMPLE_PROMPTS, points: int = _EXAMPLE_POINTS
) -> dict[str, torch.Tensor]:
    """Tracing inputs for the decoder, shaped and typed exactly as ``contract.DECODER_INPUTS``."""
    gen = torch.Generator().manual_seed(0)
    tensors: dict[str, torch.Tensor] = {}
    for t in contract.DECODER_FEATURES:
        tensors[t.name] = torch.randn(*t.dims, generator=gen)
    tensors["point_coords"] = torch.rand(prompts, points, 2, generator=gen) * contract.IMAGE_SIZE
    labels = torch.randint(0, 2, (prompts, points), generator=gen, dtype=torch.int32)
    tensors["point_labels"] = labels
    size = contract.LOW_RES_MASK_SIZE
    tensors["mask_input"] = torch.randn(prompts, 1, size, size, generator=gen)
    tensors["has_mask_input"] = torch.ones(prompts, 1)
    return tensors


def _export_module(
    module: nn.Module,
    inputs: dict[str, torch.Tensor],
    path: Path,
    exporter: str,
    opset: int,
    which: str,
) -> None:
    """Export one wrapper: the encoder with a dynamic batch axis, the decoder with dynamic
    prompt-set and point counts (its features are one image's, batch 1)."""
    input_names = list(inputs)
    output_names = ENCODER_OUTPUT_NAMES if which == "encoder" else DECODER_OUTPUT_NAMES
    features = {t.name for t in contract.DECODER_FEATURES} if which == "decoder" else set()
    args = tuple(inputs.values())
    tmp = path.with_name(path.name + ".partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter, not actionable here
        if exporter == "torchscript":
            axes = {
                name: {0: "batch" if which == "encoder" else "num_prompts"}
                for name in [*input_names, *output_names]
                if name not in features
            }
            for name in ("point_coords", "point_labels"):
                if name in axes:
                    axes[name][1] = "num_points"
            torch.onnx.export(
                module,
                args,
                str(tmp),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        else:
            batch = torch.export.Dim(
                "batch" if which == "encoder" else "num_prompts", min=1, max=4096
            )
            num_points = torch.export.Dim("num_points", min=1, max=4096)
            shapes = {name: None if name in features else {0: batch} for name in input_names}
            for name in ("point_coords", "point_labels"):
                if name in shapes:
                    shapes[name][1] = num_points
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=shapes,
                optimize=True,
                verbose=False,
            )
            program.save(str(tmp), external_data=False)
    tmp.replace(path)


def optimize_onnx_file(path: Path) -> None:
    """Rewrite ``path`` with onnxruntime's SAM 2 fusions (``model_type="sam2"``), in place.

    ``opt_level=1`` (basic) is what onnxruntime's own SAM 2 converter uses: it keeps the file
    free of hardware-specific layouts, so it runs on any execution provider. SkipLayerNormalization
    is left out: on CPU its kernel took 2.6 ms where Add + LayerNormalization take 0.37 ms
    ([4096, 256], docs/performance.md), the largest single waste in the decoder.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("sam2")
    options.enable_skip_layer_norm = False
    options.enable_bias_skip_layer_norm = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(path),
            model_type="sam2",
            opt_level=1,
            use_gpu=False,
            optimization_options=options,
        )
    tmp = path.with_name(path.name + ".partial")
    optimized.save_model_to_file(str(tmp))
    tmp.replace(path)


def _write_metadata(result: ExportResult, provenance: dict[str, Any]) -> None:
    import onnx

    meta = {
        **provenance,
        "exporter": result.exporter,
        "opset": result.opset,
        "optimized": result.optimized,
        "files": {"encoder": result.encoder_path.name, "decoder": result.decoder_path.name},
        "export_seconds": {
            "encoder": result.encoder_seconds,
            "decoder": result.decoder_seconds,
            "optimize": result.optimize_seconds,
            "total": round(result.total_seconds, 2),
        },
        "versions": {
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": _version("onnxruntime"),
            "onnxscript": _version("onnxscript"),
            "sam2": _version("sam2"),
            "python": platform.python_version(),
        },
    }
    result.metadata_path.write_text(json.dumps(meta, indent=2) + "\n")


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# --- verification ---------------------------------------------------------------------------


@dataclass
class VerifyReport:
    """Max abs difference ONNX Runtime vs PyTorch per output, over every case that was run."""

    encoder: dict[str, float] = field(default_factory=dict)
    decoder: dict[str, float] = field(default_factory=dict)
    cases: list[str] = field(default_factory=list)

    @property
    def max_abs(self) -> float:
        return max([*self.encoder.values(), *self.decoder.values()], default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "max_abs": self.max_abs}

    def format(self) -> str:
        lines = [f"ONNX Runtime vs PyTorch, max abs difference ({len(self.cases)} cases):"]
        for part, diffs in (("encoder", self.encoder), ("decoder", self.decoder)):
            lines += [f"  {part:8s}{name:18s}{value:.3e}" for name, value in diffs.items()]
        return "\n".join(lines)


def default_verify_images(batch: int = 2) -> np.ndarray:
    """Deterministic image-like inputs [B,3,1024,1024], normalised like SAM 2's transforms.

    Smooth gradients with edges and noise, not pure noise, so attention is not uniform; kept
    free of image files so the CLI can verify anywhere.
    """
    rng = np.random.default_rng(0)
    size = contract.IMAGE_SIZE
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = []
    for b in range(batch):
        r = 0.5 + 0.5 * np.sin(6.0 * xx + 2.0 * b)
        g = ((xx - 0.5) ** 2 + (yy - 0.4 - 0.1 * b) ** 2 < 0.08).astype(np.float32)
        bl = yy * (1.0 - xx)
        rgb = np.stack([r, g, bl]) + rng.normal(0.0, 0.05, (3, size, size)).astype(np.float32)
        mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1)
        std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1)
        images.append((np.clip(rgb, 0.0, 1.0) - mean) / std)
    return np.stack(images).astype(np.float32)


def default_verify_prompts() -> list[dict[str, np.ndarray]]:
    """Decoder prompt batches covering what the contract allows, for one image each.

    Two one-click sets (N=2, P=1); three sets of clicks + a box + padding + a mask input with
    mixed ``has_mask_input`` (N=3, P=5). Running both through one file proves the prompt-set
    and point axes are dynamic.
    """
    rng = np.random.default_rng(1)
    size = contract.LOW_RES_MASK_SIZE
    one_click = {
        "point_coords": rng.uniform(0, contract.IMAGE_SIZE, (2, 1, 2)).astype(np.float32),
        "point_labels": np.ones((2, 1), dtype=np.int32),
        "mask_input": np.zeros((2, 1, size, size), dtype=np.float32),
        "has_mask_input": np.zeros((2, 1), dtype=np.float32),
    }
    labels = np.array([2, 3, 1, 0, -1], dtype=np.int32)
    mixed = {
        "point_coords": rng.uniform(0, contract.IMAGE_SIZE, (3, 5, 2)).astype(np.float32),
        "point_labels": np.tile(labels, (3, 1)),
        "mask_input": rng.normal(0, 4, (3, 1, size, size)).astype(np.float32),
        "has_mask_input": np.array([[1.0], [0.0], [1.0]], dtype=np.float32),
    }
    return [one_click, mixed]


def verify_onnx(
    model: nn.Module,
    encoder_path: Path,
    decoder_path: Path,
    *,
    images: np.ndarray | None = None,
    prompts: Sequence[dict[str, np.ndarray]] | None = None,
    threads: int = 2,
) -> VerifyReport:
    """Run both files in onnxruntime (CPU) and the wrappers in PyTorch; report max abs diffs.

    ``images`` [B,3,1024,1024] is normalised model input (default: ``default_verify_images``,
    B=2, which also proves the batch axis is dynamic). Each prompt batch in ``prompts`` is run
    on each image's own (PyTorch) features.
    """
    images = default_verify_images() if images is None else np.ascontiguousarray(images, np.float32)
    prompts = default_verify_prompts() if prompts is None else prompts
    encoder, decoder = ImageEncoder(model).eval(), PromptMaskDecoder(model).eval()
    report = VerifyReport()

    with torch.no_grad():
        ref_feats = [t.numpy() for t in encoder(torch.from_numpy(images))]
    got_feats = create_session(encoder_path, threads).run(ENCODER_OUTPUT_NAMES, {"image": images})
    report.encoder = _max_abs(ENCODER_OUTPUT_NAMES, ref_feats, got_feats)
    report.cases.append(f"encoder B={len(images)}")

    session = create_session(decoder_path, threads)
    for index in range(len(images)):
        image_feats = zip(ENCODER_OUTPUT_NAMES, ref_feats, strict=True)
        features = {name: value[index : index + 1] for name, value in image_feats}
        for prompt in prompts:
            feeds = {**features, **prompt}
            with torch.no_grad():
                args = (torch.from_numpy(feeds[n]) for n in DECODER_INPUT_NAMES)
                ref = [t.numpy() for t in decoder(*args)]
            got = session.run(DECODER_OUTPUT_NAMES, feeds)
            diffs = _max_abs(DECODER_OUTPUT_NAMES, ref, got)
            for name, value in diffs.items():
                report.decoder[name] = max(report.decoder.get(name, 0.0), value)
            rows, points = prompt["point_labels"].shape
            report.cases.append(f"decoder image {index} N={rows} P={points}")
    return report


def _max_abs(
    names: Sequence[str], expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]
) -> dict[str, float]:
    diffs = {}
    for name, exp, act in zip(names, expected, actual, strict=True):
        if exp.shape != act.shape:
            raise AssertionError(f"{name}: ONNX shape {act.shape} != PyTorch shape {exp.shape}")
        diffs[name] = float(np.max(np.abs(exp.astype(np.float64) - act.astype(np.float64))))
    return diffs
