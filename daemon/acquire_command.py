"""``specklenetd acquire``: record a pairs file from a targets file on the bench (or its simulation).

Thin layer: parse, load the settings once, open the pairs file and the devices, run
:class:`~specklenet.daemon.acquire_job.AcquireJob` with a progress bar, report.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from tqdm import tqdm

from specklenet.daemon.acquire_job import AcquireJob, Progress
from specklenet.daemon.devices import make_bench
from specklenet.daemon.errors import ConfigError, FileFormatError
from specklenet.daemon.records import PairsWriter, Targets, read_targets
from specklenet.daemon.settings import DaemonSettings, load_settings

log = structlog.get_logger(__name__)

EPILOG = """\
examples:
  specklenetd acquire mnist-train.h5 -o mnist-train-pairs.h5 --config /etc/specklenet/daemon.toml
  specklenetd acquire mnist-train.h5 -o twin-pairs.h5 --sim          # the optical twin, no hardware
  specklenetd acquire mnist-train.h5 -o mnist-train-pairs.h5 --resume  # after a crash or Ctrl-C

Every frame is matched to the target shown when it was exposed; lost or doubtful frames are shown
and recorded again before the command ends. The pairs file is committed at least every second, so
after a crash, a kill or Ctrl-C the frames recorded so far are in it and --resume records only the
missing ones. Exit status: 0 complete, 1 device failure or targets still missing (resumable),
2 bad command line, settings or files, 128+N stopped by signal N (resumable).
"""


# Camera settings that change what a frame holds: a file's frames must share them (--resume checks).
CAMERA_KEYS = ("exposure_us", "pixel_format", "roi_px", "roi_offset_px", "binning")


class StopRequest(threading.Event):
    """Set by the signal handler; remembers which signal asked to stop."""

    signum = 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "acquire",
        help="record a pairs file: show each target on the DMD and record its speckle",
        description="Show every target of TARGETS on the DMD, record the camera's speckle for each and\n"
        "write them to a pairs file (HDF5) for training.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", type=Path, help="targets file (HDF5), from `specklenet-train targets`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="pairs file to write")
    parser.add_argument(
        "--sim", action="store_true", help="simulated bench: the optical twin instead of the DMD and camera"
    )
    parser.add_argument("--config", type=Path, help="settings file (TOML, see systemd/daemon.toml)")
    parser.add_argument("--resume", action="store_true", help="record the missing targets of a pairs file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, stop: StopRequest) -> int:
    """Run the command; returns the exit status (errors raise SpecklenetError subclasses)."""
    settings = load_settings(args.config)
    if args.sim:
        settings = settings.simulated()
    targets = read_targets(args.targets)
    twin = _twin(settings, targets) if settings.dmd.backend == "sim" else None
    # As it reads back from the file (JSON: tuples become lists), so that --resume can compare.
    acquisition = json.loads(json.dumps({**(twin.describe() if twin else {}), "daemon": settings.describe()}))
    dmd, camera = make_bench(settings, twin=twin)
    with dmd, camera:  # devices first: a bench that fails to open leaves no file behind
        writer = _open_pairs(args, targets, settings, acquisition)
        with writer, _ProgressBar(len(targets), disable=args.no_progress) as bar:
            job = AcquireJob(writer, dmd, camera, settings, progress=bar.update, stop=stop)
            result = job.run()
    _summary(args.output, result)
    return 128 + stop.signum if result.interrupted else 0


def _twin(settings: DaemonSettings, targets: Targets) -> Any:
    from specklenet.daemon.twin import Twin  # numpy/scipy optics: only for the simulated bench

    twin = Twin(settings.twin, seed=settings.sim.seed)
    if targets.canvas_shape != twin.canvas_shape:
        raise ConfigError(
            f"the targets are {targets.canvas_shape} canvases; the twin shows {twin.canvas_shape} "
            "(twin.canvas_px)"
        )
    return twin


def _open_pairs(
    args: argparse.Namespace, targets: Targets, settings: DaemonSettings, acquisition: dict[str, Any]
) -> PairsWriter:
    source = "twin" if settings.dmd.backend == "sim" else "hardware"
    flush = settings.acquisition.flush_interval_s
    if not args.resume:
        return PairsWriter.create(
            args.output, targets, source=source, acquisition=acquisition, flush_interval_s=flush
        )
    writer = PairsWriter.resume(args.output, flush_interval_s=flush)
    try:
        _check_resumable(args, writer, targets, source, acquisition)
    except BaseException:
        writer.close()
        raise
    return writer


def _check_resumable(
    args: argparse.Namespace, writer: PairsWriter, targets: Targets, source: str, acquisition: dict[str, Any]
) -> None:
    if not np.array_equal(writer.targets.canvases, targets.canvases):
        raise FileFormatError(f"{args.output}: was recorded for other targets than {args.targets}")
    if writer.source != source:
        raise FileFormatError(f"{args.output}: holds {writer.source} frames, this run records {source} ones")
    recorded = writer.acquisition.get("daemon", {}).get("camera", {})
    for key in CAMERA_KEYS:  # frames of one file must come from one camera set-up
        if key in recorded and recorded[key] != acquisition["daemon"]["camera"][key]:
            raise ConfigError(
                f"{args.output}: was recorded with camera.{key} = {recorded[key]!r}, this run has "
                f"{acquisition['daemon']['camera'][key]!r}; resume it with the same camera.{key}"
            )
    for key in ("twin_config", "seed"):  # frames of one file must come from one twin
        if key in acquisition and writer.acquisition.get(key) != acquisition[key]:
            raise ConfigError(
                f"{args.output}: was recorded with another twin ({key} differs); use the same [twin] table "
                "and sim.seed to resume it"
            )


class _ProgressBar:
    """tqdm on stderr (off when stderr is not a terminal or with --no-progress)."""

    def __init__(self, total: int, *, disable: bool) -> None:
        self._bar = tqdm(total=total, unit="frame", desc="acquire", file=sys.stderr, disable=disable or None)

    def update(self, state: Progress) -> None:
        self._bar.n = state.done
        self._bar.set_postfix(lost=state.lost, rerecorded=state.rerecorded, refresh=False)
        self._bar.refresh()

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()


def _summary(path: Path, state: Progress) -> None:
    reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(state.reasons.items())) or "none"
    status = "interrupted" if state.interrupted else "complete"
    print(
        f"specklenetd acquire: {path}: {status}, {state.done}/{state.total} targets recorded "
        f"({state.recorded} in this run, {state.rerecorded} of them re-recorded; "
        f"lost or doubtful frames: {state.lost} [{reasons}]; device errors: {state.device_errors})"
        + ("; finish with --resume" if state.missing else ""),
        file=sys.stderr,
    )
