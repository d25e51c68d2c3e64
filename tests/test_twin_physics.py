"""The twin against textbook speckle physics (Goodman, *Speckle Phenomena in Optics*).

Full-fidelity checks use one frame each (a 1024² frame holds ~10⁵ speckle grains, so the statistics are
tight); textbook conditions (a uniformly lit iris) are set explicitly where a formula assumes them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.daemon.twin import statistics as st

pytestmark = pytest.mark.slow

UNIFORM = 1e5  # an illumination spot this wide lights the canvas uniformly


def _white(n: int = 1) -> np.ndarray:
    return np.full((n, 128, 128), 255, np.uint8)


def _native(twin: Twin, canvases: np.ndarray) -> np.ndarray:
    """Noise-free intensity at the native 3.45 µm camera pixels (full fidelity)."""
    return np.asarray(twin._render(twin._backend(canvases), canvases, native=True))


@pytest.fixture(scope="module")
def full_uniform() -> dict[float, Twin]:
    return {
        iris: Twin(
            TwinConfig(fidelity="full", diffuser="thin", illumination_diameter_px=UNIFORM, iris_mm=iris), 1
        )
        for iris in (5.0, 2.5)
    }


@pytest.mark.parametrize("diffuser", ["thin", "multislice"])
def test_speckle_is_fully_developed_at_native_pitch(diffuser: str) -> None:
    twin = Twin(TwinConfig(fidelity="full", diffuser=diffuser), seed=2)
    intensity = _native(twin, _white())[0]
    assert st.contrast(intensity) == pytest.approx(1.0, abs=0.05)
    for k in (1, 2, 3):
        assert st.exceedance(intensity, k) == pytest.approx(math.exp(-k), rel=0.1)


def test_grain_is_lambda_v_over_d_and_scales_as_one_over_d(full_uniform: dict[float, Twin]) -> None:
    pixel_um = 3.45
    widths = {}
    for iris, twin in full_uniform.items():
        widths[iris] = st.grain_fwhm_px(_native(twin, _white())[0]) * pixel_um
        grain_um = twin.config.speckle_grain_m * 1e6  # λv/D
        assert abs(widths[iris] - grain_um) < pixel_um, (iris, widths[iris], grain_um)
    assert widths[2.5] / widths[5.0] == pytest.approx(2.0, rel=0.05)


def test_binned_contrast_is_about_0_6(full_uniform: dict[float, Twin]) -> None:
    """4×4 area binning of 3.45 µm pixels over a 10.6 µm grain: contrast ≈ 0.61. Simulating on the
    256² grid directly would give 1, so this guards the sampling."""
    frame = full_uniform[5.0].intensity(_white())[0]
    assert st.contrast(frame) == pytest.approx(0.61, abs=0.03)


@pytest.mark.parametrize("illumination_diameter_px", [UNIFORM, 128.0])
def test_dataset_fidelity_matches_full_statistics(illumination_diameter_px: float) -> None:
    """The fast level reproduces the reference's binned statistics (different screens, same law)."""
    frames = {
        fidelity: Twin(
            TwinConfig(fidelity=fidelity, illumination_diameter_px=illumination_diameter_px), 5
        ).intensity(_white())[0]
        for fidelity in ("full", "dataset")
    }
    full, fast = frames["full"], frames["dataset"]
    assert st.contrast(fast) == pytest.approx(st.contrast(full), abs=0.02)
    assert st.exceedance(fast, 2) == pytest.approx(st.exceedance(full, 2), abs=0.01)
    assert st.grain_fwhm_px(fast) == pytest.approx(st.grain_fwhm_px(full), abs=0.06)


def test_two_lit_pixels_interfere() -> None:
    twin = Twin(TwinConfig(), seed=0)
    canvases = np.zeros((3, 128, 128), np.uint8)
    canvases[0, 60, 60] = canvases[1, 66, 70] = 255
    canvases[2] = canvases[0] + canvases[1]
    a, b, both = twin.intensity(canvases)
    cross = both - (a + b)
    assert np.linalg.norm(cross) > 0.3 * np.linalg.norm(a + b)


def test_grey_128_and_127_share_no_bit_and_add_incoherently() -> None:
    twin = Twin(TwinConfig(), seed=0)
    canvases = np.zeros((3, 128, 128), np.uint8)
    canvases[0, 60, 60] = 128  # bit 7 only
    canvases[1, 66, 70] = 127  # bits 0-6
    canvases[2] = canvases[0] + canvases[1]
    a, b, both = twin.intensity(canvases)
    np.testing.assert_allclose(both, a + b, rtol=1e-4, atol=1e-6 * float(both.max()))


def test_binary_targets_are_fully_coherent() -> None:
    """A 0/255 canvas is one coherent field: the same as a coherent amplitude mask, one propagation."""
    rng = np.random.default_rng(1)
    canvases = np.zeros((2, 128, 128), np.uint8)
    canvases[:, 32:96, 32:96] = np.where(rng.random((2, 64, 64)) > 0.6, 255, 0)
    pwm = Twin(TwinConfig(grey_model="pwm"), seed=0).intensity(canvases)
    coherent = Twin(TwinConfig(grey_model="amplitude"), seed=0).intensity(canvases)
    np.testing.assert_allclose(pwm, coherent, rtol=1e-4, atol=1e-6 * float(pwm.max()))


def test_grey_levels_are_not_a_coherent_amplitude() -> None:
    """Two patches at grey 128 and 127 look alike to a coherent-amplitude model but share no bit-plane,
    so the PWM speckle is the sum of two independent speckles, not their interference."""
    canvases = np.zeros((1, 128, 128), np.uint8)
    canvases[0, 40:88, 40:64] = 128
    canvases[0, 40:88, 64:88] = 127
    pwm = Twin(TwinConfig(grey_model="pwm"), seed=0).intensity(canvases)[0]
    coherent = Twin(TwinConfig(grey_model="amplitude"), seed=0).intensity(canvases)[0]
    assert st.pearson(pwm, coherent) < 0.85
    assert st.contrast(pwm) < 0.85 * st.contrast(coherent)  # two incoherent speckles average out


def test_incoherent_ablation_has_low_contrast() -> None:
    """Many mutually incoherent pixels wash the speckle out; the PWM default does not."""
    canvases = np.full((1, 128, 128), 200, np.uint8)
    pwm = Twin(TwinConfig(), seed=0).intensity(canvases)[0]
    incoherent = Twin(TwinConfig(grey_model="incoherent", incoherent_realisations=16), seed=0).intensity(
        canvases
    )[0]
    assert st.contrast(incoherent) < 0.6 * st.contrast(pwm)


def test_same_seed_is_bit_identical_and_other_seeds_uncorrelated() -> None:
    canvases = np.zeros((2, 128, 128), np.uint8)
    canvases[0, 40:88, 40:88] = 255
    canvases[1, 40:88, 40:88] = np.random.default_rng(3).integers(0, 256, (48, 48))
    first = Twin(TwinConfig(), seed=7)
    again = Twin(TwinConfig(), seed=7)
    other = Twin(TwinConfig(), seed=8)
    assert np.array_equal(first.expose(canvases), again.expose(canvases))
    a, b = first.intensity(canvases), other.intensity(canvases)
    for i in range(2):
        assert abs(st.pearson(a[i], b[i])) < 0.05
        assert st.peak_correlation(a[i], b[i]) < 0.1
