"""The speckle normalisation the network sees, applied identically to the twin's and the camera's frames.

A model's ONNX metadata records the normalisation it was trained with (:meth:`Normalisation.to_metadata`);
the daemon rebuilds it from there (:meth:`Normalisation.from_metadata`) instead of being told separately.

Methods (each starts by subtracting the dark offset and clipping at 0):
    ``"frame_mean"``: divide each frame by its own mean, so every frame has mean 1 whatever the
    exposure or the target's brightness (the mean only; the paper names no normalisation, and this
    is the closest to what it describes).
    ``"fixed"``: divide by the ADC range above the dark offset, giving [0, 1].
    ``"zscore"`` (default): per-frame z-score, (signal − mean) / standard deviation: mean 0 and
    spread 1, so frames of different speckle contrast (grey targets, partly incoherent planes) look
    alike.
    ``"equalised"``: contrast-equalised, per-frame histogram equalisation: each pixel becomes the
    empirical CDF of its frame at its value, ties at their mid-rank ((#below + #at-or-below) / 2n),
    in [0, 1] and uniform whatever the frame's histogram. Exact in float32 (integer ranks over a
    power of two for 256² frames), so numpy and torch agree bit for bit.

:data:`DEFAULT_METHOD` (``"zscore"``) is what new models are trained with unless told otherwise: the
ablation (``specklenet-train ablate``; the evidence is in ``docs/results/quick/README.md``) found that
it carries digits across to networks trained on grey targets (case 4c) and faces to networks trained
on digits (case 2), whose test speckle has another contrast than their training speckle, at a small
cost on a network's own kind. The daemon applies whichever the model's metadata names.

Works on numpy arrays and on torch tensors (array API), ``frames[index, row, column]`` or one
``frame[row, column]``. Pure function of its input: thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import array_api_compat

from specklenet.daemon.errors import ConfigError

METHODS = ("frame_mean", "fixed", "zscore", "equalised")
Method = Literal["frame_mean", "fixed", "zscore", "equalised"]
DEFAULT_METHOD: Method = "zscore"


@dataclass(frozen=True)
class Normalisation:
    """How raw camera counts become network input.

    Attributes:
        method: one of :data:`METHODS` (see the module docstring).
        dark_offset_counts: black level subtracted first (the camera's dark offset).
        full_scale_counts: the ADC's largest count (``"fixed"`` only).
    """

    method: Method = DEFAULT_METHOD
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
        if self.method == "equalised":
            return _equalised(xp, signal)
        mean = xp.mean(signal, axis=(-2, -1), keepdims=True)
        if self.method == "zscore":
            spread = xp.std(signal - mean, axis=(-2, -1), keepdims=True)
            return (signal - mean) / xp.clip(spread, 1e-6, None)  # a flat frame becomes 0, never NaN
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


def _equalised(xp: Any, signal: Any) -> Any:
    """Per-frame mid-rank empirical CDF of ``signal[..., row, column]`` (float32, in [0, 1])."""
    shape = signal.shape
    frames = xp.reshape(signal, (-1, shape[-2] * shape[-1]))
    n = frames.shape[-1]
    rows = []
    for frame in frames:  # searchsorted is 1-D in the array API; a batch is a few hundred frames
        ordered = xp.sort(frame)
        below = xp.searchsorted(ordered, frame, side="left")
        at_or_below = xp.searchsorted(ordered, frame, side="right")
        rows.append(xp.astype(below + at_or_below, xp.float32) / (2.0 * n))
    if not rows:
        return xp.reshape(xp.astype(frames, xp.float32), shape)
    return xp.reshape(xp.stack(rows), shape)
