"""Consumers of matched frames, each on its own thread behind a queue with an explicit policy.

Public names::

    pipeline = Pipeline()
    pipeline.add(recorder, name="recorder", critical=True)      # back-pressure, never loses a frame
    pipeline.add(live_view, name="live", critical=False)        # newest frame only, counts skips
    with pipeline:                                              # start() ... stop()
        for frame in runner.loop(...):                          # or runner.show(plan)
            pipeline.dispatch(frame)
    pipeline.stats()                                            # counters per consumer and per run

A consumer is a plain callable ``consumer(frame: MatchedFrame) -> None``; optional methods on it:
``start()`` and ``stop()`` (called on the pipeline's thread by :meth:`Pipeline.start` / :meth:`stop`)
and ``idle()`` (called on the consumer's thread when no frame came for ``IDLE_S``: a recorder commits
its file there). Adding one needs no change in the runner or the job.

Policies:

* ``critical=True``: a bounded queue; :meth:`Pipeline.dispatch` blocks while it is full
  (back-pressure: the runner starts no new sequence meanwhile), so the consumer never loses a frame.
  If it raises, the pipeline stops: the next :meth:`dispatch` (or :meth:`drain`) raises
  :class:`ConsumerFailedError`.
* ``critical=False``: keeps only the newest frame; a frame replaced before the consumer took it is
  counted in ``skipped``. Its exceptions are logged and counted in ``errors``; the job goes on.

Retrieval never waits for a consumer: the runner's camera thread (:mod:`.retriever`) queues frames
without bound; only the runner's own thread is held up by a critical consumer.

Thread-safety: ``add``, ``start``, ``dispatch``, ``drain``, ``stop`` belong to one thread (the job's);
``stats`` may be read from any thread.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from specklenet.daemon.errors import SpecklenetError
from specklenet.daemon.frames import MatchedFrame

log = structlog.get_logger(__name__)

IDLE_S = 0.05  # a consumer's ``idle()`` runs after this long without a frame
_CHECK_S = 0.1  # how often a blocked dispatch looks whether its consumer died


class ConsumerFailedError(SpecklenetError):
    """A critical consumer raised; the job stops (its error is the cause)."""


Consumer = Callable[[MatchedFrame], None]


@dataclass
class ConsumerStats:
    """Counters of one consumer: frames it processed, frames it skipped (non-critical only), its
    exceptions, and the frames waiting for it now."""

    processed: int = 0
    skipped: int = 0
    errors: int = 0
    queue_depth: int = 0


@dataclass
class RunStats:
    """Counters of the run: frames received, accepted, rejected by reason, lost (never received)."""

    received: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    lost: int = 0


class _Stage:
    """One consumer, its thread and its queue."""

    def __init__(self, consumer: Consumer, name: str, critical: bool, queue_size: int) -> None:
        self.consumer, self.name, self.critical = consumer, name, critical
        self.stats = ConsumerStats()
        self.failure: BaseException | None = None
        self._queue: queue.Queue[MatchedFrame | None] = queue.Queue(queue_size if critical else 0)
        self._newest: MatchedFrame | None = None
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name=f"consumer-{name}", daemon=True)

    def start(self) -> None:
        _optional(self.consumer, "start")
        self._thread.start()

    def put(self, frame: MatchedFrame) -> None:
        if not self.critical:
            with self._lock:
                self.stats.skipped += self._newest is not None
                self._newest = frame
                self._lock.notify()
            return
        while True:
            self._raise_failure()
            try:
                self._queue.put(frame, timeout=_CHECK_S)
                return
            except queue.Full:
                continue

    def depth(self) -> int:
        if self.critical:
            return self._queue.qsize()
        with self._lock:
            return int(self._newest is not None)

    def drain(self) -> None:
        """Wait until a critical consumer has processed every frame queued so far."""
        if self.critical:
            while self._queue.unfinished_tasks:
                self._raise_failure()
                with self._queue.all_tasks_done:
                    self._queue.all_tasks_done.wait(_CHECK_S)
            self._raise_failure()

    def stop(self) -> None:
        """Let the consumer finish what is queued (critical) or drop the newest (non-critical)."""
        if self.critical:
            if self.failure is None:
                self._queue.put(None)
        else:
            with self._lock:
                self._closing = True
                self.stats.skipped += self._newest is not None  # dropped unseen: skipped too
                self._newest = None
                self._lock.notify()
        if self._thread.is_alive():
            self._thread.join()
        _optional(self.consumer, "stop")

    def _raise_failure(self) -> None:
        if self.failure is not None:
            raise ConsumerFailedError(f"consumer {self.name!r} failed: {self.failure}") from self.failure

    def _run(self) -> None:
        while (frame := self._take()) is not None:
            try:
                self.consumer(frame)
                self.stats.processed += 1
            except Exception as error:
                if self.critical:
                    log.error("consumer_failed", consumer=self.name, error=repr(error))
                    self.failure = error
                    self._queue.task_done()
                    self._discard()
                    return
                self.stats.errors += 1
                log.warning("consumer_error", consumer=self.name, error=repr(error))
            if self.critical:
                self._queue.task_done()

    def _take(self) -> MatchedFrame | None:
        if self.critical:
            while True:
                try:
                    frame = self._queue.get(timeout=IDLE_S)
                except queue.Empty:
                    if not self._idle():
                        return None
                    continue
                if frame is None:
                    self._queue.task_done()
                return frame
        with self._lock:
            while self._newest is None and not self._closing:
                if not self._lock.wait(IDLE_S):
                    self._lock.release()
                    try:
                        self._idle()  # non-critical: errors are counted, never fatal
                    finally:
                        self._lock.acquire()
            if self._closing:
                return None
            frame, self._newest = self._newest, None
            return frame

    def _idle(self) -> bool:
        """Run the consumer's ``idle()``; False if a critical consumer failed in it (it then stops)."""
        try:
            _optional(self.consumer, "idle")
        except Exception as error:
            if self.critical:
                log.error("consumer_failed", consumer=self.name, error=repr(error))
                self.failure = error
                self._discard()
                return False
            self.stats.errors += 1
            log.warning("consumer_error", consumer=self.name, error=repr(error))
        return True

    def _discard(self) -> None:
        """After a failure: empty the queue, so that a producer blocked on it is not stuck."""
        while True:
            try:
                self._queue.get_nowait()
                self._queue.task_done()
            except queue.Empty:
                return


class Pipeline:
    """Matched frames → every consumer, each by its policy (see the module docstring)."""

    def __init__(self) -> None:
        self._stages: list[_Stage] = []
        self.run = RunStats()
        self._started = False

    def add(self, consumer: Consumer, *, name: str, critical: bool, queue_size: int = 256) -> None:
        """Add a consumer before :meth:`start`. ``queue_size``: frames a critical consumer may lag."""
        if self._started:
            raise RuntimeError("pipeline: add consumers before start()")
        self._stages.append(_Stage(consumer, name, critical, queue_size))

    def start(self) -> None:
        if not self._started:
            self._started = True
            for stage in self._stages:
                stage.start()

    def dispatch(self, frame: MatchedFrame) -> None:
        """Hand ``frame`` to every consumer; blocks while a critical one is full.

        Raises:
            ConsumerFailedError: a critical consumer failed (now or before).
        """
        self.run.received += 1
        if frame.accepted:
            self.run.accepted += 1
        else:
            self.run.rejected[frame.reason] += 1
        for stage in self._stages:
            stage.put(frame)

    def note_lost(self, count: int) -> None:
        """Count frames that never reached the host (the runner's block-id gaps)."""
        self.run.lost += count

    def drain(self) -> None:
        """Wait until every critical consumer has processed every frame dispatched so far."""
        for stage in self._stages:
            stage.drain()

    def stop(self) -> None:
        """Critical consumers finish their queues, the others drop what they hold; calls each
        consumer's ``stop()``. Safe to call twice."""
        if self._started:
            self._started = False
            for stage in self._stages:
                stage.stop()

    def stats(self) -> dict[str, ConsumerStats]:
        """Counters per consumer name (a snapshot)."""
        return {
            stage.name: ConsumerStats(
                stage.stats.processed, stage.stats.skipped, stage.stats.errors, stage.depth()
            )
            for stage in self._stages
        }

    def check(self) -> None:
        """Raise :class:`ConsumerFailedError` if a critical consumer has failed."""
        for stage in self._stages:
            if stage.critical:
                stage._raise_failure()

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _optional(consumer: Any, method: str) -> None:
    function = getattr(consumer, method, None)
    if callable(function):
        function()
