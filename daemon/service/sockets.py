"""Binding the service's two sockets: loopback unless allowed, CurveZMQ on both if asked.

``tcp://`` endpoints must name a loopback host (127.0.0.0/8, ``localhost``, ``[::1]``) unless
``[service] allow_remote = true``; ``ipc://`` and ``inproc://`` are local anyway. With
``curve_secret_key_file`` set, the control ROUTER and the stream PUB are CURVE servers that accept only
clients whose public certificates lie in ``curve_clients_dir`` (``zmq.auth``'s ZAP handler on its own
thread; others are refused during the handshake: they never reach the command handler and never
receive a frame).

Errors name the ``[service]`` key (:class:`~specklenet.daemon.errors.ConfigError`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import structlog
import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from specklenet.daemon.errors import ConfigError, SpecklenetError
from specklenet.daemon.service.settings import ServiceSettings

log = structlog.get_logger(__name__)

MAX_CONTROL_MESSAGE_BYTES = 1 << 20
"""ZMQ_MAXMSGSIZE of the control socket: a peer sending more is disconnected by libzmq (a memory
guard; the protocol's own limit, 64 KiB, is answered with an error reply below this size)."""


def is_local(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on a loopback host."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp" or not rest:
        return False
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    host = host.split(";")[-1].strip("[]")  # "source;destination" form: the bound one is last
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name, a host name


def check_endpoint(endpoint: str, key: str, settings: ServiceSettings) -> None:
    """Refuse a malformed or (unless allowed) non-local endpoint; ``key`` names the setting."""
    transport = endpoint.partition("://")[0]
    if transport not in ("tcp", "ipc", "inproc") or "://" not in endpoint:
        raise ConfigError(f"service.{key}: {endpoint!r} is not a tcp://, ipc:// or inproc:// endpoint")
    if not is_local(endpoint) and not settings.allow_remote:
        raise ConfigError(
            f"service.{key}: {endpoint!r} is not a loopback address; set service.allow_remote = true "
            "to bind other interfaces (and consider service.curve_secret_key_file)"
        )


class Sockets:
    """The bound control (ROUTER) and stream (PUB) sockets, and the authenticator if any.

    Args:
        context: the ZeroMQ context (the caller terminates it).
        settings: the ``[service]`` table.
    """

    def __init__(self, context: zmq.Context[Any], settings: ServiceSettings) -> None:
        check_endpoint(settings.control_address, "control_address", settings)
        check_endpoint(settings.stream_address, "stream_address", settings)
        self.authenticator: ThreadAuthenticator | None = None
        self.control = context.socket(zmq.ROUTER)
        self.stream = context.socket(zmq.PUB)
        try:
            self._configure(context, settings)
            _bind(self.control, settings.control_address, "control_address")
            _bind(self.stream, settings.stream_address, "stream_address")
        except BaseException:
            self.close()
            raise
        if not is_local(settings.control_address) and self.authenticator is None:
            log.warning("control_unauthenticated", address=settings.control_address)

    def _configure(self, context: zmq.Context[Any], settings: ServiceSettings) -> None:
        self.control.setsockopt(zmq.LINGER, 0)
        self.control.setsockopt(zmq.MAXMSGSIZE, MAX_CONTROL_MESSAGE_BYTES)
        self.control.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to a vanished client is dropped
        self.stream.setsockopt(zmq.LINGER, 0)
        self.stream.setsockopt(zmq.SNDHWM, settings.send_hwm)
        if settings.curve_secret_key_file:
            public, secret = _server_keys(settings.curve_secret_key_file)
            clients = Path(settings.curve_clients_dir)
            if not clients.is_dir():
                raise ConfigError(f"service.curve_clients_dir: {clients} is not a folder")
            self.authenticator = ThreadAuthenticator(context)
            self.authenticator.start()
            self.authenticator.configure_curve(domain="*", location=str(clients))
            # Both sockets: the stream carries the images, and clients use one key pair for both.
            for socket in (self.control, self.stream):
                socket.curve_publickey = public
                socket.curve_secretkey = secret
                socket.curve_server = True

    def close(self) -> None:
        """Close both sockets (no linger) and stop the authenticator. Idempotent."""
        self.control.close(linger=0)
        self.stream.close(linger=0)
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None


def _server_keys(path: str) -> tuple[bytes, bytes]:
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise ConfigError(f"service.curve_secret_key_file: cannot read {path}: {error}") from error
    if secret is None:
        raise ConfigError(f"service.curve_secret_key_file: {path} holds no secret key (a .key_secret file)")
    return public, secret


def _bind(socket: zmq.Socket[Any], endpoint: str, key: str) -> None:
    try:
        socket.bind(endpoint)
    except zmq.ZMQError as error:
        raise BindError(f"service.{key}: cannot bind {endpoint}: {error}") from error


class BindError(SpecklenetError):
    """An endpoint cannot be bound (in use, e.g. by an instance still stopping): the message names the
    key. Not a configuration error: systemd may restart the service, and it may then succeed."""
