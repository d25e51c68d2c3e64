"""The systemd notification protocol (sd_notify(3)) in a few lines, without a dependency.

``Notifier.from_environment()`` reads ``NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket)
and ``WATCHDOG_USEC`` / ``WATCHDOG_PID``; without them every call is a no-op, so the service runs the
same in a terminal. Messages: ``READY=1`` once the bench is open and the model warm, ``STATUS=...``
(a human line: job, rate), ``WATCHDOG=1`` whenever the frame loop made progress (the caller decides:
a stalled loop must stop feeding it), ``STOPPING=1`` on SIGTERM.

Sends never block: a datagram that does not fit the receiver's queue (a reader that stalled) is dropped
and counted (``dropped``). A failing send is logged once and otherwise ignored: systemd going away must
not stop the bench, nor a full socket the service loop.
Thread-safe (one datagram per call).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    """Sends notifications to systemd's socket (or nowhere when ``address`` is None).

    Args:
        address: the NOTIFY_SOCKET value (``/run/...`` or ``@abstract``), or None.
        watchdog_interval_s: systemd's watchdog timeout (WATCHDOG_USEC), or None when off.
        clock: monotonic seconds (rate-limits the watchdog pings).
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        watchdog_interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.watchdog_interval_s = watchdog_interval_s
        self._clock = clock
        self._last_ping = -float("inf")
        self._warned = False
        self.dropped = 0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd's environment describes (no-op outside systemd)."""
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET") or None
        interval = None
        pid = environ.get("WATCHDOG_PID")
        if environ.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            interval = int(environ["WATCHDOG_USEC"]) / 1e6
        return cls(address, watchdog_interval_s=interval)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def ready(self, status: str = "") -> None:
        self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, line: str) -> None:
        self.send(f"STATUS={line}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        """``WATCHDOG=1``, at most every quarter of the watchdog interval (systemd asks for < half)."""
        if self.watchdog_interval_s is None:
            return
        now = self._clock()
        if now - self._last_ping >= self.watchdog_interval_s / 4:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def send(self, message: str) -> None:
        """One datagram to the notify socket."""
        if self.address is None:
            return
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.connect(target)
                sock.send(message.encode())
        except OSError as error:
            self.dropped += 1
            if not self._warned:
                self._warned = True
                log.warning("notify_failed", socket=self.address, error=str(error))
