"""The two files that connect the bench to training: targets files and pairs files (HDF5).

A **targets file** holds what the DMD shows; a **pairs file** holds the same targets plus the speckle
frame recorded for each. The daemon writes pairs files when it acquires from hardware, the ``simulate``
command writes them through the optical twin, and training reads them; this module is the only place
that knows the layout.

Public API::

    targets = Targets(canvases, columns, case="2", split="train", output_window=(32, 32, 64, 64),
                      provenance={...})           # or Targets.from_canvases(canvases) for ad-hoc sets
    write_targets("targets.h5", targets);  targets = read_targets("targets.h5")   # pairs files too

    with PairsWriter.create("pairs.h5", targets, source="twin", acquisition=twin.describe()) as writer:
        for index in writer.missing():
            writer.write(index, frame, frame_id=int(index), timestamp_ns=time.time_ns())
    with PairsWriter.resume("pairs.h5") as writer: ...      # after a crash, Ctrl-C or a full disk

    with read_pairs("pairs.h5") as pairs:
        frames = pairs.load_frames(pairs.complete_indices())   # float32 (K, 256, 256) in memory
        pairs.frames[17]                                       # or lazily, one at a time

Layout (format version 1; array axes ``[index, row, column]``; N targets)::

    /                 attrs: format ("specklenet.targets" | "specklenet.pairs"), format_version, case,
                      split, output_window (row0, col0, rows, cols) on the canvas, provenance (JSON);
                      pairs only: source ("twin" | "hardware"), acquisition (JSON), created_utc
    /canvases         uint8 (N, rows, columns): the DMD grey levels, 0..255 (128×128 on the bench)
    /metadata/<name>  one row per target; the standard columns are
                        dataset       str        source dataset ("mnist", "lfw", "custom", ...)
                        source_index  int64 (2)  index of the image(s) in that dataset; -1 = none
                                                 (two indices when two digits are superimposed)
                        label         str        "7", "7+3", or the LFW person's name
                        placement     int16 (2)  (row, column) of the target's top-left corner
                      and optionally
                        truth_window  int16 (4)  (row0, col0, rows, columns) of this target's ground
                                                 truth on the canvas, when it is not the output
                                                 window (a target shown outside the window the
                                                 network was trained on); same size for all targets
                      and any further numeric or string columns (e.g. the case-4 modulation).
    pairs only:
    /frames           float32 (N, 256, 256) camera counts, one chunk per frame
    /frame_id         int64 (N,)   camera or twin frame id; -1 until recorded
    /timestamp_ns     int64 (N,)   acquisition time (caller's clock); -1 until recorded
    /complete         uint8 (N,)   1 once the frame and its metadata are in the file

Crash safety (measured in /work/shared/reference/performance-reliability.md §B.3): pairs files are
written in HDF5 SWMR mode. A frame's data and metadata are flushed *before* its ``complete`` flag is
set and flushed, so after a crash or SIGKILL every index marked complete holds its whole frame, and
readers (``read_pairs`` opens with ``swmr=True``) can open the file even while it is being written.
By default every ``write`` flushes (about 2,000 frames/s, see ``benchmarks/records.py``); with
``flush_interval_s`` > 0 frames are committed in batches at least that often. HDF5 refuses a plain
re-open for writing after a crash, so :meth:`PairsWriter.resume` copies the complete frames into a
fresh file and atomically replaces the old one (never losing a recorded frame). A sidecar lock file
``<name>.lock`` (left in place, empty) keeps a second writer out of a file that is being written.
SIGKILL leaves written data in the page cache; ``close()`` also fsyncs, against power loss.

Thread-safety: a :class:`PairsWriter` or :class:`Pairs` belongs to one thread; :class:`Targets` is
immutable and :func:`read_targets` / :func:`write_targets` are safe to call from any thread.
"""

from __future__ import annotations

import datetime
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError

_logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
TARGETS_FORMAT = "specklenet.targets"
PAIRS_FORMAT = "specklenet.pairs"
FRAME_SHAPE = (256, 256)
SOURCES = ("twin", "hardware")
STANDARD_COLUMNS = ("dataset", "source_index", "label", "placement")
_PER_FRAME = ("frame_id", "timestamp_ns", "complete")

Source = Literal["twin", "hardware"]


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
                f"targets: canvases must be uint8 (N, rows, columns), got {_describe(canvases)}"
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
        provenance = json.loads(_json(self.provenance, "provenance"))
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
    partial = _partial(path)
    try:
        with h5py.File(partial, "w", libver="latest") as file:
            _write_targets_group(file, targets, TARGETS_FORMAT)
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise FileFormatError(f"{path}: cannot write the targets file: {error}") from error


def read_targets(path: str | Path) -> Targets:
    """Read the targets of a targets file or of a pairs file; bad files raise :class:`FileFormatError`."""
    path = Path(path)
    with _open_for_reading(path) as file:
        _check_header(path, file, (TARGETS_FORMAT, PAIRS_FORMAT))
        return _read_targets_group(path, file)


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
                last commit, and on ``flush``/``close``. At most 1 s, so a crash loses < 1 s of work.
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

    def write(self, index: int, frame: np.ndarray, *, frame_id: int, timestamp_ns: int) -> None:
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


# --- file layout -------------------------------------------------------------------------------------


def _write_targets_group(file: h5py.File, targets: Targets, kind: str) -> None:
    file.attrs["format"] = kind
    file.attrs["format_version"] = FORMAT_VERSION
    file.attrs["case"] = targets.case
    file.attrs["split"] = targets.split
    file.attrs["output_window"] = np.asarray(targets.output_window, np.int64)
    file.attrs["provenance"] = _json(targets.provenance, "provenance")
    rows, cols = targets.canvas_shape
    # One canvas per chunk so a random subset reads only what it needs; gzip: MNIST canvases are
    # mostly zeros and shrink about tenfold.
    file.create_dataset(
        "canvases",
        data=targets.canvases,
        chunks=(1, rows, cols) if len(targets) else None,
        compression="gzip",
    )
    group = file.create_group("metadata")
    for name, values in targets.columns.items():
        if values.dtype.kind == "U":
            group.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
        else:
            group.create_dataset(name, data=values)


def _read_targets_group(path: Path, file: h5py.File) -> Targets:
    try:
        canvases = _dataset(path, file, "canvases")[()]
        columns = {}
        for name, dataset in _group(path, file, "metadata").items():
            if h5py.check_string_dtype(dataset.dtype):
                columns[name] = np.asarray(dataset.asstr()[()], dtype=str).reshape(dataset.shape)
            else:
                columns[name] = dataset[()]
        window = tuple(int(v) for v in file.attrs["output_window"])
        provenance = json.loads(file.attrs["provenance"])
        case, split = str(file.attrs["case"]), str(file.attrs["split"])
    except (KeyError, ValueError, TypeError, OSError) as error:
        raise FileFormatError(f"{path}: damaged or incomplete targets: {error}") from error
    try:
        return Targets(canvases, columns, case, split, window, provenance)  # type: ignore[arg-type]
    except FileFormatError as error:
        raise FileFormatError(f"{path}: {error}") from error


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


def _check_header(path: Path, file: h5py.File, kinds: tuple[str, ...]) -> None:
    kind = file.attrs.get("format")
    if kind not in kinds:
        raise FileFormatError(f"{path}: not a {' or '.join(kinds)} file (format attribute: {kind!r})")
    version = file.attrs.get("format_version")
    version = version.item() if isinstance(version, np.generic) else version
    if version != FORMAT_VERSION:
        raise FileFormatError(
            f"{path}: format version {version!r}; this specklenet reads version {FORMAT_VERSION}"
        )


def _read_pairs_header(path: Path) -> Targets:
    with read_pairs(path) as pairs:
        return pairs.targets


def _open_for_reading(path: Path) -> h5py.File:
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        # swmr=True also reads files whose SWMR writer is alive or was killed (a plain open refuses).
        return h5py.File(path, "r", swmr=True)
    except OSError as error:
        raise FileFormatError(f"{path}: not a readable HDF5 file (truncated or damaged?): {error}") from error


def _dataset(path: Path, file: h5py.File, name: str) -> h5py.Dataset:
    item = file.get(name)
    if not isinstance(item, h5py.Dataset):
        raise FileFormatError(f"{path}: the dataset /{name} is missing")
    return item


def _group(path: Path, file: h5py.File, name: str) -> h5py.Group:
    item = file.get(name)
    if not isinstance(item, h5py.Group):
        raise FileFormatError(f"{path}: the group /{name} is missing")
    return item


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


# --- helpers -----------------------------------------------------------------------------------------


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


def _json(value: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(dict(value), sort_keys=True)
    except (TypeError, ValueError) as error:
        raise FileFormatError(f"{what} must be JSON-serialisable: {error}") from error


def _describe(array: Any) -> str:
    if isinstance(array, np.ndarray):
        return f"{array.dtype} {array.shape}"
    return type(array).__name__


def _partial(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def _check_interval(path: Path, flush_interval_s: float) -> None:
    if not 0.0 <= flush_interval_s <= 1.0:
        raise FileFormatError(f"{path}: flush_interval_s must lie in [0, 1] s, got {flush_interval_s}")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
