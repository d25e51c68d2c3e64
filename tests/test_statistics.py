"""Bootstrap intervals, the constant-output baseline and interval comparisons, on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from specklenet.training.metrics import pcc
from specklenet.training.statistics import (
    Estimate,
    bootstrap_mean,
    clearly_above,
    constant_output,
    not_below,
)


def test_interval_covers_the_true_mean_at_about_the_nominal_rate() -> None:
    # 400 synthetic "test sets" of 30 skewed values with a known mean: a 95 % interval must cover it in
    # ~95 % of sets (percentile bootstrap: slightly less at n = 30). SE of the rate: ~1.1 %.
    rng = np.random.default_rng(11)
    true_mean = 0.5
    covered = 0
    trials = 400
    for trial in range(trials):
        values = rng.beta(2.0, 2.0, 30)  # mean 0.5
        estimate = bootstrap_mean(values, resamples=800, seed=trial)
        covered += estimate.low <= true_mean <= estimate.high
    assert 0.90 <= covered / trials <= 0.985


def test_interval_width_shrinks_as_one_over_root_n() -> None:
    rng = np.random.default_rng(2)
    small = bootstrap_mean(rng.normal(0, 1, 25))
    large = bootstrap_mean(rng.normal(0, 1, 400))
    ratio = (small.high - small.low) / (large.high - large.low)
    assert 3.0 < ratio < 5.5  # √(400/25) = 4
    # 1.96 σ/√n either side for normal data
    assert large.high - large.low == pytest.approx(2 * 1.96 / np.sqrt(400), rel=0.2)


def test_seeds_that_disagree_widen_the_interval() -> None:
    # Two seeds whose means differ by 0.4 (e.g. two diffusers): resampling the seeds must show it; an
    # interval over the images alone would be far narrower than the seed spread.
    rng = np.random.default_rng(4)
    images = rng.normal(0, 0.05, 40)
    agreeing = bootstrap_mean(np.stack([images, images + 0.01]))
    disagreeing = bootstrap_mean(np.stack([images, images + 0.4]))
    assert disagreeing.n_seeds == 2 and disagreeing.n_images == 40
    assert disagreeing.mean == pytest.approx(images.mean() + 0.2)
    assert disagreeing.high - disagreeing.low > 0.3
    assert agreeing.high - agreeing.low < 0.06


def test_a_constant_sample_has_a_point_interval_and_bad_shapes_are_refused() -> None:
    estimate = bootstrap_mean(np.full(7, 0.25))
    assert (estimate.low, estimate.mean, estimate.high) == pytest.approx((0.25, 0.25, 0.25))
    with pytest.raises(ValueError, match="shape"):
        bootstrap_mean(np.zeros((0,)))
    with pytest.raises(ValueError, match="shape"):
        bootstrap_mean(np.zeros((2, 3, 4)))


def test_trend_checks_fail_when_intervals_overlap() -> None:
    low = Estimate(0.235, 0.20, 0.27, 50, 1)  # case 2 faces, say
    higher_but_overlapping = Estimate(0.289, 0.25, 0.33, 50, 1)  # case 3: higher mean, overlapping
    clearly_higher = Estimate(0.45, 0.40, 0.50, 50, 1)
    assert not clearly_above(higher_but_overlapping, low)  # a strict '>' on means would say yes
    assert clearly_above(clearly_higher, low)
    assert not clearly_above(low, clearly_higher)
    assert not_below(higher_but_overlapping, low) and not_below(low, higher_but_overlapping)
    assert not not_below(low, clearly_higher)


def test_constant_output_baseline_is_the_mean_target_scored_like_a_reconstruction() -> None:
    rng = np.random.default_rng(6)
    mean_face = rng.random((16, 16))
    faces = np.clip(mean_face + rng.normal(0, 0.3, (12, 16, 16)), 0, 1)  # faces resemble their mean
    baseline = constant_output(mean_face, faces, pcc)
    np.testing.assert_allclose(baseline, pcc(np.broadcast_to(mean_face, faces.shape), faces))
    assert baseline.mean() > 0.5  # high without reconstructing anything: why every mean needs it
    unrelated = constant_output(mean_face, rng.random((12, 16, 16)), pcc)
    assert abs(unrelated.mean()) < 0.15
    with pytest.raises(ValueError, match="does not match"):
        constant_output(mean_face[:8], faces, pcc)


def test_estimates_round_trip_and_print() -> None:
    estimate = Estimate(0.4123, 0.37, 0.455, 50, 3)
    assert Estimate.from_dict(estimate.to_dict()) == estimate
    assert estimate.text() == "0.412 [0.370, 0.455]"
