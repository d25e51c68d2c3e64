"""Reading pairs files: :func:`read_pairs` and the :class:`Pairs` it returns.

Layout: see :mod:`specklenet.daemon.records`; frame storage: :mod:`.frames`. A reader belongs to one
thread.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.frames import PER_FRAME, FrameCodec, FrameView, check_frame_datasets
from specklenet.daemon.records.layout import PAIRS_FORMAT, check_header, open_for_reading
from specklenet.daemon.records.targets import Targets, read_targets_group


class Pairs:
    """An open pairs file: its targets, frames (lazily) and per-frame acquisition metadata.

    Use as a context manager, or call :meth:`close`. Opened in SWMR mode: a file still being written
    can be read, and :meth:`refresh` picks up frames committed since. Not thread-safe.

    Attributes:
        targets: the :class:`Targets` the frames were recorded for.
        source: ``"twin"`` or ``"hardware"``.
        acquisition: the settings recorded with the file (twin description, or device settings).
        frames: lazy float32 binned mean counts ``(N, 256, 256)``; index it like an array.
        complete: bool ``(N,)``: which frames are fully recorded.
        frame_id, timestamp_ns: int64 ``(N,)``; -1 where no frame is recorded. ``timestamp_ns`` is
            the host's receipt time (``time.time_ns()``).
        camera_timestamp_ns: int64 ``(N,)``: exposure start on the camera's clock; -1 where the camera
            gave none, no frame is recorded, or the file predates camera timestamps (version 1).
        version: the file's format version (1: float32 frames; 2: uint16 binned sums).
        binning: native pixels per binned pixel along each axis; None for version 1 files.
        dark_offset_counts: the camera's black level per native pixel; None for version 1 files.
    """

    def __init__(self, path: Path, file: h5py.File, targets: Targets, codec: FrameCodec) -> None:
        """Use :func:`read_pairs`."""
        self.path = path
        self.targets = targets
        self.source: str = str(file.attrs["source"])
        self.acquisition: dict[str, Any] = json.loads(file.attrs["acquisition"])
        self.codec = codec
        self.version = codec.version
        self.binning: int | None = codec.binning if codec.version >= 2 else None
        self.dark_offset_counts: float | None = codec.dark_offset_counts
        self.frames = FrameView(file["frames"], codec)
        self._file: h5py.File | None = file
        self.refresh()

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:])  # type: ignore[return-value]

    @property
    def file(self) -> h5py.File:
        """The open HDF5 file (for copying it raw, e.g. crash recovery)."""
        return self._open_file()

    def refresh(self) -> None:
        """Re-read the per-frame metadata (frames committed by a live writer since opening)."""
        file = self._open_file()
        names = PER_FRAME[self.version]
        for name in names:
            file[name].refresh()
        self.frames.refresh()
        # complete first: a frame marked complete has its data and metadata written before the flag.
        self.complete: np.ndarray = file["complete"][:].astype(bool)
        self.frame_id: np.ndarray = file["frame_id"][:]
        self.timestamp_ns: np.ndarray = file["timestamp_ns"][:]
        if "camera_timestamp_ns" in names:
            self.camera_timestamp_ns: np.ndarray = file["camera_timestamp_ns"][:]
        else:
            self.camera_timestamp_ns = np.full(len(self), -1, np.int64)

    def complete_indices(self) -> np.ndarray:
        """int64 indices of the complete frames, ascending."""
        return np.flatnonzero(self.complete).astype(np.int64)

    def load_frames(self, indices: Iterable[int] | np.ndarray | None = None) -> np.ndarray:
        """Read the frames at ``indices`` (default: all) into float32 mean counts ``(K, rows, columns)``,
        in that order.

        Every requested frame must be complete. Reads each stored chunk directly (one frame per chunk),
        which is several times faster than h5py fancy indexing for scattered indices.
        """
        file = self._open_file()
        wanted = np.arange(len(self)) if indices is None else np.asarray(list(indices), dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(self)):
            raise FileFormatError(f"{self.path}: frame indices must lie in 0..{len(self) - 1}")
        incomplete = wanted[~self.complete[wanted]]
        if incomplete.size:
            raise FileFormatError(
                f"{self.path}: {incomplete.size} requested frame(s) are not recorded, "
                f"e.g. index {incomplete[0]}"
            )
        codec, shape = self.codec, self.frame_shape
        out = np.empty((len(wanted), *shape), np.float32)
        dataset = file["frames"]
        nbytes = int(np.prod(shape)) * codec.stored_dtype.itemsize
        for position, index in enumerate(wanted):
            _, chunk = dataset.id.read_direct_chunk((int(index), 0, 0))
            if len(chunk) != nbytes:
                raise FileFormatError(f"{self.path}: frame {index} is truncated")
            # Decoded frame by frame into the result: no second, stored-size copy of the whole block.
            codec.decode(np.frombuffer(chunk, codec.stored_dtype).reshape(shape), out=out[position])
        return out

    def close(self) -> None:
        """Close the file; safe to call twice."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open_file(self) -> h5py.File:
        if self._file is None:
            raise FileFormatError(f"{self.path}: the pairs file is closed")
        return self._file


def read_pairs(path: str | Path) -> Pairs:
    """Open a pairs file for reading (SWMR, so also while it is being written)."""
    path = Path(path)
    file = open_for_reading(path)
    try:
        version = check_header(path, file, (PAIRS_FORMAT,))
        targets = read_targets_group(path, file)
        codec = check_frame_datasets(path, file, len(targets), version)
        return Pairs(path, file, targets, codec)
    except BaseException:
        file.close()
        raise
