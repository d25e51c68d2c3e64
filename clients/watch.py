"""``specklenet watch``: a live terminal view of the stream, or ``--json`` lines for scripts.

The view (rich) shows the reconstruction rate, the latency percentiles (receipt here minus capture,
both on the host clock), the last and running PCC, the daemon's own counters from its ``status``
heartbeat (frames skipped by the inference consumer, frames lost by the camera, ...), the sequence
gaps this client saw, and daemon restarts (it reconnects by itself and reports the gap).

``--json`` prints one JSON object per line, flushed: ``{"event": "recon", ...}`` for every
reconstruction (seq, frame_id, picture, target_index, pcc, latency_ms, t_capture_ns, t_receive_ns,
model, case, session), and ``{"event": "gap" | "restart", ...}`` (see stream.Gap),
``{"event": "connected" | "disconnected", "t_ns"}`` and ``{"event": "malformed", "error"}`` lines
between them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from specklenet.clients.connection import (
    EXIT_OK,
    EXIT_STATUSES_HELP,
    StopOnSignals,
    add_connection_options,
    keys_from_args,
    subscribe,
)
from specklenet.clients.stream import (
    ConnectionEvent,
    Event,
    LiveFigures,
    Malformed,
    Received,
    StreamReader,
)

SILENT_AFTER_S = 3.0
"""No message (not even the status heartbeat) for this long: the view says the daemon is silent."""


def register(subparsers: Any) -> None:
    description = "live view of the daemon's reconstructions in the terminal (Ctrl-C ends it)"
    parser = subparsers.add_parser(
        "watch", help=description, description=description, epilog=EXIT_STATUSES_HELP
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON line per reconstruction (and per event)"
    )
    parser.add_argument("--count", type=int, metavar="N", help="end after N reconstructions")
    add_connection_options(parser, uses_control=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    reader = StreamReader(subscribe(args.stream, ("recon", "status"), keys=keys_from_args(args)))
    try:
        with StopOnSignals() as stop:
            if args.json:
                _json_lines(reader, stop.event, args.count)
            else:
                _terminal(reader, stop.event, args.count, args.stream)
    finally:
        reader.close()
    return EXIT_OK


def json_line(event: Event) -> dict[str, Any] | None:
    """The --json line of an event; None for status messages (they feed only the terminal view)."""
    if isinstance(event, ConnectionEvent):
        return {"event": event.name, "t_ns": event.t_ns}
    if isinstance(event, Malformed):
        return {"event": "malformed", "error": event.error, "t_receive_ns": event.t_receive_ns}
    if event.message.topic != "recon":
        return None
    header = event.message.header
    fields = ("seq", "frame_id", "picture", "target_index", "pcc", "t_capture_ns", "model", "case")
    line = {"event": "recon", **{name: header.get(name) for name in fields}}
    line["latency_ms"] = (event.t_receive_ns - header["t_capture_ns"]) / 1e6
    line["t_receive_ns"] = event.t_receive_ns
    return line


def _json_lines(reader: StreamReader, stop: Any, count: int | None) -> None:
    recons = 0
    while not stop.is_set() and (count is None or recons < count):
        for event in reader.read(0.2):
            if isinstance(event, Received) and event.gap is not None:
                print(json.dumps({"event": event.gap.kind, **event.gap.as_dict()}))
            line = json_line(event)
            if line is not None:
                line.setdefault("session", reader.tracker.session)
                print(json.dumps(line))
                recons += line["event"] == "recon"
        sys.stdout.flush()


def _terminal(reader: StreamReader, stop: Any, count: int | None, address: str) -> None:
    from rich.live import Live

    figures = LiveFigures()
    status: dict[str, Any] = {}
    notes: list[str] = []
    with Live(render(figures, status, reader, notes, address), refresh_per_second=8, transient=False) as live:
        while not stop.is_set() and (count is None or figures.recons < count):
            for event in reader.read(0.1):
                if isinstance(event, Received):
                    if event.gap is not None:
                        gap = event.gap
                        notes.append(f"{_clock(gap.t_receive_ns)} {gap.kind} in {gap.topic}: lost {gap.lost}")
                    if event.message.topic == "recon":
                        figures.add(event.message.header, event.t_receive_ns)
                    elif event.message.topic == "status":
                        status = event.message.header
                elif isinstance(event, ConnectionEvent):
                    notes.append(f"{_clock(event.t_ns)} daemon {event.name}")
                else:
                    notes.append(f"{_clock(event.t_receive_ns)} malformed message: {event.error}")
            del notes[:-6]
            live.update(render(figures, status, reader, notes, address))
    if not live.console.is_terminal:
        live.console.line()  # rich ends a Live without a newline when not on a terminal


def render(
    figures: LiveFigures, status: dict[str, Any], reader: StreamReader, notes: list[str], address: str
) -> Any:
    """The rich renderable of the terminal view."""
    from rich.console import Group
    from rich.table import Table

    table = Table(title=f"specklenet stream {address}", show_header=False, expand=False)
    table.add_column(style="bold")
    table.add_column()
    silent = _silence_s(reader)
    state = status.get("state", "?")
    if silent is not None and silent > SILENT_AFTER_S:
        state = f"[red]silent for {silent:.0f} s[/red] (last state: {state})"
    elif not reader.connection.connected and reader.last_receive_ns is None:
        state = "[yellow]waiting for the daemon[/yellow]"
    table.add_row("daemon", str(state))
    header = figures.last_header
    table.add_row("model", f"{header.get('model', '-')} (case {header.get('case', '-')})")
    table.add_row("reconstructions", f"{figures.recons}  at {figures.rate_hz:.1f}/s")
    latency = figures.latency_percentiles_ms()
    if latency:
        text = "  ".join(f"{name} {value:.1f}" for name, value in latency.items())
        table.add_row("latency ms", text)
    table.add_row("PCC last / running", f"{_fmt(figures.last_pcc)} / {_fmt(figures.running_pcc)}")
    table.add_row("target", f"{header.get('target_index', '-')} (frame {header.get('frame_id', '-')})")
    tracker = reader.tracker
    gaps = f"{len(tracker.gaps)} gaps, {tracker.total_lost} messages lost, {tracker.restarts} daemon restarts"
    table.add_row("stream here", gaps)
    for name, value in daemon_counters(status).items():
        table.add_row(f"daemon {name}", str(value))
    if reader.malformed:
        table.add_row("malformed", str(reader.malformed))
    return Group(table, *notes)


def daemon_counters(status: dict[str, Any]) -> dict[str, int | float]:
    """The heartbeat's frame counters worth a row (frames, received, accepted, lost, skipped, ...):
    numbers as they are, a map of counts (rejected by reason) as its total; other maps left out."""
    rows: dict[str, int | float] = {}
    for name, value in sorted(status.get("counters", {}).items()):
        if isinstance(value, int | float) and not isinstance(value, bool):
            rows[name] = value
        elif isinstance(value, dict) and value and all(isinstance(v, int) for v in value.values()):
            rows[name] = sum(value.values())
    return rows


def _silence_s(reader: StreamReader) -> float | None:
    if reader.last_receive_ns is None:
        return None
    return (time.time_ns() - reader.last_receive_ns) / 1e9


def _clock(t_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t_ns / 1e9))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
