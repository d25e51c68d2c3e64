"""Scalar wave-optics primitives of the twin, precomputed once in float64 with numpy.

Conventions: paraxial (Fresnel) scalar fields; coordinates in metres on centred grids
``x[j] = (j - n // 2) * pitch`` (so ``x[n // 2] == 0``); a field's energy is ``Σ |E|² pitch²``.
Every propagator here conserves energy (tests check it): the free-space matrices carry the
``pitch / sqrt(λ z)`` factor per axis, the angular-spectrum transfer function has unit modulus
over the propagating band, and phase screens are pure phase. Constant phase factors that cannot
change an intensity are dropped.

All functions are pure and thread-safe.
"""

from __future__ import annotations

import math

import numpy as np


def centred_coordinates(n: int, pitch_m: float) -> np.ndarray:
    """Sample positions (metres) of an ``n``-point grid centred on the optical axis."""
    return (np.arange(n) - n // 2) * pitch_m


def object_to_plane(
    x_out_m: np.ndarray,
    *,
    pixel_m: float,
    n_pixels: int,
    wavelength_m: float,
    distance_m: float,
    focus_m: float,
    spot_radius_m: float,
) -> np.ndarray:
    """One axis of the DMD-to-diffuser propagation, ``K[out_sample, canvas_pixel]`` (complex128).

    The 2-D field at the diffuser is ``K @ coefficients @ K.T`` for ``coefficients[row, column]``
    (the lit fraction or complex amplitude of each target pixel), because every factor is separable:
    each target pixel is a square aperture of side ``pixel_m`` (b×b mirrors; the 17 µm resolution of
    the iris makes mirror gaps irrelevant), lit by a Gaussian spot of 1/e² intensity radius
    ``spot_radius_m`` converging towards ``focus_m`` (``math.inf``: collimated), and Fresnel
    propagation over ``distance_m``. Across one target pixel the quadratic part of the phase varies by
    about 0.03 rad, so the aperture integral is taken with the phase linearised at the pixel centre,
    which gives a sinc: exact to that order.
    """
    x_pix = (np.arange(n_pixels) - (n_pixels - 1) / 2) * pixel_m
    dx = x_out_m[:, None] - x_pix[None, :]
    curvature = 0.0 if math.isinf(focus_m) else 1.0 / focus_m
    phase = math.pi / wavelength_m * (dx**2 / distance_m - curvature * x_pix[None, :] ** 2)
    # d(phase)/dx' at the pixel centre; np.sinc(t) = sin(πt)/(πt).
    slope = -2 * math.pi / wavelength_m * (dx / distance_m + curvature * x_pix[None, :])
    aperture = pixel_m * np.sinc(slope * pixel_m / (2 * math.pi))
    illumination = np.exp(-((x_pix / spot_radius_m) ** 2))  # amplitude; intensity falls to 1/e² at r = w
    return illumination[None, :] * aperture * np.exp(1j * phase) / math.sqrt(wavelength_m * distance_m)


def fresnel_matrix(
    x_in_m: np.ndarray, x_out_m: np.ndarray, *, wavelength_m: float, distance_m: float
) -> np.ndarray:
    """One axis of Fresnel propagation between arbitrary grids, ``A[out_sample, in_sample]``.

    ``E_out = A @ E_in @ A.T`` evaluates the Fresnel integral at the output samples (the output's
    own quadratic phase, which no intensity sees, is dropped). Needs the input field, times its
    chirp, to be sampled finely enough for the angles that reach the output samples.
    """
    pitch = float(x_in_m[1] - x_in_m[0])
    scale = pitch / math.sqrt(wavelength_m * distance_m)
    x_in, x_out = x_in_m[None, :], x_out_m[:, None]
    phase = math.pi / (wavelength_m * distance_m) * (x_in**2 - 2 * x_out * x_in)
    return scale * np.exp(1j * phase)


def fft_fresnel_input_factor(n: int, pitch_m: float, *, wavelength_m: float, distance_m: float) -> np.ndarray:
    """1-D factor that makes ``fft`` a Fresnel propagation onto an ``n``-point periodic output grid.

    With ``F = f[:, None] * f[None, :]`` from this function, ``|fft2(E * F)|²`` is the intensity on the
    centred output grid of pitch ``λ z / (n · pitch)`` (period ``λ z / pitch``). The factor holds the
    input chirp, the energy normalisation, and ``(-1)^j``, which centres both grids for the FFT
    (the matching ``(-1)^k`` on the output is a phase no intensity sees). Requires even ``n``.
    """
    if n % 2:
        raise ValueError(f"FFT Fresnel propagation needs an even grid, got {n}")
    x = centred_coordinates(n, pitch_m)
    sign = np.where(np.arange(n) % 2, -1.0, 1.0)
    scale = pitch_m / math.sqrt(wavelength_m * distance_m)
    return scale * sign * np.exp(1j * math.pi * x**2 / (wavelength_m * distance_m))


def angular_spectrum_transfer(
    n: int, pitch_m: float, *, wavelength_m: float, distance_m: float
) -> np.ndarray:
    """Band-limited angular-spectrum transfer function (``fft2`` order) over ``distance_m``.

    Exact for the scalar wave equation: ``exp(i 2π z (sqrt(1/λ² − f²) − 1/λ))`` on propagating
    frequencies, zero on evanescent ones and beyond Matsushima & Shimobaba's band limit
    ``1 / (λ sqrt((2 z Δf)² + 1))`` that keeps the sampled transfer function from aliasing.
    Unit modulus inside the band, so energy is conserved for band-limited fields.
    """
    f = np.fft.fftfreq(n, d=pitch_m)
    fx, fy = np.meshgrid(f, f, indexing="xy")
    f2 = fx**2 + fy**2
    inv_l2 = 1.0 / wavelength_m**2
    limit = 1.0 / (wavelength_m * math.sqrt((2 * distance_m / (n * pitch_m)) ** 2 + 1))
    inside = (f2 < inv_l2) & (np.abs(fx) < limit) & (np.abs(fy) < limit)
    # sqrt(1/λ² − f²) − 1/λ computed as −f² / (sqrt(1/λ² − f²) + 1/λ): no cancellation error.
    kz = -f2 / (np.sqrt(np.where(inside, inv_l2 - f2, inv_l2)) + 1.0 / wavelength_m)
    return np.where(inside, np.exp(2j * math.pi * distance_m * kz), 0.0)


def circular_aperture(x_m: np.ndarray, diameter_m: float) -> np.ndarray:
    """Transmission of a circular iris on the grid ``x_m × x_m``, edges anti-aliased over one sample."""
    pitch = float(x_m[1] - x_m[0])
    r = np.hypot(x_m[None, :], x_m[:, None])
    return np.clip((diameter_m / 2 - r) / pitch + 0.5, 0.0, 1.0)


def gaussian_phase_screen(
    rng: np.random.Generator, n: int, pitch_m: float, *, correlation_m: float, phase_rad: float
) -> np.ndarray:
    """A smooth random phase screen ``exp(i σ φ)``, ``φ`` unit-variance Gaussian with correlation
    ``exp(−r² / ℓ²)`` (ℓ = ``correlation_m``), periodic over the grid. Its rms scattering angle is
    about ``sqrt(2) σ λ / (2π ℓ)``."""
    noise = rng.standard_normal((n, n))
    f = np.fft.fftfreq(n, d=pitch_m)
    f2 = f[None, :] ** 2 + f[:, None] ** 2
    # The power spectrum of exp(−r²/ℓ²) is ∝ exp(−π² ℓ² f²); filter white noise with its square root.
    smooth = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-(math.pi**2) * correlation_m**2 * f2 / 2)).real
    smooth /= smooth.std()
    return np.exp(1j * phase_rad * smooth)


def uniform_phase_screen(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Independent uniform phases per sample: a ground-glass surface whose grain is below the
    sampling pitch, scattering uniformly over the grid's whole angular band."""
    return np.exp(2j * math.pi * rng.random(shape))
