"""Bootstrap 95 % intervals over test images (percentile bootstrap, seeded: reproducible).

:func:`mean_interval` resamples the images of one set; :func:`paired_difference` resamples the images
two models were both tested on, so the image-to-image spread (some faces are harder than others)
cancels and only the models' difference is left. Pure functions: thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean and its ``level`` bootstrap interval [low, high]."""

    mean: float
    low: float
    high: float

    def excludes(self, value: float) -> bool:
        return not self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mean_interval(values: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """The mean of ``values`` (one per test image) with its percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty 1-D array of per-image values, got shape {values.shape}")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (resamples, values.size))].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(float(values.mean()), float(low), float(high))


def paired_difference(a: np.ndarray, b: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """Mean of ``a − b`` over the same images, with its bootstrap interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images: shapes {a.shape} and {b.shape}")
    return mean_interval(a - b, resamples=resamples, seed=seed)
