"""Live reconstruction as a pipeline consumer: every matched frame → the model → PCC → the ``recon`` topic.

:class:`ReconstructionConsumer` is a *non-critical* consumer of the frame pipeline (C3): the pipeline
hands it only the newest frame and counts the ones it skipped, so a model slower than the camera costs
frame rate, never latency or memory. For each frame it reconstructs the image (:class:`Reconstructor`),
scores it against the canvas the DMD showed (PCC, as ``specklenet-train evaluate`` scores it; None when
the target is unknown or the frame was not matched beyond doubt) and publishes ``recon`` with the
header of :data:`specklenet.daemon.protocol.REQUIRED_FIELDS` plus ``loop``, ``accepted``, ``provider``
and ``inference_ms`` (normalisation + inference); the publisher adds ``seq`` and ``t_publish_ns``.
:meth:`ReconstructionConsumer.swap` replaces the model between two frames.

:class:`LatencyStats` keeps the recent frames' latency (capture on the host clock → published) for the
status heartbeat: percentiles, frame rate, processed / skipped / error counts.

Thread-safety: the pipeline calls a consumer from one worker thread; ``swap`` may be called from any
thread (it waits for the frame in progress, so the old model is idle once it returns);
``LatencyStats`` methods may be called from any thread.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from specklenet.daemon.errors import ModelError
from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.inference import Reconstructor

Publish = Callable[[str, dict, "np.ndarray | None"], None]
"""C6: ``publish(topic, header, array)``; thread-safe, never blocks."""


class LatencyStats:
    """Rolling statistics of the last ``window`` published frames (thread-safe).

    Latency is ``t_publish − capture_ns``: from the exposure start (host clock, as the pipeline
    estimates it) to the moment ``publish`` returned, in ms. ``skipped`` counts frame ids jumped over
    between two processed frames (frames the consumer never saw: dropped by the newest-frame policy,
    or lost before it); a frame id going backwards (a new camera stream) starts counting afresh.
    """

    def __init__(self, window: int = 1000) -> None:
        if window < 2:
            raise ValueError(f"window must be >= 2 frames, got {window}")
        self._lock = threading.Lock()
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._inference_ms: collections.deque[float] = collections.deque(maxlen=window)
        self._published_ns: collections.deque[int] = collections.deque(maxlen=window)
        self._last_frame_id: int | None = None
        self.processed = self.skipped = self.errors = 0

    def record(self, *, frame_id: int, capture_ns: int, publish_ns: int, inference_ms: float) -> None:
        """One frame published at ``publish_ns`` (time.time_ns domain)."""
        with self._lock:
            self.processed += 1
            if self._last_frame_id is not None and frame_id > self._last_frame_id:
                self.skipped += frame_id - self._last_frame_id - 1
            self._last_frame_id = frame_id
            self._latency_ms.append((publish_ns - capture_ns) / 1e6)
            self._inference_ms.append(inference_ms)
            self._published_ns.append(publish_ns)

    def error(self) -> None:
        """One frame failed (the exception itself goes to the pipeline, which logs it)."""
        with self._lock:
            self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        """Plain values for the heartbeat: ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``,
        ``inference_p50_ms``, ``frame_rate_hz`` (over the window; None until two frames), ``processed``,
        ``skipped``, ``errors``, ``window`` (frames the percentiles cover)."""
        with self._lock:
            latency = np.fromiter(self._latency_ms, np.float64)
            inference = np.fromiter(self._inference_ms, np.float64)
            times = list(self._published_ns)
            counts = {"processed": self.processed, "skipped": self.skipped, "errors": self.errors}
        p50, p95, p99 = np.percentile(latency, [50, 95, 99]).tolist() if latency.size else (None,) * 3
        span_ns = times[-1] - times[0] if len(times) > 1 else 0
        return {
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "latency_p99_ms": p99,
            "inference_p50_ms": float(np.median(inference)) if inference.size else None,
            "frame_rate_hz": (len(times) - 1) * 1e9 / span_ns if span_ns > 0 else None,
            **counts,
            "window": int(latency.size),
        }


class ReconstructionConsumer:
    """Reconstruct, score and publish each frame (see the module docstring).

    Args:
        reconstructor: the model to start with.
        canvases: uint8 ``canvases[target_index, row, column]`` the DMD shows (the live targets file's).
        publish: the C6 publisher's ``publish``.
        stats: where latencies and counts go (a new :class:`LatencyStats` by default).
        truth_windows: optional ``(N, 4)`` per-target (row0, col0, rows, columns) of the ground truth,
            as a targets file's ``truth_window`` column (targets shown away from the output window).
        clock: the host clock (time.time_ns domain) read when ``publish`` returns.
    """

    name = "reconstruction"

    def __init__(
        self,
        reconstructor: Reconstructor,
        canvases: Sequence[np.ndarray] | np.ndarray,
        publish: Publish,
        stats: LatencyStats | None = None,
        *,
        truth_windows: np.ndarray | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if truth_windows is not None and len(truth_windows) != len(canvases):
            raise ValueError(f"{len(truth_windows)} truth windows for {len(canvases)} canvases")
        self._reconstructor = reconstructor
        self._canvases = canvases
        self._truth_windows = truth_windows
        self._publish = publish
        self.stats = stats or LatencyStats()
        self._clock = clock
        self._lock = threading.Lock()  # held for a whole frame: swap happens between frames

    @property
    def reconstructor(self) -> Reconstructor:
        return self._reconstructor

    def swap(self, reconstructor: Reconstructor) -> Reconstructor:
        """Use ``reconstructor`` from the next frame on; returns the previous one, idle from now on.
        Raises :class:`ModelError` when it was loaded for other frames or another canvas."""
        current = self._reconstructor
        if (reconstructor.frame_shape, reconstructor.canvas_shape) != (
            current.frame_shape,
            current.canvas_shape,
        ):
            raise ModelError(
                f"{reconstructor.path}: loaded for {reconstructor.frame_shape} frames on a "
                f"{reconstructor.canvas_shape} canvas; this job has {current.frame_shape} on "
                f"{current.canvas_shape}"
            )
        with self._lock:
            previous, self._reconstructor = self._reconstructor, reconstructor
        return previous

    def __call__(self, frame: MatchedFrame) -> None:
        """Process one frame; exceptions propagate to the pipeline (it logs and counts)."""
        with self._lock:
            model = self._reconstructor
            try:
                start = time.perf_counter()
                image = model.reconstruct(frame.counts)
                inference_ms = (time.perf_counter() - start) * 1e3
                header = {
                    "frame_id": int(frame.frame_id),
                    "picture": int(frame.picture),
                    "target_index": None if frame.target_index is None else int(frame.target_index),
                    "pcc": self._score(model, image, frame),
                    "t_capture_ns": int(frame.capture_ns),
                    "model": model.path.name,
                    "case": model.info.case,
                    "loop": int(frame.loop),
                    "accepted": bool(frame.accepted),
                    "provider": model.provider,
                    "inference_ms": inference_ms,
                }
                self._publish("recon", header, image)
            except Exception:
                self.stats.error()
                raise
            self.stats.record(
                frame_id=header["frame_id"],
                capture_ns=header["t_capture_ns"],
                publish_ns=self._clock(),
                inference_ms=inference_ms,
            )

    def _score(self, model: Reconstructor, image: np.ndarray, frame: MatchedFrame) -> float | None:
        index = frame.target_index
        if index is None or not frame.accepted:
            return None
        if not 0 <= index < len(self._canvases):
            raise IndexError(f"target_index {index} outside the {len(self._canvases)} live targets")
        window = None if self._truth_windows is None else tuple(int(v) for v in self._truth_windows[index])
        return model.pcc(image, self._canvases[index], window)  # type: ignore[arg-type]
