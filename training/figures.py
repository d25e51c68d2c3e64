"""Image grids for people who would rather look than read: ground truth, speckle, reconstructions.

One function, :func:`image_grid`, draws rows of images (one row per kind: ground truth, speckle pattern,
each case's reconstruction) with optional per-image annotations (PCC in the lower right corner, as in
the paper's Fig. 3). Uses matplotlib's Agg backend (files only, no display); not thread-safe (pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Row:
    """One row of a grid.

    Attributes:
        label: printed left of the row ("GT", "Pattern", "C#2").
        images: ``(K, rows, columns)``; NaN-filled images are left blank.
        notes: optional text per image, drawn in its lower right corner.
        speckle: display with a percentile stretch (speckle) instead of the fixed [0, 1] range.
    """

    label: str
    images: np.ndarray
    notes: Sequence[str] | None = None
    speckle: bool = False


def image_grid(
    rows: Sequence[Row], path: str | Path, *, title: str = "", column_titles: Sequence[str] = ()
) -> Path:
    """Draw ``rows`` as a grid of grey images and save a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(row.images) for row in rows)
    figure, axes = plt.subplots(
        len(rows),
        n_cols,
        figsize=(1.3 * n_cols + 0.6, 1.3 * len(rows) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for r, row in enumerate(rows):
        for c in range(n_cols):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
            if c >= len(row.images) or np.all(np.isnan(row.images[c])):
                continue
            image = row.images[c]
            if row.speckle:
                low, high = np.percentile(image, [1, 99.5])
                axis.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6))
            else:
                axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
            if row.notes is not None and row.notes[c]:
                axis.text(
                    0.97,
                    0.03,
                    row.notes[c],
                    color="yellow",
                    fontsize=7,
                    ha="right",
                    va="bottom",
                    transform=axis.transAxes,
                )
        axes[r, 0].set_ylabel(row.label, rotation=0, ha="right", va="center", fontsize=9)
    for c, name in enumerate(column_titles[:n_cols]):
        axes[0, c].set_title(name, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
