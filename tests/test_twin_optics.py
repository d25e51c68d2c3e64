"""Each propagation step conserves energy, and no energy wraps around a grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from specklenet.daemon.twin import Twin, TwinConfig, optics
from specklenet.daemon.twin.plan import FULL_PITCH_M

WAVELENGTH = 532e-9


def test_dmd_to_diffuser_conserves_each_pixels_energy() -> None:
    """One axis of the separable DMD→diffuser step, on an output grid wide and fine enough to hold
    the sinc tails: the energy of every target pixel arrives (within 1 %), none is created."""
    pixel = 6 * 13.7e-6
    x_out = optics.centred_coordinates(12_000, 2.5e-6)  # ±15 mm
    k = optics.object_to_plane(
        x_out,
        pixel_m=pixel,
        n_pixels=128,
        wavelength_m=WAVELENGTH,
        distance_m=0.16,
        focus_m=0.305,
        spot_radius_m=1.0,
    )
    arrived = np.sum(np.abs(k) ** 2, axis=0) * 2.5e-6
    emitted = pixel * np.exp(-2 * (((np.arange(128) - 63.5) * pixel) / 1.0) ** 2)
    np.testing.assert_allclose(arrived, emitted, rtol=0.01)
    assert np.all(arrived <= emitted * 1.001)


def test_angular_spectrum_step_is_unitary_and_stays_inside_its_guard_band() -> None:
    n, pitch, gap = 512, 15e-6, 3e-3
    rng = np.random.default_rng(0)
    field = np.zeros((n, n), complex)
    inner = slice(128, 384)
    field[inner, inner] = optics.gaussian_phase_screen(rng, 256, pitch, correlation_m=80e-6, phase_rad=4.0)
    transfer = optics.angular_spectrum_transfer(n, pitch, wavelength_m=WAVELENGTH, distance_m=gap)
    out = np.fft.ifft2(np.fft.fft2(field) * transfer)
    energy_in, energy_out = np.sum(np.abs(field) ** 2), np.sum(np.abs(out) ** 2)
    assert energy_out == pytest.approx(energy_in, rel=1e-3)
    guard = np.ones((n, n), bool)
    guard[96:416, 96:416] = False  # 32 samples (0.5 mm) beyond the lit square on each side
    assert np.sum(np.abs(out[guard]) ** 2) < 1e-4 * energy_out


def test_angular_spectrum_transfer_has_unit_modulus_on_the_propagating_band() -> None:
    transfer = optics.angular_spectrum_transfer(256, 4e-6, wavelength_m=WAVELENGTH, distance_m=2e-3)
    assert np.allclose(np.abs(transfer), 1.0)  # the whole grid band propagates at this pitch


def test_fresnel_matrix_conserves_energy_over_its_period() -> None:
    """One axis: a ground-glass field over the 5 mm iris, sampled at 4 µm, propagated 10 cm. The
    sampled Fresnel sum repeats every λz/pitch (13.3 mm); over one period all the energy arrives."""
    pitch, distance = 4e-6, 0.1
    x_in = optics.centred_coordinates(1250, pitch)
    field = optics.uniform_phase_screen(np.random.default_rng(1), (1250,))
    period = WAVELENGTH * distance / pitch
    x_out = optics.centred_coordinates(3800, period / 3800)
    out = optics.fresnel_matrix(x_in, x_out, wavelength_m=WAVELENGTH, distance_m=distance) @ field
    assert np.sum(np.abs(out) ** 2) * period / 3800 == pytest.approx(
        np.sum(np.abs(field) ** 2) * pitch, rel=1e-6
    )


def test_full_fidelity_camera_sees_no_wrapped_light() -> None:
    """At full fidelity the camera step's sum repeats every λv/pitch; light from the iris, at the
    steepest angle the grid holds, lands closer to the axis than the region of interest's first
    repetition, so nothing wraps onto the camera."""
    config = TwinConfig(fidelity="full")
    steepest_landing = config.iris_m / 2 + config.v_m * config.wavelength_m / (2 * FULL_PITCH_M)
    first_repeat = config.wavelength_m * config.v_m / FULL_PITCH_M - config.roi_m / 2
    assert steepest_landing < first_repeat


def test_fft_fresnel_step_is_exactly_parseval() -> None:
    n, pitch, distance = 512, 15e-6, 0.1
    f = optics.fft_fresnel_input_factor(n, pitch, wavelength_m=WAVELENGTH, distance_m=distance)
    field = optics.uniform_phase_screen(np.random.default_rng(2), (n, n))
    out = np.fft.fft2(field * f[:, None] * f[None, :])
    out_pitch = WAVELENGTH * distance / (n * pitch)
    assert np.sum(np.abs(out) ** 2) * out_pitch**2 == pytest.approx(
        np.sum(np.abs(field) ** 2) * pitch**2, rel=1e-9
    )


def test_fft_fresnel_step_centres_the_output_grid() -> None:
    """A plane wave through the FFT step lands on the on-axis camera sample."""
    n = 64
    f = optics.fft_fresnel_input_factor(n, 15e-6, wavelength_m=WAVELENGTH, distance_m=0.1)
    out = np.abs(np.fft.fft2(np.ones((n, n)) * f[:, None] * f[None, :]))
    f_plain = np.abs(np.fft.fft2(np.ones((n, n))))
    assert np.unravel_index(np.argmax(f_plain), f_plain.shape) == (0, 0)  # the check below is not vacuous
    assert out[n // 2, n // 2] > 0.5 * out.max()


@pytest.mark.slow
def test_full_fidelity_multislice_light_stays_off_the_grid_edges() -> None:
    """The full grid's guard band: after the diffuser's gaps, no light wraps around the FFT grid, and
    all of it stays inside the region the camera step reads."""
    twin = Twin(TwinConfig(fidelity="full"), seed=0)
    ops, plan = twin._ops, twin._ops.plan
    box = slice(plan.box_at, plan.box_at + plan.box)
    field = np.zeros((plan.stage, plan.stage), complex)
    iris = optics.circular_aperture(plan.stage_x_m[box], twin.config.iris_m)
    field[box, box] = iris * np.exp(1j * math.pi * np.random.default_rng(3).random((plan.box, plan.box)))
    total = np.sum(np.abs(field) ** 2)
    for transfer, screen in ops.stages:
        field = np.fft.ifft2(np.fft.fft2(field) * transfer) * (1 if screen is None else screen)
    outside = np.ones(field.shape, bool)
    exit_ = slice(plan.exit_at, plan.exit_at + plan.exit)
    outside[exit_, exit_] = False
    assert plan.exit > plan.box
    assert np.sum(np.abs(field) ** 2) == pytest.approx(total, rel=1e-3)
    assert np.sum(np.abs(field[outside]) ** 2) < 1e-3 * total
