"""The pairs recorder: the consumer that writes accepted frames of missing targets to a pairs file.

Added to a :class:`~specklenet.daemon.pipeline.Pipeline` as a critical consumer (back-pressure, no
frame lost). It writes a frame only if it was accepted (matched beyond doubt) and its target is still
missing: padding pictures (targets already recorded, shown so that a short retake still has a
schedule to check against) and repeats are not written again. The file is committed when no frame
came for a while (``idle``), at least every ``flush_interval_s`` (the writer), and at ``stop``.

Thread-safety: the pipeline calls it on the consumer's thread only; :attr:`written` may be read
from any thread.
"""

from __future__ import annotations

import numpy as np

from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.records import PairsWriter


class PairsRecorder:
    """Writes accepted frames of ``writer``'s missing targets (see the module docstring)."""

    def __init__(self, writer: PairsWriter) -> None:
        self.writer = writer
        self.written = 0
        self._missing = np.zeros(len(writer.targets), bool)
        self._missing[writer.missing()] = True

    def __call__(self, frame: MatchedFrame) -> None:
        index = frame.target_index
        if not frame.accepted or index is None or not self._missing[index]:
            return
        self.writer.write(
            index,
            frame.counts,
            frame_id=frame.frame_id,
            timestamp_ns=frame.received_ns,
            camera_timestamp_ns=frame.camera_timestamp_ns,
        )
        self._missing[index] = False
        self.written += 1

    def idle(self) -> None:
        self.writer.flush()

    def stop(self) -> None:
        self.writer.flush()
