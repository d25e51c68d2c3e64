"""The speckle normalisation modes (mean only, z-score, equalised): training and daemon agree.

Training normalises torch tensors (``load_pairs``); the daemon normalises numpy frames with the
normalisation it reads back from the model's metadata. Both must give the network the same input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from twin_pairs import write_twin_pairs

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.normalisation import METHODS, Normalisation
from specklenet.daemon.records import read_pairs
from specklenet.training.pairdata import load_pairs


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """Raw counts: bright and dim speckle, many tied counts, an all-dark frame."""
    rng = np.random.default_rng(3)
    out = np.round(rng.exponential(300.0, (4, 256, 256)) + 16.0).astype(np.float32)
    out[1] = np.round(rng.exponential(8.0, (256, 256)) + 16.0)  # dim: mostly tied low counts
    out[3] = 16.0
    return out


@pytest.mark.parametrize("method", METHODS)
def test_numpy_and_torch_agree(frames: np.ndarray, method: str) -> None:
    normalisation = Normalisation(method=method)
    daemon = normalisation.apply(frames)
    training = normalisation.apply(torch.from_numpy(frames)).numpy()
    assert daemon.dtype == np.float32 and daemon.shape == frames.shape and np.isfinite(daemon).all()
    if method == "equalised":
        np.testing.assert_array_equal(training, daemon)  # integer ranks: exact
    else:
        np.testing.assert_allclose(training, daemon, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(normalisation.apply(frames[2]), daemon[2])  # one frame alone


def test_zscore_gives_mean_zero_and_unit_spread(frames: np.ndarray) -> None:
    out = Normalisation(method="zscore").apply(frames)
    np.testing.assert_allclose(out[:3].mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:3].std(axis=(1, 2)), 1.0, rtol=1e-4)
    assert np.array_equal(out[3], np.zeros_like(out[3]))  # a flat frame: zeros, not NaN


def test_equalised_is_uniform_and_ignores_exposure_and_contrast(frames: np.ndarray) -> None:
    equalised = Normalisation(method="equalised")
    out = equalised.apply(frames)
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out[0].mean(), 0.5, atol=1e-3)  # mid-ranks of distinct values: uniform
    # Any increasing map of the counts above the dark offset (exposure, gain, gamma) changes nothing.
    signal = frames[:1] - 16.0
    brighter = 3.0 * signal**1.5 + 16.0
    np.testing.assert_array_equal(equalised.apply(brighter), out[:1])
    # Ties share their mid-rank: an all-dark frame is flat at one half.
    np.testing.assert_array_equal(out[3], np.full_like(out[3], 0.5))
    # The mean-only normalisation does see the contrast change.
    mean_only = Normalisation().apply(np.concatenate([frames[:1], brighter]))
    assert not np.allclose(mean_only[0], mean_only[1], atol=1e-2)


@pytest.mark.parametrize("method", METHODS)
def test_metadata_round_trip(method: str) -> None:
    normalisation = Normalisation(method=method, dark_offset_counts=12.0)
    assert Normalisation.from_metadata(normalisation.to_metadata()) == normalisation


def test_an_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"normalisation\.method"):
        Normalisation(method="histogram")  # type: ignore[arg-type]
    metadata = Normalisation().to_metadata() | {"normalisation.method": "median"}
    with pytest.raises(ConfigError, match="median"):
        Normalisation.from_metadata(metadata)


@pytest.mark.parametrize("method", ["zscore", "equalised"])
def test_training_input_equals_what_the_daemon_computes(tmp_path: Path, method: str) -> None:
    path = write_twin_pairs(tmp_path / "pairs.h5", 6)
    pairs = load_pairs(path, output_px=32, method=method)
    assert pairs.normalisation.method == method
    # The daemon's side: the normalisation from the metadata a model carries, on numpy camera frames.
    daemon = Normalisation.from_metadata(pairs.normalisation.to_metadata())
    with read_pairs(path) as recorded:
        raw = recorded.load_frames(np.arange(6))
    np.testing.assert_allclose(pairs.frames[:, 0].numpy(), daemon.apply(raw), rtol=1e-5, atol=1e-6)
