"""The bench the service holds open: DMD and camera (or the simulated pair and their optical twin).

The simulated bench is chosen as everywhere else in the daemon: ``dmd.backend = "sim"`` and
``camera.backend = "sim"`` in the settings, or ``--sim`` on the command line (which sets both).

Thread-safety: opened and closed by the service loop; used by one job thread at a time.
"""

from __future__ import annotations

from typing import Any

import structlog

from specklenet.daemon.devices import Camera, Dmd, make_bench
from specklenet.daemon.errors import ConfigError
from specklenet.daemon.records import Targets
from specklenet.daemon.settings import DaemonSettings

log = structlog.get_logger(__name__)


class Bench:
    """Opens the devices ``settings`` choose; ``close()`` halts and releases them (idempotent)."""

    def __init__(self, settings: DaemonSettings) -> None:
        self.settings = settings
        self.simulated = settings.dmd.backend == "sim"
        self.twin: Any = None
        self.renderer: CachingRenderer | None = None
        if self.simulated:
            from specklenet.daemon.twin import Twin  # numpy/scipy optics: only for the simulated bench

            self.twin = Twin(settings.twin, seed=settings.sim.seed)
            self.renderer = CachingRenderer(self.twin)
        self.dmd: Dmd
        self.camera: Camera
        self.dmd, self.camera = make_bench(settings, twin=self.renderer)

    @property
    def source(self) -> str:
        """Where frames come from, as pairs files record it: ``"twin"`` or ``"hardware"``."""
        return "twin" if self.simulated else "hardware"

    @property
    def canvas_shape(self) -> tuple[int, int]:
        side = self.settings.twin.canvas_px
        return (side, side)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.camera.frame_shape)  # type: ignore[return-value]

    def open(self) -> None:
        """Open the DMD, then the camera; a failure closes what was opened and raises."""
        try:
            self.dmd.open()
            self.camera.open()
        except BaseException:
            self.close()
            raise
        log.info("bench_open", source=self.source, dmd=self.dmd.name, camera=self.camera.name)

    def close(self) -> None:
        self.camera.close()
        self.dmd.close()

    def recover(self) -> None:
        """Before a job: find a camera that was removed during the previous one again."""
        if self.camera.removed:
            log.warning("camera_reconnecting")
            self.camera.reconnect(self.settings.camera.reconnect_timeout_s)

    def check_canvases(self, targets: Targets) -> None:
        """Refuse targets whose canvases the DMD (or the twin) cannot show."""
        if tuple(targets.canvas_shape) != self.canvas_shape:
            raise ConfigError(
                f"the targets are {targets.canvas_shape} canvases; the bench shows {self.canvas_shape}"
            )

    def describe_twin(self) -> dict[str, Any]:
        """The twin's provenance (empty on hardware), for a pairs file's ``acquisition``."""
        return self.twin.describe() if self.twin is not None else {}


class CachingRenderer:
    """The twin as the simulated camera sees it, with frames rendered ahead for a live loop.

    A cached frame is used only when the camera asks for the same picture id *and* the canvas the DMD
    actually shows is the cached one, so the cache can never hide a picture shown under the wrong id;
    anything else is rendered by the twin. Frames are ``twin.expose_one``'s, bit for bit (its noise is
    seeded by the picture id, so every loop shows the same frame anyway).

    Thread-safety: ``prerender``/``clear`` from the job thread, ``expose_one`` from the camera's sensor
    thread; the cache is replaced as a whole (one reference assignment).
    """

    def __init__(self, twin: Any) -> None:
        self.twin = twin
        self._frames: dict[int, tuple[bytes, Any]] = {}

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.twin.frame_shape  # type: ignore[no-any-return]

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return self.twin.canvas_shape  # type: ignore[no-any-return]

    def expose_one(self, canvas: Any, frame_id: int) -> Any:
        entry = self._frames.get(frame_id)
        if entry is not None and entry[0] == canvas.tobytes():
            return entry[1]
        return self.twin.expose_one(canvas, frame_id)

    def prerender(self, canvases: Any, ids: Any) -> None:
        """Render ``canvases[i]`` under picture id ``ids[i]`` ahead (replacing the previous cache)."""
        self._frames = {
            int(i): (canvas.tobytes(), self.twin.expose_one(canvas, int(i)))
            for canvas, i in zip(canvases, ids, strict=True)
        }

    def clear(self) -> None:
        self._frames = {}
