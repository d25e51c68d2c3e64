"""Targets files and the :class:`Targets` they hold (layout: see :mod:`specklenet.daemon.records`).

Thread-safety: :class:`Targets` is immutable; :func:`read_targets` and :func:`write_targets` may be
called from any thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.layout import (
    FORMAT_VERSION,
    PAIRS_FORMAT,
    TARGETS_FORMAT,
    check_header,
    dataset,
    describe,
    group,
    open_for_reading,
    partial_path,
    to_json,
)

STANDARD_COLUMNS = ("dataset", "source_index", "label", "placement")


@dataclass(frozen=True, eq=False)
class Targets:
    """A set of DMD targets with their metadata (immutable; validated on construction).

    Attributes:
        canvases: uint8 ``(N, rows, columns)`` grey levels 0..255, ``canvases[index, row, column]``.
        columns: per-target metadata, each array with first axis N; must include the standard columns
            ``dataset``, ``source_index``, ``label``, ``placement`` (see the module docstring).
            String columns are numpy ``str`` arrays.
        case: name of the experimental case ("1", "4b", "SI", "custom", ...).
        split: which part of the case ("train", "test-faces", ...).
        output_window: ``(row0, col0, rows, columns)`` of the canvas the network reconstructs; a test's
            ground truth is the canvas inside this window.
        provenance: JSON-serialisable facts about how the set was made (dataset checksums, seed,
            package version).
    """

    canvases: np.ndarray
    columns: Mapping[str, np.ndarray]
    case: str
    split: str
    output_window: tuple[int, int, int, int]
    provenance: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        canvases = self.canvases
        if not isinstance(canvases, np.ndarray) or canvases.dtype != np.uint8 or canvases.ndim != 3:
            raise FileFormatError(
                f"targets: canvases must be uint8 (N, rows, columns), got {describe(canvases)}"
            )
        count, rows, cols = canvases.shape
        missing = [name for name in STANDARD_COLUMNS if name not in self.columns]
        if missing:
            raise FileFormatError(f"targets: metadata lacks the standard column(s) {missing}")
        columns = {name: _column(name, value, count) for name, value in self.columns.items()}
        window = tuple(int(v) for v in self.output_window)
        row0, col0, height, width = window if len(window) == 4 else (-1, -1, 0, 0)
        if not (row0 >= 0 and col0 >= 0 and height > 0 and width > 0 and row0 + height <= rows):
            raise FileFormatError(f"targets: output_window {self.output_window} is not inside the canvas")
        if col0 + width > cols:
            raise FileFormatError(f"targets: output_window {self.output_window} is not inside the canvas")
        if "truth_window" in columns:
            _check_truth_windows(columns["truth_window"], rows, cols)
        provenance = json.loads(to_json(self.provenance, "provenance"))
        canvases = canvases.view()  # read-only view; the caller's array keeps its flags
        canvases.setflags(write=False)
        object.__setattr__(self, "canvases", canvases)
        object.__setattr__(self, "columns", MappingProxyType(columns))
        object.__setattr__(self, "output_window", window)
        object.__setattr__(self, "provenance", MappingProxyType(provenance))

    def __len__(self) -> int:
        return int(self.canvases.shape[0])

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return (int(self.canvases.shape[1]), int(self.canvases.shape[2]))

    @classmethod
    def from_canvases(
        cls,
        canvases: np.ndarray,
        *,
        case: str = "custom",
        split: str = "custom",
        output_window: tuple[int, int, int, int] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Targets:
        """Targets with placeholder metadata (dataset "custom"), e.g. for test patterns at the bench.

        ``output_window`` defaults to the whole canvas.
        """
        canvases = np.asarray(canvases)
        count = canvases.shape[0] if canvases.ndim == 3 else 0
        columns = {
            "dataset": np.full(count, "custom"),
            "source_index": np.stack([np.arange(count), np.full(count, -1)], axis=1).astype(np.int64),
            "label": np.full(count, ""),
            "placement": np.zeros((count, 2), np.int16),
        }
        window = output_window or (0, 0, *canvases.shape[1:3])
        return cls(canvases, columns, case, split, window, provenance or {})  # type: ignore[arg-type]

    def subset(self, indices: Iterable[int] | np.ndarray | slice, *, split: str | None = None) -> Targets:
        """The targets at ``indices`` (any order), with the same case, window and provenance."""
        selection = indices if isinstance(indices, slice) else np.asarray(list(indices), dtype=np.int64)
        columns = {name: value[selection] for name, value in self.columns.items()}
        return Targets(
            self.canvases[selection].copy(),
            columns,
            self.case,
            split or self.split,
            self.output_window,
            self.provenance,
        )

    def ground_truth(self, indices: np.ndarray | slice | None = None) -> np.ndarray:
        """float32 ``(K, rows, columns)`` in [0, 1]: what the network should reconstruct, grey / 255.

        That is the canvas inside each target's ``truth_window`` column when the targets have one
        (e.g. case 5's shifted tests: the displayed target itself), else inside the output window.
        """
        selection = np.arange(len(self))[slice(None) if indices is None else indices]
        if "truth_window" not in self.columns:
            row0, col0, height, width = self.output_window
            window = self.canvases[selection, row0 : row0 + height, col0 : col0 + width]
            return window.astype(np.float32) / np.float32(255.0)
        windows = self.columns["truth_window"][selection]
        height, width = (int(v) for v in windows[0, 2:]) if len(windows) else self.output_window[2:]
        truth = np.empty((len(selection), height, width), np.float32)
        for position, (index, (row0, col0, _, _)) in enumerate(zip(selection, windows, strict=True)):
            truth[position] = self.canvases[index, row0 : row0 + height, col0 : col0 + width]
        return truth / np.float32(255.0)


def write_targets(path: str | Path, targets: Targets) -> None:
    """Write ``targets`` to a new targets file (replacing ``path`` atomically if it exists)."""
    path = Path(path)
    partial = partial_path(path)
    try:
        with h5py.File(partial, "w", libver="latest") as file:
            write_targets_group(file, targets, TARGETS_FORMAT)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise FileFormatError(f"{path}: cannot write the targets file: {error}") from error


def read_targets(path: str | Path) -> Targets:
    """Read the targets of a targets file or of a pairs file; bad files raise :class:`FileFormatError`."""
    path = Path(path)
    with open_for_reading(path) as file:
        check_header(path, file, (TARGETS_FORMAT, PAIRS_FORMAT))
        return read_targets_group(path, file)


def write_targets_group(file: h5py.File, targets: Targets, kind: str) -> None:
    """Write the format attributes, canvases and metadata of ``targets`` into a new file (the part
    that targets and pairs files share)."""
    file.attrs["format"] = kind
    file.attrs["format_version"] = FORMAT_VERSION
    file.attrs["case"] = targets.case
    file.attrs["split"] = targets.split
    file.attrs["output_window"] = np.asarray(targets.output_window, np.int64)
    file.attrs["provenance"] = to_json(targets.provenance, "provenance")
    rows, cols = targets.canvas_shape
    # One canvas per chunk so a random subset reads only what it needs; gzip: MNIST canvases are
    # mostly zeros and shrink about tenfold.
    file.create_dataset(
        "canvases",
        data=targets.canvases,
        chunks=(1, rows, cols) if len(targets) else None,
        compression="gzip",
    )
    metadata = file.create_group("metadata")
    for name, values in targets.columns.items():
        if values.dtype.kind == "U":
            metadata.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
        else:
            metadata.create_dataset(name, data=values)


def read_targets_group(path: Path, file: h5py.File) -> Targets:
    """The :class:`Targets` held by an open targets or pairs file; damage raises FileFormatError."""
    try:
        canvases = dataset(path, file, "canvases")[()]
        columns = {}
        for name, column in group(path, file, "metadata").items():
            if h5py.check_string_dtype(column.dtype):
                columns[name] = np.asarray(column.asstr()[()], dtype=str).reshape(column.shape)
            else:
                columns[name] = column[()]
        window = tuple(int(v) for v in file.attrs["output_window"])
        provenance = json.loads(file.attrs["provenance"])
        case, split = str(file.attrs["case"]), str(file.attrs["split"])
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise FileFormatError(f"{path}: damaged or incomplete targets: {error}") from error
    try:
        return Targets(canvases, columns, case, split, window, provenance)  # type: ignore[arg-type]
    except FileFormatError as error:
        raise FileFormatError(f"{path}: {error}") from error


def _column(name: str, value: Any, count: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim == 0 or array.shape[0] != count:
        raise FileFormatError(
            f"targets: metadata column {name!r} has shape {array.shape}, expected ({count}, ...)"
        )
    if array.dtype.kind not in "biufU":
        raise FileFormatError(f"targets: metadata column {name!r} has unsupported dtype {array.dtype}")
    array = array.copy()
    array.setflags(write=False)
    return array


def _check_truth_windows(windows: np.ndarray, rows: int, cols: int) -> None:
    if windows.ndim != 2 or windows.shape[1] != 4 or windows.dtype.kind not in "iu":
        raise FileFormatError(
            f"targets: truth_window must be integers (N, 4), got {windows.dtype} {windows.shape}"
        )
    if len(windows) == 0:
        return
    row0, col0, height, width = windows.T
    if (height != height[0]).any() or (width != width[0]).any() or height[0] < 1 or width[0] < 1:
        raise FileFormatError("targets: every truth_window must have the same, positive size")
    if (row0 < 0).any() or (col0 < 0).any() or (row0 + height > rows).any() or (col0 + width > cols).any():
        raise FileFormatError(f"targets: a truth_window lies outside the {rows}×{cols} canvas")
