"""The ground-glass diffuser models and the precomputed operators of the whole optical path.

* ``"thin"``: one random phase screen at the iris. In this lensless paraxial geometry a thin screen
  is exactly shift-invariant for point sources (the speckle only moves), an infinite memory effect.
* ``"multislice"`` (default): a smooth first screen (correlation length ℓ, rms phase σ) at the iris,
  free space of ``gap`` (angular spectrum), then a fine ground-glass screen. Tilting the light on the
  first screen (moving a target pixel by Δ on the DMD tilts it by Δ/u) walks its speckle across the
  second screen by ``gap · Δ / u``; once that exceeds the speckle's correlation width at the second
  screen, ≈ ℓ/σ, the camera sees a new speckle. The correlation of a point target's speckle with its
  shifted copy falls as ``exp(−2 (σ gap Δ / (u ℓ))²)``, so ``gap`` follows from the configured half-width
  ``memory_effect_px`` (calibrated against the measured curve; tests check it).
* ``"matrix"``: a structured random transmission matrix, screen → random Fourier-domain phase →
  screen: every input direction mixes with every other, no memory effect.

Everything is drawn from the seed: the same seed gives bit-identical screens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from specklenet.daemon.twin.config import TwinConfig
from specklenet.daemon.twin.optics import (
    angular_spectrum_transfer,
    centred_coordinates,
    circular_aperture,
    fft_fresnel_input_factor,
    fresnel_matrix,
    gaussian_phase_screen,
    object_to_plane,
    uniform_phase_screen,
)
from specklenet.daemon.twin.plan import SamplingPlan, plan_for

# exp(−2 a²) = 1/2 at a = sqrt(ln 2 / 2); the 0.94 corrects for the incident field's own angular
# spread (a target pixel's diffraction), measured with the shift-correlation test (tests/test_twin_memory.py).
MEMORY_EFFECT_CONSTANT = 0.94 * math.sqrt(math.log(2) / 2)


@dataclass(frozen=True)
class Operators:
    """Everything the twin multiplies by, precomputed (complex64 numpy) for one config and seed.

    Attributes:
        plan: the sampling plan.
        object_matrix: ``K[box_sample, canvas_pixel]``; the field at the iris is ``K @ C @ K.T``.
        object_matrix_t_parts: real and imaginary parts of ``K.T`` (float32), for real ``C``.
        entrance: ``(box, box)`` iris transmission times the first screen.
        stages: ``(transfer, screen)`` pairs on the stage grid: ``E ← ifft2(fft2(E)·transfer)·screen``;
            the last screen is None at ``"dataset"`` fidelity, where it is folded into the exit factors.
        exit_factors: ``"dataset"`` only: ``(stage, stage)`` factors before the camera FFT (the stage
            grid's window of the camera grid), one per set of camera samples (see
            :func:`quincunx_factors`); empty at ``"full"``.
        camera_matrix: ``A[camera_sample, exit_sample]`` of the matrix Fresnel step (``"full"``) or None.
        slice_gap_m: free space between consecutive screens (multislice), else 0.
    """

    plan: SamplingPlan
    object_matrix: np.ndarray
    entrance: np.ndarray
    stages: tuple[tuple[np.ndarray, np.ndarray | None], ...]
    exit_factors: tuple[np.ndarray, ...]
    camera_matrix: np.ndarray | None
    slice_gap_m: float
    object_matrix_t_parts: tuple[np.ndarray, np.ndarray]


def slice_gap_m(config: TwinConfig) -> float:
    """Total free space inside a multislice diffuser for the configured memory effect."""
    if config.diffuser != "multislice":
        return 0.0
    shift_m = config.memory_effect_px * config.target_pixel_m
    correlation_m = config.slice_correlation_um * 1e-6
    return MEMORY_EFFECT_CONSTANT * config.u_m * correlation_m / (config.slice_phase_rad * shift_m)


def build_operators(config: TwinConfig, seed: int) -> Operators:
    """Precompute the optical path of ``config`` with screens drawn from ``seed``."""
    gap = slice_gap_m(config)
    plan = plan_for(config, gap)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xD1FF05E5]))
    screens, transfers = _diffuser(config, plan, rng, gap)
    box = slice(plan.box_at, plan.box_at + plan.box)
    x_box = plan.stage_x_m[box]
    entrance = circular_aperture(x_box, config.iris_m) * screens[0][box, box]
    stages: list[tuple[np.ndarray, np.ndarray | None]] = list(zip(transfers, screens[1:], strict=True))
    exit_factors: tuple[np.ndarray, ...] = ()
    camera_matrix = None
    if plan.periodic_camera:
        last = np.ones((plan.stage, plan.stage), complex)
        if stages:
            transfer, last = stages[-1]
            stages[-1] = (transfer, None)
        window = slice(plan.stage_at, plan.stage_at + plan.stage)
        exit_factors = tuple(last * factor[window, window] for factor in quincunx_factors(config, plan))
    else:
        x_in = plan.stage_x_m[plan.exit_at : plan.exit_at + plan.exit] if stages else x_box
        x_out = centred_coordinates(plan.camera_samples, plan.camera_pitch_m)
        camera_matrix = fresnel_matrix(x_in, x_out, wavelength_m=config.wavelength_m, distance_m=config.v_m)
    object_matrix = object_to_plane(
        x_box,
        pixel_m=config.target_pixel_m,
        n_pixels=config.canvas_px,
        wavelength_m=config.wavelength_m,
        distance_m=config.u_m,
        focus_m=config.focus_m,
        spot_radius_m=config.illumination_diameter_px * config.target_pixel_m / 2,
    )
    k = _c64(object_matrix)
    return Operators(
        plan=plan,
        object_matrix=k,
        object_matrix_t_parts=(np.ascontiguousarray(k.T.real), np.ascontiguousarray(k.T.imag)),
        entrance=_c64(entrance),
        stages=tuple((_c64(t), None if s is None else _c64(s)) for t, s in stages),
        exit_factors=tuple(_c64(f) for f in exit_factors),
        camera_matrix=None if camera_matrix is None else _c64(camera_matrix),
        slice_gap_m=gap / max(config.slices - 1, 1),
    )


def quincunx_factors(config: TwinConfig, plan: SamplingPlan) -> tuple[np.ndarray, np.ndarray]:
    """Input factors of the two FFT Fresnel steps of ``"dataset"`` fidelity.

    The first samples the camera field on the grid of pitch 2p (p: native pixel pitch); the second on
    the same grid moved by (p, p). Binning both 2×2 and averaging samples each delivered 4p×4p pixel
    at 8 points in a checkerboard of its native 4×4 grid: a quadrature of the pixel's integral whose
    binned speckle contrast equals native 4×4 binning's within 0.2 % (2×2 points alone read 6 % high).
    """
    n = plan.camera_grid
    f = fft_fresnel_input_factor(n, plan.pitch_m, wavelength_m=config.wavelength_m, distance_m=config.v_m)
    # Moving the output by δ multiplies the input by exp(−2πi x δ / (λ v)).
    x = centred_coordinates(n, plan.pitch_m)
    delta = plan.camera_pitch_m / 2
    g = f * np.exp(-2j * math.pi * x * delta / (config.wavelength_m * config.v_m))
    return f[:, None] * f[None, :], g[:, None] * g[None, :]


def _diffuser(
    config: TwinConfig, plan: SamplingPlan, rng: np.random.Generator, gap_m: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Screens (first at the iris, last before the camera) on the stage grid, and the transfers
    between them."""
    n = plan.stage
    if config.diffuser == "thin":
        return [uniform_phase_screen(rng, (n, n))], []
    if config.diffuser == "matrix":
        screens = [uniform_phase_screen(rng, (n, n)) for _ in range(2)]
        return screens, [uniform_phase_screen(rng, (n, n))]
    smooth = [
        gaussian_phase_screen(
            rng,
            n,
            plan.pitch_m,
            correlation_m=config.slice_correlation_um * 1e-6,
            phase_rad=config.slice_phase_rad,
        )
        for _ in range(config.slices - 1)
    ]
    step = gap_m / (config.slices - 1)
    transfer = angular_spectrum_transfer(n, plan.pitch_m, wavelength_m=config.wavelength_m, distance_m=step)
    return [*smooth, uniform_phase_screen(rng, (n, n))], [transfer] * (config.slices - 1)


def _c64(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.complex64)
