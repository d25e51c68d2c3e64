"""Test helper: builds the emulated ALP library (alp_emulator.c) and gives access to its test hooks.

The library is built once per session with the system compiler into a temporary folder as
``libalp43.so``, the name ALP4lib loads; :class:`AlpEmulator` wraps the ``FakeAlp*`` hooks.
"""

from __future__ import annotations

import ctypes as ct
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

SOURCE = Path(__file__).with_name("alp_emulator.c")
ALP_DEVICE_REMOVED = 1012
SyncCallback = ct.CFUNCTYPE(None, ct.c_int32, ct.c_int32, ct.c_uint64, ct.c_int64)


@dataclass(frozen=True)
class Shown:
    """One picture the emulated DMD displayed."""

    sequence: int
    picture: int
    checksum: int
    time_ns: int


def build(folder: Path) -> Path:
    """Compile the emulator into ``folder/libalp43.so``; skips the test when no C compiler exists."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler (cc) to build the emulated ALP library")
    library = folder / "libalp43.so"
    flags = ["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-pthread"]
    command = [compiler, *flags, "-o", str(library), str(SOURCE)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"building the ALP emulator failed:\n{result.stderr}"
    return library


def checksum(mirrors: np.ndarray) -> int:
    """The emulator's checksum of one displayed picture (uint8 ``[row, column]``)."""
    data = np.ascontiguousarray(mirrors, dtype=np.uint8).ravel().astype(np.uint64)
    weights = (np.arange(data.size, dtype=np.uint64) * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)
    return int(np.sum(data * weights, dtype=np.uint64))


class AlpEmulator:
    """The test hooks of the loaded emulator library (the same handle ALP4lib uses)."""

    def __init__(self, library: Path) -> None:
        self.library = library
        self.folder = library.parent
        self._lib = ct.CDLL(str(library))
        self._lib.FakeAlpShownCount.restype = ct.c_int64
        self._lib.FakeAlpMemoryUsed.restype = ct.c_int64
        self._callback: object = None

    def reset(self) -> None:
        self.set_sync_callback(None)
        self._lib.FakeAlpReset()

    def remove(self, removed: bool = True) -> None:
        self._lib.FakeAlpSetRemoved(ct.c_int32(int(removed)))

    def inject_error(self, function: str, code: int, countdown: int = 0) -> None:
        self._lib.FakeAlpInjectError(function.encode(), ct.c_int32(code), ct.c_int32(countdown))

    def set_inquire(self, kind: int, value: int) -> None:
        self._lib.FakeAlpSetInquire(ct.c_int32(kind), ct.c_int32(value))

    def set_sync_callback(self, function: Callable[[int, int, int, int], None] | None) -> None:
        """Call ``function(sequence, picture, checksum, time_ns)`` at every synch edge (on the
        emulator's projection thread)."""
        self._callback = SyncCallback(function) if function is not None else None
        self._lib.FakeAlpSetSyncCallback(self._callback if function is not None else None)

    def set_progress_layout(self, field_bytes: int) -> None:
        """Progress fields of 4 bytes (the Windows header's layout) or 8 (unsigned long on LP64)."""
        self._lib.FakeAlpSetProgressLayout(ct.c_int32(field_bytes))

    @property
    def progress_bytes(self) -> int:
        """How many bytes AlpProjInquireEx(ALP_PROJ_PROGRESS) writes into the caller's buffer."""
        return int(self._lib.FakeAlpProgressBytes())

    @property
    def memory_used(self) -> int:
        return int(self._lib.FakeAlpMemoryUsed())

    def shown(self) -> list[Shown]:
        out = []
        sequence, picture = ct.c_int32(), ct.c_int32()
        total, time_ns = ct.c_uint64(), ct.c_int64()
        for i in range(int(self._lib.FakeAlpShownCount())):
            found = self._lib.FakeAlpShown(
                ct.c_int64(i), ct.byref(sequence), ct.byref(picture), ct.byref(total), ct.byref(time_ns)
            )
            assert found
            out.append(Shown(sequence.value, picture.value, total.value, time_ns.value))
        return out
