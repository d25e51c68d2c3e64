"""``specklenetd serve``: the systemd entry point (foreground; JSON log lines on stderr).

Thin layer: load the settings, build the :class:`~.service.Service`, run it until SIGTERM/SIGINT or a
``shutdown`` command, close it. Exit status: 0 after a clean stop, 78 (EX_CONFIG) for a configuration
error (the unit does not restart on it: ``RestartPreventExitStatus=78``), 1 when the bench cannot be
opened or a socket cannot be bound (systemd may restart the service).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import structlog

from specklenet.daemon.errors import ConfigError, SpecklenetError
from specklenet.daemon.service.notify import Notifier
from specklenet.daemon.settings import load_settings

log = structlog.get_logger(__name__)

EX_CONFIG = 78
"""Exit status of a configuration error (sysexits.h); ``systemd/specklenetd.service`` does not restart."""

EPILOG = """\
examples:
  specklenetd serve --config /etc/specklenet/daemon.toml
  specklenetd serve --sim --config daemon.toml      # the optical twin instead of the DMD and camera

The [service] table of the settings file names the data directory (every path in a command lies in
it), the control socket (ROUTER: requests status, acquire, live, stop, load_model, shutdown) and the
stream socket (PUB: topics recon, speckle, status); see systemd/daemon.toml. The simulated bench is
selected by --sim or by dmd.backend = camera.backend = "sim" in the settings.

Exit status: 0 stopped cleanly (SIGTERM, SIGINT or the shutdown command), 1 the bench or a socket
could not be opened (a restart may help), 78 (EX_CONFIG) a configuration error, named in the message
(do not restart: fix the file).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the live service: hold the bench open, take commands, stream reconstructions",
        description="Run the specklenet service in the foreground: open the bench, bind the control and\n"
        "stream sockets, load the configured model and wait for commands (systemd Type=notify).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, required=True, help="settings file (TOML, see systemd/daemon.toml)"
    )
    parser.add_argument(
        "--sim", action="store_true", help="simulated bench: the optical twin instead of the DMD and camera"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, stop: Any) -> int:
    """Serve until ``stop`` is set; returns the exit status."""
    from specklenet.daemon.cli import configure_logging
    from specklenet.daemon.service.service import Service

    configure_logging(args.log_level, json_lines=not sys.stderr.isatty())
    notifier = Notifier.from_environment()
    try:
        settings = load_settings(args.config)
        if args.sim:
            settings = settings.simulated()
        service = Service(settings, stop=stop, notifier=notifier)
    except ConfigError as error:
        return _config_error(error)
    try:
        try:
            service.start()
        except ConfigError as error:
            return _config_error(error)
        except SpecklenetError as error:
            log.error("start_failed", error=str(error))
            print(f"specklenetd serve: error: {error}", file=sys.stderr)
            return 1
        service.run()
    finally:
        service.close()
    return 0


def _config_error(error: ConfigError) -> int:
    log.error("configuration_error", error=str(error))
    print(f"specklenetd serve: configuration error: {error}", file=sys.stderr)
    return EX_CONFIG
