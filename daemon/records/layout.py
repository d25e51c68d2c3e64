"""The HDF5 layout shared by targets and pairs files: format names and versions, header checks, and the
small helpers both file kinds use (the layout itself is described in :mod:`specklenet.daemon.records`).

Versions: targets files are version 1. Pairs files are version 2 (frames stored as uint16 binned
sums, camera timestamps); version 1 pairs files (float32 mean counts) stay readable and resumable.

Thread-safety: stateless functions, safe from any thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError

FORMAT_VERSION = 1  # of targets files (and of the targets inside a pairs file)
PAIRS_FORMAT_VERSION = 2  # uint16 binned sums; version 1 stored float32 mean counts
TARGETS_FORMAT = "specklenet.targets"
PAIRS_FORMAT = "specklenet.pairs"
READABLE_VERSIONS = {TARGETS_FORMAT: (FORMAT_VERSION,), PAIRS_FORMAT: (1, PAIRS_FORMAT_VERSION)}


def check_header(path: Path, file: h5py.File, kinds: tuple[str, ...]) -> int:
    """Check the format attributes; returns the file's format version."""
    kind = file.attrs.get("format")
    if kind not in kinds:
        raise FileFormatError(f"{path}: not a {' or '.join(kinds)} file (format attribute: {kind!r})")
    version = file.attrs.get("format_version")
    version = version.item() if isinstance(version, np.generic) else version
    readable = READABLE_VERSIONS[str(kind)]
    if version not in readable:
        names = " or ".join(str(v) for v in readable)
        raise FileFormatError(f"{path}: format version {version!r}; this specklenet reads version {names}")
    return int(version)


def open_for_reading(path: Path) -> h5py.File:
    """Open an HDF5 file read-only in SWMR mode; a missing or damaged file raises FileFormatError."""
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        # swmr=True also reads files whose SWMR writer is alive or was killed (a plain open refuses).
        return h5py.File(path, "r", swmr=True)
    except OSError as error:
        raise FileFormatError(f"{path}: not a readable HDF5 file (truncated or damaged?): {error}") from error


def dataset(path: Path, file: h5py.File, name: str) -> h5py.Dataset:
    item = file.get(name)
    if not isinstance(item, h5py.Dataset):
        raise FileFormatError(f"{path}: the dataset /{name} is missing")
    return item


def group(path: Path, file: h5py.File, name: str) -> h5py.Group:
    item = file.get(name)
    if not isinstance(item, h5py.Group):
        raise FileFormatError(f"{path}: the group /{name} is missing")
    return item


def to_json(value: Mapping[str, Any], what: str) -> str:
    """``value`` as sorted JSON text; refuses what JSON cannot hold, naming ``what``."""
    try:
        return json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise FileFormatError(f"{what} must be JSON-serialisable: {error}") from error


def describe(array: Any) -> str:
    """``"float32 (2, 3)"`` for an array, else the type's name: for error messages."""
    if isinstance(array, np.ndarray):
        return f"{array.dtype} {array.shape}"
    return type(array).__name__


def partial_path(path: Path) -> Path:
    """Where a file is built before it atomically takes its real name."""
    return path.with_name(path.name + ".partial")


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
