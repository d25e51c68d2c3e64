"""The acquisition job: show every missing target of a pairs file on the DMD and record its speckle.

Pass after pass over the targets still missing in the pairs file: targets are shown in sequences
(uploaded one ahead, while the previous one plays); for each sequence the camera starts a fresh
stream, the DMD shows it once, and :func:`~specklenet.daemon.matching.match_sequence` decides which
frames are matched beyond doubt. Those are written (the pairs file commits them at least every
``flush_interval_s`` and at the end of each sequence); everything else stays missing and is shown
again in the next pass. A removed camera is reconnected and a failing DMD retried, within
``device_retries``; a stop request (SIGTERM) halts the devices and returns; the file stays resumable
whatever happens, because only committed frames count as recorded.

Progress (frames done, rate, lost and re-recorded, time left) goes to a callback after every
sequence and to the log every ``log_interval_s``.

Thread-safety: one job runs on one thread; ``stop`` may be set from any thread (a signal handler).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import structlog

from specklenet.daemon.devices.base import quietly
from specklenet.daemon.devices.camera import Camera, CameraFrame
from specklenet.daemon.devices.dmd import Dmd, Sequence
from specklenet.daemon.errors import DeviceError, DeviceRemovedError
from specklenet.daemon.matching import Verdict, match_sequence
from specklenet.daemon.records import PairsWriter
from specklenet.daemon.settings import DaemonSettings

log = structlog.get_logger(__name__)

POLL_S = 0.05  # retrieve timeout while waiting: how quickly a stop request or the DMD's end is seen
# Fewest pictures per sequence: the timestamp check needs an on-time frame in the sequence to find its
# schedule; a retake of a single late target alone would look on time.
MIN_PICTURES = 8


@dataclass(frozen=True)
class _Shown:
    """One sequence: the targets shown, of which the first ``written`` are recorded (the rest pad)."""

    indices: np.ndarray
    written: int

    @property
    def targets(self) -> np.ndarray:
        return self.indices[: self.written]


@dataclass
class Progress:
    """Where the job stands (passed to the progress callback; also the final report).

    Attributes:
        total: targets in the file.
        done: targets with a recorded frame.
        recorded: frames this job recorded; ``rerecorded`` of them on a retake of their target.
        lost: frames lost or doubtful so far (their targets are shown again), by reason in ``reasons``.
        rate_hz: frames recorded per second by this job.
        eta_s: estimated seconds left (None before the first frame).
        passes: passes over the missing targets started so far.
        device_errors: DMD failures and camera removals survived.
        interrupted: a stop request ended the job early.
    """

    total: int
    done: int
    recorded: int = 0
    rerecorded: int = 0
    lost: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    rate_hz: float = 0.0
    eta_s: float | None = None
    passes: int = 0
    device_errors: int = 0
    interrupted: bool = False

    @property
    def missing(self) -> int:
        return self.total - self.done


class AcquisitionIncompleteError(DeviceError):
    """The job gave up with targets still missing (the pairs file is intact and resumable)."""


class _StopRequestedError(Exception):
    """A stop request arrived."""


class Acquisition:
    """Records the missing targets of ``writer``'s pairs file with an open ``dmd`` and ``camera``.

    Args:
        writer: the pairs file (created or resumed); the caller closes it.
        dmd, camera: open devices, idle.
        settings: acquisition and timing settings.
        progress: called with a :class:`Progress` after every sequence.
        stop: set it (from any thread) to stop after the current frame.
        clock: monotonic seconds, for rates and timeouts.
    """

    def __init__(
        self,
        writer: PairsWriter,
        dmd: Dmd,
        camera: Camera,
        settings: DaemonSettings,
        *,
        progress: Callable[[Progress], None] | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer, self.dmd, self.camera, self.settings = writer, dmd, camera, settings
        self.stop = stop or threading.Event()
        self._notify = progress or (lambda _: None)
        self._clock = clock
        self._shown = np.zeros(len(writer.targets), np.int32)  # times each target was shown
        self.progress = Progress(total=len(writer.targets), done=len(writer.targets) - len(writer.missing()))

    def run(self) -> Progress:
        """Record until no target is missing; returns the final progress.

        Raises:
            AcquisitionIncompleteError: passes or device retries exhausted (the file stays resumable).
        """
        settings, state = self.settings.acquisition, self.progress
        self._started = self._clock()
        self._last_log = self._started
        completed_passes = 0
        try:
            while len(missing := self.writer.missing()) and completed_passes < settings.max_passes:
                state.passes += 1
                if self._pass(missing):
                    completed_passes += 1
        except _StopRequestedError:
            state.interrupted = True
        finally:
            self._report(final=True)
        if state.missing and not state.interrupted:
            raise AcquisitionIncompleteError(
                f"{state.missing} of {state.total} targets still missing after {completed_passes} passes "
                f"and {state.device_errors} device errors; resume later with --resume"
            )
        return state

    # --- one pass ----------------------------------------------------------------------------------

    def _pass(self, missing: np.ndarray) -> bool:
        """One pass over ``missing``; False if a device failure cut it short (the pass is repeated).

        Pipelined so that the camera never waits: while sequence i plays, the frames of sequence i-1
        are matched and written and sequence i+1 is uploaded.
        """
        plan = self._plan(missing)
        uploaded: list[Sequence] = []
        collected: tuple[_Shown, dict[int, CameraFrame], int, dict[int, int]] | None = None
        try:
            uploaded.append(self._upload(plan[0]))
            for number, shown in enumerate(plan):
                sequence = uploaded.pop(0)
                self.camera.start()
                self.dmd.start(sequence)
                self._shown[shown.targets] += 1
                if collected is not None:
                    collected, previous = None, collected
                    self._record(*previous)
                if number + 1 < len(plan):
                    uploaded.append(self._upload(plan[number + 1]))
                frames, extra, received = self._collect(len(shown.indices))
                self._finish(sequence)
                collected = (shown, frames, extra, received)
            return True
        except DeviceError as error:
            self._device_failed(error)
            return False
        finally:
            self.camera.stop()
            self._release(uploaded)
            if collected is not None:  # frames already verified by count: record them, whatever happened
                self._record(*collected)

    def _plan(self, missing: np.ndarray) -> list[_Shown]:
        """Sequences of missing targets; short ones padded to MIN_PICTURES with recorded targets (or
        repeats), whose frames are not written but give the timestamp check its majority."""
        length = max(1, min(self.settings.acquisition.sequence_pictures, self.dmd.capacity_pictures // 2))
        recorded = np.setdiff1d(np.arange(len(self.writer.targets)), missing)
        plan = []
        for start in range(0, len(missing), length):
            chunk = missing[start : start + length]
            pad = max(0, min(MIN_PICTURES, length) - len(chunk))
            spare = recorded if len(recorded) else chunk
            filler = spare[np.linspace(0, len(spare) - 1, pad).round().astype(np.int64)] if pad else spare[:0]
            plan.append(_Shown(np.concatenate([chunk, filler]), len(chunk)))
        return plan

    def _upload(self, shown: _Shown) -> Sequence:
        return self.dmd.upload(self.writer.targets.canvases[shown.indices], picture_ids=shown.indices)

    def _collect(self, pictures: int) -> tuple[dict[int, CameraFrame], int, dict[int, int]]:
        """Frames of the running sequence by block id, until the last one arrives or the DMD has been
        done for ``frame_timeout_s``; also the count of frames beyond the sequence, and when each
        frame arrived (host clock, stored in the file)."""
        frames: dict[int, CameraFrame] = {}
        received: dict[int, int] = {}
        extra, idle_since = 0, None
        while True:
            if self.stop.is_set():
                raise _StopRequestedError
            frame = self.camera.retrieve(POLL_S)
            if frame is not None:
                received_ns = time.time_ns()
                if frame.block_id < pictures:
                    frames[frame.block_id] = frame
                    received[frame.block_id] = received_ns
                else:
                    extra += 1
                if len(frames) == pictures:
                    return frames, extra, received
                idle_since = None
            elif self.dmd.progress().active:
                idle_since = None
            elif idle_since is None:
                idle_since = self._clock()
            elif self._clock() - idle_since > self.settings.acquisition.frame_timeout_s:
                return frames, extra, received

    def _finish(self, sequence: Sequence) -> None:
        timing = self.dmd.timing
        if not self.dmd.wait(timing.picture_time_us * 2e-6 + self.settings.acquisition.frame_timeout_s):
            log.warning("dmd_overrun", sequence=sequence.ident)  # more frames than pictures? stop it
            self.dmd.halt()
        self.camera.stop()
        self.dmd.free(sequence)

    def _record(
        self, shown: _Shown, frames: dict[int, CameraFrame], extra: int, received: dict[int, int]
    ) -> None:
        verdict: Verdict = match_sequence(
            frames,
            len(shown.indices),
            extra=extra,
            period_ns=self.dmd.timing.picture_time_us * 1000,
            tolerance_ns=int(self.settings.timestamp_tolerance_us * 1000),
        )
        written = 0
        for position, frame in sorted(verdict.accepted.items()):
            if position >= shown.written:
                continue  # padding: shown for the timestamp check only
            index = int(shown.indices[position])
            self.writer.write(index, frame.counts, frame_id=frame.frame_id, timestamp_ns=received[position])
            self.progress.rerecorded += int(self._shown[index] > 1)
            written += 1
        self.writer.flush()  # a sequence's frames are committed as soon as they are written
        reasons = verdict.reasons(range(shown.written))
        state = self.progress
        state.recorded += written
        state.done += written
        state.lost += shown.written - written
        state.reasons.update(reasons)
        if reasons:
            log.info("frames_rejected", count=sum(reasons.values()), reasons=dict(reasons))
        self._report()

    # --- failures and progress ---------------------------------------------------------------------

    def _device_failed(self, error: DeviceError) -> None:
        self.progress.device_errors += 1
        log.warning("device_error", error=str(error), errors=self.progress.device_errors)
        quietly(self.dmd.name, "halt", self.dmd.halt)
        if self.progress.device_errors > self.settings.acquisition.device_retries:
            raise AcquisitionIncompleteError(
                f"giving up after {self.progress.device_errors} device errors; last: {error}"
            ) from error
        if isinstance(error, DeviceRemovedError) or self.camera.removed:
            self.camera.reconnect(self.settings.camera.reconnect_timeout_s)

    def _release(self, uploaded: list[Sequence]) -> None:
        quietly(self.dmd.name, "halt", self.dmd.halt)
        for sequence in uploaded:
            quietly(self.dmd.name, "free", self.dmd.free, sequence)

    def _report(self, final: bool = False) -> None:
        state, now = self.progress, self._clock()
        elapsed = max(now - self._started, 1e-9)
        state.rate_hz = state.recorded / elapsed
        state.eta_s = state.missing / state.rate_hz if state.rate_hz > 0 else None
        if not final:  # the last sequence already notified; run() returns the final state
            self._notify(state)
        if final or now - self._last_log >= self.settings.acquisition.log_interval_s:
            self._last_log = now
            log.info(
                "acquisition_done" if final else "acquisition_progress",
                done=state.done,
                total=state.total,
                rate_hz=round(state.rate_hz, 1),
                lost=state.lost,
                rerecorded=state.rerecorded,
                eta_s=None if state.eta_s is None else round(state.eta_s),
            )
