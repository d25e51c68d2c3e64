"""Matching camera frames to the DMD pictures they were exposed to, and rejecting doubtful ones.

The DMD shows a sequence of N pictures once (or loops it); the camera, restarted just before, delivers
frames with block ids 0, 1, ... (one per trigger it answered). Frame with block id b is matched to
picture b (b % N when looped), by position, and the match is checked:

* **count**: exactly N frames, the last one included. A trigger the camera ignored leaves no block id,
  so every later frame would be shifted by one, and a spurious trigger shifts the other way; both show
  up only here, not where they happened, so such a sequence is rejected as a whole. The runner
  therefore collects until the DMD is done plus a settling time and counts every frame beyond N.
  (A frame lost in transport at the very end looks the same and is rejected too: rare, and
  re-recording is cheap compared with a mismatched pair.)
* **transport**: missing block ids (frames lost between camera and host) and failed buffers leave
  their pictures unrecorded.
* **timestamps** (when the camera gives them): frame b should start at ``origin + b × period`` on the
  camera's clock. The camera's and the DMD's clocks are not synchronised and drift apart (~100 ppm),
  so :func:`fit_schedule` fits both the origin and the period to the sequence itself, as the *lower
  envelope* of the timestamps: a trigger can reach the camera late (jitter, a disturbed line) but
  never before the DMD's edge, so late frames lie above the line and cannot pull it (a least-squares
  fit or a median would be fooled as soon as many frames are late). Frames more than ``tolerance``
  behind it (their exposure no longer contains the whole illumination) are doubtful; a frame half a
  period or more off means block ids and pictures have slipped apart (a spurious trigger replacing a
  missed one keeps the count): the whole sequence is rejected as "count". The fit needs on-time frames
  spread over the sequence, so sequences have at least :data:`MIN_PICTURES` pictures (short retakes are
  padded with targets already recorded; ``acquisition.sequence_pictures`` is refused below it).

In loop mode the same checks run per window of blocks (:func:`match_window`), and each window's
schedule must continue the previous one's (a slip between windows shifts the schedule by a period).

Everything not accepted stays missing in the pairs file and is re-shown and re-recorded later.

Pure functions; thread-safe.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from specklenet.daemon.devices.camera import CameraFrame

# Fewest pictures per sequence: the schedule's origin and period are fitted to the sequence's on-time
# frames; with fewer, a retake of a few late targets alone would look on time.
MIN_PICTURES = 8
# Largest clock drift (camera against DMD) the fit accepts; crystal oscillators stay within ~100 ppm; a
# tighter bound would reject drifting cameras, a looser one would hide late frames in short sequences.
MAX_DRIFT_PPM = 500.0


@dataclass(frozen=True)
class Schedule:
    """When frame ``block`` should start on the camera's clock: ``origin_ns + block × period_ns``."""

    origin_ns: float
    period_ns: float

    def at(self, block: int | np.ndarray) -> float | np.ndarray:
        return self.origin_ns + np.asarray(block, np.float64) * self.period_ns


@dataclass(frozen=True)
class Verdict:
    """Which frames of one sequence (or window) may be recorded.

    Attributes:
        accepted: picture position (block id in loop mode) → its frame.
        rejected: position → why it is not recorded: "count" (the whole sequence or window),
            "transport" (block-id gap), "failed" (failed buffer), "timestamp" (off schedule).
        schedule: the fitted schedule (None without timestamps or when rejected by count).
    """

    accepted: dict[int, CameraFrame]
    rejected: dict[int, str] = field(default_factory=dict)
    schedule: Schedule | None = None

    def reasons(self, positions: Iterable[int] | None = None) -> Counter[str]:
        """How many positions (of ``positions``, default all) were rejected, by reason."""
        chosen = self.rejected if positions is None else (p for p in positions if p in self.rejected)
        return Counter(self.rejected[p] for p in chosen)


def fit_schedule(
    blocks: np.ndarray, stamps_ns: np.ndarray, period_ns: float, *, max_drift_ppm: float = MAX_DRIFT_PPM
) -> Schedule:
    """The lower envelope of ``stamps_ns`` against ``blocks``: the line below every point that is
    highest at the blocks' mean (the lower convex hull's edge there), i.e. the one that minimises
    the total delay of the frames above it. Its slope is bounded by ``max_drift_ppm``."""
    order = np.argsort(blocks)
    x = np.asarray(blocks, np.int64)[order]
    base = int(np.asarray(stamps_ns, np.int64)[order][0])
    y = (np.asarray(stamps_ns, np.int64)[order] - base - x * int(period_ns)).astype(np.float64)
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2 and _cross(x, y, hull[-2], hull[-1], i) <= 0:
            hull.pop()
        hull.append(i)
    slope = 0.0
    mean = float(x.mean())
    for left, right in itertools.pairwise(hull):
        if x[left] <= mean <= x[right]:
            slope = (y[right] - y[left]) / float(x[right] - x[left])
            break
    limit = max_drift_ppm * 1e-6 * period_ns
    slope = min(max(slope, -limit), limit)
    origin = float(np.min(y - slope * x))
    return Schedule(base + origin, period_ns + slope)


def _cross(x: np.ndarray, y: np.ndarray, o: int, a: int, b: int) -> float:
    return float((x[a] - x[o]) * (y[b] - y[o]) - (y[a] - y[o]) * (x[b] - x[o]))


def match_sequence(
    frames: Mapping[int, CameraFrame], pictures: int, *, extra: int, period_ns: int, tolerance_ns: int
) -> Verdict:
    """Decide which frames of a sequence of ``pictures``, shown once, are matched beyond doubt.

    Args:
        frames: the frames received, by block id (ids ``>= pictures`` are counted in ``extra``).
        pictures: pictures the DMD showed.
        extra: frames received with a block id ``>= pictures`` (spurious triggers).
        period_ns: the DMD's picture time.
        tolerance_ns: largest accepted delay of a timestamp behind the schedule.
    """
    if extra or (pictures - 1) not in frames:
        return Verdict({}, dict.fromkeys(range(pictures), "count"))
    return _check(frames, range(pictures), period_ns, tolerance_ns, None)


def match_window(
    frames: Mapping[int, CameraFrame],
    blocks: range,
    *,
    period_ns: int,
    tolerance_ns: int,
    previous: Schedule | None,
) -> Verdict:
    """Decide which frames of a looped sequence's window of ``blocks`` are matched beyond doubt.

    The caller knows the window is complete (a later block arrived, or the DMD halted after it), so a
    missing block is a transport loss. Without camera timestamps nothing can show a slip inside a
    loop, so nothing is accepted ("unverified"). ``previous``: the schedule of the window before
    (None for the first): this window's must continue it within half a period.
    """
    verdict = _check(frames, blocks, period_ns, tolerance_ns, previous)
    timed = any(frame.timestamp_ns is not None for frame in verdict.accepted.values())
    if verdict.accepted and not timed:
        return Verdict({}, {**verdict.rejected, **dict.fromkeys(verdict.accepted, "unverified")})
    return verdict


def _check(
    frames: Mapping[int, CameraFrame],
    blocks: range,
    period_ns: int,
    tolerance_ns: int,
    previous: Schedule | None,
) -> Verdict:
    rejected = {block: "transport" for block in blocks if block not in frames}
    good = {}
    for block in blocks:
        frame = frames.get(block)
        if frame is None:
            continue
        if frame.ok:
            good[block] = frame
        else:
            rejected[block] = "failed"
    timed = {block: frame.timestamp_ns for block, frame in good.items() if frame.timestamp_ns is not None}
    if not timed:
        return Verdict(good, rejected)
    numbers = np.fromiter(timed, np.int64, len(timed))
    stamps = np.fromiter(timed.values(), np.int64, len(timed))
    schedule = fit_schedule(numbers, stamps, period_ns)
    deviation = stamps - schedule.at(numbers)
    slipped = np.abs(deviation).max() >= period_ns / 2
    if previous is not None:
        middle = (blocks.start + blocks.stop - 1) // 2
        slipped |= abs(schedule.at(middle) - previous.at(middle)) >= period_ns / 2
    if slipped:
        return Verdict({}, dict.fromkeys(blocks, "count"))
    for block in numbers[deviation > tolerance_ns]:
        del good[int(block)]
        rejected[int(block)] = "timestamp"
    return Verdict(good, rejected, schedule)
