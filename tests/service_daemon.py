"""Driving ``specklenetd serve`` as a subprocess in tests (not a test module): start it on the simulated
bench with a fake systemd notify socket, wait for READY=1, talk to it over the control channel and
subscribe to its stream. No sleeps: every wait is on a socket with a deadline.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import zmq

from specklenet.daemon import protocol

TIMEOUT_S = 120  # generous: a loaded 2-core machine, a model warm-up, the twin's first frames


class Daemon:
    """One ``specklenetd serve --sim`` process with its notify socket, a DEALER and helpers."""

    def __init__(self, workdir: Path, config: str, *, watchdog_usec: int = 0) -> None:
        self.workdir = workdir
        self.config = workdir / "daemon.toml"
        self.config.write_text(config)
        self.control = f"ipc://{workdir}/control"
        self.stream = f"ipc://{workdir}/stream"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(str(workdir / "notify"))
        self.notify.settimeout(0.2)
        self.notices: list[str] = []
        self._noticed = threading.Condition()
        self._reader = threading.Thread(target=self._read_notices, daemon=True)
        self._reader.start()
        env = {**os.environ, "NOTIFY_SOCKET": str(workdir / "notify")}
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.log = (workdir / "daemon.log").open("w")
        command = [
            sys.executable,
            "-m",
            "specklenet.daemon.cli",
            "serve",
            "--sim",
            "--config",
            str(self.config),
        ]
        self.process = subprocess.Popen(command, cwd=workdir, stderr=self.log, env=env)
        self.context = zmq.Context()
        self.dealer = self.context.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(self.control)
        self._ids = itertools.count(1)

    def _read_notices(self) -> None:
        """Read the notify socket all the time, as systemd does (a full socket would drop datagrams)."""
        while self.notify.fileno() >= 0:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._noticed:
                self.notices.append(message)
                self._noticed.notify_all()

    def wait_notice(self, prefix: str) -> str:
        """The first notify datagram (since start) starting with ``prefix``."""
        with self._noticed:
            found = self._noticed.wait_for(
                lambda: any(m.startswith(prefix) for m in self.notices), timeout=TIMEOUT_S
            )
        if not found:
            raise AssertionError(f"no {prefix} from the daemon; log:\n{self.log_text()}")
        return next(m for m in self.notices if m.startswith(prefix))

    def request(self, cmd: str, args: dict[str, Any] | None = None) -> protocol.Reply:
        ident = next(self._ids)
        self.dealer.send(protocol.encode_request(cmd, args, id=ident))
        return self.reply(ident)

    def reply(self, ident: int | None = None) -> protocol.Reply:
        while True:
            if not self.dealer.poll(TIMEOUT_S * 1000):
                raise AssertionError(f"no reply (daemon alive: {self.alive}); log:\n{self.log_text()}")
            reply = protocol.decode_reply(self.dealer.recv())
            if ident is None or reply.id == ident:
                return reply

    def ok(self, cmd: str, args: dict[str, Any] | None = None) -> Any:
        reply = self.request(cmd, args)
        assert reply.ok, (cmd, reply, self.log_text()[-3000:])
        return reply.result

    def subscriber(self, *topics: str, rcvhwm: int = 1000) -> zmq.Socket:
        sub = self.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.RCVHWM, rcvhwm)
        for topic in topics:
            sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sub.connect(self.stream)
        return sub

    def receive(self, sub: zmq.Socket) -> protocol.DataMessage:
        if not sub.poll(TIMEOUT_S * 1000):
            raise AssertionError(f"no stream message (daemon alive: {self.alive}); log:\n{self.log_text()}")
        return protocol.decode_data(sub.recv_multipart())

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        self.log.flush()
        return (self.workdir / "daemon.log").read_text()

    def terminate(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(TIMEOUT_S)

    def close(self) -> None:
        if self.alive:
            self.process.kill()
            self.process.wait()
        self.context.destroy(linger=0)
        self.notify.close()
        self.log.close()
