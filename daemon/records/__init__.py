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

Frames go in and come out as float32 binned *mean* counts; the file stores them as uint16 binned
*sums* (mean × binning², exact: see :mod:`.frames`), half the size of float32.

Layout (targets files: format version 1; pairs files: version 2, version 1 still read; array axes
``[index, row, column]``; N targets)::

    /                 attrs: format ("specklenet.targets" | "specklenet.pairs"), format_version, case,
                      split, output_window (row0, col0, rows, cols) on the canvas, provenance (JSON);
                      pairs only: source ("twin" | "hardware"), acquisition (JSON), created_utc,
                      binning (native pixels per frame pixel along each axis, 4 on the bench),
                      dark_offset_counts (the camera's black level per native pixel; included in
                      the stored counts)
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
    /frames           uint16 (N, 256, 256) binned sums of camera counts, one chunk per frame
                      (version 1: float32 binned mean counts)
    /frame_id         int64 (N,)   camera or twin frame id; -1 until recorded
    /timestamp_ns     int64 (N,)   host receipt time (time.time_ns()); -1 until recorded
    /camera_timestamp_ns int64 (N,) exposure start on the camera's clock; -1 when the camera gives
                      none or until recorded (not in version 1)
    /complete         uint8 (N,)   1 once the frame and its metadata are in the file

Crash safety (measured in /work/shared/reference/performance-reliability.md §B.3): pairs files are
written in HDF5 SWMR mode. A frame's data and metadata are flushed *before* its ``complete`` flag is
set and flushed, so after a crash or SIGKILL every index marked complete holds its whole frame, and
readers (``read_pairs`` opens with ``swmr=True``) can open the file even while it is being written.
By default every ``write`` commits (over 1,000 frames/s here, see ``benchmarks/records.py``); with
``flush_interval_s`` > 0 frames are committed in batches at least that often. HDF5 refuses a plain
re-open for writing after a crash, so :meth:`PairsWriter.resume` copies the complete frames into a
fresh file and atomically replaces the old one (never losing a recorded frame) — only after a crash:
a file locked by a live writer or held open by a reader is refused, naming the holder
(:mod:`.recovery`). A sidecar lock file ``<name>.lock`` (left in place, empty) keeps a second writer
out of a file that is being written.
SIGKILL leaves written data in the page cache; ``close()`` also fsyncs, against power loss.

Modules: :mod:`.layout` (format names, versions, shared helpers), :mod:`.targets` (targets files),
:mod:`.frames` (how frames are stored), :mod:`.pairs` (writer), :mod:`.reader` (reader) and
:mod:`.recovery` (locks, holders, crash recovery).

Thread-safety: a :class:`PairsWriter` or :class:`Pairs` belongs to one thread; :class:`Targets` is
immutable and :func:`read_targets` / :func:`write_targets` are safe to call from any thread.
"""

from specklenet.daemon.records.frames import FRAME_SHAPE
from specklenet.daemon.records.layout import (
    FORMAT_VERSION,
    PAIRS_FORMAT,
    PAIRS_FORMAT_VERSION,
    TARGETS_FORMAT,
)
from specklenet.daemon.records.pairs import SOURCES, PairsWriter
from specklenet.daemon.records.reader import Pairs, read_pairs
from specklenet.daemon.records.targets import STANDARD_COLUMNS, Targets, read_targets, write_targets

__all__ = [
    "FORMAT_VERSION",
    "FRAME_SHAPE",
    "PAIRS_FORMAT",
    "PAIRS_FORMAT_VERSION",
    "SOURCES",
    "STANDARD_COLUMNS",
    "TARGETS_FORMAT",
    "Pairs",
    "PairsWriter",
    "Targets",
    "read_pairs",
    "read_targets",
    "write_targets",
]
