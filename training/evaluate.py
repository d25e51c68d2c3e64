"""Evaluate an exported model on a pairs file: reconstructions and PCC, SSIM, CS per test image.

The model runs in ONNX Runtime exactly as the daemon will run it: its own metadata
(:class:`~specklenet.daemon.modelinfo.ModelInfo`) says how to normalise the frames and at what
resolution it answers; nothing is taken from the training run. The ground truth of each pair is its
target's own window (the output window, or the target's ``truth_window`` where it was displayed
elsewhere, as in case 5's shifted tests), grey / 255, resized to the model's output resolution the way
training resized it (:func:`specklenet.training.pairdata.resize_truth`); the metrics (:mod:`.metrics`)
compare the two on [0, 1] images.

:func:`baseline_metrics` scores the constant-output baseline on the same ground truth (the case's mean
training target answered for every test image; :mod:`.statistics`). ``evaluate`` takes an exported
model, a :class:`Reconstructor`, or any object with the same ``info`` and ``__call__`` (the checks'
tests pass exact inverses and memorising models through it).

``write_evaluation`` saves ``metrics.csv`` (one row per image), ``summary.json`` (mean, spread) and
``examples.png`` (ground truth, speckle, reconstruction with its PCC).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.training.export import read_model_info
from specklenet.training.figures import Row, image_grid
from specklenet.training.metrics import METRIC_FUNCTIONS, METRICS, all_metrics
from specklenet.training.pairdata import load_pairs
from specklenet.training.statistics import constant_output

BATCH = 16


class Reconstructor:
    """An exported model in ONNX Runtime: normalised frames in, reconstructions out.

    ``reconstructor(frames)`` takes float32 ``(K, 1, frame_px, frame_px)`` normalised frames and returns
    ``(K, output_px, output_px)`` in [0, 1]. CUDA when ONNX Runtime and a GPU are both there, else CPU.
    Not thread-safe (one per thread).
    """

    def __init__(self, model_path: str | Path) -> None:
        import onnxruntime

        self.path = Path(model_path)
        self.info: ModelInfo = read_model_info(self.path)
        available = onnxruntime.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" in available and _cuda_present():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = onnxruntime.InferenceSession(str(self.path), providers=providers)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.ascontiguousarray(frames, np.float32)
        expected = (1, self.info.frame_px, self.info.frame_px)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise FileFormatError(f"{self.path}: expects frames (K, {expected}), got {frames.shape}")
        outputs = [
            self.session.run(None, {self.info.input_name: frames[start : start + BATCH]})[0][:, 0]
            for start in range(0, len(frames), BATCH)
        ]
        return np.concatenate(outputs) if outputs else np.empty((0, self.info.output_px, self.info.output_px))


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One model on one set of pairs: per-image arrays (first axis: the pairs, in file order).

    Attributes:
        name: the test set's name (the pairs file's split, or the file's stem).
        info: the model's metadata.
        indices: the pairs' indices in their file.
        labels, datasets: each target's label and source dataset (strings).
        truth, reconstruction: ``(K, output_px, output_px)`` in [0, 1].
        frames: ``(K, frame_px, frame_px)`` normalised speckle the model saw.
        metrics: ``{"pcc", "ssim", "cs"}`` → ``(K,)``.
    """

    name: str
    info: ModelInfo
    indices: np.ndarray
    labels: np.ndarray
    datasets: np.ndarray
    truth: np.ndarray
    reconstruction: np.ndarray
    frames: np.ndarray
    metrics: dict[str, np.ndarray]

    def summary(self) -> dict[str, dict[str, float]]:
        """Per metric: n, mean, std (population), median, min, max."""
        return {
            name: {
                "n": int(values.size),
                "mean": float(np.mean(values)),
                "std": float(np.std(values)),
                "median": float(np.median(values)),
                "min": float(np.min(values)),
                "max": float(np.max(values)),
            }
            for name, values in self.metrics.items()
        }


def evaluate(
    model: str | Path | Reconstructor, pairs_path: str | Path, *, name: str | None = None
) -> Evaluation:
    """Run ``model`` on every complete pair of ``pairs_path`` and score each reconstruction.

    ``model``: an ONNX file, or a reconstructor (anything with ``info`` and ``__call__`` as
    :class:`Reconstructor`'s).
    """
    reconstructor = Reconstructor(model) if isinstance(model, str | Path) else model
    info = reconstructor.info
    pairs = load_pairs(pairs_path, output_px=info.output_px, normalisation=info.normalisation)
    if pairs.frames.shape[-1] != info.frame_px:
        raise FileFormatError(
            f"{pairs_path}: frames are {pairs.frames.shape[-1]}² but the model takes {info.frame_px}²"
        )
    reconstruction = reconstructor(pairs.frames.numpy())
    truth = pairs.truth[:, 0].numpy()
    return Evaluation(
        name=name or pairs.targets.split or Path(pairs_path).stem,
        info=info,
        indices=pairs.indices,
        labels=np.asarray(pairs.targets.columns["label"]).astype(str),
        datasets=np.asarray(pairs.targets.columns["dataset"]).astype(str),
        truth=truth,
        reconstruction=reconstruction,
        frames=pairs.frames[:, 0].numpy(),
        metrics=all_metrics(reconstruction, truth),
    )


def baseline_metrics(evaluation: Evaluation, mean_target: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image metrics of the constant output ``mean_target`` (``(output_px, output_px)`` in [0, 1])
    against ``evaluation``'s ground truth: what a network that learnt nothing but the mean would score."""
    return {name: constant_output(mean_target, evaluation.truth, METRIC_FUNCTIONS[name]) for name in METRICS}


def write_evaluation(evaluation: Evaluation, out_dir: str | Path, *, examples: int = 8) -> list[Path]:
    """Save metrics.csv, summary.json and examples.png (the first ``examples`` images) in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "metrics.csv"
    with csv_path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["index", "dataset", "label", *METRICS])
        for k, index in enumerate(evaluation.indices):
            values = [f"{evaluation.metrics[m][k]:.4f}" for m in METRICS]
            writer.writerow([int(index), evaluation.datasets[k], evaluation.labels[k], *values])
    summary_path = out_dir / "summary.json"
    summary = {
        "test_set": evaluation.name,
        "model_case": evaluation.info.case,
        "profile": evaluation.info.profile,
        "metrics": evaluation.summary(),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    shown = slice(0, examples)
    rows = [
        Row("GT", evaluation.truth[shown]),
        Row("Pattern", evaluation.frames[shown], speckle=True),
        Row(
            f"C#{evaluation.info.case}",
            evaluation.reconstruction[shown],
            notes=[f"{v:.2f}" for v in evaluation.metrics["pcc"][shown]],
        ),
    ]
    title = (
        f"model case {evaluation.info.case} ({evaluation.info.profile}) on {evaluation.name}; PCC lower right"
    )
    figure = image_grid(
        rows, out_dir / "examples.png", title=title, column_titles=list(evaluation.labels[shown])
    )
    return [csv_path, summary_path, figure]


def format_evaluation(evaluation: Evaluation, *, per_image: int = 20) -> str:
    """A plain-text report: the first ``per_image`` images' metrics, then the summary."""
    lines = [f"model case {evaluation.info.case} ({evaluation.info.profile}) on {evaluation.name}:"]
    if per_image:
        lines.append(f"{'index':>6}  {'label':<24} {'PCC':>7} {'SSIM':>7} {'CS':>7}")
        for k in range(min(per_image, len(evaluation.indices))):
            pcc, ssim, cs = (evaluation.metrics[m][k] for m in METRICS)
            lines.append(
                f"{evaluation.indices[k]:>6}  {evaluation.labels[k][:24]:<24} "
                f"{pcc:7.4f} {ssim:7.4f} {cs:7.4f}"
            )
        if len(evaluation.indices) > per_image:
            lines.append(f"{'':>6}  ... {len(evaluation.indices) - per_image} more in metrics.csv")
    for name, stats in evaluation.summary().items():
        lines.append(
            f"{name.upper():>5}: mean {stats['mean']:.4f} ± {stats['std']:.4f} "
            f"(median {stats['median']:.4f}, "
            f"min {stats['min']:.4f}, max {stats['max']:.4f}, n = {stats['n']})"
        )
    return "\n".join(lines)


def _cuda_present() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False
