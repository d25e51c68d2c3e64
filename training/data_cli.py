"""``specklenet-train targets | simulate | inspect``: the paper's datasets, their speckle, their coverage.

Each command parses its options and calls the library (:mod:`.cases`, :mod:`.simulate`,
:mod:`.analysis`); heavy imports happen inside ``run`` so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from specklenet.daemon.errors import FileFormatError

_FORMATTER = argparse.RawDescriptionHelpFormatter


def _case_table() -> str:
    from specklenet.training.cases import CASES

    lines = ["cases (Zhang et al., Cross-Dataset Generalization in Deep Learning):"]
    for case in CASES.values():
        lines.append(f"  {case.name:<3} {case.title}  [{case.paper}]")
        lines.append(f"      tests: {', '.join(case.test_names())}; ground truth: {case.ground_truth}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_targets(subparsers)
    _register_simulate(subparsers)
    _register_inspect(subparsers)


# --- targets -------------------------------------------------------------------------------------------


def _register_targets(subparsers: argparse._SubParsersAction) -> None:
    from specklenet.training.cases import CASES

    parser = subparsers.add_parser(
        "targets",
        help="build a case's training and test targets (targets files)",
        formatter_class=_FORMATTER,
        description="Build the DMD targets of one experimental case: 64×64 MNIST digits or LFW faces on the "
        "128×128 canvas, transformed as the case prescribes, with held-out test sets. Writes the training "
        "set to OUTPUT and each test set next to it as <OUTPUT stem>-test-<name>.h5, and prints the "
        "coverage summary (never-lit pixels, grey-level entropy).",
        epilog=_case_table()
        + "\n\nExample: specklenet-train targets --case 4b --data-dir ../shared/data -o targets-4b.h5",
    )
    parser.add_argument("--case", required=True, choices=list(CASES), help="experimental case (see below)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist/ (IDX files) and lfw/ (or lfw*.tgz); default: the embedded low-resolution "
        "stand-ins (scikit-learn digits, scikit-image LFW subset), with a warning",
    )
    parser.add_argument("-o", "--output", type=Path, default=None, help="default: targets-<case>.h5")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the splits and of the case's random draws"
    )
    parser.add_argument(
        "--n-train", type=int, default=9950, help="training targets (default: 9950, the paper's)"
    )
    parser.add_argument("--n-test", type=int, default=50, help="held-out test images per kind (default: 50)")
    parser.add_argument(
        "--grey-digits", action="store_true", help="keep MNIST's grey levels (default: binary)"
    )
    parser.add_argument("--no-tests", action="store_true", help="write the training set only")
    parser.set_defaults(run=run_targets)


def run_targets(args: argparse.Namespace) -> int:
    from specklenet.daemon.records import write_targets
    from specklenet.training.analysis import coverage
    from specklenet.training.cases import build_case

    output = args.output or Path(f"targets-{args.case}.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # the stand-in and repeat warnings must reach the user once each
        warnings.showwarning = _show_warning
        data = build_case(
            args.case,
            data_dir=args.data_dir,
            seed=args.seed,
            n_train=args.n_train,
            n_test=args.n_test,
            binarise_digits=not args.grey_digits,
            progress=sys.stderr.isatty(),
        )
    sets = {output: data.train}
    if not args.no_tests:
        sets.update({output.with_name(f"{output.stem}-test-{key}.h5"): t for key, t in data.tests.items()})
    for path, targets in sets.items():
        _refuse_to_replace_recordings(path)
        write_targets(path, targets)
        print(f"{path}: {len(targets)} targets, case {targets.case}, {targets.split}")
    print(coverage(data.train).summary(f"case {args.case} train"))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _refuse_to_replace_recordings(path: Path) -> None:
    """Only a targets file may be replaced: a pairs file holds recorded frames."""
    if not path.exists():
        return
    import h5py

    try:
        with h5py.File(path, "r", swmr=True) as file:
            kind = file.attrs.get("format")
    except OSError:
        kind = None
    if kind != "specklenet.targets":
        raise FileFormatError(f"{path}: exists and is not a targets file; refusing to replace it")


# --- simulate ------------------------------------------------------------------------------------------


def _register_simulate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="render a targets file through the optical twin into a pairs file",
        formatter_class=_FORMATTER,
        description="Record what the bench's camera would see for every target of a targets file, through "
        "the optical twin (multislice diffuser, DMD bit-plane PWM, camera noise), into a pairs file: the "
        "training data for the U-Net. Runs on the GPU through torch when one is available. Frame ids are "
        "the target indices, so the daemon's simulated acquisition with the same twin and seed reproduces "
        "the frames one for one. Interrupted or killed? Run the same command again: it resumes, rendering "
        "only the missing frames.",
        epilog="Example: specklenet-train simulate targets-4b.h5 -o pairs-4b.h5",
    )
    parser.add_argument("targets", type=Path, help="targets file (from `specklenet-train targets`)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="pairs file to create or resume")
    parser.add_argument("--seed", type=int, default=0, help="diffuser and camera-noise seed (default: 0)")
    parser.add_argument(
        "--twin",
        type=Path,
        default=None,
        help="TOML file whose [twin] table overrides the twin's configuration (unknown keys are errors)",
    )
    parser.add_argument(
        "--fidelity", choices=("dataset", "full"), default=None, help="override twin.fidelity"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="canvases per batch (default: 32)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    parser.set_defaults(run=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from specklenet.daemon.toml_loader import load_toml
    from specklenet.daemon.twin import Twin, TwinConfig
    from specklenet.training.simulate import simulate

    table = load_toml(args.twin).get("twin", {}) if args.twin else {}
    if args.fidelity:
        table = {**table, "fidelity": args.fidelity}
    config = TwinConfig.from_mapping(table, source=str(args.twin or "command line"))
    try:
        result = simulate(
            args.targets,
            args.output,
            Twin(config, seed=args.seed),
            batch_size=args.batch_size,
            device=args.device,
            progress=sys.stderr.isatty(),
        )
    except KeyboardInterrupt:
        print(f"interrupted: recorded frames are kept in {args.output}; run the same command to resume")
        raise
    print(
        f"{result.path}: {result.rendered} frames rendered on {result.device} in {result.seconds:.1f} s "
        f"({result.frames_per_s:.1f} frames/s); {result.total} pairs in the file"
    )
    return 0


# --- inspect -------------------------------------------------------------------------------------------


def _register_inspect(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="coverage summary and analysis figures (Fig. 1b, Figs. S1–S4) of targets or pairs files",
        formatter_class=_FORMATTER,
        description="Show which canvas pixels a set of targets never lights and how varied its grey levels "
        "are. For each file, prints a one-line coverage summary and writes two PNGs: "
        "<stem>-superimposed.png (example targets; the intensity-superimposed image with saturation "
        "clipping, black where no target ever lights a pixel; the normalised superimposed image: Fig. 1b) "
        "and <stem>-histograms.png (grey-level histograms at 10 marked pixels and their average: "
        "Figs. S1–S4).",
        epilog="Example: specklenet-train inspect targets-2.h5 targets-4c.h5 -o figures/",
    )
    parser.add_argument("files", type=Path, nargs="+", help="targets or pairs files")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("figures"), help="folder (default: figures)"
    )
    parser.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from specklenet.daemon.records import read_targets
    from specklenet.training.analysis import coverage, write_figures

    for path in args.files:
        targets = read_targets(path)
        figures = write_figures(targets, args.output, path.stem)
        print(coverage(targets).summary(f"{path} (case {targets.case}, {targets.split})"))
        for figure in figures:
            print(f"  wrote {figure}")
    return 0
