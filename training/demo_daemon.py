"""The demo's daemon: ``specklenetd serve --sim`` as a subprocess, its control channel and its stream.

Public names: :func:`write_config`, :func:`free_addresses`, :class:`DaemonProcess`, :class:`DaemonError`.

The demo talks to the daemon exactly as the lab's clients do — msgpack requests over the control
ROUTER (:mod:`specklenet.daemon.protocol`), topics from the stream PUB — and never imports the service
itself. Every wait has a deadline and checks that the process is still alive, so a daemon that dies or
refuses to start is reported with the tail of its log instead of a hang.

Not thread-safe: a :class:`DaemonProcess` belongs to one thread.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import zmq

from specklenet.daemon import protocol
from specklenet.daemon.errors import SpecklenetError

DEFAULT_CONTROL = "tcp://127.0.0.1:5555"
DEFAULT_STREAM = "tcp://127.0.0.1:5556"
"""The daemon's and the clients' default addresses: the demo uses them when both ports are free."""

CONFIG = """\
# Written by `specklenet-train demo`: the simulated bench (the optical twin) in real time, so that
# live mode runs at the DMD's pace (95 pictures/s). Every key: systemd/daemon.toml.
[dmd]
backend = "sim"

[camera]
backend = "sim"

[acquisition]
# The twin renders each frame after its exposure, more slowly than the DMD shows them on a small
# CPU: the frames of a sequence arrive late (their timestamps stay right), so wait for them.
frame_timeout_s = 30.0
flush_interval_s = 0.5

[sim]
seed = {seed}
realtime = true

[service]
data_dir = "{data_dir}"
control_address = "{control}"
stream_address = "{stream}"
speckle_every = 1          # every frame on `speckle`: the demo keeps the newest of each target
status_interval_s = 0.25   # a smooth progress bar
send_hwm = 200             # the demo reads every reconstruction it can
"""


class DaemonError(SpecklenetError):
    """The daemon did not start, stopped answering, refused a command, or exited with an error."""


def free_addresses() -> tuple[str, str]:
    """The default control/stream addresses when both ports are free here, else two free ports.

    (The check and the daemon's bind are not atomic: a port taken in between makes the daemon exit 1,
    which :meth:`DaemonProcess.wait_ready` reports with its log.)
    """
    defaults = (DEFAULT_CONTROL, DEFAULT_STREAM)
    if all(_port_free(int(address.rsplit(":", 1)[1])) for address in defaults):
        return defaults
    return tuple(f"tcp://127.0.0.1:{_any_free_port()}" for _ in range(2))  # type: ignore[return-value]


def write_config(path: Path, *, data_dir: Path, control: str, stream: str, seed: int = 0) -> Path:
    """The demo's ``daemon.toml`` (simulated bench, data directory, addresses)."""
    path.write_text(
        CONFIG.format(data_dir=data_dir.resolve(), control=control, stream=stream, seed=int(seed))
    )
    return path


class DaemonProcess:
    """``specklenetd serve --sim --config CONFIG`` with its stderr in ``log_path``.

    Args:
        config: the settings file (from :func:`write_config`); control, stream: its addresses.
        timeout_s: longest wait for a reply or for a message on a subscription.
    """

    def __init__(self, config: Path, log_path: Path, *, control: str, stream: str, timeout_s: float = 120):
        self.config, self.log_path, self.control, self.stream = config, log_path, control, stream
        self.timeout_s = timeout_s
        self._log = log_path.open("w")
        command = [sys.executable, "-m", "specklenet.daemon.cli", "serve", "--sim", "--config", str(config)]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log)
        self.context = zmq.Context()
        self._dealer: zmq.Socket[Any] | None = None
        self._ids = itertools.count(1)

    # --- control ---------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> dict[str, Any]:
        """Poll ``status`` until the daemon answers (bench open, sockets bound); returns the status."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                return self.request("status", timeout_s=0.5)
            except _NoReplyError:
                self._reset_dealer()  # a request sent before the bind may be lost: ask afresh
        raise self._failure(f"no answer within {self.timeout_s:.0f} s")

    def request(self, cmd: str, args: dict[str, Any] | None = None, *, timeout_s: float | None = None) -> Any:
        """Send one command and return its result; a refusal raises :class:`DaemonError`."""
        dealer = self._socket()
        ident = next(self._ids)
        dealer.send(protocol.encode_request(cmd, args, id=ident))
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if not self.alive:
                raise self._failure(f"it exited while {cmd!r} was pending")
            if remaining_ms <= 0:
                raise _NoReplyError(cmd)
            if dealer.poll(min(remaining_ms, 200)):
                reply = protocol.decode_reply(dealer.recv())
                if reply.id != ident:
                    continue  # a late answer to an abandoned request
                if not reply.ok:
                    raise DaemonError(f"the daemon refused {cmd!r} ({reply.code}): {reply.error}")
                return reply.result

    def subscribe(self, *topics: str) -> zmq.Socket[Any]:
        """A SUB socket on ``topics`` (connect before sending the command whose output it must see)."""
        sub = self.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, 1000)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode("ascii"))
        sub.connect(self.stream)
        return sub

    def receive(self, sub: zmq.Socket[Any], timeout_s: float) -> protocol.DataMessage | None:
        """The next stream message, or None after ``timeout_s`` (a dead daemon raises)."""
        if sub.poll(int(timeout_s * 1000)):
            return protocol.decode_data(sub.recv_multipart())
        if not self.alive:
            raise self._failure("it exited while the demo was reading its stream")
        return None

    # --- stop ------------------------------------------------------------------------------------

    def shutdown(self) -> int:
        """``shutdown`` over the control channel, then wait for the exit status (0 = clean)."""
        try:
            self.request("shutdown")
        except DaemonError:
            if self.alive:
                raise  # else: it stopped before its reply got out; the exit status says how
        try:
            return self.process.wait(self.timeout_s)
        except subprocess.TimeoutExpired:
            raise self._failure(f"it did not exit within {self.timeout_s:.0f} s of shutdown") from None

    def close(self) -> None:
        """End the process if it still runs (SIGTERM, then SIGKILL), free the sockets. Idempotent."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.context.destroy(linger=0)
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- helpers ---------------------------------------------------------------------------------

    def _socket(self) -> zmq.Socket[Any]:
        if self._dealer is None:
            self._dealer = self.context.socket(zmq.DEALER)
            self._dealer.setsockopt(zmq.LINGER, 0)
            self._dealer.connect(self.control)
        return self._dealer

    def _reset_dealer(self) -> None:
        if self._dealer is not None:
            self._dealer.close(linger=0)
            self._dealer = None

    def _failure(self, what: str) -> DaemonError:
        status = self.process.poll()
        state = "running" if status is None else f"exit status {status}"
        return DaemonError(
            f"specklenetd serve: {what} ({state}); its log ({self.log_path}):\n{self.log_tail()}"
        )


class _NoReplyError(DaemonError):
    """No reply in time (internal: wait_ready retries, other callers see a DaemonError)."""

    def __init__(self, cmd: str) -> None:
        super().__init__(f"no reply to {cmd!r} in time")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
