"""``specklenet record -o stream.h5``: record the daemon's stream to HDF5 until SIGINT/SIGTERM.

Records ``recon`` and ``status`` (``--speckle``: the raw frames too) with every header, the gaps in
each topic's sequence and the daemon restarts it lived through (it reconnects by itself), crash-safely
(layout and guarantees: :mod:`specklenet.clients.stream_file`). On SIGINT/SIGTERM it reads what already
arrived, commits everything, stores and prints a summary and exits 0. The subscriber's queue is deep
(``--hwm``) so that a slow disk stalls the recorder, not the stream; messages the daemon dropped before
they reached us show up as gaps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from specklenet.clients.connection import (
    EXIT_OK,
    EXIT_STATUSES_HELP,
    ClientError,
    StopOnSignals,
    add_connection_options,
    keys_from_args,
    subscribe,
)
from specklenet.clients.stream import ConnectionEvent, Malformed, Received, StreamReader


def register(subparsers: Any) -> None:
    description = "record the daemon's stream (reconstructions, headers, gaps) to HDF5 until stopped"
    parser = subparsers.add_parser(
        "record",
        help=description,
        description=description + " (Ctrl-C or SIGTERM ends it cleanly).",
        epilog=EXIT_STATUSES_HELP,
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="STREAM.h5", help="new file")
    parser.add_argument("--speckle", action="store_true", help="also record the raw camera frames")
    parser.add_argument("--count", type=int, metavar="N", help="stop after N reconstructions")
    parser.add_argument("--duration", type=float, metavar="SECONDS", help="stop after this long")
    parser.add_argument(
        "--flush-interval", type=float, default=0.5, metavar="SECONDS", help="commit at least this often"
    )
    parser.add_argument("--hwm", type=int, default=100_000, help="messages queued here (default %(default)s)")
    add_connection_options(parser, uses_control=False)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from specklenet.clients.stream_file import StreamWriter

    topics = ("recon", "speckle", "status") if args.speckle else ("recon", "status")
    keys = keys_from_args(args)
    try:
        writer = StreamWriter(
            args.output, topics, stream_address=args.stream, flush_interval_s=args.flush_interval
        )
    except (OSError, ValueError) as error:
        raise ClientError(f"cannot create {args.output}: {error}") from None
    reader = StreamReader(subscribe(args.stream, topics, keys=keys, rcvhwm=args.hwm))
    started = time.monotonic()
    summary: dict[str, Any] = {}
    try:
        with StopOnSignals() as stop:
            print(f"recording {', '.join(topics)} from {args.stream} to {args.output}", file=sys.stderr)
            recorder = _Recorder(writer, reader)
            deadline = None if args.duration is None else started + args.duration
            while not stop.event.is_set():
                if args.count is not None and recorder.recons >= args.count:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                recorder.handle(reader.read(0.1))
                writer.flush_if_due()
            # Keep what already arrived: drain the socket before closing.
            while events := reader.read(0):
                recorder.handle(events)
            summary = recorder.summary(time.monotonic() - started)
    finally:
        reader.close()
        writer.close(summary)
    print(describe(summary, args.output), file=sys.stderr)
    return EXIT_OK


class _Recorder:
    def __init__(self, writer: Any, reader: StreamReader) -> None:
        self.writer, self.reader = writer, reader
        self.recons = 0
        self.disconnects = 0

    def handle(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, Received):
                if event.gap is not None:
                    self.writer.add_gap(event.gap)
                    print(_gap_line(event.gap), file=sys.stderr)
                self.writer.add(
                    event.message, t_receive_ns=event.t_receive_ns, session=self.reader.tracker.session
                )
                self.recons += event.message.topic == "recon"
            elif isinstance(event, ConnectionEvent):
                self.disconnects += event.name == "disconnected"
                print(f"daemon {event.name}", file=sys.stderr)
            elif isinstance(event, Malformed):
                print(f"skipped a malformed message: {event.error}", file=sys.stderr)

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        tracker = self.reader.tracker
        return {
            "duration_s": round(elapsed_s, 3),
            "messages": dict(tracker.received),
            "gaps": len(tracker.gaps),
            "lost": dict(tracker.lost),
            "restarts": tracker.restarts,
            "disconnects": self.disconnects,
            "malformed": self.reader.malformed,
        }


def _gap_line(gap: Any) -> str:
    if gap.kind == "gap":
        return f"gap in {gap.topic}: seq {gap.after_seq} -> {gap.next_seq}, {gap.lost} lost"
    return (
        f"daemon restarted ({gap.topic} seq {gap.after_seq} -> {gap.next_seq}); "
        f"the new run's first {gap.lost} missed"
    )


def describe(summary: dict[str, Any], path: Path) -> str:
    messages = ", ".join(f"{n} {t}" for t, n in summary.get("messages", {}).items()) or "no messages"
    return (
        f"recorded {messages} in {summary.get('duration_s', 0):.1f} s to {path}; "
        f"{summary.get('gaps', 0)} gaps, lost {json.dumps(summary.get('lost', {}))}, "
        f"{summary.get('restarts', 0)} daemon restarts"
    )
