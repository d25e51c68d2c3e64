"""How a pairs file stores its frames: the per-frame datasets, the :class:`FrameCodec` and the lazy
:class:`FrameView` readers index.

Every camera frame is an integer before binning: the bench's 4×4 binned *sum* of 12-bit pixels is at
most 16 × 4095 = 65,520, so version 2 files store ``frames`` as uint16 binned sums (half the size of
float32) with ``binning`` and ``dark_offset_counts`` as file attributes. Writers and readers speak
float32 binned *mean* counts, as the camera (``CameraFrame.counts``) and the twin deliver them: a
frame is stored as ``mean × binning²`` and read back as ``sum × float32(1 / binning²)`` — the product
the camera's ``bin_mean`` computes — and the writer refuses any frame that would not read back
bit-identical. Version 1 files stored float32 mean counts; they stay readable and resumable as they are.

Thread-safety: :class:`FrameCodec` is immutable; a :class:`FrameView` belongs to its reader's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.layout import PAIRS_FORMAT_VERSION, dataset

FRAME_SHAPE = (256, 256)
SUM_DTYPE = np.dtype(np.uint16)
MEAN_DTYPE = np.dtype(np.float32)
# Per-frame metadata of each version; -1 (0 for complete) until recorded.
PER_FRAME: dict[int, dict[str, np.dtype]] = {
    1: {"frame_id": np.dtype(np.int64), "timestamp_ns": np.dtype(np.int64), "complete": np.dtype(np.uint8)},
    2: {
        "frame_id": np.dtype(np.int64),
        "timestamp_ns": np.dtype(np.int64),
        "camera_timestamp_ns": np.dtype(np.int64),
        "complete": np.dtype(np.uint8),
    },
}


@dataclass(frozen=True)
class FrameCodec:
    """Turns float32 binned mean counts into what the file stores, and back.

    Attributes:
        version: the file's format version (1: float32 means stored as given; 2: uint16 sums).
        binning: native pixels per binned pixel along each axis (version 2; 1 for version 1).
        dark_offset_counts: the camera's black level per native pixel, recorded for reference (the
            stored sums include it); None in version 1 files.
    """

    version: int
    binning: int = 1
    dark_offset_counts: float | None = None

    @property
    def stored_dtype(self) -> np.dtype:
        return SUM_DTYPE if self.version >= 2 else MEAN_DTYPE

    @property
    def _scale(self) -> np.float32:
        return np.float32(1.0 / (self.binning * self.binning))

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` (float32 means, or integers float32 holds exactly) as stored; ValueError saying
        where when a value is not a whole binned sum in 0..65535 that reads back exactly."""
        means = frame.astype(np.float32, copy=False)
        if self.version < 2:
            return means
        area = self.binning * self.binning
        sums = means * np.float32(area)
        exact_scale = area & (area - 1) == 0  # a power of two: scaling by it and by 1/area is exact
        with np.errstate(invalid="ignore"):  # NaN and out-of-range values: caught by the check below
            stored = (sums if exact_scale else np.rint(sums)).astype(SUM_DTYPE)
        # Whole numbers in range survive the cast unchanged; with an exact scale that is all it takes
        # for the stored sums to read back as ``means``, otherwise decode and compare.
        if exact_scale and np.array_equal(stored, sums):
            return stored
        if not exact_scale and np.array_equal(self.decode(stored), means):
            return stored
        top = np.iinfo(SUM_DTYPE).max
        outside = np.flatnonzero(~((sums >= 0) & (sums <= top)))
        if outside.size:
            raise ValueError(self._explain(means, sums, int(outside[0]), "outside 0..65535"))
        bad = int(np.flatnonzero(self.decode(stored).ravel() != means.ravel())[0])
        raise ValueError(self._explain(means, sums, bad, "not a whole number"))

    def decode(self, stored: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """float32 mean counts of ``stored`` frames (any shape), into ``out`` when given."""
        if self.version < 2:
            if out is None:
                return np.asarray(stored, dtype=np.float32)
            out[...] = stored
            return out
        return np.multiply(stored, self._scale, out=out, dtype=np.float32)

    def attrs(self) -> dict[str, Any]:
        """The file attributes that describe this codec (version 2)."""
        return {"binning": self.binning, "dark_offset_counts": float(self.dark_offset_counts or 0.0)}

    def _explain(self, means: np.ndarray, sums: np.ndarray, flat: int, why: str) -> str:
        row, column = np.unravel_index(flat, means.shape)
        area = self.binning * self.binning
        return (
            f"holds {float(means[row, column])!r} at [{row}, {column}]: mean counts × binning² ({area}) = "
            f"{float(sums[row, column])!r} is {why}; frames must be binned camera counts (whole binned sums)"
        )


class FrameView:
    """Lazy float32 mean counts of a pairs file's ``frames``: index it like an array
    (``view[17]``, ``view[[2, 5]]``, ``view[:8]``); each access reads the file."""

    def __init__(self, frames: h5py.Dataset, codec: FrameCodec) -> None:
        self.dataset = frames
        self.codec = codec

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.dataset.shape)

    @property
    def dtype(self) -> np.dtype:
        return MEAN_DTYPE

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.codec.decode(self.dataset[key])

    def refresh(self) -> None:
        self.dataset.refresh()


def create_frame_datasets(
    file: h5py.File, count: int, frame_shape: tuple[int, ...], codec: FrameCodec
) -> None:
    """Create ``frames`` and the per-frame datasets (before SWMR mode starts: SWMR cannot create)."""
    if len(frame_shape) != 2 or min(frame_shape) < 1:
        raise FileFormatError(f"frame_shape must be (rows, columns), got {frame_shape}")
    # Uncompressed, one frame per chunk: speckle does not compress, and Pairs.load_frames reads chunks
    # directly.
    chunks = (1, *frame_shape) if count else None
    file.create_dataset("frames", (count, *frame_shape), codec.stored_dtype, chunks=chunks)
    per_frame = {"chunks": (min(max(count, 1), 4096),)} if count else {}
    for name, dtype in PER_FRAME[codec.version].items():
        fill = 0 if name == "complete" else -1
        file.create_dataset(name, (count,), dtype, fillvalue=fill, **per_frame)
    if codec.version >= 2:
        file.attrs.update(codec.attrs())


def check_frame_datasets(path: Path, file: h5py.File, count: int, version: int) -> FrameCodec:
    """Check the frame datasets of a version-``version`` pairs file; returns its codec."""
    codec = FrameCodec(version)
    if version >= 2:
        try:
            binning, dark = int(file.attrs["binning"]), float(file.attrs["dark_offset_counts"])
        except (KeyError, TypeError, ValueError) as error:
            raise FileFormatError(f"{path}: the binning or dark_offset_counts attribute: {error}") from None
        if binning < 1:
            raise FileFormatError(f"{path}: binning attribute is {binning}, expected >= 1")
        codec = FrameCodec(version, binning, dark)
    frames = dataset(path, file, "frames")
    expected = codec.stored_dtype
    if frames.dtype != expected or frames.ndim != 3 or frames.shape[0] != count:
        raise FileFormatError(
            f"{path}: /frames is {frames.dtype} {frames.shape}, expected {expected} ({count}, rows, columns)"
        )
    if (count and frames.chunks != (1, *frames.shape[1:])) or frames.compression is not None:
        raise FileFormatError(f"{path}: /frames must be stored uncompressed, one frame per chunk")
    for name, dtype in PER_FRAME[version].items():
        item = dataset(path, file, name)
        if item.dtype != dtype or item.shape != (count,):
            found = f"{item.dtype} {item.shape}"
            raise FileFormatError(f"{path}: /{name} is {found}, expected {dtype} ({count},)")
    for name in ("source", "acquisition"):
        if name not in file.attrs:
            raise FileFormatError(f"{path}: the attribute {name!r} is missing")
    return codec


def new_codec(binning: int, dark_offset_counts: float) -> FrameCodec:
    """The codec of a new file (the current version)."""
    if isinstance(binning, bool) or not isinstance(binning, int | np.integer) or binning < 1:
        raise FileFormatError(f"binning must be a positive integer, got {binning!r}")
    if not dark_offset_counts >= 0:
        raise FileFormatError(f"dark_offset_counts must be >= 0, got {dark_offset_counts!r}")
    return FrameCodec(PAIRS_FORMAT_VERSION, int(binning), float(dark_offset_counts))
