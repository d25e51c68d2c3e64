"""Ablations: which choices change digit and face reconstruction, with 95 % intervals (issue 12).

Axes (each a list of variants; the first is the reference the others are compared with):

``normalisation``  the speckle normalisation: ``frame_mean`` (mean only), ``zscore``, ``equalised``
                   (:mod:`specklenet.daemon.normalisation`; recorded in each model's metadata).
``grey_model``     the DMD's grey model in the twin: ``pwm`` (the bench), ``amplitude``, ``incoherent``
                   (ablations only; training and test sets rendered through the same twin).
``size``           resolution and width: the profile, and the profile with both doubled.
``length``         training length: the profile's epoch cap, and training to convergence (early stopping
                   on validation Dice with a cap ``CONVERGE_EPOCHS_FACTOR`` times higher).
``memory``         case 5 only: the diffuser's memory-effect range ``memory_effect_px`` swept; faces at
                   the centre and at the two shifted positions.

Every variant is an independent :class:`Training` (its targets, twin, profile and normalisation), so an
executor (``executor(tasks, function)``, as :mod:`.reproduce` uses) may run them anywhere; pairs files are
rendered first (one :class:`Render` per distinct set × twin), then the trainings (one per distinct
training: the axes share their reference). Each training writes ``variants/<id>/result.json`` last: a
rerun skips finished variants, resumes rendering and training.
Intervals: :mod:`.statistics` (bootstrap over test images; differences paired on the same images);
each result also holds the constant-output baseline (the variant's mean training target).
Outputs: ``ablation.md`` (a report section), ``ablation.json`` and ``ablation-<axis>.png``
(:mod:`.ablate_report`); over several seeds, each seed's in ``seed<k>/`` and the pooled ones on top.
Over 300 lines: the task descriptions, their functions and the subcommand's command line belong
together (``COMMAND_MODULES`` registers this module).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.records import Targets, write_targets
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training.profiles import Profile

_logger = logging.getLogger(__name__)
T, R = TypeVar("T"), TypeVar("R")

AXES = ("normalisation", "grey_model", "size", "length", "memory")
NORMALISATIONS = ("frame_mean", "zscore", "equalised")
GREY_MODELS = ("pwm", "amplitude", "incoherent")
CONVERGE_EPOCHS_FACTOR = 10


@dataclass(frozen=True)
class Options:
    """What to ablate, and how big (every size is configurable, so a ci-sized ablation takes seconds).

    Attributes:
        profile: the reference training profile; out_dir: the output folder.
        axes: which of :data:`AXES`; cases: the cases of every axis but ``memory`` (case 5).
        n_train, n_test: training targets per case, test images per kind (None: the profile's).
        normalisations, grey_models, memory_px: the variants of those axes (the first: the reference).
        data_dir: MNIST/LFW folder (None: the embedded stand-ins); seed: data split, twin, noise.
        twin: the reference twin; device: torch device for training; progress: progress bars while
            loading the datasets (the renders and trainings log lines instead: they may run on Ray).
    """

    profile: Profile
    out_dir: Path
    axes: tuple[str, ...] = AXES
    cases: tuple[str, ...] = ("1", "2")
    n_train: int | None = None
    n_test: int | None = None
    normalisations: tuple[str, ...] = NORMALISATIONS
    grey_models: tuple[str, ...] = GREY_MODELS
    memory_px: tuple[float, ...] = (8.0, 2.0, 32.0)  # the bench's range first: the reference
    data_dir: Path | None = None
    seed: int = 0
    twin: TwinConfig = dataclasses.field(default_factory=TwinConfig)
    device: str | None = None
    progress: bool = False

    def __post_init__(self) -> None:
        unknown = [axis for axis in self.axes if axis not in AXES]
        if unknown:
            raise ConfigError(f"ablate: unknown axis {unknown}; the axes are {', '.join(AXES)}")


@dataclass(frozen=True)
class Render:
    """Render ``targets`` into ``pairs`` (paths under ``out_dir``) through ``twin`` drawn with ``seed``."""

    out_dir: str
    targets: str
    pairs: str
    twin: TwinConfig
    seed: int
    device: str | None


@dataclass(frozen=True)
class Training:
    """One variant: train on ``train_pairs``, export, evaluate on ``tests`` (name → pairs file)."""

    out_dir: str
    axis: str
    label: str
    case: str
    profile: Profile
    normalisation: str
    train_pairs: str
    tests: tuple[tuple[str, str], ...]
    device: str | None

    @property
    def ident(self) -> str:
        return f"{self.axis}-case{self.case}-{self.label}"

    @property
    def work(self) -> Training:
        """What is trained and evaluated, without the axis and label naming it: equal work, one training."""
        return dataclasses.replace(self, axis="", label="")

    @property
    def result(self) -> Path:
        return Path(self.out_dir) / "variants" / self.ident / "result.json"

    @property
    def finished(self) -> bool:
        return self.result.exists()


def run_local(tasks: Sequence[T], function: Callable[[T], R]) -> list[R]:
    """The default executor: one task after another, in this process."""
    return [function(task) for task in tasks]


def ablate(
    options: Options, executor: Callable[..., list[Any]] = run_local, *, seeds: int = 1
) -> dict[str, Any]:
    """Plan, render, train and evaluate every variant, then write the report section; the summary.

    ``seeds`` > 1 repeats the whole ablation with seeds ``options.seed + k`` (another data split,
    diffuser, camera noise and initial weights), each in ``out_dir/seed<k>/`` with its own section,
    and writes the section pooled over the seeds in ``out_dir``: intervals over seeds and images, each
    difference paired on a seed's own images.
    """
    from specklenet.training.ablate_report import pool_seeds, write_section

    if seeds < 1:
        raise ConfigError(f"ablate: seeds must be >= 1, got {seeds}")
    if seeds == 1:
        return write_section(_results(options, executor), Path(options.out_dir))
    per_seed = []
    for k in range(seeds):
        folder = Path(options.out_dir) / f"seed{k}"
        _logger.info("ablation: seed %d of %d in %s", k + 1, seeds, folder)
        results = _results(dataclasses.replace(options, out_dir=folder, seed=options.seed + k), executor)
        write_section(results, folder)
        per_seed.append(results)
    return write_section(pool_seeds(per_seed), Path(options.out_dir), seeds=seeds)


def _results(options: Options, executor: Callable[..., list[Any]]) -> list[dict[str, Any]]:
    """Every variant's result (``variants/<id>/result.json``), rendering and training what is missing."""
    renders, trainings = plan(options)
    # Each axis's reference (pwm, frame_mean, the profile, its epoch cap) is the same training: run it once.
    unique: dict[Training, Training] = {}
    for training in trainings:
        chosen = unique.setdefault(training.work, training)
        if not chosen.finished and training.finished:  # an earlier run trained it under this name
            unique[training.work] = training
    _logger.info(
        "ablation: %d pairs files to render, %d trainings for %d variants",
        len(renders),
        len(unique),
        len(trainings),
    )
    executor(renders, run_render)
    done = dict(zip(unique, executor(list(unique.values()), run_training), strict=True))
    return [{**done[t.work], "axis": t.axis, "label": t.label} for t in trainings]


def plan(options: Options) -> tuple[list[Render], list[Training]]:
    """The distinct renders and the trainings of ``options`` (target sets written here, once)."""
    from specklenet.training.cases import build_case

    out = Path(options.out_dir)
    n_train = options.n_train or options.profile.n_train
    n_test = options.n_test or options.profile.n_test
    renders: dict[str, Render] = {}
    trainings: list[Training] = []
    built: dict[str, Any] = {}

    def pairs_of(targets: Targets, twin: TwinConfig) -> str:
        key = _key(targets, twin, options.seed)
        targets_path, pairs_path = f"targets/{key}.h5", f"pairs/{key}.h5"
        if not (out / targets_path).exists():
            (out / "targets").mkdir(parents=True, exist_ok=True)
            write_targets(out / targets_path, targets)
        renders.setdefault(
            pairs_path, Render(str(out), targets_path, pairs_path, twin, options.seed, options.device)
        )
        return pairs_path

    for axis, case, label, twin, profile, normalisation in _variants(options):
        if case not in built:
            built[case] = build_case(
                case,
                data_dir=options.data_dir,
                seed=options.seed,
                n_train=n_train,
                n_test=n_test,
                progress=options.progress,
            )
        data = built[case]
        tests = tuple((name, pairs_of(targets, twin)) for name, targets in data.tests.items())
        train = pairs_of(data.train, twin)
        trainings.append(
            Training(str(out), axis, label, case, profile, normalisation, train, tests, options.device)
        )
    return list(renders.values()), trainings


def _variants(options: Options) -> Iterator[tuple[str, str, str, TwinConfig, Profile, str]]:
    """(axis, case, label, twin, profile, normalisation) for every variant, references first."""
    base, twin = options.profile, options.twin
    for axis in options.axes:
        for case in ("5",) if axis == "memory" else options.cases:
            if axis == "normalisation":
                for method in options.normalisations:
                    yield axis, case, method, twin, base, method
            elif axis == "grey_model":
                for model in options.grey_models:
                    yield axis, case, model, dataclasses.replace(twin, grey_model=model), base, "frame_mean"
            elif axis == "size":
                yield axis, case, _size_label(base), twin, base, "frame_mean"
                larger = larger_profile(base)
                yield axis, case, _size_label(larger), twin, larger, "frame_mean"
            elif axis == "length":
                yield axis, case, f"cap{base.max_epochs}", twin, base, "frame_mean"
                yield axis, case, "converged", twin, converging_profile(base), "frame_mean"
            else:
                for px in options.memory_px:
                    moved = dataclasses.replace(twin, memory_effect_px=px)
                    yield axis, case, f"me{px:g}px", moved, base, "frame_mean"


def larger_profile(profile: Profile) -> Profile:
    """``profile`` at twice the resolution (at most the frame's) and twice the width."""
    model = profile.model
    resolution = min(2 * model.resolution_px, model.frame_px)
    wider = dataclasses.replace(model, resolution_px=resolution, base_width=2 * model.base_width)
    return dataclasses.replace(profile, name=f"{profile.name}-larger", model=wider)


def converging_profile(profile: Profile) -> Profile:
    """``profile`` trained until validation Dice stops rising: the epoch cap raised tenfold."""
    return dataclasses.replace(
        profile,
        name=f"{profile.name}-converged",
        max_epochs=CONVERGE_EPOCHS_FACTOR * profile.max_epochs,
        patience=max(profile.patience, 3),
    )


def _size_label(profile: Profile) -> str:
    return f"{profile.model.resolution_px}px-w{profile.model.base_width}"


def run_render(task: Render) -> dict[str, Any]:
    """Render (or complete) one pairs file; ``{"pairs": path, "rendered": frames rendered now}``."""
    from specklenet.training.simulate import simulate

    out = Path(task.out_dir)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    device = "cpu" if task.device == "cpu" else "auto"
    twin = Twin(task.twin, seed=task.seed)
    result = simulate(out / task.targets, out / task.pairs, twin, device=device, progress=False)
    _logger.info("%s: %d frames rendered", task.pairs, result.rendered)
    return {"pairs": task.pairs, "rendered": result.rendered}


def run_training(task: Training) -> dict[str, Any]:
    """Train, export and evaluate one variant (skipped when its result exists); its result."""
    out, done = Path(task.out_dir), task.result
    folder = done.parent
    if done.exists():
        return json.loads(done.read_text())
    from specklenet.training.evaluate import Reconstructor, baseline_metrics, evaluate
    from specklenet.training.export import export_onnx
    from specklenet.training.pairdata import load_pairs
    from specklenet.training.train import fit

    started = time.monotonic()
    _logger.info("variant %s: training (profile %s, %s)", task.ident, task.profile.name, task.normalisation)
    pairs = load_pairs(
        out / task.train_pairs,
        output_px=task.profile.model.resolution_px,
        method=task.normalisation,  # type: ignore[arg-type]
    )
    fitted = fit(pairs, task.profile, folder / "run", device=task.device, progress=False)
    mean_target = pairs.truth[:, 0].double().mean(dim=0).numpy()  # the constant-output baseline
    del pairs
    model = folder / "model.onnx"
    export_onnx(folder / "run", model, case=task.case)
    reconstructor = Reconstructor(model)
    result = {
        "axis": task.axis,
        "label": task.label,
        "case": task.case,
        "profile": task.profile.name,
        "normalisation": reconstructor.info.normalisation.method,  # as the daemon would apply it
        "training": {"stopped": fitted.stopped, "epochs": fitted.epochs, "best_epoch": fitted.best_epoch},
    }
    evaluations = {name: evaluate(reconstructor, out / p, name=name) for name, p in task.tests}
    result["pcc"] = {name: e.metrics["pcc"].tolist() for name, e in evaluations.items()}
    result["baseline_pcc"] = {
        name: baseline_metrics(e, mean_target)["pcc"].tolist() for name, e in evaluations.items()
    }
    scores = ", ".join(f"{name} PCC {np.mean(pcc):.3f}" for name, pcc in result["pcc"].items())
    _logger.info("variant %s: done in %.0f s (%s)", task.ident, time.monotonic() - started, scores)
    partial = done.with_name("result.json.partial")
    partial.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(partial, done)
    return result


def _key(targets: Targets, twin: TwinConfig, seed: int) -> str:
    """Content address of a target set rendered through ``twin`` (split + 16 hex digits)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(targets.canvases).tobytes())
    digest.update(np.ascontiguousarray(targets.ground_truth()).tobytes())
    digest.update(repr(targets.output_window).encode())
    digest.update(json.dumps([dataclasses.asdict(twin), seed], sort_keys=True, default=str).encode())
    return f"{targets.split}-{digest.hexdigest()[:16]}"


# --- command line ------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablate",
        help="ablations (normalisation, grey model, size, training length, memory effect) with intervals",
        description=__doc__.split("\n\n")[0] + " Writes ablation.md, ablation.json and ablation-<axis>.png; "
        "rerunning resumes. Sizes are set by the profile and --n-train/--n-test.",
        epilog="Example: specklenet-train ablate --profile quick --axes normalisation,memory -o ablation/",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--profile", default="quick", help="training profile: ci, quick, paper, a TOML file")
    parser.add_argument("--axes", default=",".join(AXES), help=f"comma-separated subset of {','.join(AXES)}")
    parser.add_argument("--cases", default="1,2", help="cases of every axis but memory (default: 1,2)")
    parser.add_argument("--n-train", type=int, default=None, help="training targets per case")
    parser.add_argument("--n-test", type=int, default=None, help="test images per kind")
    parser.add_argument(
        "--memory-px", default="8,2,32", help="memory_effect_px values, the reference first (default: 8,2,32)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="folder with mnist/ and lfw/")
    parser.add_argument("--seed", type=int, default=0, help="data split, twin and noise seed")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="repeat the ablation with seeds SEED..SEED+N-1 (each in OUTPUT/seed<k>/) and pool them: "
        "intervals then cover the spread between trainings too (default: 1)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="where variants run")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from specklenet.training.cluster import make_executor
    from specklenet.training.profiles import load_profile

    options = Options(
        profile=load_profile(args.profile),
        out_dir=args.output,
        axes=_names(args.axes),
        cases=_names(args.cases),
        n_train=args.n_train,
        n_test=args.n_test,
        memory_px=tuple(float(v) for v in _names(args.memory_px)),
        data_dir=args.data_dir,
        seed=args.seed,
        device=args.device,
        progress=sys.stderr.isatty(),  # bars in a log file are noise
    )
    from specklenet.training.cli import logging_to_stderr

    with logging_to_stderr():
        summary = ablate(options, make_executor(args.executor) or run_local, seeds=args.seeds)
    print(f"{args.output}/ablation.md: {sum(len(c) for c in summary.values())} axis × case tables")
    return 0


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
