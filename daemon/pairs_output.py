"""Opening the pairs file a job records into: created new, or resumed only when it is the same job.

One place for ``specklenetd acquire`` and the service's ``acquire`` and ``live … record`` jobs, so that
every path stores the camera's binning and dark offset and refuses the same mismatches on resume:
other targets, frames from another source (twin vs hardware), another camera set-up (exposure,
pixel format, ROI, binning: the frames would not be comparable), another twin (diffuser or seed).

Functions; no state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.errors import ConfigError, FileFormatError
from specklenet.daemon.records import PairsWriter, Targets
from specklenet.daemon.settings import DaemonSettings

CAMERA_KEYS = ("exposure_us", "pixel_format", "roi_px", "roi_offset_px", "binning")
"""Camera settings every frame of one file must share."""


def describe(settings: DaemonSettings, twin_description: dict[str, Any]) -> dict[str, Any]:
    """The ``acquisition`` provenance of a pairs file: the twin's description (empty on hardware) and
    the daemon's settings, as JSON would give them back."""
    return json.loads(json.dumps({**twin_description, "daemon": settings.describe()}))


def open_pairs(
    path: Path,
    targets: Targets,
    settings: DaemonSettings,
    acquisition: dict[str, Any],
    *,
    resume: bool,
    targets_name: str = "the targets",
) -> PairsWriter:
    """A writer for ``path``: a new file, or with ``resume`` the existing one after checking it was
    recorded for the same targets, source, camera set-up and twin.

    Raises:
        FileFormatError: other targets or another source; also the writer's own refusals (the file
            exists, is locked by a live writer or held by a reader).
        ConfigError: another camera set-up or twin (the message names the setting).
    """
    source = "twin" if settings.dmd.backend == "sim" else "hardware"
    flush = settings.acquisition.flush_interval_s
    if not resume:
        # The file stores binned sums; its attributes say how to turn them back into mean counts.
        # The bench's black level is not configured yet: its dark offset stays the writer's default.
        dark = {"dark_offset_counts": settings.twin.camera.dark_offset_counts} if source == "twin" else {}
        return PairsWriter.create(
            path,
            targets,
            source=source,
            acquisition=acquisition,
            binning=settings.camera.binning,
            flush_interval_s=flush,
            **dark,
        )
    writer = PairsWriter.resume(path, flush_interval_s=flush)
    try:
        check_resumable(path, writer, targets, source, acquisition, targets_name=targets_name)
    except BaseException:
        writer.close()
        raise
    return writer


def check_resumable(
    path: Path,
    writer: PairsWriter,
    targets: Targets,
    source: str,
    acquisition: dict[str, Any],
    *,
    targets_name: str = "the targets",
) -> None:
    """Raise unless ``writer``'s file was recorded like this job would record it (see :func:`open_pairs`)."""
    if not np.array_equal(writer.targets.canvases, targets.canvases):
        raise FileFormatError(f"{path}: was recorded for other targets than {targets_name}")
    if writer.source != source:
        raise FileFormatError(f"{path}: holds {writer.source} frames, this run records {source} ones")
    recorded = writer.acquisition.get("daemon", {}).get("camera", {})
    for key in CAMERA_KEYS:
        if key in recorded and recorded[key] != acquisition["daemon"]["camera"][key]:
            raise ConfigError(
                f"{path}: was recorded with camera.{key} = {recorded[key]!r}, this run has "
                f"{acquisition['daemon']['camera'][key]!r}; resume it with the same camera.{key}"
            )
    for key in ("twin_config", "seed"):
        if key in acquisition and writer.acquisition.get(key) != acquisition[key]:
            raise ConfigError(
                f"{path}: was recorded with another twin ({key} differs); use the same [twin] table "
                "and sim.seed to resume it"
            )
