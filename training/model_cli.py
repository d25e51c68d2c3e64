"""``specklenet-train fit | export | evaluate | reproduce``: train, ship, score, redo the paper.

Each command parses its options and calls the library (:mod:`.train`, :mod:`.export`, :mod:`.evaluate`,
:mod:`.reproduce`); torch is imported only when a command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from specklenet.daemon.normalisation import DEFAULT_METHOD, METHODS
from specklenet.training.cli import logging_to_stderr

PROFILE_HELP = (
    "training profile: 'ci' (seconds on a CPU, for tests), 'quick' (every case on a 2-core CPU in about an "
    "hour: 64² resolution, base width 8, 2,000 pairs, ≤ 20 epochs), 'paper' (the paper's settings for a GPU: "
    '256², base width 32, 9,950 pairs, ≤ 50 epochs), or a TOML file overriding one (base = "quick" plus '
    "fields; see specklenet.training.profiles)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_fit(subparsers)
    _register_export(subparsers)
    _register_evaluate(subparsers)
    _register_reproduce(subparsers)


# --- fit -----------------------------------------------------------------------------------------------


def _register_fit(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="train a U-Net on a pairs file (resumes an interrupted run)",
        description="Train the paper's U-Net (7×7 kernels) on the complete pairs of a pairs file: Adam, "
        "MSE + soft Dice loss, early stopping on validation Dice, best checkpoint kept. Writes state.pt, "
        "best.pt, history.csv, train.log and curves.png to the output folder. Running the same command "
        "again resumes an interrupted run from its last whole epoch and leaves a finished one alone. "
        "Uses a CUDA GPU when there is one (bf16 autocast, channels-last, torch.compile).",
        epilog="Example: specklenet-train fit pairs-2.h5 --profile quick -o runs/case2/",
    )
    parser.add_argument("pairs", type=Path, help="pairs file (from `simulate` or `specklenetd acquire`)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="run folder (created)")
    parser.add_argument("--profile", default="quick", help=PROFILE_HELP + " (default: quick)")
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: CUDA if present)"
    )
    parser.add_argument("--restart", action="store_true", help="discard a previous run in the output folder")
    parser.add_argument(
        "--ddp",
        action="store_true",
        help="one rank of a data-parallel training under torchrun (e.g. torchrun --standalone "
        "--nproc-per-node 8 -m specklenet.training.cli fit ... --ddp); rank 0 writes the run folder",
    )
    parser.add_argument(
        "--normalisation",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help="speckle normalisation, recorded in the model's metadata so the daemon applies the same: "
        "zscore (per-frame z-score, the default, chosen by the ablation: see the README), "
        "frame_mean (mean only, the closest to the paper), equalised (histogram), fixed",
    )
    parser.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from specklenet.training.pairdata import load_pairs
    from specklenet.training.profiles import load_profile
    from specklenet.training.train import fit

    profile = load_profile(args.profile)
    pairs = load_pairs(args.pairs, output_px=profile.model.resolution_px, method=args.normalisation)
    print(f"{args.pairs}: {len(pairs)} complete pairs of case {pairs.targets.case!r} ({pairs.source})")
    if args.ddp:
        from specklenet.training.ddp import fit_distributed

        with logging_to_stderr():
            result = fit_distributed(pairs, profile, args.output, device=args.device)
        if os.environ.get("RANK") == "0":
            print(f"{args.output}: {result.stopped} after {result.epochs} epochs (DDP, see ddp.json)")
        return 0
    with logging_to_stderr():
        try:
            result = fit(
                pairs, profile, args.output, device=args.device, restart=args.restart, progress=_tty()
            )
        except KeyboardInterrupt:
            print(
                f"interrupted: {args.output}/state.pt keeps the last whole epoch; "
                "run the same command to resume"
            )
            raise
    if result.stopped == "already-finished":
        print(f"{args.output}: already trained ({result.epochs} epochs); --restart trains again")
    print(
        f"{args.output}: {result.stopped} after {result.epochs} epochs; best validation Dice "
        f"{result.best_val_dice:.4f} at epoch {result.best_epoch} (untrained {result.untrained_val_dice:.4f})"
    )
    print(f"next: specklenet-train export {args.output} -o model.onnx")
    return 0


# --- export ----------------------------------------------------------------------------------------------


def _register_export(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a run's best model to one ONNX file with its metadata",
        description="Export the best checkpoint of a run to a single ONNX file (weights embedded, dynamic "
        "batch axis), with the metadata the daemon reads (input/output resolution, output window, "
        "speckle normalisation, case, training-data checksum, profile, package version). The file is "
        "written only if ONNX Runtime and PyTorch agree to < 1e-4 on random speckle and real frames.",
        epilog="Example: specklenet-train export runs/case2/ -o case2.onnx",
    )
    parser.add_argument("run_dir", type=Path, help="run folder written by `fit`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--pairs", type=Path, default=None, help="pairs file whose first frames join the parity check"
    )
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    from specklenet.daemon.normalisation import Normalisation
    from specklenet.training.export import export_onnx, load_best
    from specklenet.training.pairdata import load_pairs

    real = None
    if args.pairs is not None:
        _, checkpoint = load_best(args.run_dir)
        output_px = checkpoint["profile"]["model"]["resolution_px"]
        normalisation = Normalisation.from_metadata(checkpoint["data"]["normalisation"])
        pairs = load_pairs(args.pairs, output_px=output_px, normalisation=normalisation)
        real = pairs.frames[:8].numpy()
    result = export_onnx(args.run_dir, args.output, real_frames=real)
    info = result.info
    print(f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB)")
    print(
        f"  ONNX Runtime vs PyTorch: max |difference| {result.max_abs_random:.2g} (random speckle), "
        f"{result.max_abs_real:.2g} (real frames)"
    )
    print(
        f"  case {info.case}, profile {info.profile}: frames {info.frame_px}² → {info.output_px}² "
        f"reconstruction of canvas window {info.window}; normalisation {info.normalisation.method}; "
        f"training data sha256 {info.training_data_sha256[:16]}…"
    )
    return 0


# --- evaluate --------------------------------------------------------------------------------------------


def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score an ONNX model on pairs files: PCC, SSIM, cosine similarity per image",
        description="Run an exported model in ONNX Runtime on every complete pair of each pairs file, "
        "as the daemon would (normalisation from the model's metadata), and compare each "
        "reconstruction with its ground truth (the target in its window, grey/255, at the model's "
        "output resolution): PCC, SSIM and cosine similarity. Prints them and saves metrics.csv, "
        "summary.json and examples.png per pairs file.",
        epilog="Example: specklenet-train evaluate case2.onnx test-faces.h5 test-digits.h5 -o eval/case2/",
    )
    parser.add_argument("model", type=Path, help="ONNX file written by `export`")
    parser.add_argument("pairs", type=Path, nargs="+", help="pairs file(s) to evaluate on")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="folder for the results (default: <model>-eval/)"
    )
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from specklenet.training.evaluate import Reconstructor, evaluate, format_evaluation, write_evaluation

    reconstructor = Reconstructor(args.model)
    out_root = args.output or args.model.with_name(args.model.stem + "-eval")
    for pairs in args.pairs:
        evaluation = evaluate(reconstructor, pairs)
        folder = out_root / pairs.stem if len(args.pairs) > 1 else out_root
        write_evaluation(evaluation, folder)
        print(format_evaluation(evaluation))
        print(f"saved {folder}/metrics.csv, summary.json, examples.png\n")
    return 0


# --- reproduce -------------------------------------------------------------------------------------------


def _register_reproduce(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reproduce",
        help="run every case end to end and write the paper's tables and figures",
        description="For each case (1, 2, 3, 4a, 4b, 4c, 5, SI, designed) and each of --seeds repetitions "
        "(another diffuser and other initial weights): build its targets, render their speckle through "
        "the optical twin, train, export, evaluate on the held-out faces, digits and scenes and on the "
        "mapping probe, and write a report: Table 1 of the SI (PCC, SSIM, CS of 5 images per kind, and "
        "every mean with its 95 % bootstrap interval and its constant-output baseline) as CSV and "
        "Markdown, Figs. 3, 4 and S6, the probe's maps against coverage, each training set's analysis "
        "figures, and the paper's claims decided on intervals. Interrupted? Run the same command again: "
        "finished cases are skipped, and simulation and training resume where they stopped.",
        epilog="Example: specklenet-train reproduce --profile quick --data-dir ../shared/data -o report/",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="report folder (created)")
    parser.add_argument("--profile", default="quick", help=PROFILE_HELP + " (default: quick)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist/ and lfw/ (default: embedded stand-ins)",
    )
    parser.add_argument(
        "--cases", nargs="+", default=None, metavar="CASE", help="subset of cases (default: all)"
    )
    parser.add_argument(
        "--n-train", type=int, default=None, help="training targets per case (default: the profile's)"
    )
    parser.add_argument(
        "--n-test", type=int, default=None, help="held-out test images per kind (default: the profile's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset split, twin and noise seed (default: 0)")
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="independent repetitions per case: seed k draws another diffuser (twin seed SEED + k) and "
        "other initial weights, on the same images; means get bootstrap intervals over seeds and "
        "images (default: 1; may grow on a rerun)",
    )
    parser.add_argument(
        "--normalisation",
        choices=METHODS,
        default=DEFAULT_METHOD,
        help=f"speckle normalisation of every training (default: {DEFAULT_METHOD}; frame_mean is the "
        "mean-only one of the reports made before it became the default)",
    )
    parser.add_argument("--device", default=None, help="torch device (default: CUDA if present)")
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: every task in this process (default); ray: one Ray task per rendering and training on "
        "the cluster of RAY_ADDRESS (or a local instance), resumable (needs specklenet[cluster])",
    )
    parser.add_argument(
        "--gpus-per-task", type=float, default=None, help="Ray: GPU share per task (default: 1 with a GPU)"
    )
    parser.set_defaults(run=run_reproduce)


def run_reproduce(args: argparse.Namespace) -> int:
    from specklenet.training.cluster import make_executor
    from specklenet.training.profiles import load_profile
    from specklenet.training.reproduce import Options, reproduce

    options = Options(
        profile=load_profile(args.profile),
        out_dir=args.output,
        data_dir=args.data_dir,
        cases=tuple(args.cases) if args.cases else None,
        n_train=args.n_train,
        n_test=args.n_test,
        seed=args.seed,
        seeds=args.seeds,
        normalisation=args.normalisation,
        device=args.device,
        progress=_tty(),
    )
    with logging_to_stderr():
        try:
            executor = make_executor(args.executor, gpus_per_task=args.gpus_per_task)
            report = reproduce(options) if executor is None else reproduce(options, executor)
        except KeyboardInterrupt:
            print(f"interrupted: finished work is kept in {args.output}; run the same command to continue")
            raise
    print(report.markdown_path.read_text())
    print(f"report: {report.markdown_path}")
    return 0


# --- helpers ---------------------------------------------------------------------------------------------


def _tty() -> bool:
    return sys.stderr.isatty()
