"""The README.md written into every model repository: what each model does, which files an
export adds, how to regenerate. Rendered from the same plan as the configs, so it cannot drift."""

from __future__ import annotations

from collections.abc import Sequence

from sam2_triton.repository.model_plan import ModelPlan, Runtime

_HEADER = {
    "gpu": (
        "# Triton model repository: SAM 2.1, GPU target\n\n"
        "For NVIDIA's tritonserver image (24.10, `docker/Dockerfile.gpu` adds the Python\n"
        "packages the Python models import). The encoder and decoder run on Triton's\n"
        "onnxruntime backend on GPUs; every other model is a Python-backend model on CPU whose\n"
        "`model.py` imports `sam2_triton.triton_models`.\n"
    ),
    "embedded": (
        "# Triton model repository: SAM 2.1, embedded CPU target\n\n"
        "For the `tritonserver` of the nvidia-pytriton wheel (`sam2-triton serve`): every model\n"
        "is a Python-backend model; the ONNX files run inside them on ONNX Runtime or OpenVINO.\n"
    ),
}

_SERVE = {
    "gpu": (
        "## Serve it\n\n"
        "1. `sam2-triton export --model M --no-ort-fusions --video` writes `exports/M/` and links\n"
        "   the ONNX files into this folder where the configs expect them (column above).\n"
        "2. `docker compose --profile gpu up -d --build` (mounts this folder at `/models`), or\n"
        "   `tritonserver --model-repository=model_repository` inside the image.\n\n"
        "## Regenerate\n\n"
        "`make repository` (`sam2-triton build-repo --target gpu --configs-only`) renders every\n"
        "file here from `src/sam2_triton/repository/plan.py` and `contract.py` without torch or\n"
        "an export; "
        "`tests/test_committed_repository.py` fails when a committed file differs from that\n"
        "rendering. Other settings: `sam2-triton build-repo --target gpu --help`.\n"
    ),
    "embedded": (
        "## Regenerate\n\n"
        "`sam2-triton serve` and `sam2-triton build-repo` rebuild this folder when the export\n"
        "or the options change; do not edit it by hand.\n"
    ),
}


def _files(plan: ModelPlan) -> str:
    files = plan.export_files()
    if not files:
        return "none"
    return ", ".join(f"`{path}` ({name})" for path, name in files.items())


def repository_readme(target: str, plans: Sequence[ModelPlan], marker: str) -> str:
    rows = [f"| `{p.name}` | {p.runtime.value} | {p.summary} | {_files(p)} |" for p in plans]
    table = "\n".join(
        [
            "| model | runtime | what it does | files `export` adds |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    python = [p.name for p in plans if p.runtime is Runtime.PYTHON]
    return (
        f"{_HEADER[target]}\n{table}\n\n"
        f"Python-backend models: {', '.join(f'`{n}`' for n in python)}.\n"
        "The public API is `sam2_segment`, `sam2_session` and `sam2_automatic` (the project's\n"
        f"README.md). `{marker}` records the options this was rendered with and its files; the\n"
        "ONNX files and `build.json` (the export they came from) are git-ignored.\n\n"
        f"{_SERVE[target]}"
    )
