"""Checking the model files we load against the digests we pinned.

Models ship inside registry packages (nothing is downloaded at run time); a file that does
not match its digest — a different package version, a truncated install, tampering — stops
the engine from loading with a message that says which file and what to do, rather than
letting it run a model nobody reviewed.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Mapping
from pathlib import Path

_CHUNK = 1 << 20


class ModelFileError(RuntimeError):
    """A model file is missing or does not match its pinned digest."""


def package_dir(package: str, install_hint: str) -> Path:
    """Where an installed package lives, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"{package} is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(directory: Path, digests: Mapping[str, str]) -> None:
    """Every listed file exists under ``directory`` with its pinned SHA-256."""
    for name, expected in digests.items():
        path = directory / name
        if not path.is_file():
            raise ModelFileError(f"model file {path} is missing; reinstall with `make install`")
        actual = sha256_of(path)
        if actual != expected:
            raise ModelFileError(
                f"model file {path} has SHA-256 {actual}, expected {expected}; "
                "reinstall the pinned package with `make install`"
            )
