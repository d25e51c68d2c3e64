"""Small pairs files rendered by the optical twin, for the training tests (not a test module).

Targets are simple binary shapes (rectangles and discs of random size and position) inside the centre
64×64 output window of the 128×128 canvas, rendered through ``Twin(TwinConfig(), seed=0)`` with its
default camera (noise on) and written with the real pairs-file writer, as ``simulate`` would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specklenet.daemon.records import PairsWriter, Targets
from specklenet.daemon.twin import Twin, TwinConfig

WINDOW = (32, 32, 64, 64)


def shapes(count: int, seed: int) -> np.ndarray:
    """uint8 ``(count, 128, 128)`` canvases, one lit rectangle or disc inside the centre window each."""
    rng = np.random.default_rng(seed)
    canvases = np.zeros((count, 128, 128), np.uint8)
    rows, cols = np.mgrid[0:64, 0:64]
    for canvas in canvases:
        size = int(rng.integers(14, 40))
        row, col = (int(v) for v in rng.integers(2, 62 - size, size=2))
        window = canvas[32:96, 32:96]
        if rng.random() < 0.5:
            window[row : row + size, col : col + size] = 255
        else:
            centre_r, centre_c = row + size / 2, col + size / 2
            window[(rows - centre_r) ** 2 + (cols - centre_c) ** 2 <= (size / 2) ** 2] = 255
    return canvases


def write_twin_pairs(
    path: Path, count: int, *, seed: int = 0, case: str = "shapes", only: int | None = None
) -> Path:
    """Render ``count`` shape targets through the twin into a pairs file at ``path``.

    ``only``: record just the first ``only`` frames (the rest stay missing, as after an interruption).
    """
    canvases = shapes(count, seed)
    targets = Targets.from_canvases(
        canvases, case=case, split="train", output_window=WINDOW, provenance={"seed": seed}
    )
    twin = Twin(TwinConfig(), seed=0)
    recorded = count if only is None else only
    frames = twin.expose(canvases[:recorded])
    with PairsWriter.create(path, targets, source="twin", acquisition=twin.describe()) as writer:
        for index in range(recorded):
            writer.write(index, frames[index], frame_id=index, timestamp_ns=0)
    return path


def cached_twin_pairs(base: Path, count: int, *, seed: int = 0) -> Path:
    """A pairs file of ``count`` shapes, rendered once per test session (``base`` = pytest's basetemp)."""
    path = base / f"twin-shapes-{count}-{seed}.h5"
    if not path.exists():
        partial = base / f"partial-{path.name}"
        write_twin_pairs(partial, count, seed=seed)
        partial.rename(path)
    return path


def cached_ci_run(base: Path, count: int = 256) -> Path:
    """A folder with a finished ``ci``-profile run on :func:`cached_twin_pairs`, trained once per session."""
    from specklenet.training.pairdata import load_pairs
    from specklenet.training.profiles import PROFILES
    from specklenet.training.train import fit

    profile = PROFILES["ci"]
    run_dir = base / f"ci-run-{count}"
    fit(
        load_pairs(cached_twin_pairs(base, count), output_px=profile.model.resolution_px),
        profile,
        run_dir,
        progress=False,
    )
    return run_dir


def cached_ci_model(base: Path, count: int = 256) -> Path:
    """An exported ONNX file of :func:`cached_ci_run` (``ci`` profile: 256² frames in, 32² out, window
    (32, 32, 64, 64) of the 128² canvas), exported once per session."""
    from specklenet.training.export import export_onnx

    path = base / f"ci-model-{count}.onnx"
    if not path.exists():
        export_onnx(cached_ci_run(base, count), path)  # written atomically: exists only when complete
    return path
