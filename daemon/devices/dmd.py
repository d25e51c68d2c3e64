"""The DMD role: a ViALUX-style DMD that shows uploaded sequences of 8-bit canvases, as master.

A sequence is shown once, or looped until ``halt()`` (continuous mode, for live display): one synch
edge per picture either way, so the camera frame with block id b belongs to picture b % len(sequence).

Implementations: :mod:`.alp_dmd` (ALP4lib) and :mod:`.sim_dmd`. See :mod:`.base` for the timing
model, the array conventions and thread-safety.
"""

from __future__ import annotations

import abc
import itertools
from dataclasses import dataclass

import numpy as np

from specklenet.daemon.devices.base import Device, quietly
from specklenet.daemon.errors import ConfigError, DeviceError

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
        shown: pictures of that sequence whose display has begun since the start (0..total; more than
            ``total`` in loop mode); never pictures a halt prevented.
        total: pictures in the sequence.
        active: True while the sequence is still being shown (until done or halted).
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


class Dmd(Device):
    """A DMD that shows uploaded sequences of 8-bit canvases once, as timing master.

    Lifecycle: ``open()`` → (``upload()`` → ``start()`` → ``wait()``/``progress()`` → ``free()``)* →
    ``close()``; also a context manager. ``halt()`` stops a running sequence at once.
    """

    name = "DMD"

    def __init__(self, *, block_mirrors: int = 6, timing: DmdTiming | None = None) -> None:
        super().__init__()
        self.block_mirrors = block_mirrors
        self.timing = timing or DmdTiming()
        self.mirrors: tuple[int, int] = DMD_MIRRORS
        self._sequences: dict[int, Sequence] = {}
        self._started: Sequence | None = None
        self._next_ident = itertools.count(1)

    def _release(self) -> None:
        """Halt and free every sequence before the device is released."""
        quietly(self.name, "halt", self._do_halt)
        for sequence in list(self._sequences.values()):
            quietly(self.name, "free", self._do_free, sequence)
            self._forget(sequence)
        self._started = None

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

    def start(self, sequence: Sequence, *, loop: bool = False) -> None:
        """Show ``sequence`` once, or over and over until :meth:`halt` with ``loop``, emitting a synch
        pulse per picture; returns at once."""
        self._check_sequence(sequence)
        if self._started is not None and self.progress().active:
            raise DeviceError(
                f"{self.name}: start: another sequence is still running; wait() or halt() first"
            )
        self._do_start(sequence, loop)
        self._started = sequence

    def progress(self) -> DmdProgress:
        """Progress of the sequence last started (zeros before any start)."""
        self._check_open()
        if self._started is None:
            return DmdProgress(0, 0, False)
        return self._do_progress(self._started)

    def wait(self, timeout_s: float) -> bool:
        """Block until the started sequence has been shown completely (a looped one: halted); False on
        timeout."""
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

    def _check_sequence(self, sequence: Sequence) -> None:
        self._check_open()
        if sequence.freed or self._sequences.get(sequence.ident) is not sequence:
            raise DeviceError(
                f"{self.name}: sequence {sequence.ident} is not uploaded to this device (freed?)"
            )

    # --- backend hooks -----------------------------------------------------------------------------

    @abc.abstractmethod
    def _do_capacity_pictures(self) -> int: ...

    @abc.abstractmethod
    def _do_upload(self, sequence: Sequence, canvases: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _do_start(self, sequence: Sequence, loop: bool) -> None: ...

    @abc.abstractmethod
    def _do_progress(self, sequence: Sequence) -> DmdProgress: ...

    @abc.abstractmethod
    def _do_wait(self, timeout_s: float) -> bool: ...

    @abc.abstractmethod
    def _do_halt(self) -> None: ...

    @abc.abstractmethod
    def _do_free(self, sequence: Sequence) -> None: ...
