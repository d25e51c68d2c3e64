"""Pairs files: the crash-safe :class:`PairsWriter` and the :class:`Pairs` reader.

Layout and crash-safety design: see :mod:`specklenet.daemon.records`. A writer or reader belongs to
one thread.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.targets import (
    PAIRS_FORMAT,
    Targets,
    _check_header,
    _dataset,
    _describe,
    _json,
    _open_for_reading,
    _partial,
    _read_targets_group,
    _write_targets_group,
)

_logger = logging.getLogger(__name__)

FRAME_SHAPE = (256, 256)
SOURCES = ("twin", "hardware")
_PER_FRAME = ("frame_id", "timestamp_ns", "complete")

Source = Literal["twin", "hardware"]


class PairsWriter:
    """Records one speckle frame per target into a pairs file, crash-safely (see the module docstring).

    Create with :meth:`create` (a new file) or :meth:`resume` (finish an existing one). Frames may be
    written for any index in any order; writing an index again replaces its frame. Not thread-safe:
    use it from one thread.
    """

    def __init__(
        self,
        path: Path,
        file: h5py.File,
        lock: _Lock,
        targets: Targets,
        *,
        flush_interval_s: float,
        clock: Callable[[], float],
    ) -> None:
        """Use :meth:`create` or :meth:`resume`."""
        self.path = path
        self.targets = targets
        self.source: str = str(file.attrs["source"])
        self.acquisition: dict[str, Any] = json.loads(file.attrs["acquisition"])
        self.frame_shape: tuple[int, int] = tuple(file["frames"].shape[1:])  # type: ignore[assignment]
        self._file: h5py.File | None = file
        self._lock = lock
        self._frames = file["frames"]
        self._frame_id = file["frame_id"]
        self._timestamp_ns = file["timestamp_ns"]
        self._complete = file["complete"]
        self._written = self._complete[:].astype(bool)  # committed, or pending in this writer
        self._pending: set[int] = set()
        self._flush_interval_s = float(flush_interval_s)
        self._clock = clock
        self._last_flush = clock()

    @classmethod
    def create(
        cls,
        path: str | Path,
        targets: Targets,
        *,
        source: Source,
        acquisition: Mapping[str, Any],
        frame_shape: tuple[int, int] = FRAME_SHAPE,
        flush_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        overwrite: bool = False,
    ) -> PairsWriter:
        """Start a new pairs file for ``targets``; refuses to replace an existing file unless ``overwrite``.

        Args:
            source: ``"twin"`` or ``"hardware"``.
            acquisition: JSON-serialisable settings (``twin.describe()``, or camera and DMD settings).
            frame_shape: (rows, columns) of every frame.
            flush_interval_s: 0 commits every frame as it is written; otherwise frames are committed
                in batches, at the first ``write`` at least this many seconds (by ``clock``) after the
                last commit, and on ``flush``/``close``. At most 1 s, so a crash loses < 1 s of work;
                commits happen only inside these calls, so a caller that pauses with frames pending
                (a stalled camera) should call ``flush``.
            clock: monotonic seconds; injectable for tests.
        """
        path = Path(path)
        if source not in SOURCES:
            raise FileFormatError(f"{path}: source must be one of {SOURCES}, got {source!r}")
        _check_interval(path, flush_interval_s)
        acquisition_json = _json(acquisition, "acquisition")
        lock = _Lock.acquire(path)
        try:
            if path.exists() and not overwrite:
                raise FileFormatError(f"{path}: already exists; resume it, or choose another name")
            partial = _partial(path)
            file = h5py.File(partial, "w", libver="latest")
            try:
                _write_targets_group(file, targets, PAIRS_FORMAT)
                file.attrs["source"] = source
                file.attrs["acquisition"] = acquisition_json
                file.attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                _create_frame_datasets(file, len(targets), tuple(frame_shape))
                file.swmr_mode = True
                os.replace(partial, path)  # a half-built file never carries the real name
            except BaseException:
                file.close()
                partial.unlink(missing_ok=True)
                raise
        except BaseException:
            lock.release()
            raise
        return cls(path, file, lock, targets, flush_interval_s=flush_interval_s, clock=clock)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        *,
        flush_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> PairsWriter:
        """Re-open a pairs file to record its missing frames, after a clean close or a crash.

        After a crash the complete frames are first copied into a fresh file that atomically replaces
        the old one; incomplete frames are dropped (they show up in :meth:`missing`).
        """
        path = Path(path)
        _check_interval(path, flush_interval_s)
        lock = _Lock.acquire(path)
        try:
            targets = _read_pairs_header(path)
            try:
                file = h5py.File(path, "r+", libver="latest")
            except OSError:
                # HDF5 refuses to re-open a file whose SWMR writer died; nobody else holds our lock,
                # so the writer is gone: rebuild the file from its complete frames.
                _recover(path)
                file = h5py.File(path, "r+", libver="latest")
            file.swmr_mode = True
        except OSError as error:
            lock.release()
            raise FileFormatError(f"{path}: cannot resume: {error}") from error
        except BaseException:
            lock.release()
            raise
        return cls(path, file, lock, targets, flush_interval_s=flush_interval_s, clock=clock)

    def write(
        self,
        index: int,
        frame: np.ndarray,
        *,
        frame_id: int,
        timestamp_ns: int,
        camera_timestamp_ns: int | None = None,  # C1 stub: h8storage stores it
    ) -> None:
        """Record ``frame`` (float32 counts, or an integer type float32 holds exactly) for target ``index``.

        Returns once the frame is committed (default) or queued for the next batch commit.
        """
        self._open_file()
        index = self._check_index(index)
        frame = self._check_frame(index, frame)
        if self._written[index] and index not in self._pending:
            # Re-recording: un-mark the old frame first so a crash mid-write never leaves a torn
            # frame marked complete.
            self._complete[index] = 0
            self._complete.flush()
        self._frames[index] = frame
        self._frame_id[index] = int(frame_id)
        self._timestamp_ns[index] = int(timestamp_ns)
        self._written[index] = True
        self._pending.add(index)
        if self._clock() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def missing(self) -> np.ndarray:
        """int64 indices that have no frame yet (neither in the file nor written through this writer)."""
        return np.flatnonzero(~self._written).astype(np.int64)

    def flush(self) -> None:
        """Commit pending frames: flush their data, then set and flush their ``complete`` flags."""
        if self._file is None or not self._pending:
            return
        for dataset in (self._frames, self._frame_id, self._timestamp_ns):
            dataset.flush()
        pending = np.sort(np.fromiter(self._pending, np.int64, len(self._pending)))
        if len(pending) == 1:
            self._complete[int(pending[0])] = 1
        else:
            flags = self._complete[pending[0] : pending[-1] + 1]
            flags[pending - pending[0]] = 1
            self._complete[pending[0] : pending[-1] + 1] = flags
        self._complete.flush()
        self._pending.clear()
        self._last_flush = self._clock()

    def close(self) -> None:
        """Commit pending frames, fsync and close the file, release the lock. Safe to call twice."""
        if self._file is None:
            return
        try:
            self.flush()
            self._file.flush()
            os.fsync(self._file.id.get_vfd_handle())
        finally:
            self._file.close()
            self._file = None
            self._lock.release()

    @property
    def closed(self) -> bool:
        return self._file is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open_file(self) -> h5py.File:
        if self._file is None:
            raise FileFormatError(f"{self.path}: the pairs writer is closed")
        return self._file

    def _check_index(self, index: int) -> int:
        count = len(self._written)
        if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < count:
            raise FileFormatError(f"{self.path}: target index {index!r} is outside 0..{count - 1}")
        return int(index)

    def _check_frame(self, index: int, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        # "safe": float32 itself, or camera integers (uint8, uint16) that float32 holds exactly.
        if frame.shape != self.frame_shape or not np.can_cast(frame.dtype, np.float32, "safe"):
            raise FileFormatError(
                f"{self.path}: frame for index {index} is {_describe(frame)}, "
                f"expected float32 {self.frame_shape}"
            )
        return frame.astype(np.float32, copy=False)


class Pairs:
    """An open pairs file: its targets, frames (lazily) and per-frame acquisition metadata.

    Use as a context manager, or call :meth:`close`. Opened in SWMR mode: a file still being written
    can be read, and :meth:`refresh` picks up frames committed since. Not thread-safe.

    Attributes:
        targets: the :class:`Targets` the frames were recorded for.
        source: ``"twin"`` or ``"hardware"``.
        acquisition: the settings recorded with the file (twin description, or device settings).
        frames: lazy float32 ``(N, 256, 256)`` dataset; index it like an array.
        complete: bool ``(N,)``: which frames are fully recorded.
        frame_id, timestamp_ns: int64 ``(N,)``; -1 where no frame is recorded.
    """

    def __init__(self, path: Path, file: h5py.File, targets: Targets) -> None:
        """Use :func:`read_pairs`."""
        self.path = path
        self.targets = targets
        self.source: str = str(file.attrs["source"])
        self.acquisition: dict[str, Any] = json.loads(file.attrs["acquisition"])
        self.frames: h5py.Dataset = file["frames"]
        self._file: h5py.File | None = file
        self.refresh()

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.frames.shape[1:])  # type: ignore[return-value]

    def refresh(self) -> None:
        """Re-read the per-frame metadata (frames committed by a live writer since opening)."""
        file = self._open_file()
        for name in _PER_FRAME:
            file[name].refresh()
        self.frames.refresh()
        # complete first: a frame marked complete has its data and metadata written before the flag.
        self.complete: np.ndarray = file["complete"][:].astype(bool)
        self.frame_id: np.ndarray = file["frame_id"][:]
        self.timestamp_ns: np.ndarray = file["timestamp_ns"][:]

    def complete_indices(self) -> np.ndarray:
        """int64 indices of the complete frames, ascending."""
        return np.flatnonzero(self.complete).astype(np.int64)

    def load_frames(self, indices: Iterable[int] | np.ndarray | None = None) -> np.ndarray:
        """Read the frames at ``indices`` (default: all) into float32 ``(K, rows, columns)``, in that order.

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
        out = np.empty((len(wanted), *self.frame_shape), np.float32)
        dataset = file["frames"]
        nbytes = out[0].nbytes
        for position, index in enumerate(wanted):
            _, chunk = dataset.id.read_direct_chunk((int(index), 0, 0))
            if len(chunk) != nbytes:
                raise FileFormatError(f"{self.path}: frame {index} is truncated")
            out[position] = np.frombuffer(chunk, np.float32).reshape(self.frame_shape)
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
    file = _open_for_reading(path)
    try:
        _check_header(path, file, (PAIRS_FORMAT,))
        targets = _read_targets_group(path, file)
        _check_frame_datasets(path, file, len(targets))
        return Pairs(path, file, targets)
    except BaseException:
        file.close()
        raise


def _create_frame_datasets(file: h5py.File, count: int, frame_shape: tuple[int, ...]) -> None:
    if len(frame_shape) != 2 or min(frame_shape) < 1:
        raise FileFormatError(f"frame_shape must be (rows, columns), got {frame_shape}")
    # Uncompressed, one frame per chunk: speckle does not compress, and Pairs.load_frames reads chunks
    # directly. Every dataset exists before SWMR mode starts (SWMR cannot create objects).
    file.create_dataset(
        "frames", (count, *frame_shape), np.float32, chunks=(1, *frame_shape) if count else None
    )
    per_frame = {"chunks": (min(max(count, 1), 4096),)} if count else {}
    file.create_dataset("frame_id", (count,), np.int64, fillvalue=-1, **per_frame)
    file.create_dataset("timestamp_ns", (count,), np.int64, fillvalue=-1, **per_frame)
    file.create_dataset("complete", (count,), np.uint8, fillvalue=0, **per_frame)


def _check_frame_datasets(path: Path, file: h5py.File, count: int) -> None:
    frames = _dataset(path, file, "frames")
    if frames.dtype != np.float32 or frames.ndim != 3 or frames.shape[0] != count:
        raise FileFormatError(
            f"{path}: /frames is {frames.dtype} {frames.shape}, expected float32 ({count}, rows, columns)"
        )
    if (count and frames.chunks != (1, *frames.shape[1:])) or frames.compression is not None:
        raise FileFormatError(f"{path}: /frames must be stored uncompressed, one frame per chunk")
    for name, dtype in zip(_PER_FRAME, (np.int64, np.int64, np.uint8), strict=True):
        dataset = _dataset(path, file, name)
        if dataset.dtype != dtype or dataset.shape != (count,):
            raise FileFormatError(
                f"{path}: /{name} is {dataset.dtype} {dataset.shape}, expected {np.dtype(dtype)} ({count},)"
            )
    for name in ("source", "acquisition"):
        if name not in file.attrs:
            raise FileFormatError(f"{path}: the attribute {name!r} is missing")


def _read_pairs_header(path: Path) -> Targets:
    with read_pairs(path) as pairs:
        return pairs.targets


def _recover(path: Path) -> None:
    """Rebuild a crashed pairs file from its complete frames, then atomically replace it."""
    partial = _partial(path)
    partial.unlink(missing_ok=True)  # left by an earlier crash during recovery; ours (we hold the lock)
    with read_pairs(path) as old, h5py.File(partial, "w", libver="latest") as new:
        _write_targets_group(new, old.targets, PAIRS_FORMAT)
        for name in ("source", "acquisition", "created_utc"):
            if name in old.frames.file.attrs:
                new.attrs[name] = old.frames.file.attrs[name]
        _create_frame_datasets(new, len(old), old.frame_shape)
        kept = old.complete_indices()
        for index in kept:  # raw chunk copies: one frame per chunk, uncompressed
            _, chunk = old.frames.id.read_direct_chunk((int(index), 0, 0))
            new["frames"].id.write_direct_chunk((int(index), 0, 0), chunk)
        new["frame_id"][kept] = old.frame_id[kept]
        new["timestamp_ns"][kept] = old.timestamp_ns[kept]
        new["complete"][kept] = 1
        new.flush()
        os.fsync(new.id.get_vfd_handle())
    os.replace(partial, path)
    _fsync_directory(path.parent)
    _logger.warning("%s: recovered after a crash; kept %d complete frames", path, len(kept))


class _Lock:
    """An exclusive advisory lock on ``<path>.lock`` held while a writer has the file open."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path) -> _Lock:
        lock_path = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise FileFormatError(f"{path}: cannot create the lock file {lock_path}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FileFormatError(f"{path}: another process is writing this file") from None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _check_interval(path: Path, flush_interval_s: float) -> None:
    if not 0.0 <= flush_interval_s <= 1.0:
        raise FileFormatError(f"{path}: flush_interval_s must lie in [0, 1] s, got {flush_interval_s}")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
