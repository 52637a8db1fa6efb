"""Where the commands read and write, relative to the current directory (the repository root
when run by make): one table, so no command invents its own."""

from __future__ import annotations

from pathlib import Path

CHECKPOINT_DIR = Path("checkpoints")
EXPORT_ROOT = Path("exports")
#: The committed GPU-target repository (docker-compose.yml mounts it); `export` fills its ONNX.
REPOSITORY_DIR = Path("model_repository")
#: The embedded (CPU) repository `serve` generates and runs: git-ignored, under build/.
EMBEDDED_REPOSITORY_DIR = Path("build/model_repository_embedded")
RUNTIME_DIR = Path("build/tritonserver")
#: `cluster`'s replica logs, nginx prefix and Prometheus data (git-ignored, under build/).
CLUSTER_DIR = Path("build/cluster")
#: Prometheus config, rules and dashboards, committed; `cluster` runs a copy.
OBSERVABILITY_DIR = Path("deploy/observability")
EXAMPLE_IMAGE = Path(__file__).resolve().parents[1] / "assets" / "coffee.jpg"


def export_dir(model: str) -> Path:
    return EXPORT_ROOT / model


def default_repository(target: str) -> Path:
    return REPOSITORY_DIR if target == "gpu" else EMBEDDED_REPOSITORY_DIR
