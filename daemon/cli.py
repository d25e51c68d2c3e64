"""``specklenetd``: the acquisition and live-inference daemon (foreground, logs to stderr).

Each subcommand lives in its own module exposing ``register(subparsers)``; its ``run(args, stop)``
returns the exit status. SIGTERM and SIGINT set ``stop``: the running job halts the devices, commits
what it recorded and returns (exit status 128 + signal number).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from typing import Any

import structlog

from specklenet.daemon.acquire_command import StopRequest
from specklenet.daemon.errors import ConfigError, FileFormatError, SpecklenetError

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES = ("specklenet.daemon.acquire_command", "specklenet.daemon.service.serve")

_HANDLER_NAME = "specklenetd"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specklenetd",
        description="specklenet daemon: drives the DMD and camera (or their optical twin), records "
        "training pairs and streams live reconstructions over ZeroMQ.",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def configure_logging(level: str, *, json_lines: bool = False) -> None:
    """structlog and the standard library's loggers, rendered as one stream of lines on stderr:
    human-readable, or one JSON object per line (``json_lines``: the service under systemd)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso"),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info if json_lines else _noop,
                structlog.processors.JSONRenderer()
                if json_lines
                else structlog.dev.ConsoleRenderer(colors=False),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)  # main() may run more than once in a process (tests)
    root.addHandler(handler)
    root.setLevel(level.upper())


def _noop(_logger: Any, _name: str, event: Any) -> Any:
    return event


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 success, 1 device failure, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    configure_logging(args.log_level)
    stop = StopRequest()

    def request_stop(signum: int, _frame: object) -> None:
        stop.signum = signum
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return int(args.run(args, stop))
    except SpecklenetError as error:
        print(f"specklenetd {args.command}: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError | FileFormatError) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
