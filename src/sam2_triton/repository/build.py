"""Write a Triton model repository from its plan, without ever destroying what is not ours.

``render_files`` is pure: the text of every ``config.pbtxt``, ``model.py`` and README a target's
plan (``sam2_triton.repository.plan``) needs, with no torch and no export.
``write_repository`` adds the export's ONNX files (hard links) and puts the result in place:

- it builds into a fresh temporary folder beside ``out`` and renames it into place, so a failed
  build leaves the old repository as it was;
- it replaces only a folder it wrote itself (the marker file ``sam2-triton.json`` lists its
  files; the ONNX files it placed are in ``build.json``) and refuses, naming them, when anything
  else is there;
- it refuses while a server started by ``sam2-triton`` serves the folder (``serving`` holds a
  shared lock on the marker for the server's lifetime).

The committed ``model_repository/`` is the GPU target rendered with default options.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from sam2_triton import contract as c
from sam2_triton.repository.gpu_configs import onnxruntime_config
from sam2_triton.repository.model_plan import TARGETS, GpuOptions, ModelPlan, Runtime
from sam2_triton.repository.options import ServingOptions
from sam2_triton.repository.plan import repository_plan
from sam2_triton.repository.python_configs import ensemble_config, model_py, python_config, render
from sam2_triton.repository.readme import repository_readme

__all__ = ["TARGETS", "GpuOptions", "ServingOptions", "build_repository", "write_repository"]

ENCODER_FILE = c.ENCODER_FILE
DECODER_FILE = c.DECODER_FILE
MARKER = "sam2-triton.json"  # committed: what rendered this folder, and its files
BUILD_INFO = "build.json"  # not committed: the export whose ONNX files were placed
README = "README.md"
_GENERATED_DIRS = ("__pycache__",)  # what the Python backend writes beside model.py


class RepositoryError(RuntimeError):
    """The repository cannot be written; the message says why and what to do."""


def model_config(
    plan: ModelPlan, options: ServingOptions, gpu: GpuOptions | None = None
) -> mc.ModelConfig:
    """The ``ModelConfig`` of one planned model."""
    if plan.runtime is Runtime.ENSEMBLE:
        return ensemble_config(plan)
    if plan.runtime is Runtime.ONNXRUNTIME:
        return onnxruntime_config(plan, gpu or GpuOptions())
    return python_config(plan, options)


def _marker(target: str, options: ServingOptions, gpu: GpuOptions, files: list[str]) -> str:
    record = {
        "generated_by": "sam2-triton build-repo",
        "target": target,
        "options": asdict(options),
        "gpu": asdict(gpu) if target == "gpu" else None,
        "files": sorted([*files, MARKER]),
    }
    return json.dumps(record, indent=2) + "\n"


def render_files(
    target: str, options: ServingOptions | None = None, gpu: GpuOptions | None = None
) -> dict[str, str]:
    """Relative path -> text of every file the repository holds but the ONNX files."""
    options = options or ServingOptions()
    gpu = gpu or GpuOptions()
    plans = repository_plan(target, options, gpu)
    files: dict[str, str] = {}
    for plan in plans:
        files[f"{plan.name}/config.pbtxt"] = render(model_config(plan, options, gpu))
        if plan.runtime is Runtime.PYTHON:
            files[f"{plan.name}/1/model.py"] = model_py(plan.python_module or "")
        if plan.runtime is Runtime.ENSEMBLE:
            files[f"{plan.name}/1/.gitkeep"] = ""  # Triton needs the (empty) version folder
    files[README] = repository_readme(target, plans, MARKER)
    files[MARKER] = _marker(target, options, gpu, list(files))
    return files


def export_placements(
    target: str, options: ServingOptions | None = None, gpu: GpuOptions | None = None
) -> dict[str, str]:
    """Relative path in the repository -> the export file hard-linked there."""
    placed = {}
    for plan in repository_plan(target, options, gpu):
        for path, name in plan.export_files().items():
            placed[f"{plan.name}/{path}"] = name
    return placed


def stale_files(repo_dir: Path, files: dict[str, str]) -> list[str]:
    """Rendered files that ``repo_dir`` lacks or holds with other content."""
    return sorted(
        name
        for name, text in files.items()
        if not (repo_dir / name).is_file() or (repo_dir / name).read_text() != text
    )


def read_marker(repo_dir: Path) -> dict | None:
    return _read_json(repo_dir / MARKER) or None


def recorded_options(marker: dict) -> tuple[str, ServingOptions, GpuOptions]:
    """The target and options a marker says its repository was rendered with."""
    gpu = dict(marker.get("gpu") or {})
    if "gpus" in gpu:
        gpu["gpus"] = tuple(gpu["gpus"])
    return marker["target"], ServingOptions(**marker["options"]), GpuOptions(**gpu)


def _legacy_build(repo_dir: Path) -> bool:
    """A repository an earlier sam2-triton wrote (before the marker): its build.json says so."""
    info = _read_json(repo_dir / BUILD_INFO)
    return {"fingerprint", "target", "options"} <= set(info)


def _legacy_files(repo_dir: Path) -> set[str]:
    """What an earlier sam2-triton wrote: configs, model.py adapters, ONNX files, build.json."""
    patterns = ("*/config.pbtxt", "*/1/model.py", "*/1/*.onnx")
    found = {p.relative_to(repo_dir).as_posix() for pat in patterns for p in repo_dir.glob(pat)}
    return found | {BUILD_INFO}


def _ours(repo_dir: Path) -> set[str]:
    """The files sam2-triton wrote into ``repo_dir`` (empty set: none, or no marker)."""
    marker = read_marker(repo_dir)
    # A folder an earlier version wrote (e.g. the old git-ignored model_repository/ under the
    # files a checkout now brings) keeps its files ours, marker or not.
    ours = _legacy_files(repo_dir) if _legacy_build(repo_dir) else set()
    if marker is None:
        return ours
    ours |= set(marker.get("files", [])) | {MARKER, BUILD_INFO}
    info = _read_json(repo_dir / BUILD_INFO)
    return ours | set(info.get("placed", []))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _foreign_files(repo_dir: Path) -> list[str]:
    """What replacing ``repo_dir`` would delete that we did not write: files, symbolic links
    (e.g. a model linked in), and folders holding none of our files."""
    ours = _ours(repo_dir)
    our_dirs = {parent.as_posix() for name in ours for parent in Path(name).parents}
    found = []
    for path in sorted(repo_dir.rglob("*")):
        rel = path.relative_to(repo_dir)
        if _GENERATED_DIRS[0] in rel.parts:
            continue
        if path.is_dir() and not path.is_symlink():
            if rel.as_posix() not in our_dirs:
                found.append(f"{rel.as_posix()}/")
        elif rel.as_posix() not in ours:
            found.append(rel.as_posix())
    return found


def _check_replaceable(out: Path, target: str, force: bool) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise RepositoryError(f"{out} is a file, not a model repository folder: nothing changed")
    if os.path.ismount(out):
        raise RepositoryError(
            f"{out} is a mount point, which cannot be replaced by renaming: build into a "
            "folder inside it, or elsewhere, and mount that"
        )
    if not any(out.iterdir()):
        return
    marker = read_marker(out)
    if marker and marker.get("target") not in (None, target) and not force:
        raise RepositoryError(
            f"{out} holds the {marker['target']} target's repository; writing the {target} "
            "target there would replace it: choose another --out (or --force)"
        )
    if read_marker(out) is None and not _legacy_build(out):
        raise RepositoryError(
            f"{out} is not empty and was not written by sam2-triton (no {MARKER} in it): "
            "nothing was changed. Choose an empty or new folder with --out, or empty it yourself"
        )
    foreign = _foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise RepositoryError(
            f"{out} holds files sam2-triton did not write ({shown}): nothing was changed; "
            "move them elsewhere or choose another --out"
        )


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """Held while ``out`` is replaced; fails at once if a server holds ``serving(out)``."""
    marker = out / MARKER
    if not marker.is_file():
        yield
        return
    with marker.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RepositoryError(
                f"a tritonserver started by sam2-triton is serving {out}: stop it before "
                "rebuilding that repository (or build into another --out)"
            ) from None
        yield


@contextlib.contextmanager
def serving(repo_dir: Path) -> Iterator[None]:
    """Marks ``repo_dir`` as in use by a server for as long as the block runs."""
    marker = Path(os.path.realpath(repo_dir)) / MARKER
    while marker.is_file():
        with marker.open("rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            # A build may have swapped the folder while we waited: lock the marker in place.
            if os.fstat(handle.fileno()).st_ino == _inode(marker):
                yield
                return
    yield


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _place(source: Path, target: Path) -> None:
    """Hard-link when possible (ONNX files are large), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _sources(
    out: Path, export_dir: Path | None, placements: dict[str, str], optional=frozenset()
) -> dict[str, Path]:
    """Where each placed ONNX file comes from: the export (files in ``optional`` may be
    missing there), or (configs only) what ``out`` already holds that an earlier build placed."""
    if export_dir is not None:
        placements = {
            rel: name
            for rel, name in placements.items()
            if name not in optional or (export_dir / name).is_file()
        }
        missing = sorted({n for n in placements.values() if not (export_dir / n).is_file()})
        if missing:
            video = set(missing) & set(c.VIDEO_EXPORT_FILES)
            raise RepositoryError(
                f"no ONNX export in {export_dir} (missing {', '.join(missing)}): run "
                f"`sam2-triton export --model MODEL{' --video' if video else ''} --checkpoint "
                "PATH` or `--random-weights` first"
                + (
                    " (this repository serves video; `build-repo --target gpu --no-video` "
                    "leaves it out)"
                    if video
                    else ""
                )
            )
        return {rel: export_dir / name for rel, name in placements.items()}
    earlier = set(_read_json(out / BUILD_INFO).get("placed", []))
    return {rel: out / rel for rel in placements if rel in earlier and (out / rel).is_file()}


def _fingerprint(files: dict[str, str], sources: dict[str, Path]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\0".encode())
    for rel in sorted(sources):
        stat = sources[rel].stat()
        digest.update(f"{rel}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def write_repository(
    out: Path,
    target: str = "embedded",
    options: ServingOptions | None = None,
    gpu: GpuOptions | None = None,
    export_dir: Path | None = None,
    force: bool = False,
    optional: frozenset[str] = frozenset(),
) -> bool:
    """Write ``target``'s repository into ``out`` with ``export_dir``'s ONNX files (None: the
    configs only, keeping ONNX files an earlier build placed; ``optional``: export files that
    may be missing). False: ``out`` was up to date."""
    options = options or ServingOptions()
    gpu = gpu or GpuOptions()
    out = Path(os.path.realpath(out))  # a link to the folder: replace what it points to
    files = render_files(target, options, gpu)
    sources = _sources(out, export_dir, export_placements(target, options, gpu), optional)
    fingerprint = _fingerprint(files, sources)
    info = _read_json(out / BUILD_INFO)
    if not force and info.get("fingerprint") == fingerprint and not stale_files(out, files):
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(new, 0o777 & ~umask)  # mkdtemp's 0700 would lock out a server of another user
    try:
        for name, text in files.items():
            (new / name).parent.mkdir(parents=True, exist_ok=True)
            (new / name).write_text(text)
        for rel, source in sources.items():
            _place(source, new / rel)
        export_info = export_dir / c.EXPORT_METADATA_FILE if export_dir else None
        record = {
            "fingerprint": fingerprint,
            "placed": sorted(sources),
            "export_dir": str(export_dir.resolve()) if export_dir else info.get("export_dir"),
            "export": (_read_json(export_info) or None) if export_info else info.get("export"),
        }
        (new / BUILD_INFO).write_text(json.dumps(record, indent=2) + "\n")
        with _exclusive(out):
            _check_replaceable(out, target, force)  # under the lock: nothing can appear after
            _swap(new, out)
    finally:
        if new.exists():
            shutil.rmtree(new)
    return True


def _swap(new: Path, out: Path) -> None:
    """Put ``new`` at ``out``; the old folder (ours, checked) is removed after."""
    if not out.exists():
        new.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    try:
        new.rename(out)
    except BaseException:
        old.rename(out)  # put the old repository back as it was
        raise
    shutil.rmtree(old, ignore_errors=True)


def build_repository(
    export_dir: Path,
    out_dir: Path,
    options: ServingOptions | None = None,
    force: bool = False,
    target: str = "embedded",
    gpu: GpuOptions | None = None,
) -> bool:
    """``target``'s repository for the export in ``export_dir``, written into ``out_dir``."""
    return write_repository(out_dir, target, options, gpu, export_dir, force)


def refresh_exports(repo_dir: Path, export_dir: Path) -> bool | None:
    """Place a new export into a repository sam2-triton wrote, with the target and options it
    was rendered with (``sam2-triton export`` calls this for ``model_repository/``). An export
    without the video tracker places the image models' files only.

    None when ``repo_dir`` holds no sam2-triton repository (nothing is changed then)."""
    marker = read_marker(repo_dir)
    if marker is None:
        return None
    try:
        target, options, gpu = recorded_options(marker)
    except (KeyError, TypeError, ValueError) as exc:
        raise RepositoryError(
            f"{repo_dir / MARKER} was written by another version of sam2-triton ({exc}): "
            "rebuild the repository with `sam2-triton build-repo`"
        ) from None
    return write_repository(
        repo_dir, target, options, gpu, export_dir,
        optional=frozenset((*c.VIDEO_EXPORT_FILES, *c.CONCEPT_FILES)),
    )  # fmt: skip
