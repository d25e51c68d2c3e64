"""The control channel: a ROUTER socket serving REQ and DEALER clients, one command at a time.

A client sends one msgpack request (:func:`~specklenet.daemon.protocol.decode_request`); the ROUTER
sees ``[identity, payload]`` from a DEALER or ``[identity, b"", payload]`` from a REQ (or a DEALER that
adds the delimiter), and the reply goes back in the same envelope. Whatever arrives, the daemon
answers or drops it and counts it, and never dies of it:

* garbage bytes, wrong types, unknown commands, messages over the protocol's 64 KiB → an error reply
  (``bad_request`` / ``unknown_command``; the request's ``id`` is echoed when one can be read);
* a payload in several frames → an error reply (``bad_request``);
* the handler's :class:`CommandError` → its code; any other exception → ``failed`` (logged);
* a reply that cannot be sent (client gone, its queue full) → dropped and counted.

Thread-safety: a :class:`ControlChannel` belongs to the service loop's thread.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import structlog
import zmq

from specklenet.daemon import protocol
from specklenet.daemon.errors import SpecklenetError

log = structlog.get_logger(__name__)

BATCH = 64  # messages handled per serve() call before the loop gets its tick back


class CommandError(SpecklenetError):
    """A command refused or failed; ``code`` is one of :data:`protocol.ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code if code in protocol.ERROR_CODES else "failed"


Handler = Callable[[protocol.Request], Any]
"""Runs one decoded request; returns the (msgpack-able) result or raises :class:`CommandError`."""


class ControlChannel:
    """Answers requests arriving on ``socket`` (a bound ROUTER) with ``handler``.

    Attributes:
        counters: ``received``, ``replied``, ``dropped`` (replies not sent) and ``error.<code>``.
    """

    def __init__(self, socket: zmq.Socket[Any] | None, handler: Handler) -> None:
        self.socket = socket
        self.handler = handler
        self.counters: Counter[str] = Counter()

    def serve(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for requests and answer those waiting (at most :data:`BATCH`);
        returns how many were handled."""
        assert self.socket is not None
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return 0
        handled = 0
        while handled < BATCH:
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            handled += 1
            reply = self.handle(frames)
            if reply is None:
                continue
            try:
                self.socket.send_multipart(reply, zmq.NOBLOCK)
                self.counters["replied"] += 1
            except zmq.ZMQError:  # the client is gone or not reading: its reply is dropped
                self.counters["dropped"] += 1
        return handled

    def handle(self, frames: Sequence[bytes]) -> list[bytes] | None:
        """The reply frames (envelope included) for one received ROUTER message, or None to drop it."""
        self.counters["received"] += 1
        if len(frames) < 2:
            self.counters["dropped"] += 1  # no identity and payload: nobody to answer
            return None
        identity, rest = bytes(frames[0]), list(frames[1:])
        envelope = [identity]
        if len(rest) >= 2 and rest[0] == b"":
            envelope.append(b"")  # REQ (or REQ-style DEALER): the empty delimiter goes back too
            rest = rest[1:]
        if len(rest) != 1:
            return [*envelope, self._error(None, "bad_request", f"a request is one frame, got {len(rest)}")]
        return [*envelope, self._reply(rest[0])]

    def _reply(self, payload: bytes) -> bytes:
        try:
            request = protocol.decode_request(payload)
        except protocol.ProtocolError as error:
            code = "unknown_command" if str(error).startswith("unknown command") else "bad_request"
            return self._error(_readable_id(payload), code, str(error))
        try:
            result = self.handler(request)
        except CommandError as error:
            return self._error(request.id, error.code, str(error))
        except Exception as error:  # the daemon outlives any command's failure
            log.exception("command_failed", cmd=request.cmd)
            return self._error(request.id, "failed", f"{request.cmd}: {type(error).__name__}: {error}")
        try:
            reply = protocol.encode_reply(request.id, result=result)
        except (TypeError, ValueError, OverflowError) as error:
            log.exception("reply_not_encodable", cmd=request.cmd)
            return self._error(request.id, "failed", f"{request.cmd}: result not encodable: {error}")
        self.counters[f"ok.{request.cmd}"] += 1
        return reply

    def _error(self, ident: Any, code: str, message: str) -> bytes:
        self.counters[f"error.{code}"] += 1
        log.debug(
            "request_refused", code=code, error=message[:200]
        )  # counted; a flood must not flood the log
        return protocol.encode_reply(ident, error=message[:1000], code=code)


def _readable_id(payload: bytes) -> int | str | None:
    """The ``id`` of a request that failed to decode, if one can be read safely (else None)."""
    if len(payload) > protocol.MAX_CONTROL_BYTES:
        return None
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception:  # any garbage: there is no id to echo
        return None
    ident = message.get("id") if isinstance(message, dict) else None
    if isinstance(ident, str) or (
        isinstance(ident, int) and not isinstance(ident, bool) and -(2**63) <= ident < 2**64
    ):
        return ident
    return None
