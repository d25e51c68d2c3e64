"""The acquire job: show every missing target of a pairs file on the DMD and record its speckle.

It is a :class:`~specklenet.daemon.runner.SequenceRunner` feeding a
:class:`~specklenet.daemon.pipeline.Pipeline` whose critical consumer is a
:class:`~specklenet.daemon.recorder.PairsRecorder` (plus any consumers the caller adds, e.g. a live
view). Pass after pass over the targets still missing: the runner shows them in sequences and matches
each frame to its picture; accepted frames are written, everything else stays missing and is shown
again in the next pass. A removed camera is reconnected and a failing DMD retried, within
``device_retries`` per job; a stop request (SIGTERM) halts the devices, drains the recorder and
returns; the file stays resumable whatever happens, because only committed frames count as recorded.

Public names: :class:`AcquireJob`, :class:`Progress`, :class:`AcquisitionIncompleteError`.

Progress (frames done, rate, lost and re-recorded, time left) goes to a callback after every
sequence and to the log every ``log_interval_s``.

Thread-safety: one job runs on one thread; ``stop`` may be set from any thread (a signal handler).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import structlog

from specklenet.daemon.devices.base import quietly
from specklenet.daemon.devices.camera import Camera
from specklenet.daemon.devices.dmd import Dmd
from specklenet.daemon.errors import DeviceError, DeviceRemovedError
from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.matching import MIN_PICTURES
from specklenet.daemon.pipeline import Pipeline
from specklenet.daemon.recorder import PairsRecorder
from specklenet.daemon.records import PairsWriter
from specklenet.daemon.runner import Planned, SequenceResult, SequenceRunner, StopRequestedError
from specklenet.daemon.settings import DaemonSettings

log = structlog.get_logger(__name__)


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


class AcquireJob:
    """Records the missing targets of ``writer``'s pairs file with an open ``dmd`` and ``camera``.

    Args:
        writer: the pairs file (created or resumed); the caller closes it.
        dmd, camera: open devices, idle.
        settings: acquisition and timing settings.
        progress: called with a :class:`Progress` after every sequence.
        stop: set it (from any thread) to stop after the current frame.
        clock: monotonic seconds, for rates and timeouts.
        consumers: more ``(name, consumer, critical)`` for the pipeline, beside the recorder.
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
        consumers: Iterable[tuple[str, Callable[[MatchedFrame], None], bool]] = (),
    ) -> None:
        self.writer, self.dmd, self.camera, self.settings = writer, dmd, camera, settings
        self.stop = stop or threading.Event()
        self.runner = SequenceRunner(dmd, camera, settings, stop=self.stop, clock=clock)
        self.pipeline = Pipeline()
        self.pipeline.add(PairsRecorder(writer), name="recorder", critical=True)
        for name, consumer, critical in consumers:
            self.pipeline.add(consumer, name=name, critical=critical)
        self._notify = progress or (lambda _: None)
        self._clock = clock
        self._shown = np.zeros(len(writer.targets), np.int32)  # times each target was shown
        self._missing = np.zeros(len(writer.targets), bool)  # as the recorder will have it
        self._missing[writer.missing()] = True
        self.progress = Progress(total=len(writer.targets), done=len(writer.targets) - len(writer.missing()))

    def run(self) -> Progress:
        """Record until no target is missing; returns the final progress.

        Raises:
            AcquisitionIncompleteError: passes or device retries exhausted (the file stays resumable).
            ConsumerFailedError: the recorder (or another critical consumer) failed.
        """
        settings, state = self.settings.acquisition, self.progress
        self._started = self._last_log = self._clock()
        completed_passes = 0
        try:
            with self.pipeline:
                while len(missing := self.writer.missing()) and completed_passes < settings.max_passes:
                    state.passes += 1
                    if self._pass(missing):
                        completed_passes += 1
                    self.pipeline.drain()  # the recorder has written the pass: missing() is current
        except StopRequestedError:
            state.interrupted = True
        finally:
            self._report(final=True)
        if state.missing and not state.interrupted:
            raise AcquisitionIncompleteError(
                f"{state.missing} of {state.total} targets still missing after {completed_passes} passes "
                f"and {state.device_errors} device errors; resume later with --resume"
            )
        return state

    def _pass(self, missing: np.ndarray) -> bool:
        """One pass over ``missing``; False if a device failure cut it short (the pass is repeated)."""
        plan = self._plan(missing)
        try:
            for result in self.runner.show(plan):
                self._record(result)
            return True
        except DeviceError as error:
            self._device_failed(error)
            return False

    def _plan(self, missing: np.ndarray) -> list[Planned]:
        """Sequences of missing targets; short ones padded to MIN_PICTURES with recorded targets (or
        repeats), whose frames are not written but give the timestamp check its on-time majority."""
        length = max(
            MIN_PICTURES, min(self.settings.acquisition.sequence_pictures, self.dmd.capacity_pictures // 2)
        )
        recorded = np.setdiff1d(np.arange(len(self.writer.targets)), missing)
        plan = []
        for start in range(0, len(missing), length):
            chunk = missing[start : start + length]
            pad = max(0, MIN_PICTURES - len(chunk))
            spare = recorded if len(recorded) else chunk
            filler = spare[np.linspace(0, len(spare) - 1, pad).round().astype(np.int64)] if pad else spare[:0]
            indices = np.concatenate([chunk, filler])
            plan.append(Planned(indices, self.writer.targets.canvases[indices], written=len(chunk)))
        return plan

    def _record(self, result: SequenceResult) -> None:
        """Dispatch a sequence's frames; account as the recorder writes: an accepted frame of a target
        still missing (a padding repeat of a missing target counts too)."""
        planned, state = result.planned, self.progress
        self._shown[planned.indices[: planned.written]] += 1
        recorded = 0
        for frame in result.frames:
            self.pipeline.dispatch(frame)
            index = frame.target_index
            if frame.accepted and index is not None and self._missing[index]:
                self._missing[index] = False
                recorded += 1
                state.rerecorded += int(self._shown[index] > 1)
        self.pipeline.note_lost(len(planned.indices) - len(result.frames))
        still = [p for p in range(planned.written) if self._missing[planned.indices[p]]]
        reasons = result.verdict.reasons(still)
        state.recorded += recorded
        state.done += recorded
        state.lost += len(still)
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
