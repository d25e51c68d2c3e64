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
By default every ``write`` commits (over 1,000 frames/s here, see ``benchmarks/records.py``); with
``flush_interval_s`` > 0 frames are committed in batches at least that often. HDF5 refuses a plain
re-open for writing after a crash, so :meth:`PairsWriter.resume` copies the complete frames into a
fresh file and atomically replaces the old one (never losing a recorded frame). A sidecar lock file
``<name>.lock`` (left in place, empty) keeps a second writer out of a file that is being written.
SIGKILL leaves written data in the page cache; ``close()`` also fsyncs, against power loss.

Modules: :mod:`.targets` (targets files, the shared layout) and :mod:`.pairs` (writer and reader).

Thread-safety: a :class:`PairsWriter` or :class:`Pairs` belongs to one thread; :class:`Targets` is
immutable and :func:`read_targets` / :func:`write_targets` are safe to call from any thread.
"""

from specklenet.daemon.records.pairs import FRAME_SHAPE, SOURCES, Pairs, PairsWriter, read_pairs
from specklenet.daemon.records.targets import (
    FORMAT_VERSION,
    PAIRS_FORMAT,
    STANDARD_COLUMNS,
    TARGETS_FORMAT,
    Targets,
    read_targets,
    write_targets,
)

__all__ = [
    "FORMAT_VERSION",
    "FRAME_SHAPE",
    "PAIRS_FORMAT",
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
