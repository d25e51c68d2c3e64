"""Textbook speckle statistics, to validate the twin (tests) and to compare it with the bench.

Fully developed polarised speckle has exponential intensity statistics: contrast σ/⟨I⟩ = 1 and
P(I > k⟨I⟩) = e^(−k). Its intensity autocovariance through a uniformly lit circular aperture of
diameter D at distance v is |2 J₁(x)/x|², x = π D r / (λ v), whose full width at half maximum is
1.03 λv/D. Area binning over pixels comparable to the grain lowers the contrast.

All functions take numpy arrays ``image[row, column]`` (or stacks ``images[index, row, column]``
where stated) and are pure.
"""

from __future__ import annotations

import numpy as np


def contrast(image: np.ndarray) -> float:
    """Speckle contrast σ/⟨I⟩."""
    image = np.asarray(image, dtype=np.float64)
    return float(image.std() / image.mean())


def exceedance(image: np.ndarray, k: float) -> float:
    """P(I > k⟨I⟩), the fraction of pixels brighter than k times the mean."""
    image = np.asarray(image, dtype=np.float64)
    return float(np.mean(image > k * image.mean()))


def autocovariance(image: np.ndarray) -> np.ndarray:
    """Normalised intensity autocovariance (1 at zero lag), zero lag at ``[rows // 2, columns // 2]``.

    Computed by FFT with zero padding, so lags do not wrap around.
    """
    image = np.asarray(image, dtype=np.float64)
    centred = image - image.mean()
    rows, columns = centred.shape
    spectrum = np.fft.rfft2(centred, s=(2 * rows, 2 * columns))
    cov = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * rows, 2 * columns))
    overlap = np.fft.irfft2(np.abs(np.fft.rfft2(np.ones_like(centred), s=(2 * rows, 2 * columns))) ** 2)
    cov = np.fft.fftshift(cov / np.maximum(overlap, 1.0))
    cov = cov[rows - rows // 2 : rows + rows // 2, columns - columns // 2 : columns + columns // 2]
    return cov / cov[rows // 2, columns // 2]


def grain_fwhm_px(image: np.ndarray) -> float:
    """Full width at half maximum (pixels) of the autocovariance, averaged over rows and columns,
    with linear interpolation between samples."""
    cov = autocovariance(image)
    rows, columns = cov.shape
    profiles = (cov[rows // 2, columns // 2 :], cov[rows // 2 :, columns // 2])
    return float(np.mean([2 * _half_crossing(profile) for profile in profiles]))


def peak_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Largest normalised cross-correlation of two images over all (circular) displacements: 1 when
    ``b`` is ``a`` merely moved, about 0 for unrelated speckle."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = (a - a.mean()) / a.std()
    b = (b - b.mean()) / b.std()
    xcorr = np.fft.irfft2(np.fft.rfft2(a) * np.conj(np.fft.rfft2(b)), s=a.shape)
    return float(xcorr.max() / a.size)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation coefficient of two images at zero displacement."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def _half_crossing(profile: np.ndarray) -> float:
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return float(profile.size)
    i = below[0]
    return float(i - 1 + (profile[i - 1] - 0.5) / (profile[i - 1] - profile[i]))
