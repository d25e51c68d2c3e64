"""The simulated camera: it sees, through the optical twin, what the simulated DMD lights.

Wired to the DMD's synch output (:meth:`SimulatedCamera.on_sync`), it starts an exposure on each
edge and renders what the DMD illuminated during the exposure: exactly ``twin.expose_one(canvas,
picture_id)`` when the exposure contains the picture's whole PWM illumination, a weighted mixture of
the pictures (and darkness) it overlapped otherwise (e.g. a late trigger). Camera noise is seeded by
the picture id, so a retake of a target gives the same frame, and an acquisition equals what the twin
renders for the same targets and seed.

Faults it injects (:class:`~.sim_clock.SimFaults`, counted from 1 since ``open()``): frames lost
between camera and host (block-id gaps), failed buffers, missed, late and jittered triggers, a clock
that drifts against the DMD's, a removal at the n-th exposure.

Thread-safety: one internal sensor thread; the public methods belong to one caller thread, as for the
real camera (``on_sync`` is called on the DMD's display thread).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from specklenet.daemon.devices.camera import Camera, CameraFrame
from specklenet.daemon.devices.sim_clock import Clock, SimFaults, SyncPulse, VirtualClock, every
from specklenet.daemon.devices.sim_dmd import SimulatedDmd
from specklenet.daemon.errors import DeviceError, DeviceRemovedError

_logger = logging.getLogger(__name__)


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
            delay_us = self.trigger_delay_us + (faults.late_us if every(count, faults.late_every) else 0.0)
            if faults.jitter_rms_us:
                delay_us += abs(float(self._rng.normal(0.0, faults.jitter_rms_us)))
            start_ns = edge_ns + int(delay_us * 1000)
            if every(count, faults.ignore_every) or start_ns < self._sensor_ready_ns:
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

    def wait_exposed(self, timeout_s: float) -> bool:
        """Test hook: block until every exposure triggered so far is out of the sensor (delivered,
        lost or dropped); False on timeout. Makes real-time tests independent of thread timing."""
        with self._jobs.all_tasks_done:
            return self._jobs.all_tasks_done.wait_for(lambda: self._jobs.unfinished_tasks <= 0, timeout_s)

    def _sensor(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._expose(job)
            except Exception:  # keep the sensor alive; the frame counts as lost (a block-id gap)
                _logger.exception("%s: rendering exposure %d failed", self.name, job.number)
            finally:
                job.done.set()
                self._jobs.task_done()

    def _expose(self, job: _Exposure) -> None:
        self.clock.sleep_until(job.end_ns, self._closing)  # real time: the frame exists after its exposure
        faults = self.faults
        if job.number == faults.remove_at and faults.remove_at:
            self._removed_at = time.monotonic()
            _logger.warning("%s: removed at exposure %d (injected fault)", self.name, job.number)
            return
        if job.stream != self._stream or every(job.number, faults.drop_every):
            return
        with self._lock:
            forced, self._force_failed = self._force_failed > 0, max(0, self._force_failed - 1)
        if forced or every(job.number, faults.fail_every):
            counts = np.zeros(self.frame_shape, np.float32)
            error = "the buffer was incompletely grabbed (injected fault)"
            frame = CameraFrame(counts, job.block_id, -1, self._stamp(job.start_ns), ok=False, error=error)
        else:
            counts, frame_id = self._render(job)
            frame = CameraFrame(counts, job.block_id, frame_id, self._stamp(job.start_ns))
        with self._lock:
            if job.stream != self._stream:
                return
            if self.clock.virtual or self._out.qsize() < self._buffers:
                self._out.put(frame)  # else: no free buffer, the frame is lost (block-id gap)

    def _stamp(self, time_ns: int) -> int:
        """``time_ns`` (the bench's clock) read on the camera's own clock, which drifts by
        ``clock_drift_ppm``."""
        return time_ns + round(time_ns * self.faults.clock_drift_ppm * 1e-6)

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
