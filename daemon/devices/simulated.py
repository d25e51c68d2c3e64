"""The simulated bench: a DMD and a camera physically coupled through the optical twin, with faults.

The simulated DMD shows its sequence on a clock and raises its synch output (calls the connected
listeners with a :class:`SyncPulse`) at each picture. The simulated camera, wired to that output,
starts an exposure on each pulse and renders, through the twin, what the DMD illuminated during the
exposure: exactly ``twin.expose_one(canvas, picture_id)`` when the exposure contains the picture's
whole PWM illumination, a weighted mixture of the pictures (and darkness) it overlapped otherwise
(e.g. a late trigger). Camera noise is seeded by the picture id, so a retake of a target gives the
same frame, and an acquisition equals what the twin renders for the same targets and seed.

Clocks: :class:`VirtualClock` (default) is simulated time that stands still while the camera renders,
so any twin speed works and nothing is lost unless injected; :class:`MonotonicClock` runs the bench
in real time, where a consumer that falls behind loses frames when the camera's buffers are full
(the recording benchmark's mode, with pre-rendered frames so the twin's cost is excluded).

Faults (:class:`SimFaults`, counted from 1 since ``open()``): frames lost between camera and host
(block-id gaps), failed buffers, triggers the camera misses (no frame at all), late triggers and
Gaussian trigger jitter, a camera removal at the n-th exposure, a failing DMD start.

Thread-safety: each device runs one internal thread (the DMD's display, the camera's sensor); the
public methods belong to one caller thread, as for the real devices.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from specklenet.daemon.devices.camera import Camera, CameraFrame
from specklenet.daemon.devices.dmd import Dmd, DmdProgress, DmdTiming, Sequence
from specklenet.daemon.errors import ConfigError, DeviceError, DeviceRemovedError

_logger = logging.getLogger(__name__)

SyncListener = Callable[["SyncPulse"], None]


class Clock(Protocol):
    """Nanosecond time for the simulated devices."""

    virtual: bool

    def now_ns(self) -> int: ...

    def sleep_until(self, time_ns: int, cancel: threading.Event) -> bool:
        """Return at ``time_ns``; False (early) if ``cancel`` is set."""
        ...


class MonotonicClock:
    """Real time (``time.monotonic_ns``)."""

    virtual = False

    def now_ns(self) -> int:
        return time.monotonic_ns()

    def sleep_until(self, time_ns: int, cancel: threading.Event) -> bool:
        while (remaining := time_ns - time.monotonic_ns()) > 0:
            if cancel.wait(remaining * 1e-9):
                return False
        return not cancel.is_set()


class VirtualClock:
    """Simulated time: sleeping moves it forward at once. Thread-safe."""

    virtual = True

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            return self._now

    def sleep_until(self, time_ns: int, cancel: threading.Event) -> bool:
        with self._lock:
            self._now = max(self._now, time_ns)
        return not cancel.is_set()


@dataclass(frozen=True)
class SimFaults:
    """Faults the simulated bench injects; counts start at 1 when the device opens, 0 disables.

    Attributes:
        drop_every: every n-th exposure is lost between camera and host (a block-id gap).
        fail_every: every n-th exposure arrives as a failed (incomplete) buffer.
        ignore_every: every n-th trigger is missed by the camera (no frame, no block id).
        late_every: every n-th trigger reaches the camera ``late_us`` late.
        late_us: delay of those late triggers, µs.
        jitter_rms_us: Gaussian jitter of every trigger, µs rms (seeded).
        remove_at: the camera is unplugged at its n-th exposure ...
        removed_for_s: ... and can be found again this many (wall-clock) seconds later.
        dmd_error_at: the n-th DMD start fails with a device error.
    """

    drop_every: int = 0
    fail_every: int = 0
    ignore_every: int = 0
    late_every: int = 0
    late_us: float = 0.0
    jitter_rms_us: float = 0.0
    remove_at: int = 0
    removed_for_s: float = 0.2
    dmd_error_at: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_every", "fail_every", "ignore_every", "late_every", "remove_at", "dmd_error_at"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim.faults.{name}: must be >= 0, got {getattr(self, name)}")
        if self.late_us < 0 or self.jitter_rms_us < 0 or self.removed_for_s < 0:
            raise ConfigError("sim.faults: late_us, jitter_rms_us and removed_for_s must be >= 0")


def _every(count: int, period: int) -> bool:
    return period > 0 and count % period == 0


@dataclass(frozen=True)
class SyncPulse:
    """A rising edge of the DMD's synch output.

    Attributes:
        time_ns: when the edge rose (the simulated clock).
        sequence: the device's id of the sequence shown.
        picture: position of the picture in that sequence.
        picture_id: the id uploaded with the picture.
    """

    time_ns: int
    sequence: int
    picture: int
    picture_id: int


@dataclass(frozen=True)
class Shown:
    """A picture the simulated DMD displayed (its log, for tests)."""

    sequence: int
    picture: int
    picture_id: int
    time_ns: int
    canvas: np.ndarray


@dataclass
class _Run:
    """One start of a sequence: its schedule, for the camera to look up what was lit when."""

    sequence: int
    canvases: np.ndarray
    picture_ids: np.ndarray
    start_ns: int
    shown: int = 0
    end: int = 0  # pictures scheduled (lowered by a halt)


@dataclass(frozen=True)
class Illumination:
    """A picture lit during (part of) an exposure: ``weight`` = fraction of its illumination seen."""

    canvas: np.ndarray
    picture_id: int
    weight: float


class SimulatedDmd(Dmd):
    """A V-7001-like DMD in software: sequence memory, minimum picture time, synch output.

    Args:
        block_mirrors, timing: as for every :class:`~.base.Dmd`.
        clock: the time it shows pictures on (shared with the camera); default :class:`VirtualClock`.
        memory_pictures: 8-bit pictures that fit into its sequence memory (V-7001: 43,690 binary / 8).
        min_picture_time_us: shortest picture time for 8-bit pictures.
        faults: ``dmd_error_at`` makes the n-th start fail.
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
    ) -> None:
        super().__init__(block_mirrors=block_mirrors, timing=timing)
        self.clock: Clock = clock or VirtualClock()
        self.memory_pictures = memory_pictures
        self.min_picture_time_us = min_picture_time_us
        self.faults = faults or SimFaults()
        self.shown_log: list[Shown] = []  # every picture displayed since construction, for tests
        self._listeners: list[SyncListener] = []
        self._runs: deque[_Run] = deque(maxlen=2)
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._used = 0
        self._starts = 0

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
            runs = list(self._runs)
        for run in runs:
            first = max(0, (start_ns - run.start_ns - timing.synch_delay_us * 1000 - lit) // period)
            last = min(run.end - 1, (end_ns - run.start_ns) // period)
            for picture in range(int(first), int(last) + 1):
                on = run.start_ns + picture * period + timing.synch_delay_us * 1000
                overlap = min(end_ns, on + lit) - max(start_ns, on)
                if overlap > 0:
                    picture_id = int(run.picture_ids[picture])
                    found.append(Illumination(run.canvases[picture], picture_id, overlap / lit))
        return found

    # --- backend hooks -----------------------------------------------------------------------------

    def _do_open(self) -> None:
        self._used = 0

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
        if loop:
            raise NotImplementedError(f"{self.name}: loop mode")
        self._starts += 1
        if self._starts == self.faults.dmd_error_at:
            raise DeviceError(f"{self.name}: start failed: communication error (injected fault)")
        self._join()
        start_ns = self.clock.now_ns()
        run = _Run(sequence.ident, sequence.backend, sequence.picture_ids, start_ns, end=len(sequence))
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

    def _show(self, run: _Run) -> None:
        period = self.timing.picture_time_us * 1000
        for picture in range(run.end):
            time_ns = run.start_ns + picture * period
            if not self.clock.sleep_until(time_ns, self._halt):
                with self._lock:
                    run.end = picture
                return
            picture_id = int(run.picture_ids[picture])
            with self._lock:
                run.shown = picture + 1
                shown = Shown(run.sequence, picture, picture_id, time_ns, run.canvases[picture])
                self.shown_log.append(shown)
            pulse = SyncPulse(time_ns, run.sequence, picture, picture_id)
            for listener in self._listeners:
                try:
                    listener(pulse)
                except Exception:  # a wire cannot fail; a broken listener must not stop the display
                    _logger.exception("%s: synch listener failed", self.name)
        self.clock.sleep_until(run.start_ns + run.end * period, self._halt)  # the last picture stays on


class Renderer(Protocol):
    """What the simulated camera needs from the twin."""

    @property
    def frame_shape(self) -> tuple[int, int]: ...

    @property
    def canvas_shape(self) -> tuple[int, int]: ...

    def expose_one(self, canvas: np.ndarray, frame_id: int) -> np.ndarray: ...


@dataclass
class _Exposure:
    stream: int
    block_id: int
    number: int
    start_ns: int
    end_ns: int
    done: threading.Event = field(default_factory=threading.Event)


class SimulatedCamera(Camera):
    """A camera that sees the simulated DMD through the twin (see the module docstring).

    Args:
        renderer: the twin (``expose_one``, ``frame_shape``, ``canvas_shape``).
        dmd: the simulated DMD it looks at; ``None`` sees darkness.
        clock: shared with the DMD.
        exposure_us, trigger_delay_us: exposure after each trigger edge.
        trigger_source: ``"Line1"`` (the DMD's synch output, once :meth:`SimulatedDmd.connect`-ed to
            :meth:`on_sync`) or ``"Software"``.
        buffers: frames the host side holds before new ones are lost (real-time clock only).
        max_frame_rate_hz: triggers closer than 1/rate after the previous exposure start are missed.
        faults: see :class:`SimFaults`.
        seed: seeds the trigger jitter.
        frame_cache: pre-rendered frames by picture id, used instead of the twin when an exposure sees
            exactly one whole picture (benchmarks).
    """

    name = "camera (simulated)"

    def __init__(
        self,
        renderer: Renderer,
        *,
        dmd: SimulatedDmd | None = None,
        clock: Clock | None = None,
        exposure_us: float = 10_000.0,
        trigger_delay_us: float = 0.0,
        trigger_source: Literal["Line1", "Software"] = "Line1",
        buffers: int = 128,
        max_frame_rate_hz: float = 160.0,
        faults: SimFaults | None = None,
        seed: int = 0,
        frame_cache: Mapping[int, np.ndarray] | None = None,
    ) -> None:
        super().__init__(frame_shape=tuple(renderer.frame_shape))
        self.renderer = renderer
        self.dmd = dmd
        self.clock: Clock = clock or (dmd.clock if dmd is not None else VirtualClock())
        self.exposure_us = exposure_us
        self.trigger_delay_us = trigger_delay_us
        self.trigger_source = trigger_source
        self.faults = faults or SimFaults()
        self.frame_cache = frame_cache or {}
        self.triggers_missed = 0
        self._min_period_ns = int(1e9 / max_frame_rate_hz)
        self._buffers = buffers
        self._rng = np.random.default_rng([seed, 0x7E1])
        self._lock = threading.Lock()
        self._out: queue.Queue[CameraFrame] = queue.Queue()
        self._jobs: queue.Queue[_Exposure | None] = queue.Queue()
        self._closing = threading.Event()
        self._worker: threading.Thread | None = None
        self._stream = 0
        self._next_block = 0
        self._triggers = 0
        self._exposures = 0
        self._sensor_ready_ns = -(2**62)
        self._removed_at: float | None = None
        self._force_failed = 0
        self._dark = np.zeros(renderer.canvas_shape, np.uint8)

    def force_failed_buffers(self, count: int) -> None:
        """Test hook (as pylon's emulator's ``ForceFailedBuffer``): the next ``count`` frames fail."""
        with self._lock:
            self._force_failed += count

    def fire_removal(self) -> None:
        """Test hook (as pylon's emulator's ``FirePnPCallback``): the camera is unplugged now."""
        self._removed_at = time.monotonic()

    def on_sync(self, pulse: SyncPulse) -> None:
        """The trigger input wired to the DMD's synch output (called on the DMD's display thread)."""
        if self.trigger_source == "Line1":
            self._trigger(pulse.time_ns, lambda: self.dmd is not None and self.dmd.halting)

    # --- backend hooks -----------------------------------------------------------------------------

    def _do_open(self) -> None:
        self._closing.clear()
        self._worker = threading.Thread(target=self._sensor, name="sim-camera", daemon=True)
        self._worker.start()

    def _do_close(self) -> None:
        self._closing.set()
        self._jobs.put(None)
        if self._worker is not None:
            self._worker.join()
            self._worker = None

    def _do_start(self) -> None:
        with self._lock:
            self._stream += 1
            self._next_block = 0
            self._drain()

    def _do_stop(self) -> None:
        with self._lock:
            self._stream += 1  # exposures of the old stream are discarded by the sensor thread
            self._drain()

    def _do_retrieve(self, timeout_s: float) -> CameraFrame | None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._out.get(timeout=max(0.0, min(0.02, deadline - time.monotonic())))
            except queue.Empty:
                if self._removed_at is not None:
                    raise DeviceRemovedError(f"{self.name}: retrieve: the device has been removed") from None
                if time.monotonic() >= deadline:
                    return None

    def _do_trigger_software(self) -> None:
        if self.trigger_source != "Software":
            raise DeviceError(f"{self.name}: trigger_software: the trigger source is {self.trigger_source}")
        self._trigger(self.clock.now_ns(), lambda: False)

    def _do_reconnect(self, timeout_s: float) -> None:
        with self._lock:
            self._stream += 1
            self._drain()
        if self._removed_at is None:
            return
        back = self._removed_at + self.faults.removed_for_s
        if back - time.monotonic() > timeout_s:
            raise DeviceRemovedError(f"{self.name}: not found again within {timeout_s} s")
        time.sleep(max(0.0, back - time.monotonic()))  # the device re-enumerates after this long
        self._removed_at = None
        _logger.info("%s: reconnected", self.name)

    def _do_removed(self) -> bool:
        return self._removed_at is not None

    # --- the sensor --------------------------------------------------------------------------------

    def _trigger(self, edge_ns: int, given_up: Callable[[], bool]) -> None:
        with self._lock:
            if not self.grabbing or self._removed_at is not None:
                return
            self._triggers += 1
            count, faults = self._triggers, self.faults
            delay_us = self.trigger_delay_us + (faults.late_us if _every(count, faults.late_every) else 0.0)
            if faults.jitter_rms_us:
                delay_us += abs(float(self._rng.normal(0.0, faults.jitter_rms_us)))
            start_ns = edge_ns + int(delay_us * 1000)
            if _every(count, faults.ignore_every) or start_ns < self._sensor_ready_ns:
                self.triggers_missed += 1  # overtriggered: the frame never exists
                return
            self._sensor_ready_ns = start_ns + self._min_period_ns
            self._exposures += 1
            end_ns = start_ns + int(self.exposure_us * 1000)
            job = _Exposure(self._stream, self._next_block, self._exposures, start_ns, end_ns)
            self._next_block += 1
            self._jobs.put(job)
        if self.clock.virtual:  # simulated time stands still until the frame is out of the sensor
            while not job.done.wait(0.05) and not given_up() and not self._closing.is_set():
                pass

    def _sensor(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._expose(job)
            except Exception:  # keep the sensor alive; the frame counts as lost (a block-id gap)
                _logger.exception("%s: rendering exposure %d failed", self.name, job.number)
            finally:
                job.done.set()

    def _expose(self, job: _Exposure) -> None:
        self.clock.sleep_until(job.end_ns, self._closing)  # real time: the frame exists after its exposure
        faults = self.faults
        if job.number == faults.remove_at and faults.remove_at:
            self._removed_at = time.monotonic()
            _logger.warning("%s: removed at exposure %d (injected fault)", self.name, job.number)
            return
        if job.stream != self._stream or _every(job.number, faults.drop_every):
            return
        with self._lock:
            forced, self._force_failed = self._force_failed > 0, max(0, self._force_failed - 1)
        if forced or _every(job.number, faults.fail_every):
            counts = np.zeros(self.frame_shape, np.float32)
            error = "the buffer was incompletely grabbed (injected fault)"
            frame = CameraFrame(counts, job.block_id, -1, job.start_ns, ok=False, error=error)
        else:
            counts, frame_id = self._render(job)
            frame = CameraFrame(counts, job.block_id, frame_id, job.start_ns)
        with self._lock:
            if job.stream != self._stream:
                return
            if self.clock.virtual or self._out.qsize() < self._buffers:
                self._out.put(frame)  # else: no free buffer, the frame is lost (block-id gap)

    def _render(self, job: _Exposure) -> tuple[np.ndarray, int]:
        lit = self.dmd.illuminated(job.start_ns, job.end_ns) if self.dmd is not None else []
        if not lit:
            return self.renderer.expose_one(self._dark, -1), -1
        main = max(lit, key=lambda part: part.weight)
        if len(lit) == 1 and main.weight > 1 - 1e-9:
            cached = self.frame_cache.get(main.picture_id)
            if cached is not None:
                return cached, main.picture_id
            return self.renderer.expose_one(main.canvas, main.picture_id), main.picture_id
        # A mistimed exposure: mixture of what it saw, the rest dark (an approximation: the pictures'
        # bit-planes are integrated as wholes, and each part brings its own noise).
        dark = 1.0 - sum(part.weight for part in lit)
        frame = dark * self.renderer.expose_one(self._dark, main.picture_id)
        for part in lit:
            frame = frame + part.weight * self.renderer.expose_one(part.canvas, part.picture_id)
        return frame.astype(np.float32), main.picture_id

    def _drain(self) -> None:
        while True:
            try:
                self._out.get_nowait()
            except queue.Empty:
                return
