"""The diffuser's memory effect: how far a target may move on the DMD before its speckle changes.

The paper found that targets shown outside the trained region are not reconstructed; the twin's
default diffuser reproduces it with a finite, configured memory effect, while a thin screen keeps a
moved target's speckle (merely displaced) and a random transmission matrix forgets it at once.
"""

from __future__ import annotations

import numpy as np
import pytest

from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.daemon.twin import statistics as st

pytestmark = pytest.mark.slow

ORIGINS = ((56, 56), (64, 70), (72, 60))  # a few point-target positions, to average over the screens


def _point_curve(twin: Twin, shifts: list[int]) -> np.ndarray:
    """Mean peak correlation between a lit target pixel's speckle and that of the pixel moved by each
    shift (target pixels, along the columns)."""
    canvases = np.zeros((len(ORIGINS) * len(shifts), 128, 128), np.uint8)
    for i, (row, column) in enumerate(ORIGINS):
        for j, shift in enumerate(shifts):
            canvases[i * len(shifts) + j, row, column + shift] = 255
    frames = twin.intensity(canvases).reshape(len(ORIGINS), len(shifts), *twin.frame_shape)
    return np.array([[st.peak_correlation(f[0], f[j]) for j in range(len(shifts))] for f in frames]).mean(
        axis=0
    )


@pytest.fixture(scope="module")
def thin() -> Twin:
    return Twin(TwinConfig(diffuser="thin"), seed=11)


def test_thin_screen_keeps_a_small_shifts_speckle() -> None:
    twin = Twin(TwinConfig(fidelity="full", diffuser="thin"), seed=11)
    canvases = np.zeros((2, 128, 128), np.uint8)
    canvases[0, 64, 64] = canvases[1, 64, 65] = 255
    native = np.asarray(twin._render(twin._backend(canvases), canvases, native=True))
    assert st.peak_correlation(native[0], native[1]) > 0.95
    assert st.pearson(native[0], native[1]) < 0.5  # ... displaced, not unchanged


@pytest.mark.parametrize("memory_effect_px", [4.0, 8.0])
def test_multislice_memory_effect_is_the_configured_range(thin: Twin, memory_effect_px: float) -> None:
    """Relative to a thin screen (which loses correlation only as the lit patch moves across the
    diffuser), the multislice correlation halves at the configured shift and is gone at twice it."""
    shifts = [0, int(memory_effect_px), int(2 * memory_effect_px)]
    multislice = Twin(TwinConfig(memory_effect_px=memory_effect_px), seed=11)
    reference = _point_curve(thin, shifts)
    curve = _point_curve(multislice, shifts)
    assert curve[1] / reference[1] == pytest.approx(0.5, abs=0.15)
    assert curve[2] < 0.2


def test_default_diffuser_forgets_a_target_moved_by_half_its_width() -> None:
    """A 64×64 binary target moved by 32 target pixels gives a decorrelated speckle (< 0.3).

    (For an extended coherent target even a thin screen forgets a shift in this lensless geometry:
    each pixel's speckle moves alike, but with a phase that grows linearly across the target.)"""
    target = np.where(np.random.default_rng(4).random((64, 64)) > 0.7, 255, 0).astype(np.uint8)
    canvases = np.zeros((3, 128, 128), np.uint8)
    canvases[0, 32:96, 32:96] = target
    canvases[1, 32:96, 64:128] = target
    canvases[2, 32:96, 32:96] = target
    frames = Twin(TwinConfig(), seed=11).expose(canvases, frame_ids=[0, 1, 2])
    assert st.peak_correlation(frames[0], frames[2]) > 0.9  # the same target again: only camera noise
    assert st.peak_correlation(frames[0], frames[1]) < 0.3


def test_transmission_matrix_has_no_memory_effect() -> None:
    curve = _point_curve(Twin(TwinConfig(diffuser="matrix"), seed=11), [0, 1])
    assert curve[1] < 0.1
