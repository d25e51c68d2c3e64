"""The camera chain: photon transfer (mean and variance), full well, 12-bit ADC, dark offset."""

from __future__ import annotations

import numpy as np
import pytest

from specklenet.daemon.twin import CameraConfig
from specklenet.daemon.twin import camera as chain
from specklenet.daemon.twin.backend import Backend

CAMERA = CameraConfig()


def _expose(electrons: float, *, k: int, camera: CameraConfig = CAMERA, frames: int = 4) -> np.ndarray:
    expected = np.full((frames, 128, 128), electrons, np.float32)
    return chain.expose(
        Backend(expected), expected, camera, native_per_sample=k, seed=0, frame_ids=np.arange(frames)
    )


@pytest.mark.parametrize("electrons", [3.0, 400.0, 3000.0])  # Poisson and Gaussian-limit regimes
@pytest.mark.parametrize("k", [1, 16])
def test_photon_transfer_mean_and_variance(electrons: float, k: int) -> None:
    counts = _expose(electrons, k=k).astype(np.float64)
    gain = CAMERA.gain
    assert counts.mean() == pytest.approx(gain * electrons + CAMERA.dark_offset_counts, rel=0.01, abs=0.05)
    # Mean of k native pixels: variance gain² (e + σ_read²) / k, plus rounding of the sum, 1/(12 k²).
    expected_var = gain**2 * (electrons + CAMERA.read_noise_e**2) / k + 1 / (12 * k**2)
    assert counts.var() == pytest.approx(expected_var, rel=0.05)


def test_native_counts_are_integers_within_the_adc_range() -> None:
    counts = _expose(2000.0, k=1)
    assert np.array_equal(counts, np.round(counts))
    assert counts.min() >= 0 and counts.max() <= CAMERA.saturation_counts


def test_full_well_saturates_at_the_top_count() -> None:
    counts = _expose(5 * CAMERA.full_well_e, k=16)
    assert np.all(counts == CAMERA.saturation_counts)


def test_darkness_reads_the_dark_offset() -> None:
    counts = _expose(0.0, k=1)
    assert counts.mean() == pytest.approx(CAMERA.dark_offset_counts, abs=0.05)
    assert counts.std() == pytest.approx(CAMERA.gain * CAMERA.read_noise_e, rel=0.2)


def test_noise_off_gives_expected_counts() -> None:
    counts = _expose(1234.5, k=16, camera=CameraConfig(noise=False))
    np.testing.assert_allclose(counts, CAMERA.gain * 1234.5 + CAMERA.dark_offset_counts, rtol=1e-6)


def test_each_frame_has_its_own_reproducible_noise() -> None:
    a, b = _expose(500.0, k=1, frames=2)
    again = _expose(500.0, k=1, frames=2)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, again[0]) and np.array_equal(b, again[1])


@pytest.mark.parametrize("size", [200_001, 65_536])
def test_normal_variates_are_standard_normal_and_independent(size: int) -> None:
    """Box–Muller's two halves: each normal (Kolmogorov–Smirnov), uncorrelated, and neighbours too."""
    from scipy import stats

    z = chain.standard_normal(np.random.default_rng(7), size).astype(np.float64)
    assert z.shape == (size,) and np.isfinite(z).all()
    half = (size + 1) // 2
    for part in (z[:half], z[half:], z):
        assert stats.kstest(part, "norm").pvalue > 1e-3
    pairs = min(half, size - half)
    assert abs(np.corrcoef(z[:pairs], z[half : half + pairs])[0, 1]) < 5 / np.sqrt(pairs)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / np.sqrt(size)
    assert abs(np.corrcoef(z[:pairs] ** 2, z[half : half + pairs] ** 2)[0, 1]) < 5 / np.sqrt(pairs)


def test_a_strided_frame_is_refused_not_left_unwritten() -> None:
    """The numpy chain overwrites its input in place; a view it could not write through is an error."""
    expected = np.full((2, 128, 256), 500.0, np.float32)[:, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        chain.expose(Backend(expected), expected, CAMERA, native_per_sample=1, seed=0, frame_ids=np.arange(2))
