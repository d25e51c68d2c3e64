"""The ALP adapter's own duties: ALP4lib's defects worked around, every ALP error named, buffers alive.

Runs the real ALP4lib against the emulated V-7001 (alp_emulator.c).
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

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
