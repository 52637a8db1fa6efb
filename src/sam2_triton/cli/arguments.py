"""Argument types and option groups several commands share; choices come from the constants
that define them (variants, targets, precisions, model names)."""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from sam2_triton.contract import AUTOMATIC_PARAMETERS, CPU_PRECISIONS
from sam2_triton.repository.options import INSTANCE_OPTIONS, ServingOptions
from sam2_triton.repository.plan import cpu_instance_models
from sam2_triton.weights.variants import VARIANTS

MODELS = list(VARIANTS)


def add_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", choices=MODELS, default="tiny", help="SAM 2.1 size")


#: The export ``export --sam3`` writes (exports/sam3/): served alone, SAM 3's interactive model
#: answers clicks and boxes (and sam3_concepts phrases).
SAM3_MODEL = "sam3"


def served_name(model: str) -> str:
    """What ``--model`` serves, as the commands print it."""
    return "SAM 3" if model == SAM3_MODEL else f"SAM 2.1 {model}"


def add_served_model(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        choices=[*MODELS, SAM3_MODEL],
        default="tiny",
        help="the export to serve: a SAM 2.1 size, or sam3 (SAM 3's interactive model answers "
        "clicks and boxes, after `export --sam3`)",
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_gpus(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU ids like 0,1, got {text!r}") from None


def parse_instances(text: str) -> tuple[str, int]:
    """MODEL=N: the CPU instances of one model (sam2_triton.repository.options.INSTANCE_OPTIONS)."""
    name, sep, count = text.partition("=")
    if not sep or name not in INSTANCE_OPTIONS:
        raise argparse.ArgumentTypeError(
            f"expected MODEL=N with MODEL one of {', '.join(INSTANCE_OPTIONS)}; got {text!r}"
        )
    return name, positive_int(count)


def add_serving_options(parser: argparse.ArgumentParser) -> None:
    """What the repository is rendered with: instances per model and the CPU precision."""
    defaults = ServingOptions()
    shown = ", ".join(f"{m} {getattr(defaults, f)}" for m, f in INSTANCE_OPTIONS.items())
    parser.add_argument(
        "--instances",
        type=parse_instances,
        action="append",
        metavar="MODEL=N",
        help=f"CPU instances of one model, repeatable (defaults: {shown})",
    )
    parser.add_argument(
        "--cpu-precision",
        choices=CPU_PRECISIONS,
        default=defaults.cpu_precision,
        help="embedded encoder/decoder: fp32 (ONNX Runtime) or bf16 (OpenVINO, for CPUs with "
        "AVX512-BF16/AMX; speed and mask agreement: docs/benchmarks.md)",
    )


def serving_options(args: argparse.Namespace, target: str = "embedded") -> ServingOptions:
    """ServingOptions from the flags; an --instances model that ``target`` does not run on CPU
    instances is an error (ValueError, printed by main), not silently ignored."""
    base = ServingOptions(cpu_precision=args.cpu_precision)
    allowed = cpu_instance_models(target, base)
    for name, _ in args.instances or []:
        if name not in allowed:
            raise ValueError(
                f"--instances {name}=N: the {target} target runs no CPU instances of {name} "
                f"(it has {', '.join(allowed)}"
                + ("; its ONNX models take --gpu-instances)" if target == "gpu" else ")")
            )
    fields = {INSTANCE_OPTIONS[name]: count for name, count in args.instances or []}
    return replace(base, **fields)


def add_server_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)


def parse_point(text: str) -> tuple[float, float, int]:
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected X,Y or X,Y,LABEL, got {text!r}")
    try:
        label = int(parts[2]) if len(parts) == 3 else 1
        return float(parts[0]), float(parts[1]), label
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers X,Y[,LABEL], got {text!r}") from None


def parse_box(text: str) -> np.ndarray:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1, got {text!r}")
    try:
        return np.array([float(p) for p in parts], dtype=np.float32)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers X0,Y0,X1,Y1, got {text!r}") from None


def parse_automatic_param(text: str) -> tuple[str, float | int | bool]:
    """NAME=VALUE for one SAM2AutomaticMaskGenerator parameter, typed as sam2_automatic takes it."""
    name, sep, value = text.partition("=")
    dtypes = {t.name: t.dtype for t in AUTOMATIC_PARAMETERS}
    if not sep or name not in dtypes:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(dtypes)}; got {text!r}"
        )
    try:
        if dtypes[name] == "BOOL":
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return name, value.lower() in ("true", "1")
        return name, int(value) if dtypes[name] == "INT32" else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: {value!r} is not a valid {dtypes[name]} value"
        ) from None
