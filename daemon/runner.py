"""The sequence runner: shows targets on the DMD, records the camera, and matches frame to picture.

(Slightly over 300 lines: ``show`` and ``loop`` share the ownership of sequences and the camera
thread, which must stay in one class so that one ``finally`` frees everything.)

One place owns every DMD sequence: it uploads them (one ahead, while the previous one plays), starts
the camera stream and the DMD, collects the frames (the camera is read on its own thread, see
:mod:`.retriever`), matches them (:mod:`.matching`), and frees every sequence it uploaded in a
``finally``, whatever raised. It yields :class:`~specklenet.daemon.frames.MatchedFrame` objects; what
becomes of them is the consumers' business (:mod:`.pipeline`).

Public names::

    runner = SequenceRunner(dmd, camera, settings, stop=event)
    for result in runner.show(plan):         # each Planned sequence shown once -> SequenceResult
        ...                                  # result.frames: MatchedFrame per received frame
    for frame in runner.loop(canvases, target_indices):   # looped until `stop` is set
        ...

Once (``show``): each sequence gets a fresh camera stream, so block id b is picture b; collection
lasts until the DMD is done, every frame is in, and the camera has been seen idle for ``settle_s``
after the DMD finished (frames of spurious triggers are counted, and the sequence rejected), or until
no frame came for ``frame_timeout_s``.

Loop (``loop``, continuous mode for live display): one sequence shown over and over; block id b is
picture b % N in loop b // N, checked per window of blocks against a schedule that must continue
from window to window; a slip (a missed or spurious trigger) restarts camera and DMD, so the
frames after it are matched again.

Thread-safety: a runner belongs to one thread; ``stop`` may be set from any thread.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable, Iterator
from collections.abc import Sequence as Seq
from dataclasses import dataclass

import numpy as np
import structlog

from specklenet.daemon.devices.base import quietly
from specklenet.daemon.devices.camera import Camera, CameraFrame
from specklenet.daemon.devices.dmd import Dmd, Sequence
from specklenet.daemon.frames import HostTime, MatchedFrame
from specklenet.daemon.matching import MIN_PICTURES, Verdict, match_sequence, match_window
from specklenet.daemon.retriever import Retrieved, Retriever
from specklenet.daemon.settings import DaemonSettings

log = structlog.get_logger(__name__)

POLL_S = 0.01  # how often, while frames are awaited, the DMD's progress and a stop request are checked


class StopRequestedError(Exception):
    """The runner's ``stop`` event was set."""


@dataclass(frozen=True)
class Planned:
    """A sequence to show once: ``canvases[picture]`` of target ``indices[picture]``; the first
    ``written`` are to be recorded, the rest pad the sequence (default: all to be recorded)."""

    indices: np.ndarray
    canvases: np.ndarray
    written: int = -1

    def __post_init__(self) -> None:
        if self.written < 0:
            object.__setattr__(self, "written", len(self.indices))


@dataclass(frozen=True)
class SequenceResult:
    """A sequence shown once: the verdict by picture position and a frame per frame received."""

    planned: Planned
    verdict: Verdict
    frames: list[MatchedFrame]


class SequenceRunner:
    """Shows sequences on an open ``dmd`` and records an open ``camera`` (both idle).

    Args:
        settings: timing (``dmd.timing``), ``timestamp_tolerance_us`` and ``acquisition`` timeouts.
        stop: set it (from any thread) to end a run after the current frame.
        clock: monotonic seconds (timeouts).
    """

    def __init__(
        self,
        dmd: Dmd,
        camera: Camera,
        settings: DaemonSettings,
        *,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dmd, self.camera, self.settings = dmd, camera, settings
        self.stop = stop or threading.Event()
        self._clock = clock
        self._host = HostTime()
        self._period_ns = dmd.timing.picture_time_us * 1000
        self._tolerance_ns = int(settings.timestamp_tolerance_us * 1000)

    # --- once ----------------------------------------------------------------------------------------

    def show(self, plan: Seq[Planned]) -> Iterator[SequenceResult]:
        """Show each planned sequence once, in order; yields each one's result.

        A sequence's result is yielded while the next one plays. Raises DeviceError (the camera or DMD
        failed) or :class:`StopRequestedError`; every uploaded sequence is freed either way.
        """
        owned: list[Sequence] = []
        retriever = Retriever(self.camera)
        retriever.open()
        pending: SequenceResult | None = None
        try:
            if plan:
                owned.append(self._upload(plan[0]))
            for number, planned in enumerate(plan):
                try:
                    stream = retriever.begin()
                    self.dmd.start(owned[0])
                except BaseException:
                    if pending is not None:  # matched before the failure: hand it over
                        yield pending
                        pending = None
                    raise
                if pending is not None:
                    yield pending
                    pending = None
                if number + 1 < len(plan):
                    owned.append(self._upload(plan[number + 1]))
                frames, extra = self._collect(retriever, stream, len(planned.indices))
                self._finish(retriever)
                self.dmd.free(owned.pop(0))
                pending = self._match(planned, frames, extra)
            if pending is not None:
                yield pending
        finally:
            self._release(retriever, owned)

    def _collect(self, retriever: Retriever, stream: int, pictures: int) -> tuple[dict[int, Retrieved], int]:
        """Frames of the running sequence by block id, and how many came beyond ``pictures``."""
        settle_s = self.settings.acquisition.settle_s
        timeout_s = self.settings.acquisition.frame_timeout_s
        frames: dict[int, Retrieved] = {}
        extra, done_at, last_at = 0, None, self._clock()
        while True:
            item = self._next(retriever, stream)
            now = self._clock()
            if item is not None:
                last_at = now
                if item.frame.block_id < pictures:
                    frames[item.frame.block_id] = item
                else:
                    extra += 1
                if len(frames) < pictures:
                    continue
            if done_at is None:
                if len(frames) == pictures:  # the last picture's frame is in: its picture time is ending
                    self.dmd.wait(2e-6 * self.dmd.timing.picture_time_us)
                if self.dmd.progress().active:
                    continue
                done_at = now = self._clock()
            if extra:
                return frames, extra  # rejected whatever else arrives
            if len(frames) == pictures and retriever.idle_since >= done_at + settle_s:
                return frames, extra
            # Missing frames: give up once the camera itself has had nothing for timeout_s (the
            # retriever's idle polls), not merely this thread (a starved retriever is no evidence).
            waited_from = max(done_at, last_at)
            if now - waited_from > timeout_s and retriever.idle_since >= waited_from + timeout_s:
                return frames, extra

    def _next(self, retriever: Retriever, stream: int) -> Retrieved | None:
        if self.stop.is_set():
            raise StopRequestedError
        try:
            item = retriever.frames.get(timeout=POLL_S)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item if item.stream == stream else None  # a frame of an old stream: discarded

    def _finish(self, retriever: Retriever) -> None:
        if self.dmd.progress().active:  # more frames than pictures, or none for a while: stop it
            log.warning("dmd_overrun")
            self.dmd.halt()
        retriever.end()

    def _match(self, planned: Planned, frames: dict[int, Retrieved], extra: int) -> SequenceResult:
        pictures = len(planned.indices)
        camera_frames = {block: item.frame for block, item in frames.items()}
        verdict = match_sequence(
            camera_frames, pictures, extra=extra, period_ns=self._period_ns, tolerance_ns=self._tolerance_ns
        )
        matched = [
            self._matched(item, block, int(planned.indices[block]), 0, verdict)
            for block, item in sorted(frames.items())
        ]
        return SequenceResult(planned, verdict, matched)

    def _matched(
        self, item: Retrieved, position: int, target: int, loop: int, verdict: Verdict
    ) -> MatchedFrame:
        """``item`` as the frame of ``position`` (block id in loop mode) of the sequence."""
        frame: CameraFrame = item.frame
        reason = verdict.rejected.get(position, "")
        return MatchedFrame(
            counts=frame.counts,
            frame_id=frame.frame_id,
            picture=position,
            target_index=target,
            loop=loop,
            camera_timestamp_ns=frame.timestamp_ns,
            capture_ns=self._host.capture_ns(frame.timestamp_ns, item.received_ns),
            received_ns=item.received_ns,
            accepted=not reason,
            reason=reason,
        )

    # --- loop ----------------------------------------------------------------------------------------

    def loop(
        self, canvases: np.ndarray, target_indices: np.ndarray, *, window: int | None = None
    ) -> Iterator[MatchedFrame]:
        """Show ``canvases`` over and over until ``stop`` is set; yields every frame, matched.

        Args:
            canvases: uint8 ``(N, rows, columns)``, N >= :data:`~.matching.MIN_PICTURES`.
            target_indices: the targets-file index of each canvas (``MatchedFrame.target_index``).
            window: blocks checked together (default N, one loop; at least MIN_PICTURES): a frame is
                yielded once its window is complete, so a smaller window means less latency.
        """
        pictures = len(canvases)
        if pictures < MIN_PICTURES or len(target_indices) != pictures:
            raise ValueError(f"loop: needs >= {MIN_PICTURES} canvases with one target index each")
        window = max(MIN_PICTURES, window or pictures)
        ids = np.asarray(target_indices, np.int64)
        owned = [self.dmd.upload(canvases, picture_ids=ids)]
        retriever = Retriever(self.camera)
        retriever.open()
        try:
            while True:  # one pass per (re)start: a slip restarts camera and DMD
                stream = retriever.begin()
                self.dmd.start(owned[0], loop=True)
                yield from self._loop_stream(retriever, stream, ids, window)
                log.warning("loop_resync", reason="block ids slipped against the pictures")
                self.dmd.halt()
                retriever.end()
        except StopRequestedError:
            return
        finally:
            self._release(retriever, owned)

    def _loop_stream(
        self, retriever: Retriever, stream: int, ids: np.ndarray, window: int
    ) -> Iterator[MatchedFrame]:
        """Frames of one looped stream, a window at a time, until a slip (returns) or a stop (raises)."""
        frames: dict[int, Retrieved] = {}
        first, schedule = 0, None  # first block of the window being filled; the last window's schedule
        while True:
            item = self._next(retriever, stream)
            if item is None:
                continue
            frames[item.frame.block_id] = item
            while item.frame.block_id >= first + window:  # the window is complete
                blocks = range(first, first + window)
                verdict = match_window(
                    {b: frames[b].frame for b in blocks if b in frames},
                    blocks,
                    period_ns=self._period_ns,
                    tolerance_ns=self._tolerance_ns,
                    previous=schedule,
                )
                for block in blocks:
                    got = frames.pop(block, None)
                    if got is not None:
                        yield self._looped(got, block, ids, verdict)
                if verdict.reasons()["count"]:
                    return
                schedule, first = verdict.schedule or schedule, first + window

    def _looped(self, item: Retrieved, block: int, ids: np.ndarray, verdict: Verdict) -> MatchedFrame:
        matched = self._matched(item, block, int(ids[block % len(ids)]), block // len(ids), verdict)
        return dataclasses.replace(matched, picture=block % len(ids))

    # --- sequences ---------------------------------------------------------------------------------

    def _upload(self, planned: Planned) -> Sequence:
        return self.dmd.upload(planned.canvases, picture_ids=planned.indices)

    def _release(self, retriever: Retriever, owned: list[Sequence]) -> None:
        """Halt, stop the camera, free every sequence still owned (each step even if one fails)."""
        quietly(self.dmd.name, "halt", self.dmd.halt)
        retriever.close()
        for sequence in owned:
            quietly(self.dmd.name, "free", self.dmd.free, sequence)
        owned.clear()
