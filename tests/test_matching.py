"""Matching frames to pictures: by sequence position, checked by counting and by timestamps."""

from __future__ import annotations

import numpy as np

from specklenet.daemon.devices import CameraFrame
from specklenet.daemon.matching import match_sequence

PERIOD = 10_000_000  # ns
TOLERANCE = 100_000


def frame(block: int, *, start_ns: int | None = 5_000_000, late_ns: int = 0, ok: bool = True) -> CameraFrame:
    stamp = None if start_ns is None else start_ns + block * PERIOD + late_ns
    return CameraFrame(np.full((2, 2), block, np.float32), block, 100 + block, stamp, ok)


def match(frames: list[CameraFrame], pictures: int, extra: int = 0):
    return match_sequence(
        {f.block_id: f for f in frames}, pictures, extra=extra, period_ns=PERIOD, tolerance_ns=TOLERANCE
    )


def test_a_clean_sequence_is_matched_by_position() -> None:
    verdict = match([frame(b) for b in range(5)], 5)
    assert sorted(verdict.accepted) == [0, 1, 2, 3, 4]
    assert all(verdict.accepted[b].counts[0, 0] == b for b in range(5))
    assert not verdict.rejected and not verdict.reasons()


def test_transport_gaps_and_failed_buffers_leave_only_their_pictures() -> None:
    frames = [frame(0), frame(1, ok=False), frame(3), frame(4)]
    verdict = match(frames, 5)
    assert sorted(verdict.accepted) == [0, 3, 4]
    assert verdict.rejected == {1: "failed", 2: "transport"}


def test_a_missing_last_frame_or_an_extra_frame_rejects_the_whole_sequence() -> None:
    # An ignored trigger shifts every later frame by one without a block-id gap: only the count shows it.
    assert match([frame(b) for b in range(4)], 5).reasons() == {"count": 5}
    assert match([frame(b) for b in range(5)], 5, extra=1).accepted == {}


def test_frames_behind_the_schedule_are_doubtful() -> None:
    # The period is fitted too (clock drift), so a late frame must stand out from a line through the
    # on-time ones: 5 is 150 µs late, which no drift within MAX_DRIFT_PPM explains.
    late = {1: 300_000, 3: 300_000, 4: 50_000, 5: 150_000}
    verdict = match([frame(b, late_ns=late.get(b, 0)) for b in range(6)], 6)
    assert sorted(verdict.accepted) == [0, 2, 4]
    assert verdict.reasons() == {"timestamp": 3}
    assert verdict.reasons([0, 1, 2]) == {"timestamp": 1}


def test_the_schedule_is_relative_and_even_a_late_majority_is_found() -> None:
    # The camera's clock has its own origin; the earliest frame sets the schedule (a median would
    # take the late frames for the norm here).
    frames = [frame(b, start_ns=123_456_789_000, late_ns=0 if b in (2, 4) else 400_000) for b in range(6)]
    assert sorted(match(frames, 6).accepted) == [2, 4]
    jittered = [frame(b, start_ns=123_456_789_000, late_ns=(b * 37_000) % 90_000) for b in range(6)]
    assert len(match(jittered, 6).accepted) == 6


def test_frames_without_timestamps_are_checked_by_count_and_block_id_only() -> None:
    frames = [frame(b, start_ns=None) for b in range(3)]
    assert len(match(frames, 3).accepted) == 3


def drifting(pictures: int, ppm: float, late: dict[int, int] | None = None) -> list[CameraFrame]:
    late = late or {}
    return [
        frame(b, start_ns=987_654_321, late_ns=round(b * PERIOD * ppm * 1e-6) + late.get(b, 0))
        for b in range(pictures)
    ]


def test_clock_drift_is_fitted_and_costs_no_frame() -> None:
    # 128 pictures at 100 ppm: the last frame is 127 µs off an offset-only schedule (tolerance 100 µs).
    for ppm in (100.0, -200.0, 200.0):
        assert len(match(drifting(128, ppm), 128).accepted) == 128
    verdict = match(drifting(128, 200.0, late={5: 300_000, 64: 150_000, 127: 120_000}), 128)
    assert sorted(verdict.rejected) == [5, 64, 127] and verdict.reasons() == {"timestamp": 3}
    assert abs(verdict.schedule.period_ns - PERIOD * (1 + 200e-6)) < 1.0


def test_late_frames_cannot_pull_the_fit() -> None:
    # Every second frame 3 ms late, and a late run at the end: a least-squares line would tilt.
    late = {b: 3_000_000 for b in range(1, 16, 2)} | {13: 900_000, 14: 900_000, 15: 900_000}
    verdict = match(drifting(16, 50.0, late=late), 16)
    assert sorted(verdict.accepted) == [0, 2, 4, 6, 8, 10, 12]


def test_a_slip_of_block_ids_rejects_the_whole_sequence() -> None:
    # A spurious trigger took block 3 and the camera missed picture 5's trigger: the count is right,
    # but blocks 3-4 hold frames a period early (and block 3 is off the grid).
    frames = [frame(b) for b in range(8)]
    frames[3] = frame(3, late_ns=-2_500_000)
    frames[4] = frame(4, late_ns=-PERIOD)
    assert match(frames, 8).reasons() == {"count": 8}


def test_loop_windows_must_continue_the_schedule() -> None:
    from specklenet.daemon.matching import match_window

    stream = {b: frame(b) for b in range(16)}
    first = match_window(stream, range(8), period_ns=PERIOD, tolerance_ns=TOLERANCE, previous=None)
    assert len(first.accepted) == 8
    second = match_window(
        stream, range(8, 16), period_ns=PERIOD, tolerance_ns=TOLERANCE, previous=first.schedule
    )
    assert len(second.accepted) == 8
    # A missed trigger between the windows: every later block holds the next picture, a period late.
    shifted = {b: frame(b, late_ns=PERIOD) for b in range(8, 16)}
    slipped = match_window(
        shifted, range(8, 16), period_ns=PERIOD, tolerance_ns=TOLERANCE, previous=first.schedule
    )
    assert slipped.reasons() == {"count": 8}
    untimed = {b: frame(b, start_ns=None) for b in range(8)}
    assert match_window(
        untimed, range(8), period_ns=PERIOD, tolerance_ns=TOLERANCE, previous=None
    ).reasons() == {"unverified": 8}
