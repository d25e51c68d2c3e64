"""The ``live`` job: the DMD loops test targets, every camera frame is reconstructed and published.

Built from the frame pipeline (C3) and the inference consumer (C5): :class:`SequenceRunner.loop`
shows the targets over and over and yields matched frames; the :class:`Pipeline` hands each to

* ``reconstruction`` (non-critical: newest frame only, skipped frames counted) — the model, the PCC
  against the displayed target (None when the target is unknown or the frame doubtful), ``recon``;
* ``speckle`` (non-critical) — about every ``speckle_every``-th raw frame on ``speckle``;
* ``recorder`` (critical, only with ``record``: lossless) — the first accepted frame of each target
  into a new pairs file.

Acquisition never waits for inference: where the model is slower than the camera (always on a CPU),
``counters.skipped`` grows and the frame rate stays the camera's. A device fault (a removed camera, a
DMD error) is logged, reported in the status and recovered from by restarting the loop. A loop shorter than
:data:`~specklenet.daemon.matching.MIN_PICTURES` targets is repeated to that length (the timestamp
check needs it). :meth:`LiveJob.swap` replaces the model between two frames without stopping.

Thread-safety: ``run`` on the job thread; ``status``, ``progress`` and ``swap`` from any thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from specklenet.daemon.errors import DeviceError, DeviceRemovedError
from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.live import LatencyStats, ReconstructionConsumer
from specklenet.daemon.matching import MIN_PICTURES
from specklenet.daemon.pipeline import Pipeline
from specklenet.daemon.recorder import PairsRecorder
from specklenet.daemon.records import PairsWriter, Targets
from specklenet.daemon.runner import SequenceRunner
from specklenet.daemon.service.bench import Bench
from specklenet.daemon.service.publisher import Publisher

log = structlog.get_logger(__name__)

RATE_WINDOW = 128  # frames over which the frame rate is measured: received frames per second of
# capture time (exact at the DMD's pace, lower when frames are lost; immune to the runner's bursts)
PRERENDER_MAX = 512  # the simulated bench renders a live loop of at most this many targets ahead


def _window(pictures: int) -> int:
    """Frames the runner matches together: at least MIN_PICTURES, and coprime with the loop length.

    The runner hands a window's frames over at once, so the newest-frame consumer mostly sees each
    window's last frame; a window that is a multiple of the loop would always end on the same
    picture, and live mode would reconstruct one target only.
    """
    window = MIN_PICTURES
    while math.gcd(window, pictures) != 1:
        window += 1
    return window


class SpeckleConsumer:
    """Publishes a raw frame on ``speckle`` whenever ``every`` frames have passed since the last one
    (non-critical: it may not see every frame, so it counts frame numbers, not calls)."""

    def __init__(self, publisher: Publisher, every: int) -> None:
        self.publisher, self.every = publisher, every
        self._count = 0
        self._last: int | None = None

    def __call__(self, frame: MatchedFrame) -> None:
        number = frame.loop * 1_000_000 + frame.picture  # grows within a stream; resets on a resync
        if self._last is not None and 0 <= number - self._last < self.every:
            return
        self._last = number
        header = {
            "frame_id": int(frame.frame_id),
            "picture": int(frame.picture),
            "target_index": None if frame.target_index is None else int(frame.target_index),
            "t_capture_ns": int(frame.capture_ns),
            "loop": int(frame.loop),
            "accepted": bool(frame.accepted),
        }
        self.publisher.publish("speckle", header, frame.counts)


class LiveJob:
    """``live``: loop ``targets``, reconstruct with ``reconstructor``, publish; optionally record.

    Args:
        bench: the open bench.
        targets: the live targets (``targets_path`` names it in the status).
        reconstructor: the model to start with (C5 ``Reconstructor``).
        publisher: the stream.
        record: a new pairs file to record into (critical consumer), or None.
        speckle_every: publish every n-th raw frame; 0 = none.
    """

    name = "live"

    def __init__(
        self,
        bench: Bench,
        targets: Targets,
        targets_path: Path,
        reconstructor: Any,
        publisher: Publisher,
        *,
        record: Path | None = None,
        speckle_every: int = 0,
    ) -> None:
        bench.check_canvases(targets)
        self.bench, self.targets, self.targets_path, self.record = bench, targets, targets_path, record
        self.publisher, self.speckle_every = publisher, speckle_every
        truth = targets.columns.get("truth_window")
        self.latency = LatencyStats()
        self.consumer = ReconstructionConsumer(
            reconstructor, targets.canvases, publisher.publish, self.latency, truth_windows=truth
        )
        self.pipeline: Pipeline | None = None
        self._captured: deque[int] = deque(maxlen=RATE_WINDOW)
        self._frames = 0
        self._lost = 0
        self._last_block: int | None = None
        self._recorder: PairsRecorder | None = None
        self.device_errors = 0
        self.last_device_error = ""

    @property
    def progress(self) -> int:
        return self._frames

    def swap(self, reconstructor: Any) -> None:
        """Reconstruct with ``reconstructor`` from the next frame on (the stream goes on)."""
        self.consumer.swap(reconstructor)
        log.info("model_swapped", model=str(reconstructor.path))

    def run(self, stop: threading.Event) -> dict[str, Any]:
        bench = self.bench
        bench.recover()
        indices = np.arange(len(self.targets))
        runner = SequenceRunner(bench.dmd, bench.camera, bench.settings, stop=stop)
        if len(indices) < MIN_PICTURES:
            indices = np.resize(indices, MIN_PICTURES)
        pipeline = Pipeline()
        pipeline.add(self.consumer, name="reconstruction", critical=False)
        if self.speckle_every:
            pipeline.add(SpeckleConsumer(self.publisher, self.speckle_every), name="speckle", critical=False)
        try:
            self._prerender(np.arange(len(self.targets)))
            with self._writer() as writer:
                if writer is not None:
                    self._recorder = PairsRecorder(writer)
                    pipeline.add(self._recorder, name="recorder", critical=True)
                self.pipeline = pipeline
                with pipeline:
                    self._loop(runner, indices, stop)
                    pipeline.drain()
        finally:
            if bench.renderer is not None:
                bench.renderer.clear()  # memory: a later job shows other targets
        return self.status()

    def _loop(self, runner: SequenceRunner, indices: np.ndarray, stop: threading.Event) -> None:
        """Dispatch looped frames until ``stop``; a device fault (camera removed, DMD error) is logged,
        counted in the status, and the loop restarted (the camera found again), up to
        ``acquisition.device_retries`` times per job."""
        bench, pipeline = self.bench, self.pipeline
        assert pipeline is not None
        while not stop.is_set():
            try:
                for frame in runner.loop(
                    self.targets.canvases[indices], indices, window=_window(len(indices))
                ):
                    self._count(frame, len(indices))
                    pipeline.dispatch(frame)
                return
            except DeviceError as error:
                self.device_errors += 1
                self.last_device_error = str(error)
                log.warning("device_error", error=str(error), errors=self.device_errors)
                if self.device_errors > bench.settings.acquisition.device_retries:
                    raise
                self._last_block = None  # the restarted loop numbers its frames afresh
                if isinstance(error, DeviceRemovedError) or bench.camera.removed:
                    bench.camera.reconnect(bench.settings.camera.reconnect_timeout_s)

    def _prerender(self, indices: np.ndarray) -> None:
        """Simulated bench: render each looped target once, ahead, so that the camera keeps the DMD's
        pace whatever the twin's speed on this machine (see :class:`~.bench.CachingRenderer`)."""
        renderer = self.bench.renderer
        if renderer is not None and len(indices) <= PRERENDER_MAX:
            renderer.prerender(self.targets.canvases[indices], indices)

    def _writer(self) -> contextlib.AbstractContextManager[PairsWriter | None]:
        if self.record is None:
            return contextlib.nullcontext()
        bench = self.bench
        acquisition = json.loads(json.dumps({**bench.describe_twin(), "daemon": bench.settings.describe()}))
        return PairsWriter.create(
            self.record,
            self.targets,
            source=bench.source,
            acquisition=acquisition,
            flush_interval_s=bench.settings.acquisition.flush_interval_s,
        )

    def _count(self, frame: MatchedFrame, pictures: int) -> None:
        """Frames received, their rate, and block-id gaps (frames that never reached the host)."""
        block = frame.loop * pictures + frame.picture
        if self._last_block is not None and block > self._last_block + 1:
            self._lost += block - self._last_block - 1
        self._last_block = block  # a smaller block: the loop was restarted (resync), count afresh
        self._captured.append(frame.capture_ns)
        self._frames += 1

    def status(self) -> dict[str, Any]:
        """Counters for the status heartbeat (thread-safe snapshot)."""
        times = list(self._captured)
        span_ns = times[-1] - times[0] if len(times) > 1 else 0
        pipeline = self.pipeline
        run = pipeline.run if pipeline is not None else None
        stages = {name: vars(stats) for name, stats in pipeline.stats().items()} if pipeline else {}
        latency = self.latency.snapshot()
        return {
            "targets": self.targets_path.name,
            "record": self.record.name if self.record else None,
            "recorded": self._recorder.written if self._recorder else 0,
            "model": self.consumer.reconstructor.path.name,
            "rate_hz": round((len(times) - 1) * 1e9 / span_ns, 2) if span_ns > 0 else 0.0,
            "recon_rate_hz": latency["frame_rate_hz"],
            "latency_ms": {
                "p50": latency["latency_p50_ms"],
                "p95": latency["latency_p95_ms"],
                "p99": latency["latency_p99_ms"],
            },
            "inference_p50_ms": latency["inference_p50_ms"],
            "device_errors": self.device_errors,
            "last_device_error": self.last_device_error,
            "counters": {
                "frames": self._frames,
                "received": run.received if run else 0,
                "accepted": run.accepted if run else 0,
                "rejected": dict(run.rejected) if run else {},
                "lost": self._lost,
                "skipped": stages.get("reconstruction", {}).get("skipped", 0),
                "consumers": stages,
            },
            "time_s": time.time(),
        }
