"""Matching camera frames to the DMD pictures they were exposed to, and rejecting doubtful ones.

The DMD shows a sequence of N pictures once; the camera, restarted just before, delivers frames with
block ids 0, 1, ... (one per trigger it answered). Frame with block id b is matched to picture b, by
sequence position, and the match is checked:

* **count**: the frame of the last picture (block id N-1) must have arrived and none beyond it. A
  trigger the camera ignored leaves no block id, so every later frame would be shifted by one, and a
  spurious trigger shifts the other way; both show up only here, not where they happened, so such a
  sequence is rejected as a whole. (A frame lost in transport at the very end looks the same and is
  rejected too: rare, and re-recording is cheap compared with a mismatched pair.)
* **transport**: missing block ids (frames lost between camera and host) and failed buffers leave
  their pictures unrecorded.
* **timestamps** (when the camera gives them): frame b should start ``b × picture_time`` after the
  sequence's first edge. The camera's and the DMD's clocks are not synchronised, so the schedule's
  origin is taken from the sequence itself: the earliest frame relative to the schedule, because a
  trigger can reach the camera late (jitter, a disturbed line) but never before the DMD's edge. Frames
  more than ``tolerance`` behind (their exposure no longer contains the whole illumination) are
  doubtful. (A median would be fooled as soon as half the frames are late.) The check needs at least
  one on-time frame, so the acquisition never shows fewer than a few pictures per sequence: short
  retakes are padded with targets already recorded.

Everything not accepted stays missing in the pairs file and is re-shown and re-recorded later.

Pure functions; thread-safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from specklenet.daemon.devices.camera import CameraFrame


@dataclass(frozen=True)
class Verdict:
    """Which frames of one sequence may be recorded.

    Attributes:
        accepted: picture position → its frame.
        rejected: picture position → why it is not recorded: "count" (the whole sequence),
            "transport" (block-id gap), "failed" (failed buffer), "timestamp" (off schedule).
    """

    accepted: dict[int, CameraFrame]
    rejected: dict[int, str] = field(default_factory=dict)

    def reasons(self, positions: Iterable[int] | None = None) -> Counter[str]:
        """How many positions (of ``positions``, default all) were rejected, by reason."""
        chosen = self.rejected if positions is None else (p for p in positions if p in self.rejected)
        return Counter(self.rejected[p] for p in chosen)


def match_sequence(
    frames: Mapping[int, CameraFrame], pictures: int, *, extra: int, period_ns: int, tolerance_ns: int
) -> Verdict:
    """Decide which frames of a sequence of ``pictures`` are matched beyond doubt.

    Args:
        frames: the frames received, by block id (ids ``>= pictures`` are counted in ``extra``).
        pictures: pictures the DMD showed.
        extra: frames received with a block id ``>= pictures`` (spurious triggers).
        period_ns: the DMD's picture time.
        tolerance_ns: largest accepted delay of a timestamp behind the schedule.
    """
    if extra or (pictures - 1) not in frames:
        return Verdict({}, dict.fromkeys(range(pictures), "count"))
    rejected = {position: "transport" for position in range(pictures) if position not in frames}
    good = {}
    for block, frame in frames.items():
        if frame.ok:
            good[block] = frame
        else:
            rejected[block] = "failed"
    timed = {block: frame.timestamp_ns for block, frame in good.items() if frame.timestamp_ns is not None}
    if timed:
        blocks = np.fromiter(timed, np.int64, len(timed))
        offsets = np.fromiter(timed.values(), np.int64, len(timed)) - blocks * period_ns
        deviation = offsets - offsets.min()
        for block in blocks[deviation > tolerance_ns]:
            del good[int(block)]
            rejected[int(block)] = "timestamp"
    return Verdict(good, rejected)
