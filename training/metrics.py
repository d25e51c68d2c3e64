"""Image-quality metrics per test image: PCC (the paper's), SSIM and cosine similarity (its SI Table 1).

All functions take a reconstruction and its ground truth as float arrays of the same shape, either one
image ``image[row, column]`` or a stack ``images[index, row, column]``, with values in [0, 1] (the
displayed grey level / 255), cropped to the model's output window at the network's output resolution.
They return one float per image (a 0-d array for a single image) and are pure numpy: thread-safe.

Definitions (x, y one image each, flattened; x̄ their mean):
    PCC  = Σ (x − x̄)(y − ȳ) / sqrt(Σ (x − x̄)² · Σ (y − ȳ)²)      ∈ [−1, 1]
    CS   = Σ x·y / (‖x‖ ‖y‖)                                         ∈ [0, 1] for non-negative images
    SSIM = Wang et al. (2004), Gaussian window σ = 1.5 (11×11), K1 = 0.01, K2 = 0.03, data range 1,
           population covariances — the same settings as ``tf.image.ssim``, which the authors' Keras
           code base would have used; mean of the SSIM map over the image.
Conventions: an image with no variation (PCC) or no energy (CS) has no measurable similarity with
anything, so those metrics give 0 rather than 0/0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from skimage.metrics import structural_similarity

METRICS = ("pcc", "ssim", "cs")


def pcc(reconstruction: ArrayLike, truth: ArrayLike) -> NDArray[np.float64]:
    """Pearson correlation coefficient per image (0 when either image is constant)."""
    x, y = _flat_pair(reconstruction, truth)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    return _ratio(np.sum(x * y, axis=-1), np.sqrt(np.sum(x * x, axis=-1) * np.sum(y * y, axis=-1)))


def cosine_similarity(reconstruction: ArrayLike, truth: ArrayLike) -> NDArray[np.float64]:
    """Cosine of the angle between the two images as vectors (0 when either is all zero)."""
    x, y = _flat_pair(reconstruction, truth)
    return _ratio(np.sum(x * y, axis=-1), np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1))


def ssim(reconstruction: ArrayLike, truth: ArrayLike) -> NDArray[np.float64]:
    """Structural similarity per image (see the module docstring for the settings)."""
    x, y = _pair(reconstruction, truth)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11×11 pixels, got {x.shape[-2:]}")
    flat_x, flat_y = x.reshape(-1, *x.shape[-2:]), y.reshape(-1, *y.shape[-2:])
    values = [
        structural_similarity(
            a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
        )
        for a, b in zip(flat_x, flat_y, strict=False)
    ]
    return np.asarray(values, dtype=np.float64).reshape(x.shape[:-2])


def all_metrics(reconstruction: ArrayLike, truth: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """``{"pcc": ..., "ssim": ..., "cs": ...}``, each one value per image."""
    return {
        "pcc": pcc(reconstruction, truth),
        "ssim": ssim(reconstruction, truth),
        "cs": cosine_similarity(reconstruction, truth),
    }


METRIC_FUNCTIONS = {"pcc": pcc, "ssim": ssim, "cs": cosine_similarity}


def _pair(reconstruction: ArrayLike, truth: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(reconstruction, dtype=np.float64)
    y = np.asarray(truth, dtype=np.float64)
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"reconstruction {x.shape} and truth {y.shape} must be images of the same shape")
    return x, y


def _flat_pair(
    reconstruction: ArrayLike, truth: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, y = _pair(reconstruction, truth)
    return x.reshape(*x.shape[:-2], -1), y.reshape(*y.shape[:-2], -1)


def _ratio(numerator: NDArray[np.float64], denominator: NDArray[np.float64]) -> NDArray[np.float64]:
    # Relative threshold: a constant image's centred sum is ~1e-16 of its size, not exactly 0.
    safe = denominator > 1e-12
    return np.where(safe, numerator / np.where(safe, denominator, 1.0), 0.0)
