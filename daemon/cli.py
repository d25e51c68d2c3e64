"""``specklenetd``: the acquisition and live-inference daemon (foreground, logs to stderr).

Subcommands arrive with the daemon issues; for now only the command skeleton exists.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specklenetd",
        description="specklenet daemon: drives the DMD and camera (or their optical twin), records "
        "training pairs and streams live reconstructions over ZeroMQ.",
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
