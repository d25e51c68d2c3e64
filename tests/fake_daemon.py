"""A small stand-in for ``specklenetd serve`` in client tests: a ROUTER and a PUB speaking the protocol.

``FakeDaemon`` binds its own ZeroMQ context (so ``stop()`` really frees the ports and a second
instance can bind the same addresses: a daemon restart), answers control requests from
``replies`` (command -> result, or ``Refusal``), and publishes ``recon`` (and ``speckle``) messages
whose pixels encode their ``seq`` (see :func:`recon_image`), plus a ``status`` heartbeat. Tests wait
for what they need (messages, requests), never for time.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from specklenet.daemon import protocol

RECON_SHAPE = (64, 64)
SPECKLE_SHAPE = (256, 256)


@dataclass(frozen=True)
class Refusal:
    error: str
    code: str = "refused"


def recon_image(seq: int, shape: tuple[int, int] = RECON_SHAPE) -> np.ndarray:
    """A recognisable float32 image in [0, 1]: a diagonal ramp shifted by seq."""
    rows, columns = np.indices(shape)
    return (((rows + columns + seq) % 64) / 63.0).astype(np.float32)


def speckle_image(seq: int, shape: tuple[int, int] = SPECKLE_SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seq)
    return rng.exponential(500.0, shape).astype(np.float32) + 16.0


@dataclass
class FakeDaemon:
    control: str = "tcp://127.0.0.1:*"
    stream: str = "tcp://127.0.0.1:*"
    rate_hz: float = 200.0
    speckle: bool = True
    status_every: int = 20
    targets: int = 8
    targets_name: str = "targets.h5"  # the live job's targets file, as the heartbeat names it
    curve_server_secret: bytes | None = None
    curve_allowed_dir: str | None = None
    replies: dict[str, Any] = field(default_factory=dict)
    requests: list[protocol.Request] = field(default_factory=list)
    skip_next: int = 0  # set by a test: the next recon (and speckle) message comes this many seqs later

    def start(self) -> FakeDaemon:
        self._context = zmq.Context()
        self._stop = threading.Event()
        self._auth = None
        if self.curve_server_secret is not None:
            from zmq.auth.thread import ThreadAuthenticator

            self._auth = ThreadAuthenticator(self._context)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=self.curve_allowed_dir)
        self._router = self._socket(zmq.ROUTER, self.control)
        self._pub = self._socket(zmq.PUB, self.stream)
        self.control = self._router.last_endpoint.decode()
        self.stream = self._pub.last_endpoint.decode()
        self.published = 0
        self.stream_id = secrets.randbits(63)  # a new one per start: a restart, as the daemon's publisher
        self._threads = [
            threading.Thread(target=self._serve, name="fake-control", daemon=True),
            threading.Thread(target=self._publish, name="fake-stream", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self._router.close(linger=0)
        self._pub.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        self._context.term()

    def __enter__(self) -> FakeDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _socket(self, kind: int, address: str) -> zmq.Socket:
        socket = self._context.socket(kind)
        socket.linger = 0
        if kind == zmq.PUB:
            socket.sndhwm = 100_000
        if self.curve_server_secret is not None:
            socket.curve_server = True
            socket.curve_secretkey = self.curve_server_secret
        socket.bind(address)
        return socket

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._router.poll(20):
                continue
            identity, *rest = self._router.recv_multipart()
            envelope = [b""] if rest and rest[0] == b"" else []  # a REQ-style delimiter, echoed
            try:
                request = protocol.decode_request(rest[-1])
            except protocol.ProtocolError as error:
                reply = protocol.encode_reply(None, error=str(error), code="bad_request")
            else:
                self.requests.append(request)
                answer = self.replies.get(request.cmd, {"state": "idle", "cmd": request.cmd})
                if isinstance(answer, Refusal):
                    reply = protocol.encode_reply(request.id, error=answer.error, code=answer.code)
                else:
                    reply = protocol.encode_reply(request.id, result=answer)
            self._router.send_multipart([identity, *envelope, reply])

    def _publish(self) -> None:
        period = 1.0 / self.rate_hz
        seq = {"recon": 0, "speckle": 0, "status": 0}
        next_t = time.monotonic()
        while not self._stop.is_set():
            skipped, self.skip_next = self.skip_next, 0
            seq["recon"] += skipped
            seq["speckle"] += skipped
            frame_id = seq["recon"]
            target_index = frame_id % self.targets
            capture_ns = time.time_ns()
            if self.speckle:
                self._send(
                    "speckle",
                    seq,
                    {
                        "frame_id": frame_id,
                        "picture": target_index,
                        "target_index": target_index,
                        "t_capture_ns": capture_ns,
                    },
                    speckle_image(frame_id),
                )
            pcc = 0.5 + 0.4 * np.sin(frame_id / 10.0)
            header = {
                "frame_id": frame_id,
                "picture": target_index,
                "target_index": target_index,
                "pcc": float(pcc),
                "t_capture_ns": capture_ns,
                "model": "fake.onnx",
                "case": "2",
            }
            self._send("recon", seq, header, recon_image(frame_id))
            self.published += 1
            if frame_id % self.status_every == 0:
                counters = {"frames": frame_id, "skipped": 0, "lost": 0}
                running = {"targets": self.targets_name}
                self._send("status", seq, {"state": "live", "counters": counters, "running": running})
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))

    def _send(self, topic: str, seq: dict[str, int], header: dict[str, Any], array: Any = None) -> None:
        header = {**header, "stream_id": self.stream_id, "seq": seq[topic], "t_publish_ns": time.time_ns()}
        seq[topic] += 1
        self._pub.send_multipart(protocol.encode_data(topic, header, array), copy=False)
