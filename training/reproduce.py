"""Every case of the paper end to end: targets → twin → train → export → evaluate → report, over seeds.

``reproduce(Options(profile, out_dir, data_dir=..., seeds=N))`` runs the cases in the paper's order,
each N times — seed k draws the diffuser (twin seed ``seed + k``) and the initial weights (profile seed
``profile.seed + k``) anew and keeps the datasets and test images — and writes, under ``out_dir``::

    settings.json             what this report was made with (a rerun must match, or it is refused)
    targets/<split>-<key>.h5  every target set, content-addressed (``key`` = SHA-256 of canvases and
                              truth windows): sets shared between cases are written once
    pairs/<split>-<key>-t<twin>.h5   their speckle through the twin of each seed, rendered once
    runs/<pairs>-<profile>-w<weights seed>/   training runs (case 5 trains on case 1's set: one run)
    models/case<N>-seed<k>.onnx        the exported models
    cases/<N>/case.json, coverage.npz, analysis/   the training set's coverage and analysis figures
    cases/<N>/seed<k>/eval/<test>/     metrics.csv, summary.json, examples.png, first.npz per test set
    cases/<N>/seed<k>/probe.npz        the point responses of the mapping probe (:mod:`.probe`)
    cases/<N>/seed<k>/result.json      written last: a case × seed with it is finished and skipped
    report.md, table1.csv, table1.md, figures      (:mod:`.report`)

The work is planned as two lists of independent task descriptions (:mod:`.tasks`): render every target
set through every seed's twin, then train and evaluate each training set × seed. ``reproduce`` hands
each list to an executor (``executor(tasks, function) -> results``; :func:`~.tasks.run_local` by
default, one after another), so another executor can run them in parallel elsewhere.

Interrupted anywhere, the same command continues: finished case × seed results are kept, a partly
rendered pairs file is completed (:func:`specklenet.training.simulate.simulate` resumes), a training
run resumes from its last whole epoch. ``--seeds`` may grow between runs (seed k's work does not depend
on N). Not thread-safe; one reproduction per ``out_dir`` at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.normalisation import DEFAULT_METHOD, Method, Normalisation
from specklenet.daemon.records import Targets, write_targets
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training import analysis
from specklenet.training.cases import CASES, build_case
from specklenet.training.profiles import Profile
from specklenet.training.report import Report, write_report
from specklenet.training.tasks import (
    CaseTests,
    Context,
    Executor,
    RenderTask,
    TrainTask,
    run_local,
    run_render,
    run_train,
)

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
        seed: dataset split and draws; the first seed's twin screens and camera noise.
        seeds: independent repetitions: seed k uses the twin seed ``seed + k`` (another diffuser) and
            initial weights ``profile.seed + k``, on the same targets and test images.
        normalisation: the speckle normalisation of every training (a method of
            :mod:`specklenet.daemon.normalisation`).
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
    seeds: int = 1
    normalisation: Method = DEFAULT_METHOD
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
        """What makes two reproductions comparable (the cases and seeds run may grow between calls)."""
        return {
            "profile": self.profile.to_dict(),
            "data_dir": str(self.data_dir.resolve()) if self.data_dir else None,
            "n_train": self.n_train or self.profile.n_train,
            "n_test": self.n_test or self.profile.n_test,
            "seed": self.seed,
            "twin": dataclasses.asdict(self.twin),
            "normalisation": self.normalisation,
        }


@dataclass(frozen=True)
class Plan:
    """The reproduction's work: render tasks, then train tasks (see :mod:`.tasks`), and per case its
    title and training-set coverage line."""

    render: list[RenderTask]
    train: list[TrainTask]
    cases: dict[str, dict[str, Any]]


def reproduce(options: Options, executor: Executor = run_local) -> Report:
    """Plan, render, train and evaluate (skipping finished work), then write the report."""
    work = plan(options)
    rendered = executor(work.render, run_render)
    trained = executor(work.train, run_train)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in work.cases}
    for task, outcome in zip(work.train, trained, strict=True):
        for case_tests in task.cases:
            results[case_tests.case].append(outcome[case_tests.case])
    for runs in results.values():
        runs.sort(key=lambda result: result["seed_index"])
    settings = {**options.settings(), "seeds": options.seeds}
    seconds = sum(r["seconds"] for r in rendered)
    return write_report(results, work.cases, Path(options.out_dir), settings, render_seconds=seconds)


def plan(options: Options) -> Plan:
    """Write every case's targets files and training-set analysis; list the tasks that remain."""
    if options.seeds < 1:
        raise ConfigError(f"seeds: must be >= 1, got {options.seeds}")
    Normalisation(method=options.normalisation)  # refuses an unknown method before any work, naming it
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out / "settings.json", options.settings())
    settings = options.settings()
    context = Context(
        str(out), options.profile, options.twin, options.device, options.progress, options.normalisation
    )
    cases: dict[str, dict[str, Any]] = {}
    sets: dict[str, dict[str, Any]] = {}  # case → {"train": path, "tests": {name: path}, "probe": path}
    for name in options.case_names():
        data = build_case(
            name,
            data_dir=options.data_dir,
            seed=options.seed,
            n_train=settings["n_train"],
            n_test=settings["n_test"],
            progress=options.progress,
        )
        cases[name] = _describe_case(data.train, data.case.title, out / "cases" / name)
        sets[name] = {
            "train": _written(data.train, out),
            "tests": {test: _written(targets, out) for test, targets in data.tests.items()},
            "probe": _written(data.probe, out),
        }
    render: dict[str, RenderTask] = {}
    train: list[TrainTask] = []
    for k in range(options.seeds):
        twin_seed = options.seed + k
        suffix = _twin_key(Twin(options.twin, seed=twin_seed))

        def pairs(targets: str, twin_seed: int = twin_seed, suffix: str = suffix) -> str:
            path = f"pairs/{Path(targets).stem}-t{suffix}.h5"
            render.setdefault(path, RenderTask(context, targets, path, twin_seed))
            return path

        groups: dict[str, list[CaseTests]] = {}
        for name, paths in sets.items():
            case_tests = CaseTests(
                name,
                {test: pairs(path) for test, path in paths["tests"].items()},
                pairs(paths["probe"]),
                f"cases/{name}/seed{k}",
            )
            groups.setdefault(pairs(paths["train"]), []).append(case_tests)
        for train_pairs, members in groups.items():
            train.append(TrainTask(context, k, options.profile.seed + k, train_pairs, tuple(members)))
    return Plan(list(render.values()), train, cases)


def _describe_case(train: Targets, title: str, folder: Path) -> dict[str, Any]:
    """case.json (title, coverage line) and coverage.npz (Fig. 1b III, lit fraction) of a training set."""
    folder.mkdir(parents=True, exist_ok=True)
    described = folder / "case.json"
    if described.exists():
        return json.loads(described.read_text())
    covered = analysis.coverage(train)
    summary = covered.summary(f"case {train.case}")
    analysis.write_figures(train, folder / "analysis", f"case{train.case}")
    window = analysis.window(train)
    np.savez_compressed(
        folder / "coverage.npz",
        superimposed=analysis.superimposed(train),
        lit_fraction=(window > 0).mean(axis=0),
    )
    _logger.info("%s", summary)
    info = {
        "case": train.case,
        "title": title,
        "coverage": summary,
        "lit_entropy_bits": covered.lit_grey_entropy_bits,
    }
    described.write_text(json.dumps(info, indent=2) + "\n")
    return info


def _written(targets: Targets, out: Path) -> str:
    """The content-addressed targets file of ``targets`` (written unless there), relative to ``out``."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(targets.canvases).tobytes())
    digest.update(np.ascontiguousarray(targets.ground_truth()).tobytes())  # truth windows matter too
    digest.update(repr(targets.output_window).encode())
    relative = f"targets/{targets.split}-{digest.hexdigest()[:16]}.h5"
    if not (out / relative).exists():
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
        write_targets(out / relative, targets)
    return relative


def _twin_key(twin: Twin) -> str:
    """12 hex digits identifying the twin's configuration and seed (not the package version)."""
    description = {k: v for k, v in twin.describe().items() if k != "package_version"}
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _check_settings(path: Path, settings: dict[str, Any]) -> None:
    normalised = json.loads(json.dumps(settings, default=str))
    if path.exists():
        # Reports made before the normalisation was a setting used the mean-only one.
        previous = {"normalisation": "frame_mean"} | json.loads(path.read_text())
        if previous != normalised:
            changed = sorted(key for key in normalised if previous.get(key) != normalised[key])
            raise ConfigError(
                f"{path.parent}: holds a reproduction made with other settings ({', '.join(changed)}); "
                "choose another output folder"
            )
        return
    path.write_text(json.dumps(normalised, indent=2) + "\n")
