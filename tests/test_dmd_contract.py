"""DMD contract: the same behavioural tests against every implementation of the role.

Implementations: ``alp`` (the real adapter, driving the real ALP4lib against the emulated V-7001 built
from alp_emulator.c) and ``sim`` (the simulated DMD). Each harness says how to build the device, how
to read back what it displayed, and how to make it fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from alp_emulator import AlpEmulator, build, checksum

from specklenet.daemon.devices import (
    DmdProgress,
    DmdTiming,
    MonotonicClock,
    SimFaults,
    SimulatedDmd,
    VirtualClock,
)
from specklenet.daemon.devices.alp_dmd import AlpDmd
from specklenet.daemon.devices.dmd import Dmd, mirror_pictures
from specklenet.daemon.errors import DeviceError

FAST = DmdTiming(picture_time_us=4_000, illuminate_time_us=3_500, synch_delay_us=100)
SLOW = DmdTiming(picture_time_us=50_000, illuminate_time_us=49_000, synch_delay_us=100)  # 20 pictures: 1 s


@dataclass(frozen=True)
class Displayed:
    picture: int
    checksum: int
    time_ns: int


class AlpHarness:
    name = "alp"
    start_call = "AlpProjStart"

    def __init__(self, emulator: AlpEmulator) -> None:
        self.emulator = emulator

    def make(self, timing: DmdTiming, *, realtime: bool = False) -> Dmd:
        return AlpDmd(library_dir=self.emulator.folder, timing=timing)  # the emulator runs in real time

    def displayed(self, dmd: Dmd) -> list[Displayed]:
        return [Displayed(s.picture, s.checksum, s.time_ns) for s in self.emulator.shown()]

    def fail_next_start(self, dmd: Dmd) -> None:
        self.emulator.inject_error("AlpProjStart", 1011)

    def idle_and_released(self) -> bool:
        return self.emulator.memory_used == 0


class SimHarness:
    name = "sim"
    start_call = "start"

    def make(self, timing: DmdTiming, *, realtime: bool = False) -> Dmd:
        clock = MonotonicClock() if realtime else VirtualClock()
        self.dmd = SimulatedDmd(timing=timing, clock=clock)
        return self.dmd

    def displayed(self, dmd: Dmd) -> list[Displayed]:
        out = []
        for shown in self.dmd.shown_log:
            mirrors = mirror_pictures(shown.canvas[None], block_mirrors=dmd.block_mirrors)[0]
            out.append(Displayed(shown.picture, checksum(mirrors), shown.time_ns))
        return out

    def fail_next_start(self, dmd: Dmd) -> None:
        assert isinstance(dmd, SimulatedDmd)
        dmd.faults = SimFaults(dmd_error_at=dmd._starts + 1)

    def idle_and_released(self) -> bool:
        idle = not any(thread.name == "sim-dmd" for thread in threading.enumerate())
        return idle and self.dmd.used_pictures == 0  # its memory count survives close(), as a leak would


_built: dict[str, Path] = {}


@pytest.fixture(scope="session")
def alp_emulator(tmp_path_factory: pytest.TempPathFactory) -> AlpEmulator:
    if "lib" not in _built:
        _built["lib"] = build(tmp_path_factory.mktemp("alp"))
    return AlpEmulator(_built["lib"])


@pytest.fixture(params=["alp", "sim"])
def harness(request: pytest.FixtureRequest, alp_emulator: AlpEmulator) -> Iterator[AlpHarness | SimHarness]:
    alp_emulator.reset()
    yield AlpHarness(alp_emulator) if request.param == "alp" else SimHarness()
    alp_emulator.reset()


def canvases(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 128, 128), dtype=np.uint8)


def test_shows_each_picture_once_in_order_with_its_content_at_the_picture_time(harness) -> None:
    shown = canvases(4)
    with harness.make(FAST) as dmd:
        sequence = dmd.upload(shown)
        dmd.start(sequence)
        assert dmd.wait(5.0)
        displayed = harness.displayed(dmd)
        expected = [checksum(mirrors) for mirrors in mirror_pictures(shown, block_mirrors=6)]
    assert [d.picture for d in displayed] == [0, 1, 2, 3]
    assert [d.checksum for d in displayed] == expected
    assert np.diff([d.time_ns for d in displayed]).tolist() == [4_000_000] * 3


def test_each_target_pixel_is_a_centred_block_of_mirrors() -> None:
    canvas = np.zeros((1, 128, 128), np.uint8)
    canvas[0, 0, 0], canvas[0, 127, 127] = 200, 100
    mirrors = mirror_pictures(canvas, block_mirrors=6)[0]
    assert mirrors.shape == (768, 1024)
    assert (mirrors[0:6, 128:134] == 200).all()
    assert mirrors[:, :128].max() == 0 and mirrors[:, 896:].max() == 0
    assert (mirrors[762:768, 890:896] == 100).all()
    assert int(mirrors.astype(np.int64).sum()) == 36 * 300


def test_progress_and_wait_follow_the_sequence(harness) -> None:
    with harness.make(SLOW, realtime=True) as dmd:
        assert dmd.progress() == DmdProgress(0, 0, False)
        sequence = dmd.upload(canvases(20))
        dmd.start(sequence)
        running = dmd.progress()
        assert running.total == 20 and running.active and running.shown < 20
        assert not dmd.wait(0.01)
        assert dmd.wait(10.0)
        assert dmd.progress() == DmdProgress(20, 20, False)


def test_halt_stops_a_running_sequence_at_once(harness) -> None:
    with harness.make(SLOW, realtime=True) as dmd:
        sequence = dmd.upload(canvases(20))
        dmd.start(sequence)
        started = time.monotonic()
        dmd.halt()
        assert time.monotonic() - started < 0.5
        assert not dmd.progress().active and dmd.wait(0.0)
        assert len(harness.displayed(dmd)) < 20
        dmd.free(sequence)  # idle again: freeing is allowed


def test_a_running_sequence_cannot_be_freed_or_restarted(harness) -> None:
    with harness.make(SLOW, realtime=True) as dmd:
        sequence = dmd.upload(canvases(20))
        dmd.start(sequence)
        with pytest.raises(DeviceError, match="still running"):
            dmd.free(sequence)
        with pytest.raises(DeviceError, match="still running"):
            dmd.start(sequence)


def test_next_sequence_uploads_while_one_plays(harness) -> None:
    with harness.make(FAST, realtime=True) as dmd:
        first, second = canvases(10, seed=1), canvases(3, seed=2)
        playing = dmd.upload(first)
        dmd.start(playing)
        ahead = dmd.upload(second)
        assert dmd.wait(5.0)
        dmd.free(playing)
        dmd.start(ahead)
        assert dmd.wait(5.0)
        displayed = harness.displayed(dmd)
    expected = [checksum(m) for m in mirror_pictures(np.concatenate([first, second]), block_mirrors=6)]
    assert [d.checksum for d in displayed] == expected


def test_sequence_memory_is_budgeted_and_released(harness) -> None:
    with harness.make(FAST) as dmd:
        free = dmd.capacity_pictures
        assert free == 43_690 // 8
        sequence = dmd.upload(canvases(3))
        assert dmd.capacity_pictures == free - 3
        dmd.free(sequence)
        dmd.free(sequence)  # twice is fine
        assert dmd.capacity_pictures == free
        with pytest.raises(DeviceError, match="exceed the free sequence memory"):
            dmd.upload(np.zeros((free + 1, 2, 2), np.uint8))
        with pytest.raises(DeviceError, match="not uploaded"):
            dmd.start(sequence)


def test_picture_time_below_the_minimum_names_the_setting(harness) -> None:
    too_fast = DmdTiming(picture_time_us=1_000, illuminate_time_us=800, synch_delay_us=0)
    with harness.make(too_fast) as dmd:
        with pytest.raises(DeviceError, match=r"picture_time_us = 1000 µs is below .* minimum of 3448"):
            dmd.upload(canvases(2))
        assert dmd.capacity_pictures == 43_690 // 8  # nothing left allocated


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 128, 128), np.float32), "uint8"),
        (np.zeros((128, 128), np.uint8), "uint8"),
        (np.zeros((1, 200, 200), np.uint8), "needs 1200×1200 mirrors"),
    ],
)
def test_bad_canvases_are_rejected(harness, bad: np.ndarray, message: str) -> None:
    with harness.make(FAST) as dmd, pytest.raises(DeviceError, match=message):
        dmd.upload(bad)


def test_a_device_failure_names_the_call(harness) -> None:
    with harness.make(FAST) as dmd:
        sequence = dmd.upload(canvases(2))
        harness.fail_next_start(dmd)
        with pytest.raises(DeviceError, match=harness.start_call):
            dmd.start(sequence)
        dmd.start(sequence)  # the device recovers: the next start works
        assert dmd.wait(5.0)


def test_close_is_idempotent_and_leaves_the_device_idle(harness) -> None:
    dmd = harness.make(SLOW, realtime=True)
    dmd.open()
    dmd.start(dmd.upload(canvases(20)))
    dmd.close()
    dmd.close()
    assert harness.idle_and_released()
    with pytest.raises(DeviceError, match="not open"):
        dmd.upload(canvases(1))
    with dmd:  # the device can be opened again
        assert dmd.capacity_pictures == 43_690 // 8
