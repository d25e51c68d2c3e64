"""The daemon's settings: one strict TOML file (``systemd/daemon.toml`` is the commented example).

Tables: ``[dmd]``, ``[camera]``, ``[acquisition]``, ``[sim]`` (with ``[sim.faults]``), ``[twin]`` (the
optical twin's :class:`~specklenet.daemon.twin.TwinConfig`, used by the simulated bench) and ``[service]``
(``specklenetd serve``: :class:`~specklenet.daemon.service.settings.ServiceSettings`). Every key is
optional; unknown keys and wrong types are errors naming the dotted key and the file. Loaded once, at
the command line, into frozen dataclasses that the rest of the daemon receives.

Timing rules checked here (DMD master, camera slave; all µs, from the DMD's synch edge):
the camera's exposure ``[trigger_delay_us, trigger_delay_us + exposure_us]`` must contain the DMD's
illumination ``[synch_delay_us, synch_delay_us + illuminate_time_us]``, and end within the picture
time, so each frame integrates exactly one picture's PWM bit-planes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from specklenet.daemon.devices.camera import CameraGeometry
from specklenet.daemon.devices.dmd import DmdTiming
from specklenet.daemon.devices.sim_clock import SimFaults
from specklenet.daemon.errors import ConfigError
from specklenet.daemon.matching import MIN_PICTURES
from specklenet.daemon.service.settings import ServiceSettings
from specklenet.daemon.toml_loader import build, load_toml
from specklenet.daemon.twin.config import TwinConfig


@dataclass(frozen=True)
class DmdSettings:
    """``[dmd]``: the ViALUX DMD (``alp4``) or its simulation (``sim``).

    Attributes:
        backend: "alp4" (ALP4lib + ViALUX's library) or "sim".
        library_dir: folder of ViALUX's ``libalp4X.so``.
        alp_version: ALP API version ("4.3" loads ``libalp43.so``).
        device_number: serial number of the DMD; 0 = the first one found.
        block_mirrors: mirrors per target pixel along each axis (6: a 128-px canvas fills 768 rows).
        picture_time_us, illuminate_time_us, synch_delay_us, synch_pulse_width_us: see
            :class:`~specklenet.daemon.devices.dmd.DmdTiming`.
    """

    backend: Literal["alp4", "sim"] = "alp4"
    library_dir: str = "/usr/lib/x86_64-linux-gnu"
    alp_version: Literal["4.1", "4.2", "4.3", "4.4"] = "4.3"
    device_number: int = 0
    block_mirrors: int = 6
    picture_time_us: int = 10_500
    illuminate_time_us: int = 9_800
    synch_delay_us: int = 100
    synch_pulse_width_us: int = 0

    def __post_init__(self) -> None:
        if self.block_mirrors < 1:
            raise ConfigError(f"dmd.block_mirrors: must be >= 1, got {self.block_mirrors}")
        if self.illuminate_time_us == 0:
            raise ConfigError("dmd.illuminate_time_us: set it explicitly, so the exposure can be checked")
        self.timing  # noqa: B018 - validates the timing

    @property
    def timing(self) -> DmdTiming:
        return DmdTiming(
            self.picture_time_us, self.illuminate_time_us, self.synch_delay_us, self.synch_pulse_width_us
        )


@dataclass(frozen=True)
class CameraSettings:
    """``[camera]``: the Basler camera (``pylon``) or its simulation (``sim``).

    Attributes:
        backend: "pylon" or "sim".
        serial_number: which camera; "" = the first one found.
        pixel_format: "Mono8" or "Mono12".
        exposure_us: exposure per trigger (the simulated camera renders with the twin's
            ``camera.exposure_us``, which must then be equal).
        roi_px: side of the square region of interest, native pixels.
        roi_offset_px: (row, column) of its top-left corner; omit to centre it.
        binning: area binning to the frames the network sees (1024 / 4 = 256).
        trigger_source: "Line1" (the DMD's synch output), "Line3", "Line4" or "Software".
        trigger_delay_us: delay from the trigger edge to the exposure start.
        buffers: frame buffers between camera and host (covers the consumer's longest stall).
        reconnect_timeout_s: how long to look for the camera again after it was removed.
    """

    backend: Literal["pylon", "sim"] = "pylon"
    serial_number: str = ""
    pixel_format: Literal["Mono8", "Mono12"] = "Mono12"
    exposure_us: float = 10_000.0
    roi_px: int = 1024
    roi_offset_px: tuple[int, int] | None = None
    binning: int = 4
    trigger_source: Literal["Line1", "Line3", "Line4", "Software"] = "Line1"
    trigger_delay_us: float = 0.0
    buffers: int = 128
    reconnect_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.exposure_us <= 0 or self.trigger_delay_us < 0:
            raise ConfigError("camera.exposure_us must be > 0 and camera.trigger_delay_us >= 0")
        if self.buffers < 2 or self.reconnect_timeout_s < 0:
            raise ConfigError("camera.buffers must be >= 2 and camera.reconnect_timeout_s >= 0")
        self.geometry  # noqa: B018 - validates roi and binning

    @property
    def geometry(self) -> CameraGeometry:
        return CameraGeometry(self.roi_px, self.binning, self.roi_offset_px)


@dataclass(frozen=True)
class AcquisitionSettings:
    """``[acquisition]``: how targets become a pairs file.

    Attributes:
        sequence_pictures: targets per DMD sequence (two sequences are on the DMD at a time); each
            sequence is checked as a whole, so a doubtful one costs at most this many retakes, and
            its frames are written while the next one plays, so within about one sequence's time
            (128 pictures: 0.85 s at 150 frames/s) of their exposure.
        frame_timeout_s: how long to wait for missing frames after the DMD finished a sequence (the
            wait ends this long after the last frame arrived).
        settle_s: once every frame is in, the stream stays open until the camera has been seen idle
            this long after the DMD finished, so that frames of spurious triggers are counted (the
            sequence is then rejected); at least the exposure plus the camera's delivery latency.
        timestamp_tolerance_us: largest deviation of a frame's timestamp from its picture's schedule;
            0 = the timing slack (the exposure still contains the illumination).
        max_passes: passes over the missing targets before giving up (the file stays resumable).
        device_retries: device failures (DMD error, camera removal) tolerated per job.
        flush_interval_s: the pairs file commits frames at least this often (≤ 1 s).
        log_interval_s: period of the progress log lines.
    """

    sequence_pictures: int = 128
    frame_timeout_s: float = 1.0
    settle_s: float = 0.03
    timestamp_tolerance_us: float = 0.0
    max_passes: int = 10
    device_retries: int = 3
    flush_interval_s: float = 0.5
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.sequence_pictures < MIN_PICTURES:
            raise ConfigError(
                f"acquisition.sequence_pictures: must be >= {MIN_PICTURES} (the timestamp check fits each "
                f"sequence's schedule to its on-time frames), got {self.sequence_pictures}"
            )
        if self.max_passes < 1 or self.device_retries < 0:
            raise ConfigError("acquisition: max_passes must be >= 1, device_retries >= 0")
        if self.settle_s <= 0:
            raise ConfigError(f"acquisition.settle_s: must be > 0, got {self.settle_s}")
        if not 0 <= self.flush_interval_s <= 1:
            raise ConfigError(f"acquisition.flush_interval_s: must be in [0, 1], got {self.flush_interval_s}")
        if self.frame_timeout_s <= 0 or self.timestamp_tolerance_us < 0 or self.log_interval_s <= 0:
            raise ConfigError("acquisition: frame_timeout_s and log_interval_s must be > 0, tolerance >= 0")


@dataclass(frozen=True)
class SimSettings:
    """``[sim]``: the simulated bench (see :mod:`specklenet.daemon.devices.sim_dmd` and ``sim_camera``).

    Attributes:
        seed: the twin's seed (diffuser screens and camera noise) and the trigger jitter's.
        realtime: run on the real clock (frames can be lost when the consumer falls behind) instead
            of simulated time (which waits for the twin).
        max_frame_rate_hz: the simulated camera misses triggers closer than this.
        faults: injected faults.
    """

    seed: int = 0
    realtime: bool = False
    max_frame_rate_hz: float = 160.0
    faults: SimFaults = field(default_factory=SimFaults)


@dataclass(frozen=True)
class DaemonSettings:
    """The whole settings file."""

    dmd: DmdSettings = field(default_factory=DmdSettings)
    camera: CameraSettings = field(default_factory=CameraSettings)
    acquisition: AcquisitionSettings = field(default_factory=AcquisitionSettings)
    sim: SimSettings = field(default_factory=SimSettings)
    twin: TwinConfig = field(default_factory=TwinConfig)
    service: ServiceSettings = field(default_factory=ServiceSettings)

    def __post_init__(self) -> None:
        dmd, camera = self.dmd, self.camera
        start, end = camera.trigger_delay_us, camera.trigger_delay_us + camera.exposure_us
        lit_start, lit_end = dmd.synch_delay_us, dmd.synch_delay_us + dmd.illuminate_time_us
        if start > lit_start or end < lit_end:
            raise ConfigError(
                f"camera exposure [{start:g}, {end:g}] µs after the synch edge does not contain the DMD's "
                f"illumination [{lit_start}, {lit_end}] µs: raise camera.exposure_us or lower "
                "dmd.illuminate_time_us / adjust camera.trigger_delay_us and dmd.synch_delay_us"
            )
        if end > dmd.picture_time_us:
            raise ConfigError(
                f"camera exposure ends {end:g} µs after the synch edge, after the next picture starts "
                f"(dmd.picture_time_us = {dmd.picture_time_us})"
            )
        if camera.backend == "sim" and camera.exposure_us != self.twin.camera.exposure_us:
            raise ConfigError(
                f"camera.exposure_us = {camera.exposure_us:g} differs from twin.camera.exposure_us = "
                f"{self.twin.camera.exposure_us:g}: the simulated camera renders with the twin's exposure"
            )
        frame_shape = (self.twin.frame_px, self.twin.frame_px)
        if camera.backend == "sim" and camera.geometry.frame_shape != frame_shape:
            raise ConfigError(
                f"camera.roi_px / camera.binning = {camera.geometry.frame_shape[0]} differs from "
                f"twin.frame_px = {self.twin.frame_px}"
            )

    @property
    def timestamp_tolerance_us(self) -> float:
        """The configured tolerance, or the slack of the timing rules (see the module docstring)."""
        if self.acquisition.timestamp_tolerance_us:
            return self.acquisition.timestamp_tolerance_us
        dmd, camera = self.dmd, self.camera
        early = dmd.synch_delay_us - camera.trigger_delay_us
        late = camera.trigger_delay_us + camera.exposure_us - dmd.synch_delay_us - dmd.illuminate_time_us
        return float(max(1.0, min(early, late)))

    def simulated(self) -> DaemonSettings:
        """These settings with both devices simulated (``--sim``), checked again."""
        return dataclasses.replace(
            self,
            dmd=dataclasses.replace(self.dmd, backend="sim"),
            camera=dataclasses.replace(self.camera, backend="sim"),
        )

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable form, for the pairs file's provenance."""
        return dataclasses.asdict(self)


def load_settings(path: str | Path | None) -> DaemonSettings:
    """Read a settings file (``None``: all defaults); errors name the key and the file."""
    if path is None:
        return DaemonSettings()
    return build(DaemonSettings, load_toml(path), source=str(path))
