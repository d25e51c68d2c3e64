"""One camera frame matched to the DMD picture it was exposed to, and the host-time estimate it carries.

:class:`MatchedFrame` is what the sequence runner (:mod:`.runner`) hands the pipeline's consumers
(:mod:`.pipeline`); :class:`HostTime` maps the camera's timestamps onto the host clock.

Thread-safety: ``MatchedFrame`` is immutable (its ``counts`` must not be mutated: every consumer sees
the same array); a ``HostTime`` belongs to one thread (the runner's).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class MatchedFrame:
    """One camera frame with the DMD picture it was exposed to.

    Attributes:
        counts: float32 ``[row, column]`` binned mean counts (read-only; do not mutate).
        frame_id: the camera's frame id.
        picture: position in the DMD sequence (0..len-1), also in loop mode.
        target_index: targets-file index of the picture shown; None = unknown.
        loop: loop number in continuous mode (0 when shown once).
        camera_timestamp_ns: exposure start on the camera's clock (None: the camera gives none).
        capture_ns: exposure start estimated on the host clock (``time.time_ns`` domain), see
            :class:`HostTime`; the host receipt time when the camera gives no timestamp.
        received_ns: host ``time.time_ns()`` when retrieved.
        accepted: matched beyond doubt (count, transport, failed-buffer and timestamp checks passed).
        reason: "" when accepted, else why not ("count", "failed", "timestamp", ...).
    """

    counts: np.ndarray
    frame_id: int
    picture: int
    target_index: int | None
    loop: int
    camera_timestamp_ns: int | None
    capture_ns: int
    received_ns: int
    accepted: bool
    reason: str


class HostTime:
    """Camera timestamps → host time: ``camera ts + offset``, offset = the running minimum of
    ``host receipt − camera ts`` over the latest ``window`` frames (the frame that reached the host
    fastest bounds the offset best; the window follows a drifting camera clock).

    Not thread-safe: one per runner.
    """

    def __init__(self, window: int = 256) -> None:
        self._offsets: deque[int] = deque(maxlen=window)

    def capture_ns(self, camera_timestamp_ns: int | None, received_ns: int) -> int:
        """The host-time estimate of an exposure start (``received_ns`` when there is no timestamp)."""
        if camera_timestamp_ns is None:
            return received_ns
        self._offsets.append(received_ns - camera_timestamp_ns)
        return camera_timestamp_ns + min(self._offsets)
