"""ViALUX DMD (ALP-4.x, e.g. the V-7001) through ALP4lib: the only module that imports ``ALP4``.

ALP4lib 1.1.0 works on Linux but has defects (../shared/reference/daemon.md §2.7), worked around here:

1. ``ProjInquire`` passes four arguments to the three-argument ``AlpProjInquire``: we call
   ``AlpProjInquire(device, type, &value)`` ourselves.
2. ``ProjInquireEx`` calls ``AlpProjInquire`` (not ``Ex``): we call ``AlpProjInquireEx`` ourselves.
3. Its ``tAlpProjProgress`` uses ``c_ulong`` (8 bytes on Linux, 72-byte struct): ours has nine packed
   32-bit fields (36 bytes, the Windows header's layout; the Linux header was not available to check).
4. ``DevInquire`` reads a 32-bit answer into an 8-byte ``c_long``: we sign-extend the low 32 bits.
5. Error codes it does not know (1021, 1999, ...) raise ``KeyError``, and ``ALPError`` forgets the code:
   every call to the C library goes through :class:`_RecordingLibrary`, which remembers the last
   function and its return code, so each failure becomes a :class:`DeviceError` naming both.
6. ``FreeSeq`` only prints errors (and forgets a sequence the device refused to free), ``Run()`` loops
   by default, and ``SeqPut`` uploads a temporary copy: we call ``AlpSeqFree`` ourselves, always pass
   ``loop=False``, and upload our own mirror buffer
   (``dataFormat="C"``), kept alive in the :class:`~.base.Sequence` until it is freed, because the
   driver may read it while the device displays.

ALP4lib prints to stdout; that output is captured and logged at debug level.

Thread-safety: not thread-safe; one thread drives the device.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import io
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.devices.dmd import Dmd, DmdProgress, DmdTiming, Sequence
from specklenet.daemon.errors import DeviceError, DeviceRemovedError

try:  # the SDK is needed only when this backend is chosen
    import ALP4
except ImportError as _error:  # pragma: no cover - ALP4lib is a base dependency
    ALP4 = None
    _IMPORT_ERROR: ImportError | None = _error
else:
    _IMPORT_ERROR = None

_logger = logging.getLogger(__name__)

ALP_OK = 0
ALP_DEVICE_REMOVED = 1012
ALP_NOT_ONLINE = 1001
ALP_PROJ_STATE = 2400
ALP_PROJ_ACTIVE = 1200
ALP_PROJ_PROGRESS = 2318
ALP_AVAIL_MEMORY = 2003
ALP_MIN_PICTURE_TIME = 2211
BIT_DEPTH = 8  # 8-bit sequences: the targets are grey levels shown by PWM
POLL_S = 0.002  # progress polling period of wait(); AlpProjWait cannot time out
_EXTRA_ERRORS = {1021: "configuration mismatch", 1999: "unknown error"}  # in alp.h, not in ALP4lib


class _Progress(ct.Structure):
    """``tAlpProjProgress`` with the header's 32-bit fields (ALP4lib's uses 8-byte ``c_ulong``)."""

    _pack_ = 1
    _fields_ = [
        ("CurrentQueueId", ct.c_uint32),
        ("SequenceId", ct.c_uint32),
        ("nWaitingSequences", ct.c_uint32),
        ("nSequenceCounter", ct.c_uint32),
        ("nSequenceCounterUnderflow", ct.c_uint32),
        ("nFrameCounter", ct.c_uint32),  # frames left inside the current iteration
        ("nPictureTime", ct.c_uint32),
        ("nFramesPerSubSequence", ct.c_uint32),
        ("nFlags", ct.c_uint32),
    ]


class _RecordingLibrary:
    """Wraps the loaded C library: every call records (function name, return code) before returning."""

    def __init__(self, library: ct.CDLL) -> None:
        self._library = library
        self.last: tuple[str, int] = ("", ALP_OK)

    def __getattr__(self, name: str) -> Callable[..., int]:
        function = getattr(self._library, name)

        def call(*args: Any) -> int:
            code = int(function(*args))
            self.last = (name, code)
            return code

        return call


class AlpDmd(Dmd):
    """A ViALUX DMD as timing master: 8-bit sequences, shown once, a synch pulse per picture.

    Args:
        library_dir: folder holding ``libalp4X.so`` (ViALUX's Linux package installs it in
            ``/usr/lib/x86_64-linux-gnu``).
        version: ALP API version, "4.1" .. "4.4" (file ``libalp43.so`` for "4.3").
        device_number: serial number of the DMD to open; 0 opens the first one found.
        block_mirrors: mirrors per canvas pixel along each axis.
        timing: picture time and synch pulse of every uploaded sequence.
    """

    name = "DMD (ALP)"

    def __init__(
        self,
        *,
        library_dir: str | Path = "/usr/lib/x86_64-linux-gnu",
        version: str = "4.3",
        device_number: int = 0,
        block_mirrors: int = 6,
        timing: DmdTiming | None = None,
    ) -> None:
        super().__init__(block_mirrors=block_mirrors, timing=timing)
        self.library_dir = str(library_dir)
        self.version = version
        self.device_number = device_number
        self._alp: Any = None
        self._lib: _RecordingLibrary | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def _do_open(self) -> None:
        if ALP4 is None:
            raise DeviceError(f"{self.name}: ALP4lib is not installed: {_IMPORT_ERROR}")
        try:
            with self._captured_stdout():
                alp = ALP4.ALP4(version=self.version, libDir=self.library_dir)
        except (OSError, ValueError) as error:
            raise DeviceError(
                f"{self.name}: cannot load the ALP {self.version} library from {self.library_dir!r} "
                f"(install ViALUX's Linux ALP package or set dmd.library_dir): {error}"
            ) from error
        self._lib = alp._ALPLib = _RecordingLibrary(alp._ALPLib)
        self._call("Initialize", alp.Initialize, self.device_number or None)
        self._alp = alp
        try:
            self.mirrors = (int(alp.nSizeY), int(alp.nSizeX))
            self._call(
                "DevControl(SYNCH_POLARITY)", alp.DevControl, ALP4.ALP_SYNCH_POLARITY, ALP4.ALP_LEVEL_HIGH
            )
            self._call("ProjControl(PROJ_MODE)", alp.ProjControl, ALP4.ALP_PROJ_MODE, ALP4.ALP_MASTER)
            serial = self._dev_inquire(ALP4.ALP_DEVICE_NUMBER)
        except BaseException:
            self._do_close()  # allocated but not usable: free it, or the next open finds it taken
            raise
        rows, columns = self.mirrors
        _logger.info("%s: opened serial %d, %d×%d mirrors", self.name, serial, columns, rows)

    def _do_close(self) -> None:
        alp, self._alp = self._alp, None
        if alp is not None:
            with contextlib.suppress(DeviceError):  # a removed device has nothing left to release
                self._call("Free", alp.Free)

    def temperatures_c(self) -> dict[str, float]:
        """Board temperatures, °C (the controller reports 1/256 °C as a signed 32-bit value)."""
        self._check_open()
        names = {"ddc_fpga": 2050, "apps_fpga": 2051, "pcb": 2052}
        return {name: self._dev_inquire(kind) / 256.0 for name, kind in names.items()}

    # --- sequences ---------------------------------------------------------------------------------

    def _do_capacity_pictures(self) -> int:
        return self._dev_inquire(ALP_AVAIL_MEMORY) // BIT_DEPTH

    def _do_upload(self, sequence: Sequence, canvases: np.ndarray) -> None:
        alp = self._alp
        mirrors = self.mirror_pictures(canvases)  # (N, rows, columns), C-contiguous, kept alive below
        ident = self._call("SeqAlloc", alp.SeqAlloc, len(canvases), BIT_DEPTH)
        sequence.backend = (ident, mirrors)
        try:
            minimum = self._seq_inquire(ALP_MIN_PICTURE_TIME, ident)
            timing = self.timing
            if timing.picture_time_us < minimum:
                raise DeviceError(
                    f"{self.name}: dmd.picture_time_us = {timing.picture_time_us} µs is below this DMD's "
                    f"minimum of {minimum} µs for {BIT_DEPTH}-bit pictures"
                )
            self._call("SeqControl(SEQ_REPEAT)", alp.SeqControl, ALP4.ALP_SEQ_REPEAT, 1, ident)
            self._call(
                "SetTiming",
                alp.SetTiming,
                ident,
                timing.illuminate_time_us or None,
                timing.picture_time_us,
                timing.synch_delay_us,
                timing.synch_pulse_width_us or None,
            )
            pointer = mirrors.ctypes.data_as(ct.c_void_p)
            self._call("SeqPut", alp.SeqPut, pointer, ident, 0, 0, "C")
        except BaseException:
            self._free_ident(ident)
            sequence.backend = None
            raise

    def _do_start(self, sequence: Sequence, loop: bool) -> None:  # C2 stub: h8storage implements loop
        if loop:
            raise DeviceError(f"{self.name}: loop mode is not implemented yet")
        ident, _ = sequence.backend  # type: ignore[misc]
        self._call("Run", self._alp.Run, ident, False)  # loop=False: AlpProjStart, shown once

    def _do_progress(self, sequence: Sequence) -> DmdProgress:
        progress = _Progress()
        code = self._lib.AlpProjInquireEx(self._alp.ALP_ID, ALP_PROJ_PROGRESS, ct.byref(progress))
        self._check(code, "progress")
        active = self._proj_state() == ALP_PROJ_ACTIVE
        left = min(int(progress.nFrameCounter), len(sequence))
        shown = len(sequence) - left if active else len(sequence)
        return DmdProgress(shown, len(sequence), active)

    def _do_wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._proj_state() == ALP_PROJ_ACTIVE:
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def _do_halt(self) -> None:
        self._call("Halt", self._alp.Halt)

    def _do_free(self, sequence: Sequence) -> None:
        if sequence.backend is not None:
            ident, _ = sequence.backend  # type: ignore[misc]
            self._free_ident(ident)

    def _free_ident(self, ident: ct.c_long) -> None:
        # ALP4lib's FreeSeq prints errors instead of raising, and forgets the sequence even when the
        # device refused to free it (a retry then fails in list.remove): call the library ourselves.
        self._check(self._lib.AlpSeqFree(self._alp.ALP_ID, ident), "FreeSeq")
        if ident in self._alp.Seqs:
            self._alp.Seqs.remove(ident)

    # --- ALP calls ---------------------------------------------------------------------------------

    def _dev_inquire(self, kind: int) -> int:
        value = self._call(f"DevInquire({kind})", self._alp.DevInquire, kind)
        return int(ct.c_int32(value & 0xFFFFFFFF).value)  # the answer is 32 bits, sign included

    def _seq_inquire(self, kind: int, ident: ct.c_long) -> int:
        value = self._call(f"SeqInquire({kind})", self._alp.SeqInquire, kind, ident)
        return int(ct.c_int32(value & 0xFFFFFFFF).value)

    def _proj_state(self) -> int:
        value = ct.c_int64(0)
        code = self._lib.AlpProjInquire(self._alp.ALP_ID, ALP_PROJ_STATE, ct.byref(value))
        self._check(code, "ProjInquire")
        return int(ct.c_int32(value.value & 0xFFFFFFFF).value)

    def _call(self, what: str, method: Callable[..., Any], *args: Any) -> Any:
        """Call an ALP4lib method; any ALP failure becomes a DeviceError naming the C function and code."""
        try:
            with self._captured_stdout():
                return method(*args)
        except (KeyError, ALP4.ALPError) as error:
            function, code = self._lib.last if self._lib else ("?", -1)
            raise self._error(function, code, what) from error

    def _check(self, code: int, what: str) -> None:
        if code != ALP_OK:
            function = self._lib.last[0] if self._lib else "?"
            raise self._error(function, code, what)

    def _error(self, function: str, code: int, what: str) -> DeviceError:
        text = ALP4.ALP_ERRORS.get(code) or _EXTRA_ERRORS.get(code, "error code not documented")
        kind = DeviceRemovedError if code in (ALP_DEVICE_REMOVED, ALP_NOT_ONLINE) else DeviceError
        return kind(f"{self.name}: {function} returned {code} ({text}) in {what}")

    @contextlib.contextmanager
    def _captured_stdout(self) -> Any:
        # ALP4lib prints ("Loading library", "DMD found", FreeSeq warnings); keep stdout clean.
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            yield
        for line in buffer.getvalue().splitlines():
            _logger.debug("%s: ALP4lib: %s", self.name, line)
