"""Building a repository into parsed ModelConfigs, and reading its TensorRT parameters: what
the GPU-target tests share."""

from __future__ import annotations

from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.repository.build import build_repository
from sam2_triton.repository.model_plan import GpuOptions
from sam2_triton.repository.options import ServingOptions
from tests.conftest import load_configs

TRACKER_MODELS = (c.TRACKING_DECODER, c.MEMORY_ATTENTION, c.MEMORY_ENCODER)


def build(
    export: Path, out: Path, target: str, options: ServingOptions | None = None, **gpu: object
) -> dict[str, mc.ModelConfig]:
    gpu_options = GpuOptions(**gpu) if gpu else None
    build_repository(export, out, options, target=target, gpu=gpu_options)
    return load_configs(out)


def trt_parameters(config: mc.ModelConfig) -> dict[str, str] | None:
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    tensorrt = [a for a in accelerators if a.name == "tensorrt"]
    return dict(tensorrt[0].parameters) if tensorrt else None


def parse_profile(text: str) -> dict[str, list[int]]:
    """``a:1x2,b:3`` -> {"a": [1, 2], "b": [3]}."""
    return {
        name: [int(d) for d in dims.split("x")]
        for name, dims in (item.split(":") for item in text.split(","))
    }
