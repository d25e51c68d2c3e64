"""Sockets of the clients: the control channel (DEALER with a timeout) and the stream (SUB), with CurveZMQ.

Public names: :data:`DEFAULT_CONTROL`, :data:`DEFAULT_STREAM`, the exit statuses (:data:`EXIT_OK`,
:data:`EXIT_FAILED`, :data:`EXIT_USAGE`, :data:`EXIT_UNREACHABLE`), :class:`CurveKeys`,
:class:`ControlClient`, :func:`subscribe`, :class:`DaemonUnreachableError`, :class:`DaemonRefusedError`.

The control client speaks to the daemon's ROUTER from a DEALER and sends an empty delimiter frame
before each request, exactly as a REQ socket would, so the daemon treats DEALER and REQ clients alike.
A request without a reply in time is the daemon not running (or not reachable, or refusing our CURVE
keys: ZeroMQ cannot tell these apart); the socket is then closed and recreated for the next request
("Lazy Pirate"), so a late reply can never be taken for the answer to a later request.

Not thread-safe: a ControlClient and a subscriber socket belong to one thread.
"""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from specklenet.daemon import protocol

DEFAULT_CONTROL = "tcp://127.0.0.1:5555"
DEFAULT_STREAM = "tcp://127.0.0.1:5556"
"""The daemon's default addresses; ``SPECKLENET_CONTROL`` / ``SPECKLENET_STREAM`` override them."""

EXIT_OK = 0
EXIT_FAILED = 1
"""The daemon refused the request or the job failed (its reason is printed), or a local error."""
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
"""No reply from the daemon within the timeout: not running, wrong address, or wrong CURVE keys."""

EXIT_STATUSES_HELP = (
    "exit status: 0 ok; 1 the daemon refused or the job failed (its reason is printed) or a local "
    "error; 2 usage error; 3 the daemon is unreachable (a control command got no reply within its --timeout)"
)


def default_control() -> str:
    return os.environ.get("SPECKLENET_CONTROL", DEFAULT_CONTROL)


def default_stream() -> str:
    return os.environ.get("SPECKLENET_STREAM", DEFAULT_STREAM)


class ClientError(Exception):
    """A failure a client reports in one sentence and turns into an exit status."""

    exit_status = EXIT_FAILED


class DaemonUnreachableError(ClientError):
    exit_status = EXIT_UNREACHABLE


class DaemonRefusedError(ClientError):
    """The daemon answered with an error reply; ``code`` is one of protocol.ERROR_CODES."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CurveKeys:
    """The daemon's public key and this client's key pair (Z85 bytes), from ZeroMQ certificate files.

    ``--server-key FILE`` is the daemon's public certificate (``server.key``, as written by
    ``zmq.auth.create_certificates``); ``--client-key FILE`` is this client's secret certificate
    (``client.key_secret``), whose public half the daemon must allow.
    """

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def load(cls, server_key: str | Path | None, client_key: str | Path | None) -> CurveKeys | None:
        """None when neither file is given; both or neither, else :class:`ClientError`."""
        if server_key is None and client_key is None:
            return None
        if server_key is None or client_key is None:
            raise ClientError("CurveZMQ needs both --server-key and --client-key")
        import zmq.auth  # only when keys are used: it pulls in more modules

        try:
            server_public, _ = zmq.auth.load_certificate(server_key)
            client_public, client_secret = zmq.auth.load_certificate(client_key)
        except (OSError, ValueError) as error:
            raise ClientError(f"cannot read the CurveZMQ keys: {error}") from None
        if client_secret is None:
            raise ClientError(f"{client_key}: holds no secret key (pass the client's .key_secret file)")
        return cls(server_public, client_public, client_secret)

    def apply(self, socket: zmq.Socket) -> None:
        """Make ``socket`` a CURVE client of the daemon; call before connect."""
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.client_public
        socket.curve_secretkey = self.client_secret


class ControlClient:
    """Requests to the daemon's control socket, each answered or timed out after ``timeout_s``.

    ``request`` returns the reply's ``result``; raises :class:`DaemonRefusedError` for an error reply and
    :class:`DaemonUnreachableError` when no reply came in time (the message names the address tried).
    """

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 3.0,
        keys: CurveKeys | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        self.address = address
        self.timeout_s = float(timeout_s)
        self._keys = keys
        self._context = context or zmq.Context.instance()
        self._ids = itertools.count(1)
        self._socket: zmq.Socket | None = None

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        ident = next(self._ids)
        try:
            payload = protocol.encode_request(cmd, args, id=ident)
        except protocol.ProtocolError as error:
            raise ClientError(str(error)) from None
        socket = self._connect()
        deadline = time.monotonic() + self.timeout_s
        if not self._send(socket, payload, deadline):
            raise self._unreachable()
        while socket.poll(_remaining_ms(deadline), zmq.POLLIN):
            frames = socket.recv_multipart()
            try:
                reply = protocol.decode_reply(frames[-1])
            except protocol.ProtocolError as error:
                raise ClientError(f"malformed reply from the daemon at {self.address}: {error}") from None
            if reply.id != ident:
                continue  # a stale reply to an earlier, timed-out request on this socket
            if not reply.ok:
                message = f"the daemon refused {cmd} ({reply.code}): {reply.error}"
                raise DaemonRefusedError(message, reply.code)
            return reply.result
        raise self._unreachable()

    @staticmethod
    def _send(socket: zmq.Socket, payload: bytes, deadline: float) -> bool:
        """Send the request before ``deadline``; False when the socket had no usable connection.

        A DEALER blocks a send while it has no usable connection (none yet, or a CurveZMQ handshake
        the daemon refused and tore down), so the send waits for room only as long as the reply would.
        """
        while time.monotonic() < deadline and socket.poll(_remaining_ms(deadline), zmq.POLLOUT):
            try:
                socket.send_multipart([b"", payload], flags=zmq.NOBLOCK)
                return True
            except zmq.Again:
                continue  # the connection went between poll and send
        return False

    def _unreachable(self) -> DaemonUnreachableError:
        """Drop the socket (a late reply must not answer the next request) and name the address."""
        self._discard()
        secure = " with the given CurveZMQ keys" if self._keys else ""
        return DaemonUnreachableError(
            f"no reply from the daemon at {self.address}{secure} within {self.timeout_s:g} s "
            "(is `specklenetd serve` running there?)"
        )

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        self._discard()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> zmq.Socket:
        if self._socket is None:
            socket = self._context.socket(zmq.DEALER)
            socket.linger = 0
            if self._keys is not None:
                self._keys.apply(socket)
            try:
                socket.connect(self.address)
            except zmq.ZMQError as error:
                socket.close(linger=0)
                raise ClientError(f"bad control address {self.address!r}: {error}") from None
            self._socket = socket
        return self._socket

    def _discard(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None


def _remaining_ms(deadline: float) -> int:
    """Milliseconds until ``deadline`` (a ``time.monotonic()`` value), at least 0."""
    return max(0, int((deadline - time.monotonic()) * 1000))


def subscribe(
    address: str,
    topics: tuple[str, ...],
    *,
    keys: CurveKeys | None = None,
    context: Any = None,
    rcvhwm: int = 1000,
) -> zmq.Socket:
    """A SUB socket connected to the daemon's stream, subscribed to ``topics``.

    ZeroMQ reconnects by itself when the daemon restarts; the subscriber sees it as a sequence reset
    (see :mod:`specklenet.clients.stream`). ``context`` may be a ``zmq.asyncio.Context``.
    """
    context = context or zmq.Context.instance()
    socket = context.socket(zmq.SUB)
    socket.linger = 0
    socket.rcvhwm = rcvhwm
    # Reconnect quickly after a daemon restart, backing off to 1 s while it stays down.
    socket.reconnect_ivl = 100
    socket.reconnect_ivl_max = 1000
    if keys is not None:
        keys.apply(socket)
    for topic in topics:
        socket.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
    try:
        socket.connect(address)
    except zmq.ZMQError as error:
        socket.close(linger=0)
        raise ClientError(f"bad stream address {address!r}: {error}") from None
    return socket


def add_connection_options(parser: Any, *, uses_control: bool = True, uses_stream: bool = True) -> None:
    """The options every client takes: both addresses (so that one set of options, or an alias, serves
    every command; the one a command does not use is marked so), CurveZMQ key files, the timeout."""
    group = parser.add_argument_group("daemon connection")
    unused = " (not used by this command)"
    group.add_argument(
        "--control",
        default=default_control(),
        metavar="ADDRESS",
        help="the daemon's control socket (default: %(default)s; env SPECKLENET_CONTROL)"
        + ("" if uses_control else unused),
    )
    group.add_argument(
        "--stream",
        default=default_stream(),
        metavar="ADDRESS",
        help="the daemon's stream socket (default: %(default)s; env SPECKLENET_STREAM)"
        + ("" if uses_stream else unused),
    )
    if uses_control:
        group.add_argument(
            "--timeout",
            type=float,
            default=3.0,
            metavar="SECONDS",
            help="how long to wait for the daemon's reply (default: %(default)s)",
        )
    group.add_argument(
        "--server-key", metavar="FILE", help="CurveZMQ: the daemon's public certificate (server.key)"
    )
    group.add_argument(
        "--client-key", metavar="FILE", help="CurveZMQ: this client's secret certificate (client.key_secret)"
    )


def keys_from_args(args: Any) -> CurveKeys | None:
    return CurveKeys.load(args.server_key, args.client_key)


class StopOnSignals:
    """A context manager whose ``event`` is set by SIGINT or SIGTERM (previous handlers restored on exit).

    Long-running clients (watch, record, view) poll ``event`` between reads; ``signum`` says which
    signal ended them. Install from the main thread only.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopOnSignals:
        def handler(signum: int, _frame: object) -> None:
            self.signum = signum
            self.event.set()

        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
