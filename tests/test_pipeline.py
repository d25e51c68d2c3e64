"""The frame pipeline's policies: critical consumers lose nothing, others take the newest frame."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.pipeline import ConsumerFailedError, Pipeline


def matched(number: int) -> MatchedFrame:
    counts = np.full((2, 2), number, np.float32)
    return MatchedFrame(counts, number, number % 8, number, number // 8, number, number, number, True, "")


def until(condition, timeout_s: float = 10.0) -> None:
    """Wait for another thread to reach a state (a handshake, with a deadline against hangs)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.001)


class Gated:
    """A consumer that takes a frame, then waits for the gate (a consumer slower than the camera)."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.gate = threading.Event()
        self.started = self.stopped = False

    def __call__(self, frame: MatchedFrame) -> None:
        self.seen.append(frame.frame_id)
        self.gate.wait()

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


def test_a_critical_consumer_applies_back_pressure_and_loses_nothing() -> None:
    slow, pipeline = Gated(), Pipeline()
    pipeline.add(slow, name="recorder", critical=True, queue_size=2)
    dispatched: list[int] = []

    def produce() -> None:
        for number in range(20):
            pipeline.dispatch(matched(number))
            dispatched.append(number)

    with pipeline:
        producer = threading.Thread(target=produce)
        producer.start()
        until(lambda: pipeline.stats()["recorder"].queue_depth == 2)  # one in the consumer, two queued
        assert producer.is_alive() and len(dispatched) <= 4  # held up: the producer waits, nothing dropped
        slow.gate.set()
        producer.join(10)
        pipeline.drain()
    assert slow.seen == list(range(20)) and slow.started and slow.stopped
    stats = pipeline.stats()["recorder"]
    assert (stats.processed, stats.skipped, stats.errors) == (20, 0, 0)
    assert pipeline.run.received == pipeline.run.accepted == 20


def test_a_non_critical_consumer_takes_the_newest_frame_and_counts_what_it_skipped() -> None:
    slow, pipeline = Gated(), Pipeline()
    pipeline.add(slow, name="live", critical=False)
    with pipeline:
        pipeline.dispatch(matched(0))
        until(lambda: slow.seen == [0])
        for number in range(1, 10):
            pipeline.dispatch(matched(number))  # never blocks: each replaces the one waiting
        assert pipeline.stats()["live"].skipped == 8
        slow.gate.set()
        until(lambda: slow.seen == [0, 9])
    stats = pipeline.stats()["live"]
    assert (stats.processed, stats.skipped) == (2, 8)


def test_a_raising_non_critical_consumer_does_not_stop_the_job() -> None:
    calls, recorded = threading.Semaphore(0), []

    def broken(frame: MatchedFrame) -> None:
        calls.release()
        raise RuntimeError("display gone")

    pipeline = Pipeline()
    pipeline.add(recorded.append, name="recorder", critical=True)
    pipeline.add(broken, name="live", critical=False)
    with pipeline:
        for number in range(5):
            pipeline.dispatch(matched(number))
            assert calls.acquire(timeout=10)
        pipeline.drain()
    assert [frame.frame_id for frame in recorded] == list(range(5))
    assert pipeline.stats()["live"].errors == 5


def test_a_raising_critical_consumer_stops_the_job() -> None:
    def failing(frame: MatchedFrame) -> None:
        if frame.frame_id == 3:
            raise OSError("disk full")

    pipeline = Pipeline()
    pipeline.add(failing, name="recorder", critical=True, queue_size=2)

    def feed() -> None:
        for number in range(1000):
            pipeline.dispatch(matched(number))
        pipeline.drain()

    with pipeline, pytest.raises(ConsumerFailedError, match="'recorder' failed: disk full"):
        feed()
    assert pipeline.stats()["recorder"].processed == 3
