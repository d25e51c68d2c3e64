"""The speckle normalisation the network sees, applied identically to the twin's and the camera's frames.

A model's ONNX metadata records the normalisation it was trained with (:meth:`Normalisation.to_metadata`);
the daemon rebuilds it from there (:meth:`Normalisation.from_metadata`) instead of being told separately.

Methods:
    ``"frame_mean"`` (default): subtract the dark offset, clip at 0, divide each frame by its own mean,
    so every frame has mean 1 whatever the exposure or the target's brightness.
    ``"fixed"``: subtract the dark offset and divide by the ADC range above it, giving [0, 1].

Works on numpy arrays and on torch tensors (array API), ``frames[index, row, column]`` or one
``frame[row, column]``. Pure function of its input: thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import array_api_compat

from specklenet.daemon.errors import ConfigError

METHODS = ("frame_mean", "fixed")


@dataclass(frozen=True)
class Normalisation:
    """How raw camera counts become network input.

    Attributes:
        method: ``"frame_mean"`` or ``"fixed"`` (see the module docstring).
        dark_offset_counts: black level subtracted first (the camera's dark offset).
        full_scale_counts: the ADC's largest count (``"fixed"`` only).
    """

    method: Literal["frame_mean", "fixed"] = "frame_mean"
    dark_offset_counts: float = 16.0
    full_scale_counts: float = 4095.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"normalisation.method: expected one of {METHODS}, got {self.method!r}")
        if not self.full_scale_counts > self.dark_offset_counts >= 0:
            raise ConfigError("normalisation: need full_scale_counts > dark_offset_counts >= 0")

    def apply(self, frames: Any) -> Any:
        """Return float32 normalised frames of the same shape, namespace and device as ``frames``."""
        xp = array_api_compat.array_namespace(frames)
        signal = xp.clip(xp.astype(frames, xp.float32) - self.dark_offset_counts, 0.0, None)
        if self.method == "fixed":
            return signal / (self.full_scale_counts - self.dark_offset_counts)
        mean = xp.mean(signal, axis=(-2, -1), keepdims=True)
        return signal / xp.clip(mean, 1e-6, None)  # an all-dark frame stays 0, never NaN

    def to_metadata(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props`` and HDF5 attributes."""
        return {
            "normalisation.method": self.method,
            "normalisation.dark_offset_counts": repr(self.dark_offset_counts),
            "normalisation.full_scale_counts": repr(self.full_scale_counts),
        }

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> Normalisation:
        """Inverse of :meth:`to_metadata`; a missing or malformed entry raises :class:`ConfigError`."""
        try:
            return cls(
                method=metadata["normalisation.method"],  # type: ignore[arg-type]
                dark_offset_counts=float(metadata["normalisation.dark_offset_counts"]),
                full_scale_counts=float(metadata["normalisation.full_scale_counts"]),
            )
        except (KeyError, ValueError) as error:
            raise ConfigError(f"model metadata lacks a valid speckle normalisation: {error}") from error
