"""Helpers of the client tests: run a client as a process, read its lines, wait for conditions."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

DEADLINE_S = 60.0
"""The longest a test waits for something that should happen (a loaded machine may be slow)."""


def wait_for(condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S) -> Any:
    """Poll ``condition`` until it returns something true; fails naming ``what`` after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


class ClientProcess:
    """``specklenet ARGS`` in a subprocess; stdout lines are collected on a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "specklenet.clients.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stopped: tuple[int, str] | None = None

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def json_lines(self, until: Callable[[dict[str, Any]], bool], what: str) -> list[dict[str, Any]]:
        """JSON lines read until one satisfies ``until`` (included)."""
        seen = []
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(json.loads(line))
            if until(seen[-1]):
                return seen
        status, err = self.stop()
        shown = [line for line in seen[:-5] if line.get("event") != "recon"] + seen[-5:]
        lines = "".join(json.dumps(line) + "\n" for line in shown)
        raise AssertionError(
            f"no {what} in the output (exit {status}); its events and last lines:\n{lines}stderr: {err}"
        )

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig`` (if still running) and return the exit status and stderr; idempotent."""
        if self._stopped is not None:
            return self._stopped
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        assert self.process.stderr is not None and self.process.stdout is not None
        err = self.process.stderr.read()
        self._reader.join(DEADLINE_S)  # EOF: the process is gone
        self.process.stderr.close()
        self.process.stdout.close()
        self._stopped = (self.process.returncode, err)
        return self._stopped
