"""The mapping probe's arithmetic: maps in grid order, cross-dataset PCC, rank correlation, the figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from specklenet.training.probe import (
    coverage_score,
    cross_dataset_pcc,
    probe_figure,
    probe_scores,
    rank_correlation,
    response_map,
)
from specklenet.training.statistics import Estimate


def test_response_map_is_row_major_like_the_probe_targets() -> None:
    values = np.arange(64.0)
    grid = response_map(values)
    assert grid[0, 7] == 7 and grid[1, 0] == 8 and grid[7, 7] == 63
    with pytest.raises(ValueError, match="64 probe responses"):
        response_map(values[:60])


def test_probe_scores_average_the_seeds_maps() -> None:
    runs = [{"probe": {"pcc": np.full(64, 0.2).tolist()}}, {"probe": {"pcc": np.full(64, 0.6).tolist()}}]
    maps = probe_scores({"2": runs})
    mean_map, score = maps["2"]
    np.testing.assert_allclose(mean_map, 0.4)
    assert score.mean == pytest.approx(0.4) and score.n_seeds == 2 and score.low < 0.4 < score.high


def test_cross_dataset_pcc_leaves_out_the_kind_trained_on() -> None:
    def entry(mean: float) -> dict:
        return {"pcc": {"estimate": Estimate(mean, mean - 0.1, mean + 0.1, 50, 1)}}

    summary = {
        "1": {"faces": entry(0.9), "digits": entry(0.5), "scenes": entry(0.7)},
        "2": {"faces": entry(0.2), "digits": entry(0.95), "scenes": entry(0.4)},
        "designed": {"faces": entry(0.6), "digits": entry(0.9), "scenes": entry(0.6)},
    }
    assert cross_dataset_pcc(summary, "1").mean == pytest.approx(0.6)  # digits, scenes
    assert cross_dataset_pcc(summary, "2").mean == pytest.approx(0.3)  # faces, scenes
    assert cross_dataset_pcc(summary, "designed").mean == pytest.approx(0.7)  # all three
    assert cross_dataset_pcc({}, "3") is None


def test_rank_correlation_is_spearmans_and_needs_three_cases() -> None:
    x = {"1": 0.9, "2": 0.1, "3": 0.3, "4a": 0.5}
    assert rank_correlation(x, {"1": 0.8, "2": 0.2, "3": 0.25, "4a": 0.6}) == (pytest.approx(1.0), 4)
    assert rank_correlation(x, {"1": 0.1, "2": 0.8, "3": 0.6, "4a": 0.3}) == (pytest.approx(-1.0), 4)
    assert rank_correlation({"1": 1.0, "2": 2.0}, {"1": 1.0, "2": 2.0}) == (None, 2)


def test_coverage_score_ranks_full_grey_sets_above_sparse_binary_ones() -> None:
    full = np.full((64, 64), 0.5)
    border = full.copy()
    border[:6] = 0.0  # MNIST's never-lit edge
    assert coverage_score(full, 8.0) == pytest.approx(1.0)
    assert coverage_score(border, 0.0) < coverage_score(full, 0.0) < coverage_score(full, 7.0)


def test_probe_figure_is_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    estimate = Estimate(0.3, 0.2, 0.4, 64, 1)
    path = probe_figure(
        {"1": rng.random((8, 8)), "2": rng.random((8, 8))},
        {"1": rng.random((64, 64)), "2": rng.random((64, 64))},
        {"1": estimate, "2": estimate},
        {"1": estimate, "2": estimate},
        None,
        tmp_path / "probe.png",
        title="test",
    )
    assert path.stat().st_size > 10_000
