"""Every case of the paper end to end: targets → twin → train → export → evaluate → report.

``reproduce(Options(profile, out_dir, data_dir=...))`` runs the cases in the paper's order and writes,
under ``out_dir``::

    settings.json             what this report was made with (a rerun must match, or it is refused)
    targets/<key>.h5          every target set, content-addressed (``key`` = SHA-256 of canvases,
    pairs/<key>.h5            truth windows and twin): sets shared between cases (the test faces and
                              digits, case 5's training faces = case 1's) are rendered once
    runs/<key>-<profile>/     training runs (cases with identical training pairs share one)
    models/case<N>.onnx       the exported models
    cases/<N>/analysis/       the training set's analysis figures (Fig. 1b, Figs. S1–S4)
    cases/<N>/eval/<test>/    metrics.csv, summary.json, examples.png, first.npz per test set
    cases/<N>/result.json     written last: a case with it is finished and skipped on a rerun
    report.md, table1.csv, table1.md, fig3.png, fig4-case5.png, figS6-si.png   (:mod:`.report`)

Interrupted anywhere, the same command continues: finished cases are skipped, a partly rendered pairs
file is completed (:func:`specklenet.training.simulate.simulate` resumes), a training run resumes from
its last whole epoch. Every case starts from the same initial weights (the profile's seed).
Not thread-safe; one reproduction per ``out_dir`` at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.records import Targets, write_targets
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training import analysis
from specklenet.training.cases import CASES, TABLE1_COUNT, build_case
from specklenet.training.evaluate import Reconstructor, evaluate, write_evaluation
from specklenet.training.export import export_onnx
from specklenet.training.pairdata import load_pairs
from specklenet.training.profiles import Profile
from specklenet.training.report import Report, write_report
from specklenet.training.simulate import simulate
from specklenet.training.train import fit

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What to reproduce.

    Attributes:
        profile: the training profile (its ``n_train``/``n_test`` unless overridden here).
        out_dir: the report folder.
        data_dir: folder with ``mnist/`` and ``lfw/``; None uses the embedded low-resolution stand-ins.
        cases: a subset of the case names, in any order (None: all, in the paper's order).
        n_train, n_test: override the profile's training targets per case and test images per kind.
        seed: dataset split, twin screens and camera noise.
        device: torch device for training (None: CUDA when present); the twin follows suit.
        progress: show progress bars.
        twin: the optical twin's configuration.
    """

    profile: Profile
    out_dir: Path
    data_dir: Path | None = None
    cases: tuple[str, ...] | None = None
    n_train: int | None = None
    n_test: int | None = None
    seed: int = 0
    device: str | None = None
    progress: bool = True
    twin: TwinConfig = field(default_factory=TwinConfig)

    def case_names(self) -> list[str]:
        if self.cases is None:
            return list(CASES)
        unknown = [name for name in self.cases if name not in CASES]
        if unknown:
            raise ConfigError(f"unknown case(s) {unknown}; the cases are {', '.join(CASES)}")
        return [name for name in CASES if name in self.cases]

    def settings(self) -> dict[str, Any]:
        """What makes two reproductions comparable (the cases run may grow between calls)."""
        return {
            "profile": self.profile.to_dict(),
            "data_dir": str(self.data_dir.resolve()) if self.data_dir else None,
            "n_train": self.n_train or self.profile.n_train,
            "n_test": self.n_test or self.profile.n_test,
            "seed": self.seed,
            "twin": dataclasses.asdict(self.twin),
        }


def reproduce(options: Options) -> Report:
    """Run the requested cases (skipping finished ones) and write the report; see the module docstring."""
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out / "settings.json", options.settings())
    names = options.case_names()
    twin = Twin(options.twin, seed=options.seed)
    results = {}
    for number, name in enumerate(names, 1):
        _logger.info("case %s (%d of %d)", name, number, len(names))
        results[name] = _run_case(name, options, twin, out)
    return write_report(results, out, options.settings())


def _run_case(name: str, options: Options, twin: Twin, out: Path) -> dict[str, Any]:
    case_dir = out / "cases" / name
    result_path = case_dir / "result.json"
    if result_path.exists():
        _logger.info("case %s: finished earlier, skipped (delete %s to redo it)", name, result_path)
        return json.loads(result_path.read_text())
    settings = options.settings()
    data = build_case(
        name,
        data_dir=options.data_dir,
        seed=options.seed,
        n_train=settings["n_train"],
        n_test=settings["n_test"],
        progress=options.progress,
    )
    coverage = analysis.coverage(data.train).summary(f"case {name}")
    analysis.write_figures(data.train, case_dir / "analysis", f"case{name}")
    _logger.info("%s", coverage)

    started = time.perf_counter()
    train_pairs = _simulated(data.train, out, twin, options)
    simulated = time.perf_counter()
    profile = options.profile
    run_dir = out / "runs" / f"{Path(train_pairs).stem}-{profile.name}"
    pairs = load_pairs(train_pairs, output_px=profile.model.resolution_px)
    fitted = fit(pairs, profile, run_dir, device=options.device, progress=options.progress)
    del pairs
    trained = time.perf_counter()
    model_path = out / "models" / f"case{name}.onnx"
    export_onnx(run_dir, model_path, case=name)
    reconstructor = Reconstructor(model_path)
    tests = {}
    for test_name, targets in data.tests.items():
        test_pairs = _simulated(targets, out, twin, options)
        evaluation = evaluate(reconstructor, test_pairs, name=test_name)
        folder = case_dir / "eval" / test_name
        write_evaluation(evaluation, folder)
        first = slice(0, TABLE1_COUNT)
        np.savez_compressed(
            folder / "first.npz",
            truth=evaluation.truth[first],
            reconstruction=evaluation.reconstruction[first],
        )
        tests[test_name] = {
            "pairs": str(Path(test_pairs).relative_to(out)),
            "summary": evaluation.summary(),
            "first": {metric: values[first].tolist() for metric, values in evaluation.metrics.items()},
            "labels": evaluation.labels[first].tolist(),
        }
    result = {
        "case": name,
        "title": data.case.title,
        "model": str(model_path.relative_to(out)),
        "run": str(run_dir.relative_to(out)),
        "coverage": coverage,
        "training": {
            "stopped": fitted.stopped,
            "epochs": fitted.epochs,
            "best_epoch": fitted.best_epoch,
            "best_val_dice": fitted.best_val_dice,
            "untrained_val_dice": fitted.untrained_val_dice,
            "training_case": _run_case_label(run_dir),
            "seconds_simulating": round(simulated - started, 1),
            "seconds_training": round(trained - simulated, 1),
        },
        "tests": tests,
    }
    partial = result_path.with_name("result.json.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, result_path)
    _logger.info(
        "case %s: done (%s)",
        name,
        ", ".join(f"{k} PCC {v['summary']['pcc']['mean']:.3f}" for k, v in tests.items()),
    )
    return result


def _simulated(targets: Targets, out: Path, twin: Twin, options: Options) -> Path:
    """The pairs file of ``targets`` through ``twin``, rendered (or completed) unless already there."""
    key = _key(targets, twin)
    targets_path = out / "targets" / f"{key}.h5"
    pairs_path = out / "pairs" / f"{key}.h5"
    if not targets_path.exists():
        targets_path.parent.mkdir(parents=True, exist_ok=True)
        write_targets(targets_path, targets)
    pairs_path.parent.mkdir(parents=True, exist_ok=True)
    device = "cpu" if options.device == "cpu" else "auto"
    result = simulate(targets_path, pairs_path, twin, device=device, progress=options.progress)
    if result.rendered:
        _logger.info(
            "%s (%s, %d targets): %d frames rendered in %.0f s",
            pairs_path.name,
            targets.split,
            len(targets),
            result.rendered,
            result.seconds,
        )
    return pairs_path


def _key(targets: Targets, twin: Twin) -> str:
    """Content address of a target set as rendered by ``twin``: split name + 16 hex digits."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(targets.canvases).tobytes())
    digest.update(np.ascontiguousarray(targets.ground_truth()).tobytes())  # truth windows matter too
    digest.update(repr(targets.output_window).encode())
    description = {k: v for k, v in twin.describe().items() if k != "package_version"}
    digest.update(json.dumps(description, sort_keys=True, default=str).encode())
    return f"{targets.split}-{digest.hexdigest()[:16]}"


def _run_case_label(run_dir: Path) -> str:
    """The case whose targets the run's pairs file was made from (differs when cases share a run)."""
    import torch

    checkpoint = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)
    return str(checkpoint["data"]["case"])


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    normalised = json.loads(json.dumps(settings, default=str))
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != normalised:
            changed = sorted(key for key in normalised if previous.get(key) != normalised[key])
            raise ConfigError(
                f"{path.parent}: holds a reproduction made with other settings ({', '.join(changed)}); "
                "choose another output folder"
            )
        return
    path.write_text(json.dumps(normalised, indent=2) + "\n")
