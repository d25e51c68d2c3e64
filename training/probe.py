"""The mapping probe: where on the canvas a trained network has learnt the system's inverse.

The paper argues that a network learns an approximation M of T⁻¹ only where, and with the grey levels
with which, its training set lights the canvas (Fig. 1b). The twin knows T, so this can be measured
instead of inferred: each case's probe set (:func:`specklenet.training.designed.probe_targets`) lights
one small square (half a cell, grey 255) in each cell of an 8×8 grid over the output window; the twin
renders its speckle; the trained network reconstructs it; the PCC between reconstruction and the lit
square, per cell, is the network's **point response** there. Its map sits beside the training set's
coverage (Fig. 1b III: the superimposed targets, normalised) in ``probe.png``.

How well does it predict generalisation? Per case, the probe score (mean point response over the map,
with a bootstrap interval over cells and seeds) against the **cross-dataset PCC** (mean PCC over the
test kinds the case was not trained on: digits and scenes for faces, faces and scenes for digits, all
three for the designed set), as a Spearman rank correlation across the cases of Table 1 and the designed
case (cases 5 and SI: other windows or the same network). The training set's coverage (fraction of the
window ever lit, times the grey-level entropy of lit pixels / 8 bits) gets the same correlation, for
comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from specklenet.training.cases import CASES
from specklenet.training.checks import Summary
from specklenet.training.designed import PROBE_GRID
from specklenet.training.statistics import Estimate, bootstrap_mean

CORRELATED_CASES = ("1", "2", "3", "4a", "4b", "4c", "designed")


def response_map(pcc: list[float] | np.ndarray, grid: int = PROBE_GRID) -> np.ndarray:
    """The point responses of one model, ``(grid, grid)`` in the probe targets' row-major order."""
    values = np.asarray(pcc, dtype=np.float64)
    if values.size != grid * grid:
        raise ValueError(f"expected {grid * grid} probe responses, got {values.size}")
    return values.reshape(grid, grid)


def cross_dataset_pcc(summary: Summary, case: str) -> Estimate | None:
    """Mean PCC over the centre test kinds ``case`` was not trained on (None when none was run).

    The interval is the widest of its parts' (a conservative stand-in for their joint bootstrap).
    """
    trained = CASES[case].train_kind
    parts = [
        summary[case][kind]["pcc"]["estimate"]
        for kind in ("faces", "digits", "scenes")
        if kind != trained and kind in summary.get(case, {})
    ]
    if not parts:
        return None
    mean = float(np.mean([p.mean for p in parts]))
    half = max(p.high - p.low for p in parts) / 2
    return Estimate(mean, mean - half, mean + half, parts[0].n_images, parts[0].n_seeds)


def probe_scores(results: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[np.ndarray, Estimate]]:
    """case → (mean map over seeds, probe score with its interval over cells and seeds)."""
    scores = {}
    for case, runs in results.items():
        if not runs or "probe" not in runs[0]:
            continue
        maps = np.stack([response_map(run["probe"]["pcc"]) for run in runs])
        scores[case] = (maps.mean(axis=0), bootstrap_mean(maps.reshape(len(runs), -1)))
    return scores


def coverage_score(lit_fraction: np.ndarray, lit_grey_entropy_bits: float) -> float:
    """Fraction of the window ever lit × grey-level entropy of lit pixels / 8 (1 for faces-like sets).

    A binary set (entropy 0) gets a floor of 1/8 for its one level, so binary sets rank by area."""
    return float((lit_fraction > 0).mean() * max(lit_grey_entropy_bits, 1.0) / 8.0)


def rank_correlation(x: dict[str, float], y: dict[str, float]) -> tuple[float | None, int]:
    """Spearman's ρ over the cases in both (None below 3 cases or with a constant side), and n."""
    cases = [c for c in x if c in y]
    if len(cases) < 3:
        return None, len(cases)
    a, b = [x[c] for c in cases], [y[c] for c in cases]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, len(cases)
    return float(spearmanr(a, b).statistic), len(cases)


def probe_figure(
    maps: dict[str, np.ndarray],
    coverage: dict[str, np.ndarray],
    scores: dict[str, Estimate],
    cross: dict[str, Estimate],
    rho: float | None,
    path: Path,
    *,
    title: str,
) -> Path:
    """Per case: coverage (Fig. 1b III) beside the point-response map; then score vs cross-dataset PCC."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(maps)
    fig = plt.figure(figsize=(2.0 * len(cases) + 4.5, 4.6), constrained_layout=True)
    grid = fig.add_gridspec(2, len(cases) + 2)
    for column, case in enumerate(cases):
        top = fig.add_subplot(grid[0, column])
        if case in coverage:
            top.imshow(coverage[case] / max(float(coverage[case].max()), 1e-12), cmap="gray", vmin=0, vmax=1)
        top.set_title(f"C#{case} coverage", fontsize=8)
        bottom = fig.add_subplot(grid[1, column])
        image = bottom.imshow(maps[case], cmap="viridis", vmin=0, vmax=1)
        bottom.set_title(f"point response {scores[case].mean:.2f}", fontsize=8)
        for axis in (top, bottom):
            axis.set_xticks([])
            axis.set_yticks([])
    fig.colorbar(image, ax=fig.axes, shrink=0.6, label="PCC of a lit square")
    scatter = fig.add_subplot(grid[:, len(cases) :])
    for case in (c for c in cases if c in cross):
        s, c = scores[case], cross[case]
        scatter.errorbar(
            s.mean,
            c.mean,
            xerr=[[s.mean - s.low], [s.high - s.mean]],
            yerr=[[c.mean - c.low], [c.high - c.mean]],
            fmt="o",
            capsize=2,
        )
        scatter.annotate(case, (s.mean, c.mean), fontsize=8, xytext=(4, 4), textcoords="offset points")
    scatter.set_xlabel("probe score (mean point response)")
    scatter.set_ylabel("cross-dataset PCC")
    scatter.set_title("Spearman ρ = " + ("n/a" if rho is None else f"{rho:.2f}"), fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
