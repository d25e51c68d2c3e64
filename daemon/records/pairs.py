"""Writing pairs files: the crash-safe :class:`PairsWriter`.

(Slightly over 300 lines: the writer's create/resume/write/flush/close are one commit protocol; the
layout, frame coding and recovery already live in their own modules.)

Layout and crash-safety design: see :mod:`specklenet.daemon.records`; frame storage: :mod:`.frames`;
locking, resuming and crash recovery: :mod:`.recovery`. A writer belongs to one thread.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.frames import FRAME_SHAPE, FrameCodec, create_frame_datasets, new_codec
from specklenet.daemon.records.layout import (
    PAIRS_FORMAT,
    PAIRS_FORMAT_VERSION,
    describe,
    partial_path,
    to_json,
)
from specklenet.daemon.records.reader import read_pairs
from specklenet.daemon.records.recovery import WriterLock, open_for_writing
from specklenet.daemon.records.targets import Targets, write_targets_group

_logger = logging.getLogger(__name__)

SOURCES = ("twin", "hardware")

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
        lock: WriterLock,
        targets: Targets,
        codec: FrameCodec,
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
        self.codec = codec
        self._file: h5py.File | None = file
        self._lock = lock
        self._frames = file["frames"]
        # Per-frame scalars live in memory and reach the file a pending range at a time in flush():
        # one HDF5 write per dataset and commit instead of three per frame (each costs tens of µs,
        # which at 1,000 frames/s was a third of the recorder's time). They matter only once the
        # frame's complete flag is set, which flush() does after writing them.
        self._columns = {name: (file[name], file[name][:]) for name in ("frame_id", "timestamp_ns")}
        # Version 1 files have no camera timestamps: they are resumed in their own layout, without.
        self._camera_timestamp_ns = file.get("camera_timestamp_ns")
        self._camera_times = None if self._camera_timestamp_ns is None else self._camera_timestamp_ns[:]
        if self._camera_times is not None:
            self._columns["camera_timestamp_ns"] = (self._camera_timestamp_ns, self._camera_times)
        self._camera_time_dropped = False
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
        binning: int = 4,
        dark_offset_counts: float = 16.0,
        flush_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        overwrite: bool = False,
    ) -> PairsWriter:
        """Start a new pairs file for ``targets``; refuses to replace an existing file unless ``overwrite``.

        Args:
            source: ``"twin"`` or ``"hardware"``.
            acquisition: JSON-serialisable settings (``twin.describe()``, or camera and DMD settings).
            frame_shape: (rows, columns) of every frame.
            binning: native camera pixels per frame pixel along each axis (4 on the bench: frames are
                stored as uint16 sums of binning² pixels, see :mod:`.frames`).
            dark_offset_counts: the camera's black level per native pixel, recorded with the frames.
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
        acquisition_json = to_json(acquisition, "acquisition")
        codec = new_codec(binning, dark_offset_counts)
        lock = WriterLock.acquire(path)
        try:
            if path.exists() and not overwrite:
                raise FileFormatError(f"{path}: already exists; resume it, or choose another name")
            partial = partial_path(path)
            file = h5py.File(partial, "w", libver="latest")
            try:
                write_targets_group(file, targets, PAIRS_FORMAT)
                file.attrs["format_version"] = PAIRS_FORMAT_VERSION
                file.attrs["source"] = source
                file.attrs["acquisition"] = acquisition_json
                file.attrs["created_utc"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
                create_frame_datasets(file, len(targets), tuple(frame_shape), codec)
                file.swmr_mode = True
                os.replace(partial, path)  # a half-built file never carries the real name
            except BaseException:
                file.close()
                partial.unlink(missing_ok=True)
                raise
        except BaseException:
            lock.release()
            raise
        return cls(path, file, lock, targets, codec, flush_interval_s=flush_interval_s, clock=clock)

    @classmethod
    def resume(
        cls,
        path: str | Path,
        *,
        flush_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> PairsWriter:
        """Re-open a pairs file to record its missing frames, after a clean close or a crash.

        A file locked by a live writer or held open by a reader raises :class:`FileFormatError`
        naming the holder, and is left as it is. After a crash the complete frames are first copied
        into a fresh file that atomically replaces the old one; incomplete frames are dropped (they
        show up in :meth:`missing`). See :mod:`.recovery`.
        """
        path = Path(path)
        _check_interval(path, flush_interval_s)
        lock = WriterLock.acquire(path)
        try:
            file = open_for_writing(path)
            try:
                with read_pairs(path) as pairs:  # the file as it is now (after any recovery)
                    targets, codec = pairs.targets, pairs.codec
                file.swmr_mode = True
            except BaseException:
                file.close()
                raise
        except OSError as error:
            lock.release()
            raise FileFormatError(f"{path}: cannot resume: {error}") from error
        except BaseException:
            lock.release()
            raise
        return cls(path, file, lock, targets, codec, flush_interval_s=flush_interval_s, clock=clock)

    def write(
        self,
        index: int,
        frame: np.ndarray,
        *,
        frame_id: int,
        timestamp_ns: int,
        camera_timestamp_ns: int | None = None,
    ) -> None:
        """Record ``frame`` for target ``index``.

        Args:
            frame: float32 binned mean counts ``[row, column]`` (``CameraFrame.counts``, twin frames),
                or an integer type float32 holds exactly. Stored as uint16 binned sums, so every value
                × binning² must be a whole number in 0..65535 (see :mod:`.frames`); anything else is
                refused with :class:`FileFormatError` naming the first bad pixel.
            frame_id: the camera's (or twin's) frame id.
            timestamp_ns: host receipt time, ``time.time_ns()``.
            camera_timestamp_ns: exposure start on the camera's clock; None (stored as -1) when the
                camera gives none.

        Returns once the frame is committed (default) or queued for the next batch commit.
        """
        self._open_file()
        index = self._check_index(index)
        stored = self._check_frame(index, frame)
        if self._written[index] and index not in self._pending:
            # Re-recording: un-mark the old frame first so a crash mid-write never leaves a torn
            # frame marked complete.
            self._complete[index] = 0
            self._complete.flush()
        self._frames[index] = stored
        self._columns["frame_id"][1][index] = int(frame_id)
        self._columns["timestamp_ns"][1][index] = int(timestamp_ns)
        self._set_camera_time(index, camera_timestamp_ns)
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
        pending = np.sort(np.fromiter(self._pending, np.int64, len(self._pending)))
        span = slice(int(pending[0]), int(pending[-1]) + 1)
        self._frames.flush()
        for dataset, values in self._columns.values():
            dataset[span] = values[span]  # memory mirrors the file outside the pending frames
            dataset.flush()
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
                f"{self.path}: frame for index {index} is {describe(frame)}, "
                f"expected float32 {self.frame_shape}"
            )
        try:
            return self.codec.encode(frame)
        except ValueError as error:
            raise FileFormatError(f"{self.path}: frame for index {index} {error}") from None

    def _set_camera_time(self, index: int, camera_timestamp_ns: int | None) -> None:
        value = -1 if camera_timestamp_ns is None else int(camera_timestamp_ns)
        if self._camera_times is not None:
            self._camera_times[index] = value
        elif value != -1 and not self._camera_time_dropped:
            self._camera_time_dropped = True
            _logger.warning("%s: a version 1 file has no camera timestamps; not recording them", self.path)


def _check_interval(path: Path, flush_interval_s: float) -> None:
    if not 0.0 <= flush_interval_s <= 1.0:
        raise FileFormatError(f"{path}: flush_interval_s must lie in [0, 1] s, got {flush_interval_s}")
