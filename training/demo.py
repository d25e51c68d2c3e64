"""``specklenet-train demo``: a short look at the optical twin — targets on the DMD and their speckle.

Shows a digit and a face (the embedded stand-ins, or MNIST/LFW with ``--data-dir``) in the centre of
the DMD canvas, renders what the camera records through the default twin (multislice diffuser, PWM
bit-planes, camera noise), and writes one PNG with the target, the raw frame and the normalised
frame the network would see, plus the speckle statistics that tell a developed speckle.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

CANVAS_PX = 128


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="render a digit and a face through the optical twin and save a PNG",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", "-o", type=Path, default=Path("demo-output"), help="folder for the PNG")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist/ and lfw/ (default: embedded stand-ins)",
    )
    parser.add_argument(
        "--fidelity", choices=("dataset", "full"), default="dataset", help="twin fidelity level"
    )
    parser.add_argument("--seed", type=int, default=0, help="diffuser and noise seed")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from specklenet.daemon.normalisation import Normalisation
    from specklenet.daemon.twin import Twin, TwinConfig
    from specklenet.daemon.twin import statistics as st

    targets = _targets(args.data_dir)
    canvases = np.zeros((len(targets), CANVAS_PX, CANVAS_PX), np.uint8)
    lo = (CANVAS_PX - targets.shape[1]) // 2
    canvases[:, lo : lo + targets.shape[1], lo : lo + targets.shape[2]] = targets
    started = time.perf_counter()
    twin = Twin(TwinConfig(fidelity=args.fidelity), seed=args.seed)
    built = time.perf_counter()
    frames = twin.expose(canvases)
    rendered = time.perf_counter()
    normalised = Normalisation(dark_offset_counts=twin.config.camera.dark_offset_counts).apply(frames)
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / "twin-demo.png"
    _figure(canvases, frames, normalised, path)
    print(
        f"twin ({args.fidelity}, {twin.config.diffuser} diffuser, slice gap {twin.slice_gap_mm:.2f} mm): "
        f"built in {built - started:.2f} s, {len(frames)} frames in {rendered - built:.2f} s"
    )
    for name, frame in zip(("digit", "face"), frames, strict=True):
        signal = frame - twin.config.camera.dark_offset_counts
        print(
            f"  {name}: mean {frame.mean():.0f} counts, speckle contrast {st.contrast(signal):.2f} "
            f"(binned 4×4; 1.0 unbinned), grain {st.grain_fwhm_px(signal):.2f} px FWHM"
        )
    print(f"wrote {path}")
    return 0


def _targets(data_dir: Path | None) -> np.ndarray:
    """One digit and one face, 64×64 uint8."""
    from specklenet.training import datasets

    if data_dir is None:
        digits, faces = datasets.load_stand_in("digits"), datasets.load_stand_in("faces")
        return np.stack([digits.images[0], faces.images[0]])
    digits = datasets.load_mnist(data_dir)
    faces = datasets.load_lfw(datasets.lfw_source(data_dir), [0], progress=False)
    return np.stack([digits.images[0], faces.images[0]])


def _figure(canvases: np.ndarray, frames: np.ndarray, normalised: np.ndarray, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
            ax.set_xticks([])
            ax.set_yticks([])
            if column:
                fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.suptitle("specklenet optical twin: DMD → ground-glass diffuser → camera", fontsize=12)
    fig.savefig(path, dpi=90)
    plt.close(fig)
