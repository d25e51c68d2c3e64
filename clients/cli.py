"""``specklenet``: thin ZeroMQ clients of the daemon (control, live watch, recording, browser view).

Each subcommand lives in its own module exposing ``register(subparsers)``; the parser it adds sets
``run(args) -> int``, the exit status. Heavy modules (rich, h5py, aiohttp) are imported inside the
commands that need them, so ``specklenet status`` starts fast; nothing here imports torch, and of the
daemon only :mod:`specklenet.daemon.protocol` (tests/test_architecture.py, tests/test_clients_cli.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from specklenet.clients.connection import EXIT_STATUSES_HELP, EXIT_USAGE, ClientError

EXIT_BROKEN_PIPE = 128 + 13
"""The reader of stdout went away (``specklenet watch --json | head``): the status of a filter killed by
SIGPIPE, which Python ignores and turns into BrokenPipeError."""

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES = (
    "specklenet.clients.control",
    "specklenet.clients.watch",
    "specklenet.clients.record",
    "specklenet.clients.view",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specklenet",
        description="Clients of the specklenet daemon (ZeroMQ, msgpack): control it, watch and record "
        "its stream, view it in a browser. Every command takes --control/--stream ADDRESS.",
        epilog=EXIT_STATUSES_HELP,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (see EXIT_STATUSES_HELP)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args))
    except ClientError as error:
        print(f"specklenet {args.command}: error: {error}", file=sys.stderr)
        return error.exit_status
    except BrokenPipeError:
        # Quietly, like any Unix filter: no traceback. Point stdout at /dev/null so that the
        # interpreter's final flush of what is still buffered does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
