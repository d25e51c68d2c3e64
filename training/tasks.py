"""The reproduction's work as independent task descriptions, and the functions that carry them out.

:func:`specklenet.training.reproduce.reproduce` plans two lists of tasks and hands each list to an
*executor*; everything a task needs is in its description (plain, picklable, frozen dataclasses of
strings, numbers, :class:`Profile` and :class:`TwinConfig`), and it reads and writes only files under
``out_dir`` named in it, so the tasks of one list may run in any order, in parallel, in other processes
or on other machines that see ``out_dir``:

1. :class:`RenderTask` — one per target set × diffuser (seed): render a targets file through the optical
   twin into a pairs file (:func:`run_render`; resumes a partial file). Sets shared by several cases (the
   test faces, digits and scenes, the probe) are one task.
2. :class:`TrainTask` — one per training set × seed: train (``profile.seed`` = ``weights_seed``), then
   for each case trained on that set (case 5 trains on case 1's faces: one task serves both, so no two
   tasks ever write the same run) export, evaluate every test set and the probe, and write
   ``cases/<case>/seed<k>/result.json`` (:func:`run_train`). A case whose result exists is skipped.

An executor is any ``executor(tasks, function) -> list`` returning ``[function(task) for task in tasks]``
in order (:func:`run_local` runs them here, one after another). Every task of the second list reads pairs
files the first list wrote, so an executor must finish one list before it is given the next.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np

from specklenet.daemon.normalisation import DEFAULT_METHOD, Method
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training.cases import TABLE1_COUNT
from specklenet.training.profiles import Profile

_logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``function`` on every task and returns the results in the tasks' order."""

    def __call__(self, tasks: Sequence[T], function: Callable[[T], R]) -> list[R]: ...


def run_local(tasks: Sequence[T], function: Callable[[T], R]) -> list[R]:
    """The default executor: one task after another, in this process."""
    return [function(task) for task in tasks]


@dataclass(frozen=True)
class Context:
    """What every task shares: the report folder and how to render and train."""

    out_dir: str
    profile: Profile
    twin: TwinConfig
    device: str | None = None
    progress: bool = False
    normalisation: Method = DEFAULT_METHOD  # of every training (specklenet.daemon.normalisation)


@dataclass(frozen=True)
class RenderTask:
    """Render ``targets`` (a targets file) through the twin drawn with ``twin_seed`` into ``pairs``.

    Paths are relative to ``context.out_dir``.
    """

    context: Context
    targets: str
    pairs: str
    twin_seed: int


@dataclass(frozen=True)
class CaseTests:
    """One case's test sets (name → pairs file), its probe pairs file and where its results go."""

    case: str
    tests: dict[str, str]
    probe: str
    folder: str  # cases/<case>/seed<k>


@dataclass(frozen=True)
class TrainTask:
    """Train on ``train_pairs`` with initial weights ``weights_seed``; evaluate each of ``cases``.

    ``seed_index`` k (0, 1, ...) names the repetition: ``cases/<case>/seed<k>/``, ``models/case<N>-seed<k>``.
    """

    context: Context
    seed_index: int
    weights_seed: int
    train_pairs: str
    cases: tuple[CaseTests, ...]

    @property
    def run_dir(self) -> str:
        return f"runs/{Path(self.train_pairs).stem}-{self.context.profile.name}-w{self.weights_seed}"


def run_render(task: RenderTask) -> dict[str, Any]:
    """Render (or complete) ``task.pairs``; returns ``{"pairs", "rendered", "seconds"}``."""
    from specklenet.training.simulate import simulate

    out = Path(task.context.out_dir)
    pairs = out / task.pairs
    pairs.parent.mkdir(parents=True, exist_ok=True)
    device = "cpu" if task.context.device == "cpu" else "auto"
    twin = Twin(task.context.twin, seed=task.twin_seed)
    result = simulate(out / task.targets, pairs, twin, device=device, progress=task.context.progress)
    if result.rendered:
        _logger.info("%s: %d frames rendered in %.0f s", task.pairs, result.rendered, result.seconds)
    return {"pairs": task.pairs, "rendered": result.rendered, "seconds": round(result.seconds, 2)}


def run_train(task: TrainTask) -> dict[str, dict[str, Any]]:
    """Train once and evaluate every case of ``task`` (see the module docstring); case → result."""
    out = Path(task.context.out_dir)
    done = {c.case: out / c.folder / "result.json" for c in task.cases}
    if all(path.exists() for path in done.values()):
        for case in done:
            _logger.info("case %s seed %d: finished earlier, skipped", case, task.seed_index)
        return {case: json.loads(path.read_text()) for case, path in done.items()}
    from specklenet.training.pairdata import load_pairs
    from specklenet.training.train import fit

    profile = dataclasses.replace(task.context.profile, seed=task.weights_seed)
    started = time.perf_counter()
    resolution, method = profile.model.resolution_px, task.context.normalisation
    pairs = load_pairs(out / task.train_pairs, output_px=resolution, method=method)
    mean_target = pairs.truth[:, 0].double().mean(dim=0).numpy()  # the constant-output baseline
    training_case = pairs.targets.case
    fitted = fit(
        pairs, profile, out / task.run_dir, device=task.context.device, progress=task.context.progress
    )
    del pairs
    training = {
        "stopped": fitted.stopped,
        "epochs": fitted.epochs,
        "best_epoch": fitted.best_epoch,
        "best_val_dice": fitted.best_val_dice,
        "untrained_val_dice": fitted.untrained_val_dice,
        "training_case": training_case,
        "weights_seed": task.weights_seed,
        "seconds_training": round(time.perf_counter() - started, 1),
    }
    results = {}
    for case_tests in task.cases:
        path = done[case_tests.case]
        if path.exists():
            results[case_tests.case] = json.loads(path.read_text())
            continue
        results[case_tests.case] = _evaluate_case(task, case_tests, training, mean_target)
    return results


def _evaluate_case(
    task: TrainTask, case_tests: CaseTests, training: dict[str, Any], mean_target: np.ndarray
) -> dict[str, Any]:
    from specklenet.training.evaluate import Reconstructor, baseline_metrics, evaluate, write_evaluation
    from specklenet.training.export import export_onnx

    out = Path(task.context.out_dir)
    name, folder = case_tests.case, out / case_tests.folder
    model_path = out / "models" / f"case{name}-seed{task.seed_index}.onnx"
    export_onnx(out / task.run_dir, model_path, case=name)
    reconstructor = Reconstructor(model_path)
    tests = {}
    for test_name, pairs in case_tests.tests.items():
        evaluation = evaluate(reconstructor, out / pairs, name=test_name)
        write_evaluation(evaluation, folder / "eval" / test_name)
        first = slice(0, TABLE1_COUNT)
        np.savez_compressed(
            folder / "eval" / test_name / "first.npz",
            truth=evaluation.truth[first],
            reconstruction=evaluation.reconstruction[first],
        )
        tests[test_name] = {
            "pairs": pairs,
            "metrics": {metric: values.tolist() for metric, values in evaluation.metrics.items()},
            "baseline": {m: v.tolist() for m, v in baseline_metrics(evaluation, mean_target).items()},
            "labels": evaluation.labels[first].tolist(),
        }
    probe = evaluate(reconstructor, out / case_tests.probe, name="probe")
    np.savez_compressed(folder / "probe.npz", truth=probe.truth, reconstruction=probe.reconstruction)
    result = {
        "case": name,
        "seed_index": task.seed_index,
        "model": str(model_path.relative_to(out)),
        "run": task.run_dir,
        "training": training,
        "tests": tests,
        "probe": {"pairs": case_tests.probe, "pcc": probe.metrics["pcc"].tolist()},
    }
    _write_json(folder / "result.json", result)
    _logger.info(
        "case %s seed %d: done (%s)",
        name,
        task.seed_index,
        ", ".join(f"{k} PCC {np.mean(v['metrics']['pcc']):.3f}" for k, v in tests.items()),
    )
    return result


def _write_json(path: Path, value: Any) -> None:
    """Atomically: a result file exists whole or not at all (it marks the work as finished)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=2) + "\n")
    os.replace(partial, path)
