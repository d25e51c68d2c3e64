"""Reading the daemon's stream: sequence gaps and daemon restarts, and the figures the live views show.

Public names: :class:`StreamReader` (and the events it returns: :class:`Received`,
:class:`ConnectionEvent`, :class:`Malformed`), :class:`Gap`, :class:`SequenceTracker`,
:class:`ConnectionWatch`, :class:`LiveFigures`.

Gap semantics (docs/protocol.md): every topic's ``seq`` counts from 0 in each daemon run, +1 per
message. Within a run, a jump from ``s`` to ``s + k + 1`` lost ``k`` messages (the publisher's
high-water mark, or ours). A daemon restart shows as ``seq`` going backwards (and the connection
dropping, which the socket monitor reports); the messages the old run published after the last one
we saw are unknown, and a new run first seen at ``seq = s`` lost its first ``s`` (the gap's ``lost``).
Once one topic has shown a restart, every other topic's next message belongs to the new run too. The
first message a client sees starts wherever the stream is; that is not a gap.

Not thread-safe: each object belongs to the thread reading the socket.
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import zmq

from specklenet.daemon import protocol

GAP = "gap"
RESTART = "restart"


@dataclass(frozen=True)
class Gap:
    """Messages of ``topic`` that did not arrive between ``after_seq`` and ``next_seq``.

    ``kind`` is ``"gap"`` (same daemon run, ``lost`` exact) or ``"restart"`` (a new daemon run:
    ``after_seq`` is the old run's last seen seq, ``lost`` counts only the new run's missed first
    messages, the old run's tail is unknown). ``t_receive_ns`` is when the message after the gap came
    (``time.time_ns()``); ``session`` numbers the daemon runs this client has seen, from 0.
    """

    topic: str
    kind: str
    after_seq: int | None
    next_seq: int
    lost: int
    session: int
    t_receive_ns: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SequenceTracker:
    """Follows ``stream_id`` and ``seq`` per topic; :meth:`observe` returns the gaps a message reveals.

    A new ``stream_id`` is a new daemon run (``seq`` alone cannot tell: a subscriber that rejoins after
    the new run passed the old run's last ``seq`` would see a mere gap, or nothing at all).
    """

    def __init__(self) -> None:
        self.session = 0
        self.received: collections.Counter[str] = collections.Counter()
        self.lost: collections.Counter[str] = collections.Counter()
        self.gaps: list[Gap] = []
        self.restarts = 0
        self._stream_id: int | None = None
        self._last: dict[str, int] = {}
        self._restarted: set[str] = set()  # topics whose next message is their first of the new run

    def observe(self, topic: str, seq: int, stream_id: int, t_receive_ns: int | None = None) -> Gap | None:
        """Count the message; returns the gap before it, if any."""
        now = time.time_ns() if t_receive_ns is None else t_receive_ns
        self.received[topic] += 1
        if self._stream_id is not None and stream_id != self._stream_id:
            self.session += 1
            self.restarts += 1
            self._restarted = set(self._last)
        self._stream_id = stream_id
        last = self._last.get(topic)
        self._last[topic] = seq
        gap = None
        if topic in self._restarted:  # its first message of the new run: the run's first `seq` missed
            gap = Gap(topic, RESTART, last, seq, seq, self.session, now)
        elif last is not None and seq > last + 1:  # a topic's first message is never a gap
            gap = Gap(topic, GAP, last, seq, seq - last - 1, self.session, now)
        self._restarted.discard(topic)
        if gap is not None:
            self.lost[topic] += gap.lost
            self.gaps.append(gap)
        return gap

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())


class ConnectionWatch:
    """Socket-monitor events of a SUB socket: whether the daemon is connected, how often it dropped.

    ``poll_socket`` is the monitor's PAIR socket for a poller; call :meth:`drain` when it is readable.
    """

    def __init__(self, socket: zmq.Socket) -> None:
        from zmq.utils.monitor import recv_monitor_message

        self._recv = recv_monitor_message
        self.poll_socket = socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self._socket = socket
        self.connected = False
        self.disconnects = 0

    def drain(self) -> list[str]:
        """Handle the pending events; returns their names ("connected", "disconnected")."""
        names = []
        while self.poll_socket.poll(0):
            event = self._recv(self.poll_socket)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self.connected = False
                self.disconnects += 1
                names.append("disconnected")
            elif event == zmq.EVENT_CONNECTED:
                self.connected = True
                names.append("connected")
        return names

    def close(self) -> None:
        with contextlib.suppress(zmq.ZMQError):  # the socket may be closed already
            self._socket.disable_monitor()
        self.poll_socket.close(linger=0)


class LiveFigures:
    """Rolling figures of the recon stream: rate, latency percentiles, last and running PCC.

    ``window`` recent reconstructions give the rate and the percentiles; the running PCC averages
    every reconstruction with a PCC since the client started. Latency is receipt on this host minus
    the frame's capture time (``t_capture_ns``, host clock): the whole way from exposure to the client.
    """

    def __init__(self, window: int = 500) -> None:
        self._receive_ns: collections.deque[int] = collections.deque(maxlen=window)
        self._latency_ms: collections.deque[float] = collections.deque(maxlen=window)
        self.last_pcc: float | None = None
        self._pcc_sum = 0.0
        self.pcc_count = 0
        self.recons = 0
        self.last_header: dict[str, Any] = {}

    def add(self, header: dict[str, Any], t_receive_ns: int) -> None:
        self.recons += 1
        self.last_header = header
        self._receive_ns.append(t_receive_ns)
        self._latency_ms.append((t_receive_ns - int(header["t_capture_ns"])) / 1e6)
        pcc = header.get("pcc")
        if pcc is not None and math.isfinite(pcc):
            self.last_pcc = float(pcc)
            self._pcc_sum += float(pcc)
            self.pcc_count += 1

    @property
    def running_pcc(self) -> float | None:
        return self._pcc_sum / self.pcc_count if self.pcc_count else None

    @property
    def rate_hz(self) -> float:
        """Reconstructions per second over the window (0 with fewer than two)."""
        if len(self._receive_ns) < 2:
            return 0.0
        span_s = (self._receive_ns[-1] - self._receive_ns[0]) / 1e9
        return (len(self._receive_ns) - 1) / span_s if span_s > 0 else 0.0

    def latency_percentiles_ms(self) -> dict[str, float] | None:
        """p50, p95, p99 and max of the window, in ms; None before the first reconstruction."""
        if not self._latency_ms:
            return None
        values = np.fromiter(self._latency_ms, np.float64)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(values.max())}


@dataclass(frozen=True)
class Received:
    """One decoded stream message, when it arrived, and the gap before it (None when in sequence)."""

    message: protocol.DataMessage
    t_receive_ns: int
    gap: Gap | None


@dataclass(frozen=True)
class ConnectionEvent:
    """``"connected"`` or ``"disconnected"`` (the daemon went away: stopped, restarted, crashed)."""

    name: str
    t_ns: int


@dataclass(frozen=True)
class Malformed:
    """A message that does not follow the protocol (counted and reported, then skipped)."""

    error: str
    t_receive_ns: int


Event = Received | ConnectionEvent | Malformed


class StreamReader:
    """Reads a SUB socket: decoded messages with their gaps, connection events, malformed messages.

    ``read(timeout_s)`` returns what arrived within the timeout (an empty list when nothing did), at
    most ``batch`` messages per call so that a caller can refresh its display while a fast stream runs.
    """

    def __init__(self, socket: zmq.Socket, *, batch: int = 256) -> None:
        self.socket = socket
        self.tracker = SequenceTracker()
        self.connection = ConnectionWatch(socket)
        self.malformed = 0
        self.last_receive_ns: int | None = None
        self._batch = batch
        self._poller = zmq.Poller()
        self._poller.register(socket, zmq.POLLIN)
        self._poller.register(self.connection.poll_socket, zmq.POLLIN)

    def read(self, timeout_s: float) -> list[Event]:
        ready = dict(self._poller.poll(int(timeout_s * 1000)))
        events: list[Event] = []
        if self.connection.poll_socket in ready:
            now = time.time_ns()
            events += [ConnectionEvent(name, now) for name in self.connection.drain()]
        while len(events) < self._batch:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            events.append(self.decode(frames))
        return events

    def decode(self, frames: list[Any]) -> Received | Malformed:
        now = time.time_ns()
        self.last_receive_ns = now
        try:
            message = protocol.decode_data(frames)
        except protocol.ProtocolError as error:
            self.malformed += 1
            return Malformed(str(error), now)
        header = message.header
        gap = self.tracker.observe(message.topic, int(header["seq"]), int(header["stream_id"]), now)
        self.connection.connected = True  # a message proves it (the monitor may miss the first connect)
        return Received(message, now, gap)

    def close(self) -> None:
        """Close the monitor and the socket; safe to call twice."""
        self.connection.close()
        self.socket.close(linger=0)
