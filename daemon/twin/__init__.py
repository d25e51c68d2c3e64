"""The optical twin of the bench: DMD → ground-glass diffuser → Basler camera.

Public surface::

    from specklenet.daemon.twin import Twin, TwinConfig
    twin = Twin(TwinConfig(), seed=0)
    frames = twin.expose(canvases)   # uint8 (N, 128, 128) -> float32 counts (N, 256, 256)

``Twin`` (numpy/scipy optics) is imported on first use, so that the daemon's settings, which hold a
:class:`TwinConfig`, load on a hardware bench without the optics (and scipy).
"""

from typing import TYPE_CHECKING, Any

from specklenet.daemon.twin.config import CameraConfig, TwinConfig

if TYPE_CHECKING:
    from specklenet.daemon.twin.twin import Twin

__all__ = ["CameraConfig", "Twin", "TwinConfig"]


def __getattr__(name: str) -> Any:
    if name == "Twin":
        from specklenet.daemon.twin.twin import Twin

        return Twin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
