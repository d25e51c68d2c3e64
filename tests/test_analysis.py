"""Coverage figures and the Fig. 1b / Figs. S1–S4 analysis plots on sets with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from specklenet.daemon.records import Targets
from specklenet.training.analysis import (
    coverage,
    entropy_bits,
    grey_histogram,
    marked_pixels,
    point_histograms,
    superimposed,
    write_figures,
)


def striped_targets() -> Targets:
    """4 targets, window (32, 32, 64, 64): target k lights window rows 16k..16k+7 with grey 255;
    window rows 8..15 of every 16 are never lit."""
    canvases = np.zeros((4, 128, 128), np.uint8)
    for k in range(4):
        canvases[k, 32 + 16 * k : 32 + 16 * k + 8, 32:96] = 255
    return Targets.from_canvases(canvases, output_window=(32, 32, 64, 64))


def test_coverage_of_a_set_with_known_answers() -> None:
    result = coverage(striped_targets())
    assert result.count == 4
    assert result.never_lit_window == 0.5
    assert result.never_lit_canvas == 1 - (4 * 8 * 64) / 128**2
    assert result.lit_area == 8 / 64
    # window grey levels: 1/8 are 255, 7/8 are 0
    expected = -(1 / 8 * np.log2(1 / 8) + 7 / 8 * np.log2(7 / 8))
    assert abs(result.grey_entropy_bits - expected) < 1e-12
    assert result.lit_grey_entropy_bits == 0.0
    line = result.summary("case x")
    assert line.startswith("case x: 4 targets; never lit: 50.0% of the output window")


def test_entropy_is_zero_for_one_level_and_eight_bits_for_all_levels() -> None:
    assert entropy_bits(grey_histogram(np.zeros(100, np.uint8))) == 0.0
    assert abs(entropy_bits(grey_histogram(np.arange(256, dtype=np.uint8))) - 8.0) < 1e-12


def test_superimposed_sums_the_window_only() -> None:
    targets = striped_targets()
    total = superimposed(targets)
    assert total.shape == (64, 64)
    assert total.sum() == 255 * 4 * 8 * 64
    assert (total[8:16] == 0).all()


def test_histograms_at_the_marked_pixels() -> None:
    targets = striped_targets()
    points = marked_pixels((64, 64))
    assert len(set(points)) == 10
    assert all(0 <= r < 64 and 0 <= c < 64 for r, c in points)
    histograms = point_histograms(targets)
    assert histograms.shape == (10, 256)
    np.testing.assert_allclose(histograms.sum(axis=1), 1.0)
    for (row, _), histogram in zip(points, histograms, strict=True):
        lit = (row % 16) < 8  # exactly one of the four targets lights this row
        assert histogram[255] == (0.25 if lit else 0.0)
        assert histogram[0] == (0.75 if lit else 1.0)


def test_figures_are_written_as_non_blank_pngs(tmp_path: Path) -> None:
    paths = write_figures(striped_targets(), tmp_path / "figures", "striped")
    assert [p.name for p in paths] == ["striped-superimposed.png", "striped-histograms.png"]
    for path in paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=float)
        assert image.format == "PNG"
        assert pixels.std() > 10  # something was drawn
