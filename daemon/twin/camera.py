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
is the same whether rendered alone or in a batch; its normal variates come from :func:`standard_normal`
(Box–Muller on float32 uniforms, 3× faster here than numpy's ziggurat, which took a tenth of the
twin's time); torch draws a batch from one generator seeded by
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
    """Counts per sample (mean over its native pixels, float32) for ``electrons[frame, row, column]``,
    the expected photo-electrons per native pixel. numpy: ``electrons`` is overwritten with the result.
    """
    k = float(native_per_sample)
    if backend.is_numpy:
        if not electrons.flags.c_contiguous:
            raise ValueError("electrons: a C-contiguous array is overwritten in place")
        for frame, frame_id in zip(electrons, frame_ids, strict=True):
            _counts_numpy(frame, camera, k, seed, int(frame_id))
        return electrons
    first = int(frame_ids[0]) if len(frame_ids) else 0
    return _counts_torch(backend, electrons, camera, k, seed, first)


def standard_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` independent standard normal float32 variates (Box–Muller transform of ``rng``'s
    float32 uniforms, both of each pair's variates used).

    The uniforms' 24 bits bound |z| below 5.77 (a larger normal variate has probability 8e-9; a
    camera frame holds 65,536 samples). Thread-safe as far as ``rng`` is (one generator per frame).
    """
    half = (size + 1) // 2
    uniform = rng.random(2 * half, dtype=np.float32)
    radius, angle = uniform[:half], uniform[half:]
    np.subtract(1.0, radius, out=radius)  # (0, 1]: a finite logarithm
    np.log(radius, out=radius)
    radius *= -2.0
    np.sqrt(radius, out=radius)
    angle *= np.float32(2 * np.pi)
    z = np.empty(2 * half, np.float32)
    np.cos(angle, out=z[:half])
    np.sin(angle, out=z[half:])
    z[:half] *= radius
    z[half:] *= radius
    return z[:size]


def _counts_numpy(electrons: np.ndarray, camera: CameraConfig, k: float, seed: int, frame_id: int) -> None:
    """One frame, C-contiguous, in place (a frame of samples stays in cache through the whole chain)."""
    signal = electrons
    np.maximum(signal, 0.0, out=signal)
    signal *= k  # expected electrons per sample
    if camera.noise:
        rng = frame_generator(seed, frame_id)
        read_var = k * camera.read_noise_e**2
        z = standard_normal(rng, signal.size).reshape(signal.shape)
        # The Poisson samples by flat index: boolean masks cost ~2 ns a sample each time they are
        # used (three times), and a dark frame holds tens of thousands below the limit.
        flat = signal.reshape(-1)  # a view: the frame is C-contiguous
        low = np.flatnonzero(flat < GAUSSIAN_LIMIT_E)
        exact = rng.poisson(flat.take(low)) + np.sqrt(read_var) * z.reshape(-1).take(low)
        spread = signal + read_var
        np.sqrt(spread, out=spread)
        spread *= z
        signal += spread
        flat[low] = exact
    np.minimum(signal, k * camera.full_well_e, out=signal)  # the full well clips after the shot noise
    signal *= camera.gain
    signal += k * camera.dark_offset_counts
    if camera.noise:
        np.round(signal, out=signal)
    np.clip(signal, 0.0, k * camera.saturation_counts, out=signal)
    signal /= k


def _counts_torch(
    backend: Backend, electrons: Any, camera: CameraConfig, k: float, seed: int, first: int
) -> Any:
    xp = backend.xp
    expected = xp.clip(electrons, 0.0, None) * k
    signal = expected
    if camera.noise:
        generator = backend.torch_generator(seed * 1_000_003 + first)
        read_sd = (k * camera.read_noise_e**2) ** 0.5
        z = backend.normal(tuple(expected.shape), generator)
        gaussian = expected + xp.sqrt(expected + read_sd**2) * z
        exact = backend.poisson(expected, generator) + read_sd * z
        signal = xp.where(expected < GAUSSIAN_LIMIT_E, exact, gaussian)
    counts = xp.clip(signal, None, k * camera.full_well_e) * camera.gain + k * camera.dark_offset_counts
    if camera.noise:
        counts = xp.round(counts)
    return xp.astype(xp.clip(counts, 0.0, k * camera.saturation_counts) / k, xp.float32)
