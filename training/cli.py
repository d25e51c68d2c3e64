"""``specklenet-train``: build the paper's datasets, simulate, train, export, evaluate, reproduce.

Each subcommand lives in its own module that exposes ``register(subparsers)``; the module is imported
only when listed here, and heavy imports (torch) happen inside the command's ``run`` function so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator

from specklenet.daemon.errors import SpecklenetError

# Subcommand modules, in the order --help lists them.
COMMAND_MODULES = (
    "specklenet.training.demo",
    "specklenet.training.data_cli",
    "specklenet.training.model_cli",
    "specklenet.training.ablate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specklenet-train",
        description="Offline side of specklenet: datasets and cases of Zhang et al. (cross-dataset "
        "generalisation through a diffuser), the optical twin, U-Net training and ONNX export.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 success, 1 failure, 2 usage or input error)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except SpecklenetError as error:
        print(f"specklenet-train {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"specklenet-train {args.command}: interrupted", file=sys.stderr)
        return 130


@contextlib.contextmanager
def logging_to_stderr() -> Iterator[None]:
    """Progress lines of the library (epoch summaries, stages) on stderr, without breaking tqdm bars."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    logger = logging.getLogger("specklenet")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logging_redirect_tqdm([logger]):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


if __name__ == "__main__":
    sys.exit(main())
