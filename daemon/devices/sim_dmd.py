"""The simulated DMD: sequence memory, minimum picture time, synch output, once or looped.

It shows its sequence on a :class:`~.sim_clock.Clock` and raises its synch output (calls the
connected listeners with a :class:`~.sim_clock.SyncPulse`) at each picture; the simulated camera
(:mod:`.sim_camera`) asks it, through :meth:`SimulatedDmd.illuminated`, what was lit during an exposure.
Faults it injects (:class:`~.sim_clock.SimFaults`): a failing start (``dmd_error_at``) and spurious
edges on the trigger line (``spurious_every``).

Thread-safety: one display thread per start; :meth:`SimulatedDmd.illuminated` is thread-safe, the
other public methods belong to one caller thread, as for the real device.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from specklenet.daemon.devices.dmd import Dmd, DmdProgress, DmdTiming, Sequence
from specklenet.daemon.devices.sim_clock import Clock, SimFaults, SyncPulse, VirtualClock, every
from specklenet.daemon.errors import DeviceError

_logger = logging.getLogger(__name__)

SyncListener = Callable[[SyncPulse], None]
FOREVER = 2**62  # pictures scheduled by a looped start (until halted)


@dataclass(frozen=True)
class Shown:
    """A picture the simulated DMD displayed (its log, for tests); ``slot`` counts from the start,
    across loops, ``picture`` = ``slot % len(sequence)``."""

    sequence: int
    picture: int
    picture_id: int
    time_ns: int
    canvas: np.ndarray
    slot: int = 0


@dataclass
class _Run:
    """One start of a sequence: its schedule, for the camera to look up what was lit when."""

    sequence: int
    canvases: np.ndarray
    picture_ids: np.ndarray
    start_ns: int
    shown: int = 0
    end: int = 0  # picture slots scheduled (lowered by a halt); FOREVER when looped


@dataclass(frozen=True)
class Illumination:
    """A picture lit during (part of) an exposure: ``weight`` = fraction of its illumination seen."""

    canvas: np.ndarray
    picture_id: int
    weight: float


class SimulatedDmd(Dmd):
    """A V-7001-like DMD in software: sequence memory, minimum picture time, synch output.

    Args:
        block_mirrors, timing: as for every :class:`~.dmd.Dmd`.
        clock: the time it shows pictures on (shared with the camera); default :class:`VirtualClock`.
        memory_pictures: 8-bit pictures that fit into its sequence memory (V-7001: 43,690 binary / 8).
        min_picture_time_us: shortest picture time for 8-bit pictures.
        faults: ``dmd_error_at`` makes the n-th start fail; ``spurious_every`` adds trigger edges.
        log_pictures: how many of the latest displayed pictures :attr:`shown_log` keeps.
    """

    name = "DMD (simulated)"

    def __init__(
        self,
        *,
        block_mirrors: int = 6,
        timing: DmdTiming | None = None,
        clock: Clock | None = None,
        memory_pictures: int = 43_690 // 8,
        min_picture_time_us: int = 3_448,
        faults: SimFaults | None = None,
        log_pictures: int = 4_096,
    ) -> None:
        super().__init__(block_mirrors=block_mirrors, timing=timing)
        self.clock: Clock = clock or VirtualClock()
        self.memory_pictures = memory_pictures
        self.min_picture_time_us = min_picture_time_us
        self.faults = faults or SimFaults()
        self.shown_log: deque[Shown] = deque(maxlen=log_pictures)  # the latest pictures shown, for tests
        self._listeners: list[SyncListener] = []
        self._runs: deque[_Run] = deque(maxlen=2)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._used = 0  # pictures allocated; kept across close/open, so a leak stays visible
        self._starts = 0
        self._pictures = 0  # pictures shown since construction (spurious_every counts them)

    @property
    def used_pictures(self) -> int:
        """8-bit pictures of sequence memory allocated now (0 once everything is freed)."""
        return self._used

    def connect(self, listener: SyncListener) -> None:
        """Wire ``listener`` to the synch output; it is called on the display thread and must not raise."""
        self._listeners.append(listener)

    @property
    def halting(self) -> bool:
        """True while :meth:`halt` is stopping the display (listeners waiting on it give up)."""
        return self._halt.is_set()

    def illuminated(self, start_ns: int, end_ns: int) -> list[Illumination]:
        """The pictures lit between ``start_ns`` and ``end_ns``, with the fraction of each one's
        illumination inside that window. Thread-safe (the camera's sensor thread calls it)."""
        timing = self.timing
        period = timing.picture_time_us * 1000
        lit = (timing.illuminate_time_us or timing.picture_time_us - timing.synch_delay_us) * 1000
        found = []
        with self._lock:
            runs = [(run, run.end) for run in self._runs]
        for run, end in runs:
            first = max(0, (start_ns - run.start_ns - timing.synch_delay_us * 1000 - lit) // period)
            last = min(end - 1, (end_ns - run.start_ns) // period)
            for slot in range(int(first), int(last) + 1):
                on = run.start_ns + slot * period + timing.synch_delay_us * 1000
                overlap = min(end_ns, on + lit) - max(start_ns, on)
                if overlap > 0:
                    picture = slot % len(run.picture_ids)
                    picture_id = int(run.picture_ids[picture])
                    found.append(Illumination(run.canvases[picture], picture_id, overlap / lit))
        return found

    # --- backend hooks -----------------------------------------------------------------------------

    def _do_open(self) -> None:
        pass

    def _do_close(self) -> None:
        self._runs.clear()

    def _do_capacity_pictures(self) -> int:
        return self.memory_pictures - self._used

    def _do_upload(self, sequence: Sequence, canvases: np.ndarray) -> None:
        if self.timing.picture_time_us < self.min_picture_time_us:
            raise DeviceError(
                f"{self.name}: dmd.picture_time_us = {self.timing.picture_time_us} µs is below this DMD's "
                f"minimum of {self.min_picture_time_us} µs for 8-bit pictures"
            )
        self.mirror_pictures(canvases[:1])  # checks that the canvas fits the mirror array
        sequence.backend = canvases.copy()
        self._used += len(canvases)

    def _do_start(self, sequence: Sequence, loop: bool) -> None:
        self._starts += 1
        if self._starts == self.faults.dmd_error_at:
            raise DeviceError(f"{self.name}: start failed: communication error (injected fault)")
        self._join()
        start_ns = self.clock.now_ns()
        end = FOREVER if loop else len(sequence)
        run = _Run(sequence.ident, sequence.backend, sequence.picture_ids, start_ns, end=end)
        with self._lock:
            self._runs.append(run)
        self._halt.clear()
        self._thread = threading.Thread(target=self._show, args=(run,), name="sim-dmd", daemon=True)
        self._thread.start()

    def _do_progress(self, sequence: Sequence) -> DmdProgress:
        run = self._runs[-1] if self._runs else None
        if run is None or run.sequence != sequence.ident:
            return DmdProgress(0, len(sequence), False)
        active = self._thread is not None and self._thread.is_alive()
        return DmdProgress(run.shown, len(sequence), active)

    def _do_wait(self, timeout_s: float) -> bool:
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def _do_halt(self) -> None:
        self._halt.set()
        self._join()

    def _do_free(self, sequence: Sequence) -> None:
        if sequence.backend is not None:
            self._used -= len(sequence)

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # --- the display thread ------------------------------------------------------------------------

    def _show(self, run: _Run) -> None:
        period = self.timing.picture_time_us * 1000
        spurious: list[int] = []  # pending extra edges (times), oldest first
        slot = 0
        while slot < run.end:
            time_ns = run.start_ns + slot * period
            on_time = self._edges_until(spurious, time_ns, run) and self.clock.sleep_until(
                time_ns, self._halt
            )
            if not on_time:
                with self._lock:
                    run.end = run.shown
                return
            picture = slot % len(run.picture_ids)
            picture_id = int(run.picture_ids[picture])
            with self._lock:
                run.shown = slot + 1
                self._pictures += 1
                canvas = run.canvases[picture]
                self.shown_log.append(Shown(run.sequence, picture, picture_id, time_ns, canvas, slot))
            self._emit(SyncPulse(time_ns, run.sequence, picture, picture_id))
            if every(self._pictures, self.faults.spurious_every):
                spurious.append(time_ns + int(self.faults.spurious_delay_us * 1000))
            slot += 1
        end_ns = run.start_ns + run.end * period
        if self._edges_until(spurious, end_ns, run):
            self.clock.sleep_until(end_ns, self._halt)  # the last picture stays on

    def _edges_until(self, spurious: list[int], time_ns: int, run: _Run) -> bool:
        """Emit the spurious edges due before ``time_ns``; False if halted meanwhile."""
        while spurious and spurious[0] < time_ns:
            edge_ns = spurious.pop(0)
            if not self.clock.sleep_until(edge_ns, self._halt):
                return False
            _logger.debug("%s: spurious trigger edge (injected fault)", self.name)
            self._emit(SyncPulse(edge_ns, run.sequence, -1, -1))
        return True

    def _emit(self, pulse: SyncPulse) -> None:
        for listener in self._listeners:
            try:
                listener(pulse)
            except Exception:  # a wire cannot fail; a broken listener must not stop the display
                _logger.exception("%s: synch listener failed", self.name)
