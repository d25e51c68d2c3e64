"""``specklenet``: thin ZeroMQ clients of the daemon (control, live watch, recording, viewing).

The clients arrive with the streaming issue; they import :mod:`specklenet.daemon.protocol` only.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specklenet", description="Clients of the specklenet daemon (ZeroMQ, msgpack)."
    )
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
