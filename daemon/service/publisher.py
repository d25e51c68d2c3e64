"""The stream publisher (contract C6): ``publish(topic, header, array)`` onto the PUB socket.

Each message is ``protocol.encode_data``'s ``[topic, msgpack header, raw array bytes]``; the header
gets ``stream_id`` (one random 63-bit number per publisher, i.e. per daemon run: ``seq`` alone cannot
tell a restart from a gap when a subscriber rejoins after the new run passed the old one's last
``seq``), ``seq`` (per topic, from 0, +1 per message *attempted*, so a subscriber sees a gap wherever a
message was dropped) and ``t_publish_ns`` (``time.time_ns()``). Arrays go out without a copy
(``copy=False``): the caller must not modify an array after publishing it (the pipeline's frames and
the reconstructions are fresh arrays). Sends use NOBLOCK, so a slow or stalled subscriber never slows
the daemon: a PUB socket silently drops the messages of a subscriber whose queue (SNDHWM) is full —
that subscriber sees the gap in ``seq`` — and whatever the socket refuses outright (``zmq.Again``,
with socket types that do) is counted in ``dropped``.

Thread-safety: ``publish`` may be called from any thread (the inference consumer, the speckle consumer
and the service loop share one socket; a lock serialises the sends, as ZeroMQ sockets are not
thread-safe). ``close`` is idempotent.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog
import zmq

from specklenet.daemon import protocol

log = structlog.get_logger(__name__)

SEQ_LIMIT = 2**63  # msgpack packs ints below 2**64; seq wraps long before (never in practice)


class Publisher:
    """Publishes data messages on a bound PUB socket.

    Args:
        socket: a zmq PUB (or XPUB) socket, bound; the publisher owns it from now on.
        clock: wall-clock nanoseconds for ``t_publish_ns``.
        stream_id: this run's ``stream_id`` (0 ≤ id < 2**63); default: drawn at random.

    Attributes:
        sent, dropped: messages per topic sent / dropped (full queue or a closed socket).
    """

    def __init__(
        self,
        socket: zmq.Socket[Any],
        *,
        clock: Callable[[], int] = time.time_ns,
        stream_id: int | None = None,
    ) -> None:
        self.socket = socket
        self._clock = clock
        self.stream_id = secrets.randbits(63) if stream_id is None else stream_id
        self._lock = threading.Lock()
        self._seq: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self._closed = False

    def publish(self, topic: str, header: dict[str, Any], array: np.ndarray | None = None) -> bool:
        """Send one message; returns False when it was dropped. Never blocks.

        Raises:
            ProtocolError: an unknown topic or array dtype (a programming error, not a network one).
        """
        with self._lock:
            seq = self._seq[topic] % SEQ_LIMIT
            stamps = {"stream_id": self.stream_id, "seq": seq, "t_publish_ns": self._clock()}
            frames = protocol.encode_data(topic, {**header, **stamps}, array)
            self._seq[topic] += 1
            if self._closed:
                self.dropped[topic] += 1
                return False
            try:
                self.socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped[topic] += 1
                return False
            self.sent[topic] += 1
            return True

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"sent": {topic: n}, "dropped": {topic: n}}``, a snapshot."""
        with self._lock:
            return {"sent": dict(self.sent), "dropped": dict(self.dropped)}

    def close(self) -> None:
        """Close the socket without lingering (undelivered messages are discarded)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.socket.close(linger=0)
