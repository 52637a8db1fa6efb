"""Fetch and load the official SAM 2.1 checkpoints.

Downloads are large (156-898 MB) and the host is sometimes slow or unreachable, so the fetch
resumes partial files, verifies sha256 before anything uses the bytes, and fails with a message
that tells the user what to do instead. Only ``load_state_dict`` needs torch, and imports it
lazily: the serving side imports this package without torch installed.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from tqdm import tqdm

from .variants import get_variant

if TYPE_CHECKING:
    import torch

URL_BASE_ENV = "SAM2_TRITON_CHECKPOINT_URL_BASE"
_CHUNK = 1 << 20  # 1 MiB: few syscalls, smooth enough progress bar


class CheckpointDownloadError(RuntimeError):
    """The checkpoint could not be fetched (host unreachable, HTTP error, interrupted transfer)."""


class CheckpointChecksumError(CheckpointDownloadError):
    """The downloaded bytes do not have the published sha256; the file has been deleted."""


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so 900 MB checkpoints don't sit in memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def mirrored_url(file: str, official: str) -> str:
    """``file``'s URL: ``official``, or ``$SAM2_TRITON_CHECKPOINT_URL_BASE/file`` (a mirror)."""
    base = os.environ.get(URL_BASE_ENV, "").strip()
    return f"{base.rstrip('/')}/{file}" if base else official


def checkpoint_url(variant_name: str) -> str:
    """URL for a variant: the official one, or under ``$SAM2_TRITON_CHECKPOINT_URL_BASE``."""
    variant = get_variant(variant_name)
    return mirrored_url(variant.checkpoint_file, variant.url)


@dataclass(frozen=True)
class Download:
    """One official file to fetch: its name on disk, where it is, its published sha256 ("" if
    none is known), how to name it to a user and what they can do instead when it cannot be
    fetched; ``headers`` go with the request (a gated host's token)."""

    file: str
    url: str
    sha256: str
    label: str
    advice: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def failed(self, reason: str) -> CheckpointDownloadError:
        return CheckpointDownloadError(
            f"Could not download {self.label} from {self.url}: {reason}\n{self.advice}"
        )


def sam2_download(variant_name: str, url: str | None = None, sha256: str | None = None) -> Download:
    """A SAM 2.1 variant's official checkpoint (``url`` and ``sha256``: other than the table's)."""
    variant = get_variant(variant_name)
    return Download(
        file=variant.checkpoint_file,
        url=url or checkpoint_url(variant_name),
        sha256=(variant.sha256 if sha256 is None else sha256).strip().lower(),
        label=f"the SAM 2.1 '{variant_name}' checkpoint",
        advice=(
            "The checkpoint host could not be reached (offline, firewalled, or the URL is "
            "wrong).\nAlternatives:\n"
            "  * copy the official checkpoint here yourself and use it:\n"
            f"      sam2-triton export --model {variant_name} --checkpoint PATH\n"
            "  * export with random weights (the masks are meaningless; for testing the "
            "pipeline):\n"
            f"      sam2-triton export --model {variant_name} --random-weights\n"
            f"  * or point {URL_BASE_ENV} at a mirror that serves the same files."
        ),
    )


def _content_range_total(value: str | None) -> int | None:
    """Total size from a ``Content-Range: bytes a-b/N`` or ``bytes */N`` header, if given."""
    m = re.fullmatch(r"\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*", value or "")
    return int(m.group(1)) if m else None


def _content_range_start(value: str | None) -> int | None:
    m = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*", value or "")
    return int(m.group(1)) if m else None


def _hash_prefix(path: Path) -> hashlib._Hash:
    """sha256 state after the bytes already in ``path``, so a resumed download hashes once."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h


def _fetch_to_part(download: Download, part: Path, progress: bool, timeout: float) -> str:
    """Download ``download.url`` into ``part`` (resuming what is there); return its sha256."""
    url = download.url
    for _attempt in range(2):  # a second pass only after discarding an unusable .part
        offset = part.stat().st_size if part.exists() else 0
        headers = {**download.headers, **({"Range": f"bytes={offset}-"} if offset else {})}
        try:
            resp = requests.get(url, headers=headers, stream=True, timeout=timeout)
        except requests.RequestException as e:
            raise download.failed(str(e)) from e

        with resp:
            if resp.status_code == 416:
                # Nothing left past ``offset``: either the .part is already complete (an earlier
                # run died between the last byte and the rename) or it is junk.
                total = _content_range_total(resp.headers.get("Content-Range"))
                if offset and total == offset:
                    return _hash_prefix(part).hexdigest()
                _warn(f"server rejected resuming {part.name} at byte {offset}; starting over")
                part.unlink(missing_ok=True)
                continue

            if resp.status_code == 206 and offset:
                if _content_range_start(resp.headers.get("Content-Range")) != offset:
                    _warn(f"server answered an unexpected range for {part.name}; starting over")
                    part.unlink(missing_ok=True)
                    continue
                mode, hasher = "ab", _hash_prefix(part)
            elif resp.status_code == 200:
                if offset:
                    _warn(f"server does not support resuming; restarting {part.name} from zero")
                offset, mode, hasher = 0, "wb", hashlib.sha256()
            else:
                try:
                    resp.raise_for_status()
                    reason = f"unexpected HTTP status {resp.status_code}"
                except requests.HTTPError as e:
                    reason = str(e)
                raise download.failed(reason)

            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            written = offset
            bar = tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
            )
            try:
                with bar, open(part, mode) as f:
                    for chunk in resp.iter_content(chunk_size=_CHUNK):
                        f.write(chunk)
                        hasher.update(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
            except requests.RequestException as e:
                raise download.failed(
                    f"transfer interrupted after {written} bytes ({e}); "
                    f"re-run to resume from {part}"
                ) from e
            if total is not None and written != total:
                raise download.failed(
                    f"transfer ended after {written} of {total} bytes; re-run to resume from {part}"
                )
            return hasher.hexdigest()

    raise download.failed("the server kept refusing the byte range")


def download_checkpoint(
    variant_name: str,
    dest_dir: Path,
    url: str | None = None,
    expected_sha256: str | None = None,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Fetch a variant's official checkpoint into ``dest_dir`` and return its path.

    Bytes go to ``<file>.part`` first; an existing ``.part`` is resumed with an HTTP Range
    request (a server that ignores it and answers 200 restarts the file from zero). The sha256
    is checked before the ``.part`` is atomically renamed, so a file under the final name is
    always complete and verified; on a mismatch the bytes are deleted and
    ``CheckpointChecksumError`` is raised. If the final file already exists with the right
    hash nothing is requested.

    ``url`` defaults to the variant table; the environment variable
    ``SAM2_TRITON_CHECKPOINT_URL_BASE`` replaces the base URL
    (``https://dl.fbaipublicfiles.com/segment_anything_2/092824``) for mirrors, the file name
    being appended. ``expected_sha256`` defaults to the table; if no hash is known (``""``)
    the file is kept but a loud warning with its computed sha256 is printed.

    Raises ``CheckpointDownloadError`` when the host cannot be reached or answers with an
    error; its message names ``--checkpoint PATH`` and ``--random-weights`` as alternatives.
    """
    return fetch(sam2_download(variant_name, url, expected_sha256), dest_dir, progress, timeout)


def fetch(download: Download, dest_dir: Path, progress: bool = True, timeout: float = 30.0) -> Path:
    """``download`` into ``dest_dir`` (``download_checkpoint`` says how), its path returned."""
    expected = download.sha256
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / download.file
    part = final.with_name(final.name + ".part")

    if final.exists():
        digest = sha256_file(final)
        if not expected:
            _warn_unverified(final, digest)
            return final
        if digest == expected:
            return final
        _warn(f"{final} has sha256 {digest}, expected {expected}; downloading it again")
        final.unlink()

    digest = _fetch_to_part(download, part, progress, timeout)
    if expected and digest != expected:
        part.unlink(missing_ok=True)
        raise CheckpointChecksumError(
            f"sha256 mismatch for {download.label} downloaded from {download.url}:\n"
            f"  expected {expected}\n  got      {digest}\n"
            "The download was deleted. Re-run to try again; if it keeps failing, the server or "
            "a proxy is serving different bytes."
        )
    os.replace(part, final)
    if not expected:
        _warn_unverified(final, digest)
    return final


def _warn_unverified(path: Path, digest: str) -> None:
    _warn(
        "!" * 78 + "\n"
        f"WARNING: no published sha256 is known for {path.name}; its integrity could NOT be\n"
        f"verified. Computed sha256: {digest}\n"
        "Compare it with the Hugging Face file page (facebook/sam2.1-hiera-*) before trusting it.\n"
        + ("!" * 78)
    )


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load the model weights of an official SAM 2.1 checkpoint (``{"model": state_dict}``).

    ``weights_only=True`` refuses arbitrary pickled code, which matters for files that came
    from a mirror or a colleague. Anything but the official layout is rejected up front with
    the file name, instead of failing later with missing-key noise in ``load_state_dict``.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the weights-only unpickler raises many types on a bad file
        raise ValueError(
            f"{path} could not be loaded as a torch checkpoint (weights_only=True): {e}"
        ) from e

    expected = 'the official SAM 2.1 format {"model": state_dict}'
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected {expected}, found a {type(obj).__name__}")
    if "model" not in obj:
        keys = ", ".join(repr(k) for k in list(obj)[:5]) + (", ..." if len(obj) > 5 else "")
        raise ValueError(
            f"{path}: expected {expected}, found a dict without 'model' (keys: {keys or 'none'})"
        )
    state = obj["model"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected {expected}, but 'model' is a {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ValueError(
                f"{path}: expected {expected}, but entry {key!r} of 'model' is a "
                f"{type(value).__name__}, not a tensor"
            )
    return dict(state)
