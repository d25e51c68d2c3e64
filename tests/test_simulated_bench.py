"""The simulated bench is physically coupled: the camera sees, through the twin, what the DMD lights."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from specklenet.daemon.devices import (
    DmdTiming,
    MonotonicClock,
    SimFaults,
    SimulatedCamera,
    SimulatedDmd,
    VirtualClock,
)
from specklenet.daemon.twin import Twin

TIMING = DmdTiming(picture_time_us=10_500, illuminate_time_us=9_800, synch_delay_us=100)


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(seed=4)


def squares(count: int) -> np.ndarray:
    canvases = np.zeros((count, 128, 128), np.uint8)
    for index, canvas in enumerate(canvases):
        canvas[10 + 8 * index : 34 + 8 * index, 40:64] = 255
    return canvases


def bench(twin: Twin, *, faults: SimFaults | None = None, clock=None, **camera) -> tuple:
    dmd = SimulatedDmd(timing=TIMING, clock=clock or VirtualClock(), faults=faults)
    cam = SimulatedCamera(twin, dmd=dmd, exposure_us=10_000.0, faults=faults, **camera)
    dmd.connect(cam.on_sync)
    dmd.open()
    cam.open()
    return dmd, cam


@pytest.fixture
def run(twin: Twin) -> Iterator:
    opened = []

    def run(canvases: np.ndarray, ids: np.ndarray, **options):
        dmd, cam = bench(twin, **options)
        opened.extend([cam, dmd])
        cam.start()
        dmd.start(dmd.upload(canvases, picture_ids=ids))
        assert dmd.wait(30.0)
        frames = []
        while (frame := cam.retrieve(0.2)) is not None:
            frames.append(frame)
        return frames, dmd, cam

    yield run
    for device in opened:
        device.close()


def test_each_frame_is_the_twins_speckle_of_the_picture_shown(run, twin: Twin) -> None:
    canvases, ids = squares(3), np.array([7, 3, 11])
    frames, dmd, _ = run(canvases, ids)
    assert [f.frame_id for f in frames] == [7, 3, 11]
    for frame, canvas, frame_id in zip(frames, canvases, ids, strict=True):
        np.testing.assert_array_equal(frame.counts, twin.expose_one(canvas, int(frame_id)))
    pulses = [shown.time_ns for shown in dmd.shown_log]
    assert [f.timestamp_ns for f in frames] == pulses  # the exposure starts on the synch edge
    assert np.diff(pulses).tolist() == [10_500_000, 10_500_000]


def test_a_late_trigger_mixes_pictures_and_shows_in_the_timestamp(run, twin: Twin) -> None:
    canvases = squares(3)
    late_us = 5_000.0  # exposure [5000, 15000] µs after picture 1's edge: half of 1, some of 2
    faults = SimFaults(late_every=2, late_us=late_us)
    frames, _, _ = run(canvases, np.arange(3), faults=faults, max_frame_rate_hz=1000.0)
    clean = [twin.expose_one(c, i) for i, c in enumerate(canvases)]
    np.testing.assert_array_equal(frames[0].counts, clean[0])
    assert frames[1].timestamp_ns - frames[0].timestamp_ns == 10_500_000 + 5_000_000
    dark = twin.expose_one(np.zeros((128, 128), np.uint8), 1)
    seen_1, seen_2 = (9_900 - 5_000) / 9_800, (15_000 - 10_600) / 9_800  # of each 9,800 µs illumination
    expected = (1 - seen_1 - seen_2) * dark + seen_1 * clean[1] + seen_2 * twin.expose_one(canvases[2], 2)
    np.testing.assert_allclose(frames[1].counts, expected, rtol=1e-5)


def test_missed_triggers_leave_no_frame_and_no_block_id(run) -> None:
    frames, _, cam = run(squares(5), np.arange(5), faults=SimFaults(ignore_every=2))
    assert [f.block_id for f in frames] == [0, 1, 2]
    assert [f.frame_id for f in frames] == [0, 2, 4]
    assert cam.triggers_missed == 2 and cam.stats.lost == 0


def test_a_camera_slower_than_the_dmd_is_overtriggered(run) -> None:
    frames, _, cam = run(squares(4), np.arange(4), max_frame_rate_hz=60.0)  # 16.7 ms > 10.5 ms pictures
    assert [f.frame_id for f in frames] == [0, 2]
    assert cam.triggers_missed == 2


def test_in_real_time_a_consumer_that_falls_behind_loses_frames(twin: Twin) -> None:
    canvases = squares(6)
    cache = {i: twin.expose_one(c, i) for i, c in enumerate(canvases)}  # no rendering on the clock
    dmd, cam = bench(twin, clock=MonotonicClock(), buffers=2, frame_cache=cache)
    try:
        cam.start()
        dmd.start(dmd.upload(canvases))
        assert dmd.wait(5.0)  # nobody retrieves while the DMD plays: only two buffers fill
        assert cam.wait_exposed(5.0)  # every exposure is out of the sensor: no race with retrieval
        frames = []
        while (frame := cam.retrieve(0.1)) is not None:
            frames.append(frame)
    finally:
        cam.close()
        dmd.close()
    assert [f.block_id for f in frames] == [0, 1]
    for frame in frames:
        assert frame.counts is cache[frame.frame_id]


def test_the_virtual_clock_waits_for_the_twin_and_loses_nothing(twin: Twin) -> None:
    dmd, cam = bench(twin, buffers=2)
    try:
        cam.start()
        dmd.start(dmd.upload(squares(6)))
        assert dmd.wait(30.0)
        frames = []  # the DMD's end means every frame is out of the sensor: no waiting for renders
        while (frame := cam.retrieve(0.0)) is not None:
            frames.append(frame)
    finally:
        cam.close()
        dmd.close()
    assert [f.block_id for f in frames] == list(range(6))
    assert dmd.clock.now_ns() == 6 * 10_500_000  # simulated time: exactly the six picture times


def test_a_spurious_edge_adds_a_frame_when_the_camera_is_ready_for_it(run) -> None:
    # The case: an extra edge 12 ms after picture 3 (the 4th) of 8.
    frames, dmd, cam = run(
        squares(8), np.arange(8), faults=SimFaults(spurious_every=4), max_frame_rate_hz=1000.0
    )
    assert [f.frame_id for f in frames] == [0, 1, 2, 3, 4, 4, 5, 6, 7]
    assert len(dmd.shown_log) == 8
    frames, _, cam = run(squares(8), np.arange(8), faults=SimFaults(spurious_every=4))  # 160/s: still busy
    assert [f.frame_id for f in frames] == list(range(8)) and cam.triggers_missed == 1


def test_the_cameras_clock_drifts_by_clock_drift_ppm(run) -> None:
    frames, _, _ = run(squares(3), np.arange(3), faults=SimFaults(clock_drift_ppm=-150.0))
    assert np.diff([f.timestamp_ns for f in frames]).tolist() == [10_500_000 - 1_575] * 2


def test_the_display_log_keeps_only_the_latest_pictures(twin: Twin) -> None:
    dmd = SimulatedDmd(timing=TIMING, log_pictures=4)
    with dmd:
        dmd.start(dmd.upload(squares(6)))
        assert dmd.wait(5.0)
    assert [shown.picture for shown in dmd.shown_log] == [2, 3, 4, 5]


def test_a_looped_sequence_triggers_the_camera_picture_after_picture(run, twin: Twin) -> None:
    dmd, cam = bench(twin)
    try:
        cam.start()
        sequence = dmd.upload(squares(3), picture_ids=np.array([7, 3, 11]))
        dmd.start(sequence, loop=True)
        frames = []
        while len(frames) < 8:
            frame = cam.retrieve(5.0)
            assert frame is not None
            frames.append(frame)
        progress = dmd.progress()
        assert progress.active and progress.shown >= 8 and progress.total == 3
        dmd.halt()
        shown = dmd.progress().shown
        assert not dmd.progress().active and dmd.wait(0.0)
    finally:
        cam.close()
        dmd.close()
    assert [f.frame_id for f in frames] == [[7, 3, 11][b % 3] for b in range(8)]
    assert [s.slot for s in dmd.shown_log] == list(range(shown))  # nothing claimed beyond the halt
