"""Means with 95 % bootstrap intervals, the constant-output baseline, and trends decided on intervals.

Every number the reproduction reports is a mean over held-out test images, and, with ``--seeds N``,
over N independent repetitions (initial weights and diffuser drawn anew, the same test images). Alone,
such a mean says little: a network that outputs the same image for every input (the case's mean
training target) already scores faces at PCC 0.27–0.41, because faces resemble their mean. So every mean
is reported beside

* its **95 % interval** — a two-stage percentile bootstrap: resample the seeds with replacement, then
  the test images with replacement (one draw of images shared by all seeds, as every seed saw the same
  images), and take the mean; the 2.5 % and 97.5 % quantiles of 2,000 such means. With one seed it is
  the ordinary bootstrap over images. Seeds and images are both sources of variation; resampling both
  keeps the interval honest about each (with 2–3 seeds the seed part is coarse and the interval wide);
* its **constant-output baseline** (:func:`constant_output`): the same metric for the case's mean
  training target as the reconstruction of every test image, with its own interval.

A trend ("case 3 reconstructs faces better than case 2") holds only when the intervals say so
(:func:`clearly_above`: the lower bound of one above the upper bound of the other); overlapping
intervals are "not shown", which fails the check. This is conservative (two 95 % intervals that just
fail to overlap correspond to p ≈ 0.006) on purpose: the paper's trends should be visible, not inferred.

Pure numpy, seeded, thread-safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A mean with its 95 % bootstrap interval.

    Attributes:
        mean: mean over seeds and images.
        low, high: the interval's bounds (``low <= mean <= high`` up to bootstrap noise).
        n_images: test images per seed; n_seeds: independent repetitions.
    """

    mean: float
    low: float
    high: float
    n_images: int
    n_seeds: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, mapping: dict[str, Any]) -> Estimate:
        return cls(**{key: mapping[key] for key in ("mean", "low", "high", "n_images", "n_seeds")})

    def excludes(self, value: float) -> bool:
        """True when ``value`` lies outside the interval (e.g. 0 for a difference that is a change)."""
        return not self.low <= value <= self.high

    def text(self, digits: int = 3) -> str:
        """``0.412 [0.371, 0.455]``."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def bootstrap_mean(
    values: ArrayLike | Sequence[ArrayLike],
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Estimate:
    """The mean of ``values[seed, image]`` (or one seed's ``values[image]``) with its bootstrap interval.

    Every seed must hold the same number of images (the same test images). Raises ValueError for an
    empty or ragged array.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.size == 0:
        raise ValueError(f"values must be (seeds, images) with at least one value, got shape {array.shape}")
    n_seeds, n_images = array.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, (resamples, n_seeds))
    images = rng.integers(0, n_images, (resamples, n_images))
    # means[r] = mean over the drawn seeds s and drawn images i of array[s, i]
    per_seed = np.take_along_axis(array[:, None, :], images[None, :, :], axis=2).mean(axis=2)  # (S, R)
    means = np.take_along_axis(per_seed.T, seeds, axis=1).mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    mean = float(array.mean())
    return Estimate(mean, float(min(low, mean)), float(max(high, mean)), n_images, n_seeds)


def paired_difference(a: ArrayLike, b: ArrayLike, *, seed: int = 0) -> Estimate:
    """Mean of ``a − b`` over the same test images (``values[image]``), with its bootstrap interval.

    Pairing cancels the image-to-image spread (some faces are harder for every model), so only the
    two models' difference is left. Raises ValueError when the shapes differ.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images: shapes {a.shape} and {b.shape}")
    return bootstrap_mean(a - b, seed=seed)


def constant_output(mean_target: np.ndarray, truth: np.ndarray, metric) -> np.ndarray:
    """Per-image ``metric`` of a model that answers ``mean_target`` (one image) to every test image.

    ``truth``: ``(K, rows, columns)`` in [0, 1]; ``metric(reconstruction, truth)`` as in :mod:`.metrics`.
    """
    mean_target = np.asarray(mean_target, dtype=np.float64)
    if mean_target.shape != truth.shape[1:]:
        raise ValueError(f"mean target {mean_target.shape} does not match the test images {truth.shape[1:]}")
    return np.asarray(metric(np.broadcast_to(mean_target, truth.shape), truth), dtype=np.float64)


def clearly_above(a: Estimate, b: Estimate) -> bool:
    """True when ``a``'s interval lies wholly above ``b``'s (a > b shown); overlapping: False."""
    return a.low > b.high


def not_below(a: Estimate, b: Estimate) -> bool:
    """True unless ``a``'s interval lies wholly below ``b``'s ("at least as good" not refuted)."""
    return not clearly_above(b, a)
