"""Which pixels a training set trains, and how varied their grey levels are (Fig. 1b, Figs. S1–S4).

For a set of targets, inside its output window (``canvases[index, row, column]``, uint8):
    * the intensity-superimposed image, clipped at saturation (255): black where no target ever
      lights a pixel (Fig. 1b II);
    * the superimposed image normalised by its maximum: how often each pixel is trained (Fig. 1b III);
    * normalised histograms of the grey level at 10 marked pixels over the set, and their average
      (Figs. S1–S4);
    * a one-line coverage summary: the fraction of never-lit pixels and the entropy of the grey levels.

The 10 marked pixels sit at fixed fractions of the window (:data:`MARKED_POINTS`), so the same pixels
are compared across cases; points 1 and 7 lie near the window's edge, where MNIST digits never reach.
Figures are written as PNG with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specklenet.daemon.records import Targets

# (row, column) as fractions of the output window; the paper picks 10 points at random.
MARKED_POINTS = (
    (0.06, 0.50),
    (0.30, 0.30),
    (0.30, 0.70),
    (0.50, 0.50),
    (0.50, 0.22),
    (0.50, 0.78),
    (0.94, 0.06),
    (0.70, 0.40),
    (0.70, 0.62),
    (0.42, 0.56),
)


@dataclass(frozen=True)
class Coverage:
    """How a set of targets covers its output window.

    Attributes:
        count: number of targets.
        never_lit_window: fraction of output-window pixels that are 0 in every target.
        never_lit_canvas: the same over the whole canvas.
        lit_area: mean fraction of the window lit (> 0) per target.
        grey_entropy_bits: Shannon entropy of the grey levels of the window's pixels over the set, 0..8.
        lit_grey_entropy_bits: the same over lit pixels only (0 for binary targets).
    """

    count: int
    never_lit_window: float
    never_lit_canvas: float
    lit_area: float
    grey_entropy_bits: float
    lit_grey_entropy_bits: float

    def summary(self, label: str) -> str:
        """One line for the terminal and reports."""
        return (
            f"{label}: {self.count} targets; never lit: {self.never_lit_window:.1%} of the output window "
            f"({self.never_lit_canvas:.1%} of the canvas); lit area {self.lit_area:.1%} per target; "
            f"grey-level entropy {self.grey_entropy_bits:.2f} bits ({self.lit_grey_entropy_bits:.2f} bits "
            "over lit pixels)"
        )


def window(targets: Targets) -> np.ndarray:
    """uint8 ``(N, rows, columns)``: the canvases inside the output window."""
    row0, col0, rows, cols = targets.output_window
    return targets.canvases[:, row0 : row0 + rows, col0 : col0 + cols]


def superimposed(targets: Targets) -> np.ndarray:
    """float64 ``(rows, columns)``: the window's grey levels summed over all targets."""
    return window(targets).sum(axis=0, dtype=np.float64)


def grey_histogram(values: np.ndarray) -> np.ndarray:
    """float64 ``(256,)`` normalised histogram (sums to 1) of uint8 grey levels."""
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    return counts / max(counts.sum(), 1.0)


def entropy_bits(histogram: np.ndarray) -> float:
    """Shannon entropy, in bits, of a normalised histogram."""
    p = histogram[histogram > 0]
    return max(0.0, float(-(p * np.log2(p)).sum()))  # max: a single level gives -0.0


def marked_pixels(shape: tuple[int, int]) -> list[tuple[int, int]]:
    """The 10 marked (row, column) pixels of a window of ``shape``."""
    return [
        (min(int(r * shape[0]), shape[0] - 1), min(int(c * shape[1]), shape[1] - 1)) for r, c in MARKED_POINTS
    ]


def point_histograms(targets: Targets) -> np.ndarray:
    """float64 ``(10, 256)``: normalised grey-level histogram at each marked pixel over the set."""
    pixels = window(targets)
    return np.stack([grey_histogram(pixels[:, r, c]) for r, c in marked_pixels(pixels.shape[1:])])


def coverage(targets: Targets) -> Coverage:
    """The coverage figures of ``targets`` (see :class:`Coverage`)."""
    pixels = window(targets)
    lit = pixels > 0
    lit_levels = pixels[lit]
    return Coverage(
        count=len(targets),
        never_lit_window=float(1.0 - lit.any(axis=0).mean()),
        never_lit_canvas=float(1.0 - (targets.canvases > 0).any(axis=0).mean()),
        lit_area=float(lit.mean()),
        grey_entropy_bits=entropy_bits(grey_histogram(pixels)),
        lit_grey_entropy_bits=entropy_bits(grey_histogram(lit_levels)) if lit_levels.size else 0.0,
    )


def write_figures(targets: Targets, folder: Path, stem: str) -> list[Path]:
    """Write ``<stem>-superimposed.png`` (Fig. 1b) and ``<stem>-histograms.png`` (Figs. S1–S4)."""
    import matplotlib

    matplotlib.use("Agg")
    folder.mkdir(parents=True, exist_ok=True)
    title = f"case {targets.case}, {targets.split} ({len(targets)} targets)"
    paths = [folder / f"{stem}-superimposed.png", folder / f"{stem}-histograms.png"]
    _superimposed_figure(targets, title).savefig(paths[0], dpi=110)
    _histogram_figure(targets, title).savefig(paths[1], dpi=110)
    import matplotlib.pyplot as plt

    plt.close("all")
    return paths


def _superimposed_figure(targets: Targets, title: str):
    import matplotlib.pyplot as plt

    pixels = window(targets)
    total = superimposed(targets)
    fig, axes = plt.subplots(1, 6, figsize=(13, 2.8), constrained_layout=True)
    for axis, index in zip(axes[:4], np.linspace(0, len(targets) - 1, 4).astype(int), strict=True):
        axis.imshow(pixels[index], cmap="gray", vmin=0, vmax=255)
        axis.set_title(f"I: target {index}", fontsize=9)
    axes[4].imshow(np.minimum(total, 255), cmap="gray", vmin=0, vmax=255)
    axes[4].set_title("II: superimposed, clipped", fontsize=9)
    axes[5].imshow(total / max(total.max(), 1.0), cmap="gray", vmin=0, vmax=1)
    axes[5].set_title("III: superimposed, normalised", fontsize=9)
    for axis in axes:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.suptitle(f"{title}: {coverage(targets).summary('coverage').split(': ', 1)[1]}", fontsize=8)
    return fig


def _histogram_figure(targets: Targets, title: str):
    import matplotlib.pyplot as plt

    pixels = window(targets)
    histograms = point_histograms(targets)
    fig = plt.figure(figsize=(16, 5), constrained_layout=True)
    grid = fig.add_gridspec(2, 9)
    example = fig.add_subplot(grid[:, :2])
    example.imshow(pixels[int(np.argmax((pixels > 0).sum(axis=(1, 2))))], cmap="gray", vmin=0, vmax=255)
    for number, (row, col) in enumerate(marked_pixels(pixels.shape[1:]), start=1):
        example.plot(col, row, "r+", markersize=9)
        example.annotate(
            str(number), (col, row), color="red", fontsize=8, xytext=(3, 3), textcoords="offset points"
        )
    example.set_title("a: a target of the set, 10 marked pixels", fontsize=9)
    example.set_xticks([])
    example.set_yticks([])
    for number, histogram in enumerate(histograms):
        _bars(fig.add_subplot(grid[number // 5, 2 + number % 5]), histogram, f"b: point {number + 1}")
    average = fig.add_subplot(grid[:, 7:])
    _bars(average, histograms.mean(axis=0), "c: average of the 10 histograms")
    inset = average.inset_axes((0.35, 0.45, 0.6, 0.45))
    _bars(inset, histograms.mean(axis=0)[1:], "", start=1)  # the paper's inset: levels 1–255
    inset.set_title("levels 1–255", fontsize=7)
    fig.suptitle(f"{title}: normalised grey-level histograms at the marked pixels", fontsize=10)
    return fig


def _bars(axis, histogram: np.ndarray, title: str, start: int = 0) -> None:
    # Outlined steps: a spike at 0 or 255 (binary digits) stays visible as a line at any resolution.
    axis.stairs(histogram, np.arange(start, start + len(histogram) + 1) - 0.5, color="tab:blue", linewidth=1)
    axis.set_xlim(-8, 263)
    axis.tick_params(labelsize=6)
    if title:
        axis.set_title(title, fontsize=8)
