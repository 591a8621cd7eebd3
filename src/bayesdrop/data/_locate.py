"""Where data sets are looked for, checksums, and downloads (atomic, into the user cache)."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Sequence
from os import PathLike
from pathlib import Path

from .._errors import BayesdropError
from .._io import atomic_open

__all__ = ["cache_dir", "candidate_dirs", "describe_dirs", "digest_matches", "download_file", "shared_data_root"]

ENV_VAR = "BAYESDROP_DATA"


SHARED_ENV_VAR = "BAYESDROP_SHARED_DATA"


def shared_data_root() -> Path | None:
    """The project's shared data folder: ``$BAYESDROP_SHARED_DATA``, else ``shared/data`` beside
    the repository of this source tree; None when it does not exist."""
    env = os.environ.get(SHARED_ENV_VAR)
    candidate = Path(env) if env else Path(__file__).resolve().parents[4] / "shared" / "data"
    return candidate if candidate.is_dir() else None


def cache_dir(name: str | None = None) -> Path:
    """The user cache for bayesdrop's data: ``$XDG_CACHE_HOME/bayesdrop`` or
    ``~/.cache/bayesdrop``, with ``/<name>`` appended when given."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    root = Path(base) / "bayesdrop"
    return root / name if name else root


def candidate_dirs(
    name: str,
    root: str | PathLike[str] | None,
    system_dirs: Sequence[str | PathLike[str]] = (),
    root_subdirs: Sequence[str] = (),
) -> list[tuple[Path, str]]:
    """The folders to search for data set ``name``, in order, each with a label for errors.

    Order: ``root`` itself, ``root/<name>`` (so a ``shared/data``-style folder works) and
    ``root/<s>`` for each of ``root_subdirs`` (e.g. torchvision's ``MNIST/raw``),
    ``$BAYESDROP_DATA/<name>`` (``os.pathsep``-separated list allowed), the user cache
    ``~/.cache/bayesdrop/<name>``, then ``system_dirs`` (e.g. Debian's package location).
    """
    dirs: list[tuple[Path, str]] = []
    if root is not None:
        root = Path(root).expanduser()
        dirs += [(root, "root="), (root / name, "root=")]
        dirs += [(root / sub, "root=") for sub in root_subdirs]
    for entry in filter(None, os.environ.get(ENV_VAR, "").split(os.pathsep)):
        dirs.append((Path(entry).expanduser() / name, f"${ENV_VAR}"))
    dirs.append((cache_dir(name), "user cache"))
    dirs += [(Path(d), "system package") for d in system_dirs]
    return dirs


def describe_dirs(dirs: Sequence[tuple[Path, str]], name: str = "<name>") -> str:
    """One line per searched folder, for error messages: every place looked, in search order,
    each marked ``missing`` (no such folder) or ``exists`` (there, but without the files).

    A multi-line text: callers print it whole (a first-line summary would drop the places).
    """
    lines = [f"  - {path}  ({label}; {'exists' if path.is_dir() else 'missing'})" for path, label in dirs]
    if not os.environ.get(ENV_VAR):
        lines.append(f"  - ${ENV_VAR}/{name}  (${ENV_VAR} is not set)")
    if not lines:  # pragma: no cover - candidate_dirs always yields the user cache
        lines.append("  - (no folder to search)")
    return "\n".join(lines)


def digest_matches(file_bytes: bytes, raw_bytes: bytes, checksums: dict[str, str]) -> bool | None:
    """Compare a file with its known checksums.

    ``checksums`` may hold ``md5_gz`` (the published MD5 of the distributed ``.gz`` file) and/or
    ``sha256_raw`` (SHA-256 of the decompressed IDX bytes, independent of how it was
    compressed). Returns True when any applicable checksum matches, False when some applied and
    none matched, None when none applies (e.g. a raw file with only a ``.gz`` MD5 known).
    """
    applied = False
    is_gz = file_bytes[:2] == b"\x1f\x8b"
    if is_gz and "md5_gz" in checksums:
        applied = True
        if hashlib.md5(file_bytes, usedforsecurity=False).hexdigest() == checksums["md5_gz"]:
            return True
    if "sha256_raw" in checksums:
        applied = True
        if hashlib.sha256(raw_bytes).hexdigest() == checksums["sha256_raw"]:
            return True
    return False if applied else None


def download_file(
    urls: Sequence[str],
    destination: Path,
    md5: str | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download the first URL that works to ``destination``, atomically.

    The bytes go to a temporary file in the destination folder, are checked against ``md5``
    (when given) and only then renamed into place, so an interrupted download never leaves a
    partial file under the final name.

    Raises:
        BayesdropError: every URL failed or the MD5 did not match; lists each URL's error.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
                data = response.read()
        except (OSError, http.client.HTTPException, ValueError) as err:  # URLError, timeouts
            errors.append(f"{url}: {err}")
            continue
        if md5 is not None:
            got = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if got != md5:
                errors.append(f"{url}: MD5 {got} != expected {md5}")
                continue
        with atomic_open(destination, "wb") as fh:
            fh.write(data)
        return destination
    raise BayesdropError(f"Could not download {destination.name}:\n  " + "\n  ".join(errors))
