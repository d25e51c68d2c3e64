"""The optical twin of the bench: DMD → ground-glass diffuser → Basler camera.

Public surface::

    from specklenet.daemon.twin import Twin, TwinConfig
    twin = Twin(TwinConfig(), seed=0)
    frames = twin.expose(canvases)   # uint8 (N, 128, 128) -> float32 counts (N, 256, 256)
"""

from specklenet.daemon.twin.config import CameraConfig, TwinConfig
from specklenet.daemon.twin.twin import Twin

__all__ = ["CameraConfig", "Twin", "TwinConfig"]
