"""The fused numpy path of "dataset" fidelity (daemon/twin/fused.py) against the generic path it replaces.

Its speed is measured in benchmarks/twin.py; here: the same intensities and counts, and results that do
not depend on how the canvases are batched or split between threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from specklenet.daemon.twin import Twin, TwinConfig


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(TwinConfig(), seed=5)


@pytest.fixture(scope="module")
def canvases() -> np.ndarray:
    """Nine canvases (enough for the worker threads): binary blobs, two grey ones, one shifted, one dark."""
    rng = np.random.default_rng(1)
    out = np.zeros((9, 128, 128), np.uint8)
    out[:, 32:96, 32:96] = np.where(rng.random((9, 64, 64)) > 0.75, 255, 0)
    out[2, 32:96, 32:96] = rng.integers(0, 256, (64, 64))
    out[5, 40:80, 30:90] = rng.integers(0, 256, (40, 60))
    out[6] = np.roll(out[6], 30, axis=1)
    out[8] = 0
    return out


def _generic(twin: Twin, method, *args):
    twin.fused = False
    try:
        return method(*args)
    finally:
        twin.fused = True


@pytest.mark.parametrize("frame_px", [256, 128])  # binning 2 (the default) and 4
def test_fused_intensity_matches_the_generic_path(twin: Twin, canvases: np.ndarray, frame_px: int) -> None:
    if frame_px != twin.config.frame_px:
        twin = Twin(TwinConfig(frame_px=frame_px), seed=5)
    fused = twin.intensity(canvases)
    generic = _generic(twin, twin.intensity, canvases)
    np.testing.assert_allclose(fused, generic, rtol=1e-4, atol=1e-6 * float(generic.max()))
    assert float(np.abs(fused[8]).max()) < 1e-6 * float(generic.max())  # a dark canvas stays dark


def test_fused_counts_match_the_generic_path(twin: Twin, canvases: np.ndarray) -> None:
    ids = np.arange(20, 29)
    fused, generic = twin.expose(canvases, ids), _generic(twin, twin.expose, canvases, ids)
    # Same noise draws; the intensities differ in float32 rounding, so a count may round the other way.
    assert float(np.abs(fused - generic).max()) <= 1.0
    assert float(np.mean(fused != generic)) < 1e-3


@pytest.mark.parametrize("planes_per_batch", [1, 3])
def test_frames_do_not_depend_on_batching(twin: Twin, canvases: np.ndarray, planes_per_batch: int) -> None:
    """A grey canvas's planes fall into different batches alone and in a recording's batch."""
    ids = np.arange(9)
    reference = twin.expose(canvases, ids)
    twin.planes_per_batch = planes_per_batch
    try:
        rebatched = twin.expose(canvases, ids)
    finally:
        twin.planes_per_batch = None
    np.testing.assert_array_equal(rebatched, reference)
    for i in (2, 6, 8):  # one frame alone runs in the caller's thread with multithreaded FFTs
        np.testing.assert_array_equal(twin.expose_one(canvases[i], i), reference[i])
