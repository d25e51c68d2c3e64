"""Stream files: what ``specklenet record`` writes (HDF5, SWMR), and :func:`load_stream` to read them.

Layout (format ``specklenet.stream``, version 1; N_t rows per topic, one per received message)::

    /                   attrs: format, format_version, stream_address, started_utc, topics;
                        at a clean close also closed_utc and summary (JSON: messages per topic,
                        gaps, messages lost, daemon restarts, disconnects, malformed messages)
    /<topic>/           for each recorded topic (recon, speckle, status)
        stream_id       int64   the daemon run's random id (a new one at each daemon start)
        seq             int64   the daemon's sequence number (restarts from 0 in each daemon run)
        session         int32   the daemon run, counted by this recorder from 0 (seq is unique per session)
        t_publish_ns    int64   daemon publish time, host clock (time.time_ns)
        t_receive_ns    int64   receipt time here
        header_end      int64   row i's msgpack header is header_bytes[header_end[i-1]:header_end[i]]
        header_bytes    uint8   every header, re-packed as received (all fields, known or not)
        complete        uint8   1 once the row's data are committed (rows with 0: lost in a crash)
      recon and speckle also:
        frame_id, picture, target_index (-1 = unknown), t_capture_ns   int64
        image           float32 [row, r, c]: the array (uint8/uint16/float32 on the wire, exact in float32),
                        top-left aligned; shape[row] = (r, c) of that row's array; wire_dtype[row]
                        indexes the attribute ``dtypes``
      recon also:
        pcc             float64 (NaN = none)
    /gaps/              one row per gap the recorder saw (see specklenet.clients.stream.Gap):
        topic           uint8   index into the root attribute ``topics``
        kind            uint8   0 = gap (same daemon run, ``lost`` exact), 1 = restart (a new daemon run;
                                ``lost`` = the new run's messages published before we reconnected,
                                the old run's tail is unknown)
        after_seq, next_seq, lost, t_receive_ns   int64;  session int32;  complete uint8

Crash safety, as the pairs files (specklenet.daemon.records): SWMR mode; rows are buffered and
committed at least every ``flush_interval_s`` (data flushed first, then their ``complete`` flags), so
SIGKILL loses at most that much of the stream and never leaves a torn row marked complete; SIGINT and
SIGTERM commit everything received. Readers open with ``swmr=True``, also while recording.

Not thread-safe: a :class:`StreamWriter` belongs to one thread.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import msgpack
import numpy as np

from specklenet.clients.stream import RESTART, Gap
from specklenet.daemon import protocol

FORMAT = "specklenet.stream"
FORMAT_VERSION = 1
IMAGE_CHUNK = (1, 64, 64)
ROW_CHUNK = 1024
GAP_KINDS = ("gap", RESTART)

_COMMON = {
    "stream_id": np.int64,
    "seq": np.int64,
    "session": np.int32,
    "t_publish_ns": np.int64,
    "t_receive_ns": np.int64,
}
_FRAME = {"frame_id": np.int64, "picture": np.int64, "target_index": np.int64, "t_capture_ns": np.int64}
COLUMNS: dict[str, dict[str, Any]] = {
    "recon": {**_COMMON, **_FRAME, "pcc": np.float64},
    "speckle": {**_COMMON, **_FRAME},
    "status": dict(_COMMON),
}
GAP_COLUMNS = {
    "topic": np.uint8,
    "kind": np.uint8,
    "after_seq": np.int64,
    "next_seq": np.int64,
    "lost": np.int64,
    "session": np.int32,
    "t_receive_ns": np.int64,
}
_MISSING = {"target_index": -1, "pcc": np.nan, "after_seq": -1}


class _Table:
    """Rows of one group: typed columns (+ optional images, + headers), appended in batches."""

    def __init__(self, group: h5py.Group, columns: dict[str, Any], *, images: bool, headers: bool) -> None:
        self.columns = columns
        self.images = images
        self.headers = headers
        for name, dtype in columns.items():
            group.create_dataset(name, (0,), dtype, maxshape=(None,), chunks=(ROW_CHUNK,))
        group.create_dataset("complete", (0,), np.uint8, maxshape=(None,), chunks=(ROW_CHUNK,))
        if headers:
            group.create_dataset("header_end", (0,), np.int64, maxshape=(None,), chunks=(ROW_CHUNK,))
            group.create_dataset("header_bytes", (0,), np.uint8, maxshape=(None,), chunks=(1 << 16,))
        if images:
            group.create_dataset("image", (0, 0, 0), np.float32, maxshape=(None,) * 3, chunks=IMAGE_CHUNK)
            group.create_dataset("shape", (0, 2), np.int32, maxshape=(None, 2), chunks=(ROW_CHUNK, 2))
            group.create_dataset("wire_dtype", (0,), np.uint8, maxshape=(None,), chunks=(ROW_CHUNK,))
        self.group = group
        self.rows = 0
        self._header_bytes = 0
        self._pending: list[tuple[dict[str, Any], np.ndarray | None, bytes]] = []

    def add(self, values: dict[str, Any], image: np.ndarray | None = None, header: bytes = b"") -> None:
        # Copy now: a received array is a view of the ZeroMQ frame's memory.
        self._pending.append((values, None if image is None else np.array(image), header))

    @property
    def pending(self) -> int:
        return len(self._pending)

    def write(self) -> list[h5py.Dataset]:
        """Write the pending rows (not yet marked complete); returns the datasets to flush."""
        if not self._pending:
            return []
        start, count = self.rows, len(self._pending)
        end = start + count
        touched = []
        for name, dtype in self.columns.items():
            values = [row[0].get(name) for row in self._pending]
            values = [_MISSING.get(name, -1) if v is None else v for v in values]
            touched.append(self._append(name, np.asarray(values, dtype), end))
        if self.headers:
            blob = b"".join(row[2] for row in self._pending)
            ends = self._header_bytes + np.cumsum([len(row[2]) for row in self._pending])
            touched.append(self._append("header_end", ends.astype(np.int64), end))
            blobs = self.group["header_bytes"]
            blobs.resize((self._header_bytes + len(blob),))
            blobs[self._header_bytes :] = np.frombuffer(blob, np.uint8)
            self._header_bytes += len(blob)
            touched.append(blobs)
        if self.images:
            touched += self._write_images(start, end)
        self.group["complete"].resize((end,))
        self.rows = end
        self._pending.clear()
        return touched

    def _write_images(self, start: int, end: int) -> list[h5py.Dataset]:
        images = [row[1] for row in self._pending]
        shapes = np.array([(0, 0) if a is None else a.shape[-2:] for a in images], np.int32)
        codes = [0 if a is None else protocol.DTYPES.index(a.dtype.name) for a in images]
        dataset = self.group["image"]
        rows, columns = dataset.shape[1:]
        dataset.resize((end, max(rows, int(shapes[:, 0].max())), max(columns, int(shapes[:, 1].max()))))
        for offset, image in enumerate(images):
            if image is not None:
                dataset[start + offset, : image.shape[-2], : image.shape[-1]] = image.reshape(
                    image.shape[-2:]
                )
        return [dataset, self._append("shape", shapes, end), self._append("wire_dtype", np.uint8(codes), end)]

    def _append(self, name: str, values: np.ndarray, end: int) -> h5py.Dataset:
        dataset = self.group[name]
        dataset.resize((end, *dataset.shape[1:]))
        dataset[end - len(values) : end] = values
        return dataset

    def commit(self, first: int) -> h5py.Dataset:
        """Mark rows ``first..rows-1`` complete (after their data were flushed)."""
        flags = self.group["complete"]
        flags[first : self.rows] = 1
        return flags


class StreamWriter:
    """Appends received stream messages and gaps to a new stream file (see the module docstring).

    Args:
        path: the file to create; an existing file is refused (a recording is never overwritten).
        topics: the topics to record.
        stream_address: stored as provenance.
        flush_interval_s: commit at least this often (checked on every ``add``/``flush_if_due``).
        clock: monotonic seconds, injectable for tests.
    """

    def __init__(
        self,
        path: str | Path,
        topics: tuple[str, ...],
        *,
        stream_address: str = "",
        flush_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: already exists; choose another name (recordings are kept)")
        self._file = h5py.File(self.path, "x", libver="latest")
        attrs = self._file.attrs
        attrs.update(format=FORMAT, format_version=FORMAT_VERSION, stream_address=stream_address)
        attrs["started_utc"] = _utc_now()
        attrs["topics"] = json.dumps(list(protocol.TOPICS))
        attrs["dtypes"] = json.dumps(list(protocol.DTYPES))
        self._tables = {
            topic: _Table(
                self._file.create_group(topic), COLUMNS[topic], images=topic != "status", headers=True
            )
            for topic in topics
        }
        self._gaps = _Table(self._file.create_group("gaps"), GAP_COLUMNS, images=False, headers=False)
        self._file.swmr_mode = True  # from here on, readers may open the file while it grows
        self._flush_interval_s = flush_interval_s
        self._clock = clock
        self._last_flush = clock()

    def add(self, message: protocol.DataMessage, *, t_receive_ns: int, session: int) -> None:
        table = self._tables.get(message.topic)
        if table is None:
            return
        values = {**message.header, "t_receive_ns": t_receive_ns, "session": session}
        table.add(values, message.array, msgpack.packb(message.header))
        self.flush_if_due()

    def add_gap(self, gap: Gap) -> None:
        values = {
            **gap.as_dict(),
            "topic": protocol.TOPICS.index(gap.topic),
            "kind": GAP_KINDS.index(gap.kind),
        }
        self._gaps.add(values)

    def rows(self, topic: str) -> int:
        """Rows of ``topic`` written so far, committed or pending."""
        table = self._tables[topic]
        return table.rows + table.pending

    def flush_if_due(self) -> None:
        if self._clock() - self._last_flush >= self._flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Commit every pending row: data flushed first, then the ``complete`` flags."""
        tables = [*self._tables.values(), self._gaps]
        firsts = [table.rows for table in tables]
        for table in tables:
            for dataset in table.write():
                dataset.flush()
        for table, first in zip(tables, firsts, strict=True):
            if table.rows > first:
                table.commit(first).flush()
        self._last_flush = self._clock()

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Commit everything, store the summary, fsync and close. Safe to call twice."""
        if self._file is None:
            return
        try:
            self.flush()
            self._file.attrs["closed_utc"] = _utc_now()
            self._file.attrs["summary"] = json.dumps(summary or {})
            self._file.flush()
            os.fsync(self._file.id.get_vfd_handle())
        finally:
            self._file.close()
            self._file = None


def load_stream(path: str | Path, topic: str) -> dict[str, Any]:
    """The complete rows of ``topic`` (or ``"gaps"``): columns as arrays, ``headers`` as dicts, images.

    ``image`` is float32 [row, r, c] cropped to the largest array of the topic (rows of smaller
    arrays padded with zeros; ``shape`` gives each one's own). Opens with ``swmr=True``.
    """
    with h5py.File(path, "r", swmr=True) as file:
        if file.attrs.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        group = file[topic]
        keep = np.flatnonzero(group["complete"][:] == 1)
        data: dict[str, Any] = {
            name: group[name][: len(group["complete"])][keep]
            for name in group
            if name not in ("complete", "header_bytes", "header_end", "image")
        }
        if "header_end" in group:
            ends = group["header_end"][: len(group["complete"])]
            blob = group["header_bytes"][: int(ends[-1]) if len(ends) else 0].tobytes()
            starts = np.concatenate([[0], ends[:-1]])
            data["headers"] = [msgpack.unpackb(blob[starts[i] : ends[i]]) for i in keep]
        if "image" in group:
            data["image"] = group["image"][keep] if len(keep) else np.zeros((0, 0, 0), np.float32)
        data["attrs"] = dict(file.attrs)
    return data


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
