"""The simulated bench's shared parts: its clocks, the injected faults and the synch wire.

The simulated DMD (:mod:`.sim_dmd`) and camera (:mod:`.sim_camera`) share a :class:`Clock` and a
:class:`SimFaults`; the DMD's synch output reaches the camera as :class:`SyncPulse` calls.

Clocks: :class:`VirtualClock` (default) is simulated time that stands still while the camera renders,
so any twin speed works and nothing is lost unless injected; :class:`MonotonicClock` runs the bench
in real time, where a consumer that falls behind loses frames when the camera's buffers are full
(the recording benchmark's mode, with pre-rendered frames so the twin's cost is excluded).

Thread-safety: the clocks are thread-safe; faults and pulses are immutable.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from specklenet.daemon.errors import ConfigError


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
        jitter_rms_us: Gaussian jitter of every trigger, µs rms (seeded; always late, never early).
        spurious_every: after every n-th picture the DMD shows, an extra edge on the camera's trigger
            line, ``spurious_delay_us`` after that picture's edge. As on the hardware, an edge that comes
            while the camera cannot take a trigger yet (``sim.max_frame_rate_hz``) is ignored.
        spurious_delay_us: when the extra edge comes, µs after the picture's own edge.
        clock_drift_ppm: the camera's clock runs this much fast (> 0) or slow (< 0) against the DMD's;
            only its timestamps are affected.
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
    spurious_every: int = 0
    spurious_delay_us: float = 12_000.0
    clock_drift_ppm: float = 0.0
    remove_at: int = 0
    removed_for_s: float = 0.2
    dmd_error_at: int = 0

    def __post_init__(self) -> None:
        counts = ("drop_every", "fail_every", "ignore_every", "late_every", "spurious_every")
        for name in (*counts, "remove_at", "dmd_error_at"):
            if getattr(self, name) < 0:
                raise ConfigError(f"sim.faults.{name}: must be >= 0, got {getattr(self, name)}")
        times = (self.late_us, self.jitter_rms_us, self.removed_for_s, self.spurious_delay_us)
        if min(times) < 0:
            raise ConfigError(
                "sim.faults: late_us, jitter_rms_us, spurious_delay_us and removed_for_s must be >= 0"
            )
        if abs(self.clock_drift_ppm) >= 1e4:
            raise ConfigError(f"sim.faults.clock_drift_ppm: must be within ±1e4, got {self.clock_drift_ppm}")


def every(count: int, period: int) -> bool:
    """True for the ``period``-th, 2·``period``-th, ... event (never when ``period`` is 0)."""
    return period > 0 and count % period == 0


@dataclass(frozen=True)
class SyncPulse:
    """A rising edge of the DMD's synch output (the camera's trigger line).

    Attributes:
        time_ns: when the edge rose (the simulated clock).
        sequence: the device's id of the sequence shown.
        picture: position of the picture in that sequence (-1 for a spurious edge).
        picture_id: the id uploaded with the picture (-1 for a spurious edge).
    """

    time_ns: int
    sequence: int
    picture: int
    picture_id: int
