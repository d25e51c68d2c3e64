"""The bench's devices: the roles (:mod:`.dmd`, :mod:`.camera`; their shared lifecycle in :mod:`.base`),
real adapters and the simulated, twin-coupled pair (:mod:`.sim_clock`, :mod:`.sim_dmd`, :mod:`.sim_camera`).

``make_bench(settings, twin=...)`` builds the DMD and camera the settings choose; the vendor SDK
modules are imported only when their backend is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from specklenet.daemon.devices.camera import Camera, CameraFrame, CameraGeometry
from specklenet.daemon.devices.dmd import Dmd, DmdProgress, DmdTiming, Sequence, mirror_pictures
from specklenet.daemon.devices.sim_camera import SimulatedCamera
from specklenet.daemon.devices.sim_clock import MonotonicClock, SimFaults, SyncPulse, VirtualClock
from specklenet.daemon.devices.sim_dmd import SimulatedDmd
from specklenet.daemon.errors import ConfigError

if TYPE_CHECKING:
    from specklenet.daemon.devices.sim_camera import Renderer
    from specklenet.daemon.settings import DaemonSettings

__all__ = [
    "Camera",
    "CameraFrame",
    "CameraGeometry",
    "Dmd",
    "DmdProgress",
    "DmdTiming",
    "MonotonicClock",
    "Sequence",
    "SimFaults",
    "SimulatedCamera",
    "SimulatedDmd",
    "SyncPulse",
    "VirtualClock",
    "make_bench",
    "mirror_pictures",
]


def make_bench(settings: DaemonSettings, *, twin: Renderer | None = None) -> tuple[Dmd, Camera]:
    """The DMD and camera ``settings`` choose (not yet open); simulated ones need the ``twin``.

    A simulated camera needs the simulated DMD (it looks at what that DMD shows), so the two
    backends are simulated together or not at all.
    """
    dmd_settings, camera_settings = settings.dmd, settings.camera
    if (dmd_settings.backend == "sim") != (camera_settings.backend == "sim"):
        raise ConfigError("dmd.backend and camera.backend: simulate both devices or neither (--sim)")
    if camera_settings.trigger_source == "Software":
        raise ConfigError(
            "camera.trigger_source = 'Software': nothing triggers the camera in an acquisition (the DMD's "
            "synch output drives Line1, Line3 or Line4); Software is for tests of the camera alone"
        )
    if dmd_settings.backend == "sim":
        if twin is None:
            raise ConfigError("the simulated bench needs the optical twin")
        return _simulated(settings, twin)
    from specklenet.daemon.devices.alp_dmd import AlpDmd
    from specklenet.daemon.devices.basler_camera import BaslerCamera

    dmd = AlpDmd(
        library_dir=dmd_settings.library_dir,
        version=dmd_settings.alp_version,
        device_number=dmd_settings.device_number,
        block_mirrors=dmd_settings.block_mirrors,
        timing=dmd_settings.timing,
    )
    camera = BaslerCamera(
        serial_number=camera_settings.serial_number,
        geometry=camera_settings.geometry,
        pixel_format=camera_settings.pixel_format,
        exposure_us=camera_settings.exposure_us,
        trigger_source=camera_settings.trigger_source,
        trigger_delay_us=camera_settings.trigger_delay_us,
        buffers=camera_settings.buffers,
    )
    return dmd, camera


def _simulated(settings: DaemonSettings, twin: Renderer) -> tuple[SimulatedDmd, SimulatedCamera]:
    sim = settings.sim
    clock = MonotonicClock() if sim.realtime else VirtualClock()
    dmd = SimulatedDmd(
        block_mirrors=settings.dmd.block_mirrors, timing=settings.dmd.timing, clock=clock, faults=sim.faults
    )
    camera = SimulatedCamera(
        twin,
        dmd=dmd,
        clock=clock,
        exposure_us=settings.camera.exposure_us,
        trigger_delay_us=settings.camera.trigger_delay_us,
        trigger_source="Line1",  # whichever input: the simulated wire from the DMD's synch output
        buffers=settings.camera.buffers,
        max_frame_rate_hz=sim.max_frame_rate_hz,
        faults=sim.faults,
        seed=sim.seed,
    )
    dmd.connect(camera.on_sync)
    return dmd, camera
