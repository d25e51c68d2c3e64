"""Control commands: ``status``, ``acquire``, ``live``, ``stop``, ``load-model``, ``shutdown``.

Each sends one request (:mod:`specklenet.daemon.protocol`) and prints the daemon's answer: the result
as ``key: value`` lines (``--json``: one JSON document), or the refusal's reason on stderr. Paths are
the daemon's: relative to its data directory (the service's ``StateDirectory``), not to this shell.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from specklenet.clients.connection import (
    EXIT_OK,
    EXIT_STATUSES_HELP,
    ControlClient,
    add_connection_options,
    keys_from_args,
)

_PATHS_NOTE = "Paths are relative to the daemon's data directory."


def register(subparsers: Any) -> None:
    _command(subparsers, "status", "print the daemon's state, job and counters", _no_args)
    _command(subparsers, "acquire", f"record a pairs file for a targets file. {_PATHS_NOTE}", _acquire_args)
    _command(subparsers, "live", f"start live reconstruction over a targets file. {_PATHS_NOTE}", _live_args)
    _command(subparsers, "stop", "stop the running job (it commits what it recorded)", _no_args)
    _command(subparsers, "load-model", f"swap the live model between frames. {_PATHS_NOTE}", _load_model_args)
    _command(subparsers, "shutdown", "stop the job and end the daemon", _no_args)


def _command(
    subparsers: Any, name: str, help: str, add_args: Callable[[argparse.ArgumentParser], None]
) -> None:
    parser = subparsers.add_parser(name, help=help, description=help, epilog=EXIT_STATUSES_HELP)
    add_args(parser)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON document")
    add_connection_options(parser, uses_stream=False)
    parser.set_defaults(run=run, request=_REQUESTS[name])


def _no_args(parser: argparse.ArgumentParser) -> None:
    del parser


def _acquire_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", help="targets file (HDF5) to show on the DMD")
    parser.add_argument("-o", "--output", required=True, metavar="PAIRS", help="pairs file to write")
    parser.add_argument("--resume", action="store_true", help="record only the targets PAIRS is missing")


def _live_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="M", help="ONNX model to reconstruct with")
    parser.add_argument("--targets", required=True, metavar="T", help="targets file shown in a loop")
    parser.add_argument("--record", metavar="PAIRS", help="also record the pairs the job sees")


def _load_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="M", help="ONNX model")


def _acquire(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    request: dict[str, Any] = {"targets": args.targets, "output": args.output}
    if args.resume:
        request["resume"] = True
    return "acquire", request


def _live(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    request = {"model": args.model, "targets": args.targets}
    if args.record:
        request["record"] = args.record
    return "live", request


_REQUESTS: dict[str, Callable[[argparse.Namespace], tuple[str, dict[str, Any]]]] = {
    "status": lambda args: ("status", {}),
    "acquire": _acquire,
    "live": _live,
    "stop": lambda args: ("stop", {}),
    "load-model": lambda args: ("load_model", {"model": args.model}),
    "shutdown": lambda args: ("shutdown", {}),
}


def run(args: argparse.Namespace) -> int:
    cmd, request = args.request(args)
    with ControlClient(args.control, timeout_s=args.timeout, keys=keys_from_args(args)) as client:
        result = client.request(cmd, request)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for line in format_result(result):
            print(line)
    sys.stdout.flush()
    return EXIT_OK


def format_result(result: Any, prefix: str = "") -> list[str]:
    """``key: value`` lines, nested maps flattened with dots (``counters.lost: 0``)."""
    if not isinstance(result, dict):
        return [] if result is None else [str(result)]
    lines = []
    for key, value in result.items():
        if isinstance(value, dict) and value:
            lines += format_result(value, f"{prefix}{key}.")
        else:
            lines.append(f"{prefix}{key}: {json.dumps(value) if isinstance(value, list | dict) else value}")
    return lines
