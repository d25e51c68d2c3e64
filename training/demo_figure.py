"""The demo's figures: the live panel (targets shown, their speckle, the reconstructions and their PCC)
and the optical twin's first look (a digit and a face, their camera frames and the network's input).

Public names: :func:`live_panel`, :func:`twin_figure`. Both write a PNG with matplotlib's Agg backend
(no display needed) and return its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

CANVAS_PX = 128


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def live_panel(
    path: Path,
    *,
    targets: Sequence[np.ndarray],
    speckle: Sequence[np.ndarray | None],
    reconstructions: Sequence[np.ndarray],
    pccs: Sequence[float],
    constant: np.ndarray,
    baseline_pcc: float,
    title: str,
) -> Path:
    """One column per displayed test target — rows: the target as the model's output window shows it
    ([0, 1]), the camera frame it produced (counts), the live reconstruction with its PCC — and a last
    column with the constant-output baseline (the mean training target) and its mean PCC.

    ``speckle`` may hold None where no frame of that target came over the stream (the panel says so).
    """
    plt = _pyplot()
    columns = len(targets) + 1
    fig, axes = plt.subplots(3, columns, figsize=(1.9 * columns, 6.4), constrained_layout=True, squeeze=False)
    rows = ("displayed target", "camera speckle", "live reconstruction")
    for column, (target, frame, image, pcc) in enumerate(
        zip(targets, speckle, reconstructions, pccs, strict=True)
    ):
        axes[0, column].imshow(target, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        if frame is None:
            axes[1, column].text(0.5, 0.5, "no frame", ha="center", va="center")
        else:
            axes[1, column].imshow(frame, cmap="inferno", interpolation="nearest")
        axes[2, column].imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[2, column].set_title(f"PCC {pcc:.2f}", fontsize=10)
    last = columns - 1
    axes[0, last].axis("off")
    axes[1, last].axis("off")
    axes[2, last].imshow(constant, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes[2, last].set_title(f"constant: PCC {baseline_pcc:.2f}", fontsize=10)
    axes[1, last].text(
        0.5,
        0.1,
        "baseline: the mean\ntraining target,\nanswered to every\nframe",
        ha="center",
        va="bottom",
        fontsize=9,
        transform=axes[1, last].transAxes,
    )
    for row, label in enumerate(rows):
        axes[row, 0].set_ylabel(label, fontsize=10)
    for ax in axes.ravel():
        _bare(ax)
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def twin_figure(path: Path, canvases: np.ndarray, frames: np.ndarray, normalised: np.ndarray) -> Path:
    """Rows: a digit and a face; columns: the DMD canvas, the camera frame, the network's input."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(canvases), 3, figsize=(11, 3.6 * len(canvases)), constrained_layout=True)
    titles = (
        "DMD canvas (128×128 target px)",
        "camera frame (counts, 256×256)",
        "normalised (network input)",
    )
    for row, images in enumerate(zip(canvases, frames, normalised, strict=True)):
        for column, (image, title) in enumerate(zip(images, titles, strict=True)):
            ax = axes[row, column]
            shown = ax.imshow(image, cmap="gray" if column == 0 else "inferno", interpolation="nearest")
            ax.set_title(title, fontsize=10)
            _bare(ax)
            if column:
                fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.suptitle("specklenet optical twin: DMD → ground-glass diffuser → camera", fontsize=12)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
