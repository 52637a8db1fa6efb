"""What the gateway offers and where it finds things: one TOML file, every key optional.

    [server]          url = "127.0.0.1:8001", protocol = "grpc"
    [gateway]         max_body_mb = 64, max_video_mb = 1024, max_image_pixels = <the server's
                      default>, images = 64,
                      image_mb = 1024
    [label_studio]    url = "http://127.0.0.1:8080" (or LABEL_STUDIO_URL), token = "" (or
                      LABEL_STUDIO_API_KEY),
                      model_version = "sam2.1", video_frames = 0 (to the end)
    [cvat]            interactor = "sam2-triton", detector = "sam2-triton-everything",
                      tracker = "sam2-triton-tracker",
                      labels = ["object"], enabled = true
    [anylabeling]     model = "sam2", display_name = "SAM 2.1 (sam2-triton)", api_key = ""
    [automatic]       points_per_side = 32, pred_iou_thresh = 0.8, … (SAM2AutomaticMaskGenerator's)

docs/integrations.md lists them with what each tool needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sam2_triton.contract import DEFAULT_MAX_IMAGE_PIXELS


class ConfigError(ValueError):
    """A config file the gateway cannot use: names the file, the section and the key."""


@dataclass(frozen=True)
class ServerConfig:
    url: str = "127.0.0.1:8001"
    protocol: str = "grpc"


@dataclass(frozen=True)
class GatewayConfig:
    max_body_mb: int = 64  # a tool's request: the image travels in it, base64 (4/3 larger)
    max_video_mb: int = 1024  # a video: X-AnyLabeling's frames in one request, a task's file
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    images: int = 64  # images remembered (bytes and the server's id) so a re-sent one is a click
    image_mb: int = 1024  # and at most this many megabytes of them


@dataclass(frozen=True)
class LabelStudioConfig:
    url: str = "http://127.0.0.1:8080"  # where tasks' images are fetched; env LABEL_STUDIO_URL
    token: str = ""  # a legacy API token or a personal access token; env LABEL_STUDIO_API_KEY
    model_version: str = "sam2.1"
    video_frames: int = 0  # frames tracked after a region's first keyframe (0: to the end)


@dataclass(frozen=True)
class CvatConfig:
    enabled: bool = True
    # not pth-facebookresearch-sam2-hiera-large: CVAT's SAM 2 UI plugin takes over that id
    interactor: str = "sam2-triton"
    detector: str = "sam2-triton-everything"
    tracker: str = "sam2-triton-tracker"  # needs the video models (an export with --video)
    labels: tuple[str, ...] = ("object",)  # the detector's: every mask gets labels[0]


@dataclass(frozen=True)
class AnyLabelingConfig:
    enabled: bool = True
    model: str = "sam2"
    display_name: str = "SAM 2.1 (sam2-triton)"
    api_key: str = ""  # if set, requests must carry it in the header ``Token``


@dataclass(frozen=True)
class ConnectConfig:
    server: ServerConfig = field(default_factory=ServerConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    label_studio: LabelStudioConfig = field(default_factory=LabelStudioConfig)
    cvat: CvatConfig = field(default_factory=CvatConfig)
    anylabeling: AnyLabelingConfig = field(default_factory=AnyLabelingConfig)
    automatic: dict[str, Any] = field(default_factory=dict)  # AutomaticParams' fields

    @classmethod
    def load(cls, path: Path | None = None) -> ConnectConfig:
        """The file's settings over the defaults (``None``: the defaults); Label Studio's URL
        and token from ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` where the file gives
        none."""
        data: dict[str, Any] = {}
        if path is not None:
            try:  # Python 3.11+: the gateway runs in the CPU image or a venv, not the GPU image
                import tomllib
            except ModuleNotFoundError:
                raise ConfigError(f"{path}: reading it needs Python 3.11 or later") from None
            try:
                data = tomllib.loads(Path(path).read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from None
        sections = {f.name: f.default_factory for f in fields(cls)}  # type: ignore[misc]
        unknown = set(data) - set(sections)
        if unknown:
            raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, factory in sections.items():
            given = data.get(name, {})
            if not isinstance(given, dict):
                raise ConfigError(f"{path}: [{name}] must be a table")
            values[name] = dict(given) if name == "automatic" else _section(factory, given, path)
        # Label Studio's own backend variables, where the file says nothing (a container's way)
        studio = dict(data.get("label_studio", {}))
        for key, variable in (("url", "LABEL_STUDIO_URL"), ("token", "LABEL_STUDIO_API_KEY")):
            if key not in studio and os.environ.get(variable):
                studio[key] = os.environ[variable]
        values["label_studio"] = _section(LabelStudioConfig, studio, path)
        config = cls(**values)
        gateway = config.gateway
        for key in ("max_body_mb", "max_video_mb", "max_image_pixels", "images", "image_mb"):
            if getattr(gateway, key) < 1:
                raise ConfigError(f"{path}: [gateway] {key} must be at least 1")
        if not config.cvat.labels:
            raise ConfigError(f"{path}: [cvat] labels must name at least one label")
        return config


def _section(factory: Any, given: dict[str, Any], path: Path | None) -> Any:
    default = factory()
    known = {f.name: f for f in fields(default)}
    for key, value in given.items():
        if key not in known:
            raise ConfigError(f"{path}: unknown key {key!r} (known: {sorted(known)})")
        expected = type(getattr(default, key))
        if expected is tuple:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{path}: {key} must be a list of strings")
            given = {**given, key: tuple(value)}
        elif not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{path}: {key} must be a {expected.__name__}, not {value!r}")
    return type(default)(**given)
