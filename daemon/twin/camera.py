"""The camera's signal chain: photo-electrons, shot and read noise, full well, ADC, dark offset.

Input is the expected number of photo-electrons per *native* pixel; ``native_per_sample`` native
pixels share one sample (1 at full fidelity, where binning follows; 16 when the twin hands over
samples that already cover a 4×4 binned pixel). For ``k`` native pixels the chain is exact in
distribution where it can be: the sum of k Poisson counts is Poisson, the sum of k read noises is
Gaussian with √k times the spread; clipping at the full well and rounding happen on the sum, an
approximation that matters only for saturated or few-electron pixels.

Shot noise is Poisson below ``GAUSSIAN_LIMIT_E`` expected electrons per sample and its Gaussian
limit above (skewness 1/sqrt(λ) < 3 %), which draws shot and read noise together in one normal
variate: 4× faster, indistinguishable in the frames.

Randomness: numpy draws each frame from its own generator seeded by ``(seed, frame_id)``, so a frame
is the same whether rendered alone or in a batch; torch draws a batch from one generator seeded by
``(seed, first frame id)`` on the tensor's device (not bit-identical to numpy).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specklenet.daemon.twin.backend import Backend
from specklenet.daemon.twin.config import CameraConfig

GAUSSIAN_LIMIT_E = 1000.0
_NOISE_STREAM = 0xCA3E7A


def frame_generator(seed: int, frame_id: int) -> np.random.Generator:
    """The numpy generator of one frame's camera noise."""
    return np.random.default_rng(np.random.SeedSequence([seed, frame_id, _NOISE_STREAM]))


def expose(
    backend: Backend,
    electrons: Any,
    camera: CameraConfig,
    *,
    native_per_sample: int,
    seed: int,
    frame_ids: np.ndarray,
) -> Any:
    """Counts per sample (mean over its native pixels, float32) for ``electrons[frame, row, column]``.

    ``electrons`` is the expected photo-electron count per native pixel.
    """
    xp = backend.xp
    k = float(native_per_sample)
    expected = xp.clip(electrons, 0.0, None) * k  # the full well clips after the shot noise
    if not camera.noise:
        signal = xp.clip(expected, None, k * camera.full_well_e)
    elif backend.is_numpy:
        frames = zip(expected, frame_ids, strict=True)
        signal = np.stack([_noisy_numpy(frame, camera, k, seed, int(i)) for frame, i in frames])
    else:
        signal = _noisy_torch(backend, expected, camera, k, seed, int(frame_ids[0]) if len(frame_ids) else 0)
    counts = signal * camera.gain + k * camera.dark_offset_counts
    if camera.noise:
        counts = xp.round(counts)
    counts = xp.clip(counts, 0.0, k * camera.saturation_counts)
    return xp.astype(counts / k, xp.float32)


def _noisy_numpy(
    expected: np.ndarray, camera: CameraConfig, k: float, seed: int, frame_id: int
) -> np.ndarray:
    """Electrons (shot + read noise, clipped at the full well) for one frame's samples."""
    rng = frame_generator(seed, frame_id)
    read_var = k * camera.read_noise_e**2
    z = rng.standard_normal(expected.shape, dtype=np.float32)
    signal = expected + np.sqrt(expected + read_var) * z
    low = expected < GAUSSIAN_LIMIT_E
    if low.any():
        exact = rng.poisson(expected[low]) + np.sqrt(read_var) * z[low]
        signal[low] = exact
    return np.clip(signal, None, k * camera.full_well_e)


def _noisy_torch(
    backend: Backend, expected: Any, camera: CameraConfig, k: float, seed: int, first_frame_id: int
) -> Any:
    xp = backend.xp
    generator = backend.torch_generator(seed * 1_000_003 + first_frame_id)
    read_sd = (k * camera.read_noise_e**2) ** 0.5
    z = backend.normal(tuple(expected.shape), generator)
    gaussian = expected + xp.sqrt(expected + read_sd**2) * z
    exact = backend.poisson(expected, generator) + read_sd * z
    signal = xp.where(expected < GAUSSIAN_LIMIT_E, exact, gaussian)
    return xp.clip(signal, None, k * camera.full_well_e)
