"""The demo's two daemon jobs, watched as a client watches them: ``acquire`` (a progress bar fed by the
``status`` heartbeat) and ``live`` (reconstructions and their PCC streaming on ``recon``, the camera's
frames on ``speckle``, a rich live view like ``specklenet watch``).

Public names: :func:`acquire`, :func:`live`, :class:`LiveResult`.

A job's end is read from a status published after the command's reply arrived (``t_publish_ns``), so
a heartbeat that left the daemon before the job started is never taken for its end. When no heartbeat
comes for a second (a subscriber still joining), the demo asks ``status`` on the control channel.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from specklenet.training.demo_daemon import DaemonError, DaemonProcess


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
    )


def _status_after(daemon: DaemonProcess, sub: Any, since_ns: int) -> dict[str, Any]:
    """The next status published after ``since_ns`` (from the stream, else asked for)."""
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        message = daemon.receive(sub, 0.25)
        if message is not None and message.topic == "status" and message.header["t_publish_ns"] > since_ns:
            return message.header
    return daemon.request("status")


def acquire(daemon: DaemonProcess, console: Console, *, targets: str, output: str, resume: bool) -> dict:
    """Run ``acquire`` and show its progress until the daemon is idle again; returns the job's result.

    Raises :class:`DaemonError` when the job failed or left targets unrecorded.
    """
    sub = daemon.subscribe("status")
    try:
        args = {"targets": targets, "output": output, **({"resume": True} if resume else {})}
        started = daemon.request("acquire", args)
        since = time.time_ns()
        with _progress(console) as bar:
            task = bar.add_task(
                "acquire (twin bench)", total=started["total"], completed=started["done"], note=""
            )
            while True:
                status = _status_after(daemon, sub, since)
                running = status.get("running") or {}
                if status["state"] == "acquire" and running:
                    note = f"{running['rate_hz']:.0f} frames/s, {running['lost']} lost"
                    bar.update(task, completed=running["done"], note=note)
                elif status["state"] == "idle":
                    last = status["last"] or {}
                    result = last.get("result") or {}
                    bar.update(task, completed=result.get("done", 0))
                    break
    finally:
        sub.close(linger=0)
    if not last.get("ok"):
        raise DaemonError(f"acquire failed: {last.get('error')}; the log: {daemon.log_path}")
    if result.get("missing") or result.get("interrupted"):
        raise DaemonError(f"acquire ended with {result.get('missing')} targets unrecorded: {result}")
    return result


@dataclass
class LiveResult:
    """What the demo saw of the live job, per target index of the displayed set."""

    pccs: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    reconstructions: dict[int, np.ndarray] = field(default_factory=dict)
    speckle: dict[int, np.ndarray] = field(default_factory=dict)
    received: int = 0
    latency_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    provider: str = ""
    status: dict[str, Any] = field(default_factory=dict)

    def covered(self, rounds: int) -> int:
        """Targets reconstructed (and scored) at least ``rounds`` times."""
        return sum(len(values) >= rounds for values in self.pccs.values())

    def mean_pcc(self) -> float:
        """The mean over targets of each target's mean live PCC (every target weighs the same)."""
        return (
            float(np.mean([np.mean(values) for values in self.pccs.values()])) if self.pccs else float("nan")
        )

    def target_pcc(self, index: int) -> float:
        values = self.pccs.get(index)
        return float(np.mean(values)) if values else float("nan")


def live(
    daemon: DaemonProcess,
    console: Console,
    *,
    model: str,
    targets: str,
    count: int,
    baseline: float,
    rounds: int,
    min_s: float,
    max_s: float,
) -> LiveResult:
    """Run ``live`` until each of the ``count`` targets was reconstructed ``rounds`` times (and at least
    ``min_s``, at most ``max_s`` seconds), showing the stream; then ``stop`` and wait for idle."""
    sub = daemon.subscribe("recon", "speckle", "status")
    result = LiveResult()
    try:
        daemon.request("live", {"model": model, "targets": targets})
        start = time.monotonic()
        bar = _progress(console)
        task = bar.add_task("live: targets reconstructed", total=count, note="")
        with Live(_view(result, bar, baseline), console=console, refresh_per_second=8) as view:
            while True:
                elapsed = time.monotonic() - start
                if elapsed >= max_s or (elapsed >= min_s and result.covered(rounds) >= count):
                    break
                message = daemon.receive(sub, 0.2)
                if message is not None:
                    _take(result, message)
                result.seconds = time.monotonic() - start
                bar.update(task, completed=result.covered(rounds), note=f"{result.received} frames")
                view.update(_view(result, bar, baseline))
        if not console.is_terminal:
            console.line()  # rich ends a Live without a newline when not on a terminal
        daemon.request("stop")
        since, deadline = time.time_ns(), time.monotonic() + daemon.timeout_s
        while (status := _status_after(daemon, sub, since))["state"] != "idle":
            if time.monotonic() > deadline:  # every status read above waits on a socket: no busy loop
                raise DaemonError(f"the live job did not stop within {daemon.timeout_s:.0f} s")
        result.status = status
    finally:
        sub.close(linger=0)
    return result


def _take(result: LiveResult, message: Any) -> None:
    header = message.header
    index = header.get("target_index")
    if message.topic == "recon":
        result.received += 1
        result.provider = str(header.get("provider", result.provider))
        result.latency_ms.append((time.time_ns() - header["t_capture_ns"]) / 1e6)
        if index is not None and header.get("pcc") is not None:
            result.pccs[index].append(float(header["pcc"]))
            result.reconstructions[index] = np.array(message.array)
    elif message.topic == "speckle" and index is not None and header.get("accepted", True):
        result.speckle[index] = np.array(message.array)
    elif message.topic == "status":
        result.status = header


def _view(result: LiveResult, bar: Progress, baseline: float) -> Group:
    """The live view: the progress bar and a table as ``specklenet watch`` shows it."""
    table = Table(show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    rate = result.received / result.seconds if result.seconds > 0 else 0.0
    table.add_row("reconstructions", f"{result.received} at {rate:.1f}/s ({result.provider or '-'})")
    if result.latency_ms:
        p50, p95 = np.percentile(result.latency_ms[-500:], [50, 95])
        table.add_row("latency", f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (capture → here)")
    last = [values[-1] for values in result.pccs.values()]
    table.add_row(
        "live PCC (held-out targets)",
        f"{result.mean_pcc():.3f} over {len(result.pccs)} targets"
        + (f", last {last[-1]:.3f}" if last else ""),
    )
    table.add_row("constant-output baseline", f"{baseline:.3f}")
    counters = (result.status.get("counters") or {}) if result.status else {}
    daemon_counts = {key: counters[key] for key in ("frames", "skipped", "lost") if key in counters}
    if daemon_counts:
        table.add_row("daemon", ", ".join(f"{key} {value}" for key, value in daemon_counts.items()))
    return Group(bar, table)
