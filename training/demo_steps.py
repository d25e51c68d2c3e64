"""The steps of ``specklenet-train demo`` (:mod:`.demo` runs them in order; each skips what is done).

Public names: :func:`twin`, :func:`targets`, :func:`acquire`, :func:`fit`, :func:`export`, :func:`live`,
:func:`panel`, :class:`Outcome`. Each step returns a one-line note for the demo's step table.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from specklenet.training.demo import CASE, LIVE_KIND
from specklenet.training.demo_jobs import LiveResult

if TYPE_CHECKING:
    from rich.console import Console

    from specklenet.training.demo import Files, Size
    from specklenet.training.demo_daemon import DaemonProcess

CANVAS_PX = 128


# --- the twin's first look -------------------------------------------------------------------------


def twin(path: Path, data_dir: Path | None, seed: int, console: Console) -> str:
    """A digit and a face rendered through the default twin (the twin figure of the first demo)."""
    if path.exists():
        return f"{path.name} exists (kept)"
    from specklenet.daemon.normalisation import Normalisation
    from specklenet.daemon.twin import Twin, TwinConfig
    from specklenet.daemon.twin import statistics as st
    from specklenet.training.demo_figure import twin_figure

    images = _digit_and_face(data_dir)
    canvases = np.zeros((2, CANVAS_PX, CANVAS_PX), np.uint8)
    lo = (CANVAS_PX - images.shape[1]) // 2
    canvases[:, lo : lo + images.shape[1], lo : lo + images.shape[2]] = images
    with console.status("rendering a digit and a face through the twin"):
        model = Twin(TwinConfig(), seed=seed)
        frames = model.expose(canvases)
    dark = model.config.camera.dark_offset_counts
    twin_figure(path, canvases, frames, Normalisation(dark_offset_counts=dark).apply(frames))
    for name, frame in zip(("digit", "face"), frames, strict=True):
        signal = frame - dark
        console.print(
            f"  {name}: mean {frame.mean():.0f} counts, speckle contrast {st.contrast(signal):.2f} "
            f"(binned 4×4; 1.0 unbinned), grain {st.grain_fwhm_px(signal):.2f} px FWHM"
        )
    return f"wrote {path.name} ({model.config.diffuser} diffuser, {model.config.fidelity} fidelity)"


def _digit_and_face(data_dir: Path | None) -> np.ndarray:
    from specklenet.training import datasets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", datasets.StandInWarning)  # the targets step says it once
        if data_dir is None:
            digits, faces = datasets.load_stand_in("digits"), datasets.load_stand_in("faces")
            return np.stack([digits.images[0], faces.images[0]])
        digits = datasets.load_mnist(data_dir)
        faces = datasets.load_lfw(datasets.lfw_source(data_dir), [0], progress=False)
    return np.stack([digits.images[0], faces.images[0]])


# --- targets ---------------------------------------------------------------------------------------


def targets(files: Files, size: Size, data_dir: Path | None, seed: int, console: Console) -> str:
    """The case's training targets and its held-out test sets (written once)."""
    if files.targets.exists() and files.live_targets.exists():
        return f"{files.targets.name} and its test sets exist (kept)"
    from specklenet.daemon.records import write_targets
    from specklenet.training.cases import build_case

    with console.status("building the targets"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = build_case(
            CASE, data_dir=data_dir, seed=seed, n_train=size.n_train, n_test=size.n_test, progress=False
        )
    for message in {str(w.message) for w in caught}:
        console.print(f"  [yellow]note:[/yellow] {message}")
    for key, test in data.tests.items():
        write_targets(files.root / f"targets-{CASE}-test-{key}.h5", test)
    write_targets(files.targets, data.train)  # last: its presence says the step is done
    return f"{len(data.train)} training targets; test sets {', '.join(data.tests)} of {size.n_test}"


# --- acquire ---------------------------------------------------------------------------------------


def acquire(daemon: DaemonProcess, files: Files, console: Console) -> str:
    """Record the training pairs through the daemon; a complete file is kept, a partial one resumed."""
    from specklenet.daemon.records import read_pairs
    from specklenet.training import demo_jobs

    resume = files.pairs.exists()
    if resume:
        with read_pairs(files.pairs) as pairs:
            done, total = int(np.count_nonzero(pairs.complete)), len(pairs.complete)
        if done == total:
            return f"{files.pairs.name} complete ({total} pairs, kept)"
        console.print(f"  resuming {files.pairs.name}: {done} of {total} pairs recorded")
    result = demo_jobs.acquire(
        daemon, console, targets=files.targets.name, output=files.pairs.name, resume=resume
    )
    return f"{result['recorded']} frames recorded at {result['rate_hz']:.0f}/s, {result['lost']} lost"


# --- fit and export --------------------------------------------------------------------------------


def fit(files: Files, size: Size, console: Console) -> str:
    """Train (or resume training) the profile's U-Net on the acquired pairs; skipped once exported."""
    if files.model.exists():
        return f"{files.model.name} exists (training skipped)"
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from specklenet.training.pairdata import load_pairs
    from specklenet.training.profiles import load_profile
    from specklenet.training.train import fit as train

    profile = load_profile(size.profile)
    with console.status(f"loading {files.pairs.name}"):
        pairs = load_pairs(files.pairs, output_px=profile.model.resolution_px)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, TextColumn("{task.fields[note]}"), console=console) as bar:
        task = bar.add_task(f"fit ({len(pairs)} pairs)", total=profile.max_epochs, note="")

        def on_batch(epoch: int, done: int, total: int, dice: float | None) -> None:
            note = f"epoch {epoch}/{profile.max_epochs}" + (
                f", val Dice {dice:.3f}" if dice is not None else ""
            )
            bar.update(task, completed=epoch - 1 + done / total, note=note)

        result = train(pairs, profile, files.run, progress=False, on_batch=on_batch)
        bar.update(task, completed=profile.max_epochs)
    return (
        f"{result.stopped} after {result.epochs} epochs; best validation Dice {result.best_val_dice:.3f} "
        f"(untrained {result.untrained_val_dice:.3f})"
    )


def export(files: Files, console: Console) -> str:
    """The run's best model as one ONNX file (written only when ONNX Runtime agrees with PyTorch)."""
    if files.model.exists():
        return f"{files.model.name} exists (kept)"
    from specklenet.training.export import export_onnx

    with console.status("exporting to ONNX and checking parity"):
        result = export_onnx(files.run, files.model)
    worst = max(result.max_abs_random, result.max_abs_real)
    return f"{result.size_bytes / 1e6:.1f} MB, max |ONNX Runtime − PyTorch| {worst:.1g}"


# --- live ------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The live step's result: what was seen, and the baseline it is judged against.

    Attributes:
        live: the stream's reconstructions, PCCs and speckle per target index.
        truth: each displayed test target as the model's output window shows it, [0, 1].
        constant: the constant-output baseline's image (the mean training target, same window).
        baseline: per target index, the PCC of ``constant`` against that target.
        count: displayed test targets.
    """

    live: LiveResult
    truth: np.ndarray
    constant: np.ndarray
    baseline: np.ndarray
    count: int

    @property
    def scored(self) -> list[int]:
        return sorted(self.live.pccs)

    def baseline_pcc(self) -> float:
        """The baseline on the same targets the live PCC was measured on."""
        return float(np.mean(self.baseline[self.scored])) if self.scored else float("nan")

    def line(self) -> str:
        return (
            f"live PCC {self.live.mean_pcc():.3f} on {len(self.scored)} of {self.count} held-out test "
            f"{LIVE_KIND} the model never saw; constant-output baseline {self.baseline_pcc():.3f}"
        )


def live(daemon: DaemonProcess, files: Files, size: Size, console: Console) -> Outcome:
    """Load the model in live mode on the held-out test set and watch it; scores the baseline alike."""
    from specklenet.daemon.records import read_targets
    from specklenet.training import demo_jobs
    from specklenet.training.export import read_model_info
    from specklenet.training.metrics import pcc
    from specklenet.training.pairdata import resize_truth
    from specklenet.training.statistics import constant_output

    test, train = read_targets(files.live_targets), read_targets(files.targets)
    output_px = read_model_info(files.model).output_px
    # scored as training and evaluate score (the daemon's live PCC is the same computation)
    truth = resize_truth(test.ground_truth(), output_px)[:, 0].numpy()
    constant = resize_truth(train.ground_truth(), output_px)[:, 0].double().mean(dim=0).numpy()
    baseline = constant_output(constant, truth, pcc)
    result = demo_jobs.live(
        daemon,
        console,
        model=files.model.name,
        targets=files.live_targets.name,
        count=len(test),
        baseline=float(baseline.mean()),
        rounds=size.rounds,
        min_s=size.live_min_s,
        max_s=size.live_max_s,
    )
    return Outcome(result, truth, constant, baseline, len(test))


def panel(files: Files, size: Size, outcome: Outcome) -> Path:
    """The PNG: the first ``size.shown`` displayed targets, their speckle, their reconstructions."""
    from specklenet.training.demo_figure import live_panel

    shown = range(min(size.shown, outcome.count))
    live = outcome.live
    blank = np.zeros_like(outcome.constant)
    return live_panel(
        files.panel,
        targets=[outcome.truth[i] for i in shown],
        speckle=[live.speckle.get(i) for i in shown],
        reconstructions=[live.reconstructions.get(i, blank) for i in shown],
        pccs=[live.target_pcc(i) for i in shown],
        constant=outcome.constant,
        baseline_pcc=outcome.baseline_pcc(),
        title=f"case {CASE}, profile {size.profile}: pairs acquired and reconstructed live through "
        f"specklenetd on the simulated bench\n{outcome.line()}",
    )


def describe(outcome: Outcome) -> dict[str, Any]:
    """The outcome as plain numbers (for demo-result.json)."""
    return {
        "live_pcc": outcome.live.mean_pcc(),
        "baseline_pcc": outcome.baseline_pcc(),
        "targets_scored": len(outcome.scored),
        "targets": outcome.count,
        "reconstructions": outcome.live.received,
        "seconds": outcome.live.seconds,
    }
