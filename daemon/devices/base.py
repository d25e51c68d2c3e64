"""The bench's two hardware roles behind small interfaces: a DMD that shows targets, a camera that records.

Each role has one real implementation (:mod:`.alp_dmd`, :mod:`.basler_camera`) and one simulated
(:mod:`.simulated`), chosen by one configuration key. The public methods here check arguments and state
once, then call a backend's ``_do_*`` hook; backends turn their vendor's errors into
:class:`~specklenet.daemon.errors.DeviceError` naming the device and the call.

Timing model (the DMD is master, the camera its slave): the DMD shows an uploaded sequence once; for
each picture it raises its synch output, waits ``synch_delay_us``, illuminates the picture's PWM
bit-planes for ``illuminate_time_us``, and starts the next picture ``picture_time_us`` after the
previous synch edge. The camera starts an exposure of ``exposure_us`` on each rising edge (after its
``trigger_delay_us``); the exposure must contain the whole illumination.

Array conventions: ``canvases[index, row, column]`` uint8 grey levels (128×128 on the bench);
``mirrors[index, row, column]`` uint8 on the DMD's 768×1024 mirror array; ``counts[row, column]`` float32
camera counts after binning (256×256 on the bench).

Thread-safety: a device object belongs to one thread (the acquisition's), except where a method says
otherwise. ``close()`` is idempotent and always leaves the hardware idle.
"""

from __future__ import annotations

import abc
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import numpy as np

from specklenet.daemon.errors import ConfigError, DeviceError

_logger = logging.getLogger(__name__)

DMD_MIRRORS = (768, 1024)  # ViALUX V-7001 (DLP7000, 0.7" XGA): (rows, columns)


@dataclass(frozen=True)
class DmdTiming:
    """Per-sequence DMD timing, microseconds (ALP ``AlpSeqTiming``).

    Attributes:
        picture_time_us: period between synch edges (the frame rate is its inverse).
        illuminate_time_us: duration of one picture's PWM bit-plane cycle; 0 lets the device choose
            (the longest that fits), which the camera check cannot verify.
        synch_delay_us: delay from the synch edge to the start of the illumination.
        synch_pulse_width_us: width of the synch pulse; 0 = device default (delay + illumination).
    """

    picture_time_us: int = 10_500
    illuminate_time_us: int = 9_800
    synch_delay_us: int = 100
    synch_pulse_width_us: int = 0

    def __post_init__(self) -> None:
        if self.picture_time_us <= 0 or min(self.illuminate_time_us, self.synch_delay_us) < 0:
            raise ConfigError(f"DMD timing: times must be positive, got {self}")
        if self.synch_delay_us + self.illuminate_time_us > self.picture_time_us:
            lit_until = self.synch_delay_us + self.illuminate_time_us
            raise ConfigError(
                f"DMD timing: synch_delay_us + illuminate_time_us = {lit_until} "
                f"exceeds picture_time_us = {self.picture_time_us}"
            )


@dataclass(frozen=True)
class DmdProgress:
    """Where the DMD is in the sequence it was last started with.

    Attributes:
        shown: pictures of that sequence whose display has begun (0..total).
        total: pictures in the sequence.
        active: True while the sequence is still being shown.
    """

    shown: int
    total: int
    active: bool


@dataclass(eq=False)
class Sequence:
    """An uploaded sequence (a handle: pass it back to :meth:`Dmd.start` and :meth:`Dmd.free`).

    Attributes:
        ident: the device's id for it.
        picture_ids: one id per picture (e.g. the target index); the simulated bench seeds the twin's
            camera noise with it, real devices only log it.
        backend: whatever the implementation needs to keep alive while the device uses the data.
    """

    ident: int
    picture_ids: np.ndarray
    backend: object = None
    freed: bool = False

    def __len__(self) -> int:
        return len(self.picture_ids)


def mirror_pictures(
    canvases: np.ndarray,
    *,
    block_mirrors: int,
    mirrors: tuple[int, int] = DMD_MIRRORS,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draw each canvas pixel as a ``block_mirrors``² block, centred on the mirror array.

    Args:
        canvases: uint8 ``(N, rows, columns)``.
        block_mirrors: mirrors per canvas pixel along each axis (6 on the bench: 128 px → 768 rows).
        mirrors: (rows, columns) of the DMD.
        out: optional uint8 ``(N, *mirrors)`` buffer to draw into (its margins are zeroed).

    Returns:
        uint8 ``(N, *mirrors)``; mirrors outside the drawn area are off (0).
    """
    count, rows, cols = canvases.shape
    height, width = rows * block_mirrors, cols * block_mirrors
    if height > mirrors[0] or width > mirrors[1]:
        raise DeviceError(
            f"a {rows}×{cols} canvas at {block_mirrors} mirrors per pixel needs {height}×{width} mirrors; "
            f"the DMD has {mirrors[0]}×{mirrors[1]}"
        )
    if out is None:
        out = np.zeros((count, *mirrors), np.uint8)
    else:
        out[...] = 0
    top, left = (mirrors[0] - height) // 2, (mirrors[1] - width) // 2
    # (N, rows, b, cols, b) view of the drawn area: one broadcast assignment instead of np.repeat twice.
    area = out[:, top : top + height, left : left + width].reshape(
        count, rows, block_mirrors, cols, block_mirrors
    )
    area[...] = canvases[:, :, None, :, None]
    return out


class Dmd(abc.ABC):
    """A DMD that shows uploaded sequences of 8-bit canvases once, as timing master.

    Lifecycle: ``open()`` → (``upload()`` → ``start()`` → ``wait()``/``progress()`` → ``free()``)* →
    ``close()``; also a context manager. ``halt()`` stops a running sequence at once.
    """

    name = "DMD"

    def __init__(self, *, block_mirrors: int = 6, timing: DmdTiming | None = None) -> None:
        self.block_mirrors = block_mirrors
        self.timing = timing or DmdTiming()
        self.mirrors: tuple[int, int] = DMD_MIRRORS
        self._open = False
        self._sequences: dict[int, Sequence] = {}
        self._started: Sequence | None = None
        self._next_ident = itertools.count(1)

    # --- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> None:
        """Connect to the device and put it into a known idle state. Safe to call twice."""
        if not self._open:
            self._do_open()
            self._open = True

    def close(self) -> None:
        """Halt, free every sequence and release the device. Safe to call twice.

        Runs on error paths too, so a failure while releasing (e.g. of a removed device) is logged, not
        raised: the error that led here is the one the caller needs to see.
        """
        if not self._open:
            return
        _quietly(self.name, "halt", self._do_halt)
        for sequence in list(self._sequences.values()):
            _quietly(self.name, "free", self._do_free, sequence)
            self._forget(sequence)
        self._open = False
        self._started = None
        _quietly(self.name, "close", self._do_close)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- sequences ---------------------------------------------------------------------------------

    @property
    def capacity_pictures(self) -> int:
        """How many more 8-bit pictures fit into the device's sequence memory now."""
        self._check_open()
        return self._do_capacity_pictures()

    def upload(self, canvases: np.ndarray, picture_ids: np.ndarray | None = None) -> Sequence:
        """Upload 8-bit canvases as one sequence with this DMD's timing; blocks until uploaded.

        Args:
            canvases: uint8 ``(N, rows, columns)``, drawn as :func:`mirror_pictures` does.
            picture_ids: int64 ``(N,)`` ids (default ``0..N-1``), see :class:`Sequence`.
        """
        self._check_open()
        canvases = np.asarray(canvases)
        if canvases.dtype != np.uint8 or canvases.ndim != 3 or len(canvases) == 0:
            raise DeviceError(
                f"{self.name}: canvases must be uint8 (N>0, rows, columns), "
                f"got {canvases.dtype} {canvases.shape}"
            )
        ids = np.arange(len(canvases)) if picture_ids is None else np.asarray(picture_ids)
        if ids.shape != (len(canvases),):
            raise DeviceError(f"{self.name}: {len(canvases)} canvases but picture_ids of shape {ids.shape}")
        if len(canvases) > self.capacity_pictures:
            raise DeviceError(
                f"{self.name}: {len(canvases)} pictures exceed the free sequence memory "
                f"({self.capacity_pictures} 8-bit pictures); upload shorter sequences"
            )
        sequence = Sequence(next(self._next_ident), ids.astype(np.int64))
        self._do_upload(sequence, canvases)
        self._sequences[sequence.ident] = sequence
        return sequence

    def start(self, sequence: Sequence) -> None:
        """Show ``sequence`` once (not looped), emitting a synch pulse per picture; returns at once."""
        self._check_sequence(sequence)
        if self._started is not None and self.progress().active:
            raise DeviceError(
                f"{self.name}: start: another sequence is still running; wait() or halt() first"
            )
        self._do_start(sequence)
        self._started = sequence

    def progress(self) -> DmdProgress:
        """Progress of the sequence last started (zeros before any start)."""
        self._check_open()
        if self._started is None:
            return DmdProgress(0, 0, False)
        return self._do_progress(self._started)

    def wait(self, timeout_s: float) -> bool:
        """Block until the started sequence has been shown completely; False on timeout."""
        self._check_open()
        if self._started is None:
            return True
        return self._do_wait(timeout_s)

    def halt(self) -> None:
        """Stop the running sequence now (the device goes idle). Safe to call when idle."""
        self._check_open()
        self._do_halt()

    def free(self, sequence: Sequence) -> None:
        """Release a sequence's device memory; it must not be running. Safe to call twice."""
        self._check_open()
        if sequence.freed:
            return
        if self._started is sequence and self.progress().active:
            raise DeviceError(f"{self.name}: free: sequence {sequence.ident} is still running; halt() first")
        self._do_free(sequence)
        self._forget(sequence)

    # --- helpers -----------------------------------------------------------------------------------

    def mirror_pictures(self, canvases: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``canvases`` drawn on this DMD's mirror array (see :func:`mirror_pictures`)."""
        return mirror_pictures(canvases, block_mirrors=self.block_mirrors, mirrors=self.mirrors, out=out)

    def _forget(self, sequence: Sequence) -> None:
        sequence.freed = True
        sequence.backend = None
        self._sequences.pop(sequence.ident, None)
        if self._started is sequence:
            self._started = None

    def _check_open(self) -> None:
        if not self._open:
            raise DeviceError(f"{self.name}: not open")

    def _check_sequence(self, sequence: Sequence) -> None:
        self._check_open()
        if sequence.freed or self._sequences.get(sequence.ident) is not sequence:
            raise DeviceError(
                f"{self.name}: sequence {sequence.ident} is not uploaded to this device (freed?)"
            )

    # --- backend hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_open(self) -> None: ...

    @abc.abstractmethod
    def _do_close(self) -> None: ...

    @abc.abstractmethod
    def _do_capacity_pictures(self) -> int: ...

    @abc.abstractmethod
    def _do_upload(self, sequence: Sequence, canvases: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _do_start(self, sequence: Sequence) -> None: ...

    @abc.abstractmethod
    def _do_progress(self, sequence: Sequence) -> DmdProgress: ...

    @abc.abstractmethod
    def _do_wait(self, timeout_s: float) -> bool: ...

    @abc.abstractmethod
    def _do_halt(self) -> None: ...

    @abc.abstractmethod
    def _do_free(self, sequence: Sequence) -> None: ...


def _quietly(device: str, what: str, step: Callable[..., Any], *args: Any) -> None:
    """Run a release step; log instead of raising, so the remaining steps still run."""
    try:
        step(*args)
    except DeviceError as error:
        _logger.warning("%s: %s failed while closing: %s", device, what, error)


def bin_mean(image: np.ndarray, binning: int) -> np.ndarray:
    """Area-bin a camera image ``[row, column]`` by ``binning``×``binning``: float32 mean counts.

    Uses strided integer adds (≈8× faster than ``reshape(...).mean()`` on a 1024² frame, see
    performance-reliability.md §A.4); sums stay exact in uint32 for 8- to 16-bit pixels.
    """
    if binning == 1:
        return image.astype(np.float32)
    rows, cols = image.shape[0] // binning, image.shape[1] // binning
    total = np.zeros((rows, cols), np.uint32)
    for dr in range(binning):
        for dc in range(binning):
            total += image[dr : rows * binning : binning, dc : cols * binning : binning]
    return total.astype(np.float32) * np.float32(1.0 / (binning * binning))


@dataclass(frozen=True)
class CameraFrame:
    """One result of :meth:`Camera.retrieve`.

    Attributes:
        counts: float32 ``[row, column]`` camera counts after binning (meaningless when not ``ok``).
        block_id: position in the current stream: 0 for the first frame after ``start()``, +1 per frame
            the camera produced, so gaps mean frames lost between camera and host.
        frame_id: the camera's id for the frame, unique while the camera is open (the simulated
            camera uses the id of the picture it saw, i.e. the twin's noise seed).
        timestamp_ns: start of the exposure on the camera's clock, or None when the camera gives none.
        ok: False for a failed (incomplete, corrupted) buffer.
        error: the camera's description of a failure.
        lost_before: frames lost (block-id gap) between the previous frame of this stream and this one.
    """

    counts: np.ndarray
    block_id: int
    frame_id: int
    timestamp_ns: int | None
    ok: bool = True
    error: str = ""
    lost_before: int = 0


@dataclass
class CameraStats:
    """Counters since ``open()``: frames delivered (good or failed), failed buffers, frames lost."""

    delivered: int = 0
    failed: int = 0
    lost: int = 0
    reconnects: int = 0


@dataclass(frozen=True)
class CameraGeometry:
    """Region of interest and binning, in native pixels; ``frame_shape`` = roi // binning."""

    roi_px: int = 1024
    binning: int = 4
    roi_offset_px: tuple[int, int] | None = None  # (row, column) of the top-left corner; None = centred

    def __post_init__(self) -> None:
        if self.roi_px <= 0 or self.binning <= 0 or self.roi_px % self.binning:
            raise ConfigError(
                f"camera: roi_px ({self.roi_px}) must be a positive multiple of binning ({self.binning})"
            )

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (self.roi_px // self.binning, self.roi_px // self.binning)


class Camera(abc.ABC):
    """A camera that records one frame per trigger, one by one and in order, for lossless recording.

    Lifecycle: ``open()`` (applies the whole configuration) → ``start()`` (a new stream; block ids from 0)
    → ``retrieve()``* → ``stop()`` (discards what was not retrieved) → ``close()``. After the device was
    removed, ``retrieve()`` raises :class:`~specklenet.daemon.errors.DeviceRemovedError` and
    ``reconnect()`` finds it again by serial number and re-applies the configuration.
    """

    name = "camera"

    def __init__(self, *, frame_shape: tuple[int, int]) -> None:
        self.frame_shape = frame_shape
        self.stats = CameraStats()
        self._open = False
        self._grabbing = False
        self._last_block_id = -1

    def open(self) -> None:
        """Connect and apply the configuration. Safe to call twice."""
        if not self._open:
            self._do_open()
            self._open = True

    def close(self) -> None:
        """Stop grabbing and release the device. Safe to call twice; errors are logged (see Dmd.close)."""
        if not self._open:
            return
        _quietly(self.name, "stop", self.stop)
        self._open = False
        _quietly(self.name, "close", self._do_close)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def grabbing(self) -> bool:
        return self._grabbing

    def start(self) -> None:
        """Start a new stream (block ids from 0), ready for triggers. Restarts a running stream."""
        self._check_open()
        if self._grabbing:
            self.stop()
        self._last_block_id = -1
        self._do_start()
        self._grabbing = True

    def stop(self) -> None:
        """Stop the stream and discard frames not yet retrieved. Safe to call when stopped."""
        if self._grabbing:
            self._grabbing = False
            self._do_stop()

    def retrieve(self, timeout_s: float) -> CameraFrame | None:
        """The next frame of the stream, in order, or None if none arrives within ``timeout_s``.

        Raises:
            DeviceRemovedError: the camera disappeared; call :meth:`reconnect`.
            DeviceError: any other failure of the camera or its driver.
        """
        self._check_open()
        if not self._grabbing:
            raise DeviceError(f"{self.name}: retrieve: not grabbing; start() first")
        frame = self._do_retrieve(timeout_s)
        if frame is None:
            return None
        lost = max(0, frame.block_id - self._last_block_id - 1)
        self._last_block_id = max(self._last_block_id, frame.block_id)
        self.stats.delivered += 1
        self.stats.failed += not frame.ok
        self.stats.lost += lost
        if lost:
            frame = CameraFrame(
                frame.counts, frame.block_id, frame.frame_id, frame.timestamp_ns, frame.ok, frame.error, lost
            )
        return frame

    def trigger_software(self) -> None:
        """Trigger one exposure from software (only with ``trigger_source = "Software"``)."""
        self._check_open()
        if not self._grabbing:
            raise DeviceError(f"{self.name}: trigger_software: not grabbing; start() first")
        self._do_trigger_software()

    def reconnect(self, timeout_s: float) -> None:
        """After a removal: find the camera again, re-apply the configuration; grabbing is stopped after.

        Raises:
            DeviceRemovedError: the camera did not come back within ``timeout_s``.
        """
        self._check_open()
        self._grabbing = False
        self._do_reconnect(timeout_s)
        self.stats.reconnects += 1

    @property
    def removed(self) -> bool:
        """True once the device has been removed, until :meth:`reconnect` succeeds."""
        return self._open and self._do_removed()

    def _check_open(self) -> None:
        if not self._open:
            raise DeviceError(f"{self.name}: not open")

    @abc.abstractmethod
    def _do_open(self) -> None: ...

    @abc.abstractmethod
    def _do_close(self) -> None: ...

    @abc.abstractmethod
    def _do_start(self) -> None: ...

    @abc.abstractmethod
    def _do_stop(self) -> None: ...

    @abc.abstractmethod
    def _do_retrieve(self, timeout_s: float) -> CameraFrame | None: ...

    @abc.abstractmethod
    def _do_trigger_software(self) -> None: ...

    @abc.abstractmethod
    def _do_reconnect(self, timeout_s: float) -> None: ...

    @abc.abstractmethod
    def _do_removed(self) -> bool: ...
