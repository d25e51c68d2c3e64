"""The ALP adapter's own duties: ALP4lib's defects worked around, every ALP error named, buffers alive.

Runs the real ALP4lib against the emulated V-7001 (alp_emulator.c).
"""

from __future__ import annotations

import ctypes as ct
import gc
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ALP4
import numpy as np
import pytest
from alp_emulator import AlpEmulator, build, checksum

from specklenet.daemon.devices import DmdTiming, mirror_pictures
from specklenet.daemon.devices.alp_dmd import AlpDmd
from specklenet.daemon.errors import DeviceError, DeviceRemovedError

TIMING = DmdTiming(picture_time_us=4_000, illuminate_time_us=3_500, synch_delay_us=100)
SLOW = DmdTiming(picture_time_us=50_000, illuminate_time_us=49_000, synch_delay_us=100)
_built: dict[str, Path] = {}


@pytest.fixture
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlpEmulator]:
    if "lib" not in _built:
        _built["lib"] = build(tmp_path_factory.mktemp("alp"))
    emulator = AlpEmulator(_built["lib"])
    emulator.reset()
    yield emulator
    emulator.reset()


def canvases(count: int) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (count, 128, 128), dtype=np.uint8)


def test_alp4lib_still_has_the_defects_we_work_around(emulator: AlpEmulator) -> None:
    """If ALP4lib fixes these, the workarounds in alp_dmd.py can go."""
    alp = ALP4.ALP4(version="4.3", libDir=str(emulator.folder))
    alp.Initialize()
    try:
        with pytest.raises(ALP4.ALPError):  # four arguments for three
            alp.ProjInquire(2400)
        with pytest.raises(ALP4.ALPError):  # calls AlpProjInquire, not AlpProjInquireEx
            alp.ProjInquireEx(2318)
        emulator.inject_error("AlpDevInquire", 1999)
        with pytest.raises(KeyError):  # an error code it does not know
            alp.DevInquire(2003)
        emulator.set_inquire(2052, -1280)
        assert alp.DevInquire(2052) == 2**32 - 1280  # a 32-bit answer read into an 8-byte c_long
    finally:
        alp.Free()


def test_unknown_error_codes_name_the_function_and_code(emulator: AlpEmulator) -> None:
    with AlpDmd(library_dir=emulator.folder, timing=TIMING) as dmd:
        emulator.inject_error("AlpSeqTiming", 1999)
        with pytest.raises(DeviceError, match=r"AlpSeqTiming returned 1999 \(unknown error\) in SetTiming"):
            dmd.upload(canvases(2))
        assert emulator.memory_used == 0  # the half-made sequence was freed
        emulator.inject_error("AlpSeqPut", 1021)
        with pytest.raises(DeviceError, match=r"AlpSeqPut returned 1021 \(configuration mismatch\)"):
            dmd.upload(canvases(2))


def test_freeseq_errors_are_raised_not_printed(emulator: AlpEmulator, capsys: pytest.CaptureFixture) -> None:
    with AlpDmd(library_dir=emulator.folder, timing=TIMING) as dmd:
        sequence = dmd.upload(canvases(2))
        emulator.inject_error("AlpSeqFree", 1008)
        with pytest.raises(DeviceError, match=r"AlpSeqFree returned 1008 \(The sequence specified is"):
            dmd.free(sequence)
    assert capsys.readouterr().out == ""  # ALP4lib's prints ("Loading library", ...) never reach stdout


def test_negative_temperatures_are_sign_extended(emulator: AlpEmulator) -> None:
    emulator.set_inquire(2052, -1280)  # -5 °C in 1/256 °C
    with AlpDmd(library_dir=emulator.folder) as dmd:
        temperatures = dmd.temperatures_c()
    assert temperatures == {"ddc_fpga": 35.0, "apps_fpga": 35.0, "pcb": -5.0}


def test_progress_comes_from_the_projection_progress_struct(emulator: AlpEmulator) -> None:
    shown: list[int] = []
    third = threading.Event()

    def synch(sequence: int, picture: int, total: int, time_ns: int) -> None:
        shown.append(picture)
        if picture == 2:
            third.set()

    with AlpDmd(library_dir=emulator.folder, timing=SLOW) as dmd:
        emulator.set_sync_callback(synch)
        sequence = dmd.upload(canvases(6))
        dmd.start(sequence)
        assert third.wait(5.0)
        progress = dmd.progress()
        assert progress.active and 3 <= progress.shown < 6 and progress.total == 6
        assert dmd.wait(5.0)
    assert shown == [0, 1, 2, 3, 4, 5]


def test_uploaded_pictures_stay_alive_while_the_device_reads_them(emulator: AlpEmulator) -> None:
    """The emulator reads each picture from the caller's memory when it displays it (like DMA)."""
    shown = canvases(5)
    expected = [checksum(m) for m in mirror_pictures(shown, block_mirrors=6)]
    with AlpDmd(library_dir=emulator.folder, timing=TIMING) as dmd:
        sequence = dmd.upload(shown.copy())
        gc.collect()
        np.zeros((5, 768, 1024), np.uint8) + 1  # reuse freed memory, if any was freed
        dmd.start(sequence)
        assert dmd.wait(5.0)
    assert [s.checksum for s in emulator.shown()] == expected


def test_device_removal_is_reported_and_close_still_works(emulator: AlpEmulator) -> None:
    dmd = AlpDmd(library_dir=emulator.folder, timing=SLOW)
    dmd.open()
    dmd.start(dmd.upload(canvases(20)))
    emulator.remove()
    with pytest.raises(DeviceRemovedError, match=r"returned 1012 \(The specified ALP has been removed"):
        dmd.progress()
    dmd.close()  # logs, does not raise: there is nothing left to release
    emulator.remove(False)
    with AlpDmd(library_dir=emulator.folder) as again:
        assert again.capacity_pictures == 43_690 // 8


def test_a_missing_library_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match=rf"cannot load the ALP 4.3 library from '{tmp_path}'"):
        AlpDmd(library_dir=tmp_path).open()


def test_a_failed_open_releases_the_device(emulator: AlpEmulator) -> None:
    emulator.inject_error("AlpProjControl", 1005)
    with pytest.raises(DeviceError, match="AlpProjControl returned 1005"):
        AlpDmd(library_dir=emulator.folder).open()
    with AlpDmd(library_dir=emulator.folder) as dmd:  # not left allocated (ALP_NOT_READY)
        assert dmd.capacity_pictures == 43_690 // 8


def test_no_dmd_connected_is_a_removal(emulator: AlpEmulator) -> None:
    emulator.inject_error("AlpDevAlloc", 1001)
    with pytest.raises(DeviceRemovedError, match=r"AlpDevAlloc returned 1001"):
        AlpDmd(library_dir=emulator.folder).open()


def test_only_the_adapters_import_the_vendor_sdks() -> None:
    script = textwrap.dedent(
        """
        import sys, pkgutil, importlib
        import specklenet.daemon as daemon
        adapters = {"specklenet.daemon.devices.alp_dmd", "specklenet.daemon.devices.basler_camera"}
        for module in pkgutil.walk_packages(daemon.__path__, "specklenet.daemon."):
            if module.name not in adapters:
                importlib.import_module(module.name)
        assert "ALP4" not in sys.modules, "ALP4 imported outside alp_dmd"
        assert "pypylon" not in sys.modules, "pypylon imported outside basler_camera"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


class Spy:
    """Stands between the adapter and the C library: checks the progress buffer's size before the
    library writes into it, and can run something in the middle of a chosen call."""

    def __init__(self, library: object, emulator: AlpEmulator) -> None:
        self._library, self._emulator = library, emulator
        self.progress_buffers: list[int] = []
        self.during: dict[str, Callable[[], None]] = {}

    def __getattr__(self, name: str) -> Any:
        function = getattr(self._library, name)

        def call(*args: Any) -> int:
            if name == "AlpProjInquireEx":
                size = ct.sizeof(getattr(args[2], "_obj", args[2]))
                self.progress_buffers.append(size)
                needed = self._emulator.progress_bytes
                # Checked before the call: a too-small buffer would be overrun, not merely misread.
                assert size >= needed, f"the adapter passes {size} bytes; the library writes {needed}"
            if name in self.during:
                self.during[name]()
            return function(*args)

        return call


def spy_on(dmd: AlpDmd, emulator: AlpEmulator) -> Spy:
    spy = Spy(dmd._lib._library, emulator)  # type: ignore[union-attr]
    dmd._lib._library = spy  # type: ignore[union-attr,assignment]
    return spy


class Synch:
    """Collects the emulator's synch edges; ``reached(n)`` waits until n pictures were shown."""

    def __init__(self, emulator: AlpEmulator) -> None:
        self.pictures: list[int] = []
        self._changed = threading.Condition()
        emulator.set_sync_callback(self)

    def __call__(self, sequence: int, picture: int, total: int, time_ns: int) -> None:
        with self._changed:
            self.pictures.append(picture)
            self._changed.notify_all()

    def reached(self, count: int, timeout_s: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.pictures) >= count, timeout_s)


@pytest.mark.parametrize("field_bytes", [4, 8])
def test_the_progress_buffer_holds_whatever_layout_the_library_writes(
    emulator: AlpEmulator, field_bytes: int
) -> None:
    """36 bytes (Windows header) or 72 (unsigned long on LP64 Linux): never overrun, both decoded."""
    emulator.set_progress_layout(field_bytes)
    synch = Synch(emulator)
    with AlpDmd(library_dir=emulator.folder, timing=SLOW) as dmd:
        spy = spy_on(dmd, emulator)
        dmd.start(dmd.upload(canvases(6)))
        assert synch.reached(3)
        progress = dmd.progress()
        assert progress.active and 3 <= progress.shown <= len(emulator.shown()) and progress.total == 6
        assert dmd.wait(5.0)
        assert dmd.progress().shown == 6
    assert spy.progress_buffers and min(spy.progress_buffers) >= 9 * field_bytes


def test_progress_after_halt_claims_only_pictures_that_were_shown(emulator: AlpEmulator) -> None:
    synch = Synch(emulator)
    with AlpDmd(library_dir=emulator.folder, timing=SLOW) as dmd:
        sequence = dmd.upload(canvases(20))
        dmd.start(sequence)
        assert synch.reached(3)
        dmd.halt()
        progress = dmd.progress()
        shown = len(emulator.shown())
        assert not progress.active and 3 <= progress.shown <= shown < 20
        dmd.halt()  # halting again keeps the count
        assert dmd.progress() == progress


@pytest.mark.parametrize("field_bytes", [4, 8])
def test_loop_mode_shows_the_sequence_over_and_over_until_halted(
    emulator: AlpEmulator, field_bytes: int
) -> None:
    emulator.set_progress_layout(field_bytes)
    shown = canvases(3)
    expected = [checksum(m) for m in mirror_pictures(shown, block_mirrors=6)]
    synch = Synch(emulator)
    with AlpDmd(library_dir=emulator.folder, timing=TIMING) as dmd:
        sequence = dmd.upload(shown)
        dmd.start(sequence, loop=True)
        assert synch.reached(8)  # past two whole iterations: the iteration counter has wrapped below 0
        running = dmd.progress()
        assert running.active and running.total == 3
        assert 8 <= running.shown <= len(emulator.shown())
        assert not dmd.wait(0.0)
        with pytest.raises(DeviceError, match="still running"):
            dmd.free(sequence)
        dmd.halt()
        halted = dmd.progress()
        displayed = emulator.shown()
        assert not halted.active and running.shown <= halted.shown <= len(displayed)
        dmd.free(sequence)
        dmd.start(dmd.upload(shown))  # a sequence shown once after a loop: counted from zero
        assert dmd.wait(5.0) and dmd.progress().shown == 3
    pictures = [d.picture for d in displayed]
    assert pictures == [i % 3 for i in range(len(pictures))]  # picture b % len(sequence)
    assert [d.checksum for d in displayed] == [expected[p] for p in pictures]
    assert set(np.diff([d.time_ns for d in displayed]).tolist()) == {4_000_000}  # one edge per picture


def test_another_threads_print_during_an_alp_call_is_not_swallowed(
    emulator: AlpEmulator, capsys: pytest.CaptureFixture
) -> None:
    def print_from_another_thread() -> None:
        thread = threading.Thread(target=print, args=("another thread's line",))
        thread.start()
        thread.join()  # printed while the adapter is inside its ALP4lib call

    with AlpDmd(library_dir=emulator.folder, timing=TIMING) as dmd:
        spy = spy_on(dmd, emulator)
        spy.during["AlpSeqAlloc"] = print_from_another_thread
        dmd.upload(canvases(2))
    assert capsys.readouterr().out == "another thread's line\n"


def test_alp4lib_messages_are_logged_even_when_the_call_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture
) -> None:
    logger = "specklenet.daemon.devices.alp_dmd"
    with caplog.at_level(logging.DEBUG, logger=logger), pytest.raises(DeviceError, match="cannot load"):
        AlpDmd(library_dir=tmp_path).open()
    assert f"ALP4lib: Loading library: {tmp_path}/libalp43.so" in caplog.text
    assert capsys.readouterr().out == ""
