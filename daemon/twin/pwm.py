"""How the DMD shows grey levels, as fields the twin propagates.

A DMD mirror is on or off. An 8-bit canvas is shown as its binary bit-planes B_k, each for a time
∝ 2^k (pulse-width modulation), so an exposure that spans whole pictures integrates

    I = Σ_k w_k |T(B_k)|²,   w_k = 2^k / 255,

not |T(g)|². Pixels that share no lit bit (grey 128 and 127) never interfere; binary targets are
fully coherent. :func:`bit_planes` turns canvases into the distinct non-empty planes that need a
propagation each (one for a binary canvas, at most eight) and their summed weights.

The ablation models: ``"amplitude"`` propagates the grey level as a coherent field amplitude
(|T(g/255)|²); ``"incoherent"`` averages ``incoherent_realisations`` pseudo-thermal realisations
with independent random phases per target pixel, which converges to Σ_j g_j |T_j|² / 255.

Works on numpy arrays and torch tensors alike (array API); pure functions, thread-safe.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import array_api_compat
import numpy as np

BITS = 8
WEIGHTS = np.array([2**k / 255 for k in range(BITS)])  # w_k; they sum to 1


@dataclass(frozen=True)
class Planes:
    """Fields to propagate and how to sum their intensities per canvas.

    Attributes:
        coefficients: ``(P, rows, columns)`` float32 or complex64 amplitude of each target pixel.
        canvas: ``(P,)`` index of the canvas each plane belongs to, non-decreasing.
        weight: ``(P,)`` float32 weight of each plane's intensity in its canvas's sum.
    """

    coefficients: Any
    canvas: Any
    weight: Any


def bit_planes(xp: Any, canvases: Any) -> Planes:
    """The distinct non-empty bit-planes of ``canvases[index, row, column]`` (uint8) with their weights.

    Equal planes of one canvas (all eight planes of a 0/255 target, say) are propagated once with
    their weights summed; empty planes are skipped. numpy compares the planes exactly; torch compares
    a random-weighted sum of each plane's pixels (float64: distinct planes collide with probability
    ~2⁻⁴⁰).
    """
    shifts = xp.asarray(np.arange(BITS, dtype=np.uint8), device=_device(canvases))
    planes = canvases[:, None, :, :] >> shifts[None, :, None, None]  # (N, 8, rows, columns) uint8
    planes &= 1  # in place: a second array of all the planes cost 20× more than this step
    same, lit = _equal_planes(xp, planes)  # same[n, j, k]: plane j equals plane k; lit[n, k]
    first = xp.argmax(xp.astype(same, xp.int8), axis=1)  # (N, 8): first plane equal to plane k
    weights = xp.asarray(WEIGHTS, device=_device(canvases))
    bit = xp.arange(BITS, device=_device(canvases))
    onehot = xp.astype(first[:, None, :] == bit[None, :, None], xp.float64)
    summed = xp.sum(onehot * weights[None, None, :], axis=2)  # (N, 8): weight carried by representative j
    keep = (summed > 0) & lit
    canvas_index, plane_index = xp.nonzero(keep)
    return Planes(
        coefficients=xp.astype(planes[canvas_index, plane_index, :, :], xp.float32),
        canvas=canvas_index,
        weight=xp.astype(summed[canvas_index, plane_index], xp.float32),
    )


def amplitude_planes(xp: Any, canvases: Any) -> Planes:
    """Ablation: one coherent field per canvas with amplitude g/255."""
    n = canvases.shape[0]
    return Planes(
        coefficients=xp.astype(canvases, xp.float32) / 255.0,
        canvas=xp.arange(n, device=_device(canvases)),
        weight=xp.ones(n, dtype=xp.float32, device=_device(canvases)),
    )


def incoherent_planes(xp: Any, canvases: Any, realisations: int, seed: int) -> Planes:
    """Ablation: pseudo-thermal light, ``realisations`` fields per canvas with random pixel phases.

    Each realisation has amplitude sqrt(g/255) and an independent uniform phase per target pixel, so
    the mean of the intensities converges (as 1/sqrt(realisations)) to the incoherent sum.
    """
    n, rows, columns = canvases.shape
    phases = np.random.default_rng(seed).random((realisations, rows, columns))
    carrier = xp.asarray(np.exp(2j * math.pi * phases).astype(np.complex64), device=_device(canvases))
    amplitude = xp.sqrt(xp.astype(canvases, xp.float32) / 255.0)
    fields = xp.astype(amplitude[:, None, :, :], xp.complex64) * carrier[None, :, :, :]
    index = xp.arange(n, device=_device(canvases))
    canvas = xp.reshape(xp.broadcast_to(index[:, None], (n, realisations)), (-1,))
    return Planes(
        coefficients=xp.reshape(fields, (n * realisations, rows, columns)),
        canvas=canvas,
        weight=xp.full(n * realisations, 1.0 / realisations, dtype=xp.float32, device=_device(canvases)),
    )


def _equal_planes(xp: Any, planes: Any) -> tuple[Any, Any]:
    """``same[n, j, k]`` (plane j of canvas n equals its plane k) and ``lit[n, k]`` (plane k has a
    lit pixel), for ``planes[n, k, row, column]`` uint8 0/1.

    numpy compares the planes packed 64 pixels to a word, exactly: the float64 sums of every pixel
    (torch's way) took a twentieth of the twin's time for binary targets.
    """
    n, bits, rows, columns = planes.shape
    if array_api_compat.is_numpy_namespace(xp):
        packed = np.packbits(np.reshape(planes, (n, bits, rows * columns)), axis=-1)
        words = np.pad(packed, ((0, 0), (0, 0), (0, -packed.shape[-1] % 8))).view(np.uint64)
        same = np.all(words[:, :, None, :] == words[:, None, :, :], axis=-1)
        return same, np.any(words != 0, axis=-1)
    flat = xp.reshape(xp.astype(planes, xp.float64), (n * bits, rows * columns))
    probe = xp.asarray(_probe(rows * columns), device=_device(planes))
    key = xp.reshape(flat @ probe, (n, bits))  # 0 exactly for an empty plane
    return key[:, :, None] == key[:, None, :], key != 0


@functools.cache
def _probe(size: int) -> np.ndarray:
    """Fixed random weights in [1, 2) that turn a plane into a key (drawn once per size)."""
    return np.random.default_rng(0x5EC).uniform(1, 2, size)


def _device(array: Any) -> Any:
    return array_api_compat.device(array)
