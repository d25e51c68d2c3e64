"""``specklenet-train demo`` (``make demo``): the lab's whole loop on the simulated bench, from nothing.

1. the optical twin's first look: a digit and a face, their speckle (``twin-demo.png``);
2. case 2's targets from the embedded datasets (or MNIST/LFW with ``--data-dir``);
3. ``specklenetd serve --sim`` started as a subprocess; the training pairs acquired *through it*
   (``acquire`` on the control channel, progress from the ``status`` topic);
4. a small U-Net trained on them (``specklenet-train fit``, profile ``demo``) and exported to ONNX;
5. the model loaded in ``live`` mode over the control channel on the case's held-out test digits,
   reconstructions and their PCC streaming (as ``specklenet watch`` shows them), next to the
   constant-output baseline (the mean training target scored against the same displayed targets);
6. a PNG panel (``demo.png``), then ``shutdown`` and a check that the daemon exited with status 0.

Interrupted? Run it again: each step skips what is done (targets written, pairs complete — an
incomplete pairs file is resumed —, training resumes its run folder, the model exported). ``--size
ci`` is the same loop at test size (the ``ci`` profile, 64 pairs, 4 test targets).
"""

from __future__ import annotations

import argparse
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CASE = "2"  # digits: binary (one bit-plane per frame, the twin's fastest), and they train quickly
LIVE_KIND = "digits"  # the held-out test set shown live: the kind the case trains on


@dataclass(frozen=True)
class Size:
    """How big the demo is.

    Attributes:
        profile: the training profile; n_train, n_test: training targets, held-out test images per kind.
        shown: test targets in the PNG panel (the first ones: the paper's quintet first).
        rounds: live runs until every test target was reconstructed this many times ...
        live_min_s, live_max_s: ... and at least / at most this long.
    """

    name: str
    profile: str
    n_train: int
    n_test: int
    shown: int
    rounds: int
    live_min_s: float
    live_max_s: float


SIZES = {
    "full": Size(
        "full", "demo", n_train=2000, n_test=50, shown=8, rounds=3, live_min_s=5.0, live_max_s=120.0
    ),
    "ci": Size("ci", "ci", n_train=64, n_test=4, shown=4, rounds=1, live_min_s=0.0, live_max_s=60.0),
}


@dataclass(frozen=True)
class Files:
    """The demo's folder; it is also the daemon's data directory."""

    root: Path

    def __getattr__(self, name: str) -> Path:
        names = {
            "targets": f"targets-{CASE}.h5",
            "live_targets": f"targets-{CASE}-test-{LIVE_KIND}.h5",
            "pairs": f"pairs-{CASE}.h5",
            "run": "run",
            "model": "model.onnx",
            "config": "daemon.toml",
            "log": "daemon.log",
            "panel": "demo.png",
            "twin": "twin-demo.png",
            "manifest": "demo.json",
            "result": "demo-result.json",
        }
        if name not in names:
            raise AttributeError(name)
        return self.root / names[name]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="the whole lab loop on the simulated bench: targets, acquire through the daemon, train, "
        "export, live reconstruction, PNG",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", "-o", type=Path, default=Path("demo-output"), help="demo folder")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder with mnist/ and lfw/ (default: embedded stand-ins)",
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="full (default) or ci (tests)")
    parser.add_argument("--seed", type=int, default=0, help="dataset split, diffuser and noise seed")
    parser.add_argument("--control", default=None, help="daemon control address (default: 5555 if free)")
    parser.add_argument("--stream", default=None, help="daemon stream address (default: 5556 if free)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from specklenet.training import demo_steps as steps
    from specklenet.training.demo_daemon import DaemonProcess, free_addresses, write_config

    console = Console(highlight=False)
    size, files = SIZES[args.size], Files(args.output)
    files.root.mkdir(parents=True, exist_ok=True)
    _check_manifest(
        files, {"case": CASE, "size": asdict(size), "data": _data_name(args.data_dir), "seed": args.seed}
    )
    timer = Timer(console)
    console.rule(f"specklenet demo: case {CASE} ({size.name} size) in {files.root}")
    with timer("twin: a digit and a face through the optical twin") as step:
        step.note = steps.twin(files.twin, args.data_dir, args.seed, console)
    if args.control and args.stream:
        control, stream = args.control, args.stream
    else:
        control, stream = free_addresses()
    write_config(files.config, data_dir=files.root, control=control, stream=stream, seed=args.seed)
    daemon = DaemonProcess(files.config, files.log, control=control, stream=stream)  # starts while we work
    try:
        with timer(f"targets: case {CASE} from {_data_name(args.data_dir)}") as step:
            step.note = steps.targets(files, size, args.data_dir, args.seed, console)
        with timer("daemon: specklenetd serve --sim ready") as step:
            status = daemon.wait_ready()
            step.note = f"bench {status['bench']}, control {control}, stream {stream}"
        with timer("acquire: training pairs through the daemon") as step:
            step.note = steps.acquire(daemon, files, console)
        with timer(f"fit: profile {size.profile}") as step:
            step.note = steps.fit(files, size, console)
        with timer("export: ONNX, parity-checked") as step:
            step.note = steps.export(files, console)
        with timer(f"live: the model on {size.n_test} held-out test {LIVE_KIND}") as step:
            outcome = steps.live(daemon, files, size, console)
            step.note = outcome.line()
        with timer("shutdown: the daemon stops cleanly") as step:
            code = daemon.shutdown()
            step.note = f"exit status {code}"
        if code != 0:
            console.print(f"[red]specklenetd exited with status {code}; its log: {files.log}[/red]")
            return 1
    except KeyboardInterrupt:
        console.print("interrupted: run the same command again to resume where it stopped")
        raise
    finally:
        daemon.close()
    with timer("panel: targets, speckle, reconstructions") as step:
        steps.panel(files, size, outcome)
        step.note = str(files.panel)
    summary = {**steps.describe(outcome), "steps_s": {name: round(t, 1) for name, t, _ in timer.rows}}
    files.result.write_text(json.dumps(summary, indent=1) + "\n")
    timer.table()
    console.print(outcome.line())
    _next_steps(console, files, control, stream)
    return 0


class Timer:
    """Wall time of each step, printed as the step ends and as a table at the end."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.rows: list[tuple[str, float, str]] = []

    @contextmanager
    def __call__(self, name: str):
        record = argparse.Namespace(note="")
        self.console.print(f"[bold]▶ {name}[/bold]")
        start = time.perf_counter()
        yield record
        seconds = time.perf_counter() - start
        self.rows.append((name, seconds, record.note))
        self.console.print(f"  done in {seconds:.1f} s: {record.note}")

    def table(self) -> None:
        from rich.table import Table

        table = Table(title="steps (wall time)")
        table.add_column("step")
        table.add_column("s", justify="right")
        table.add_column("result")
        for name, seconds, note in self.rows:
            table.add_row(name.split(":")[0], f"{seconds:.1f}", note)
        table.add_row("total", f"{sum(row[1] for row in self.rows):.1f}", "")
        self.console.print(table)


def _data_name(data_dir: Path | None) -> str:
    return "the embedded stand-ins" if data_dir is None else str(data_dir.resolve())


def _check_manifest(files: Files, manifest: dict[str, Any]) -> None:
    """A demo folder holds one demo: resuming with other sizes, data or seed would mix their files."""
    from specklenet.daemon.errors import ConfigError

    if files.manifest.exists():
        previous = json.loads(files.manifest.read_text())
        if previous != manifest:
            changed = ", ".join(key for key in manifest if previous.get(key) != manifest[key])
            raise ConfigError(
                f"{files.root} holds a demo with another {changed}; remove the folder or pass --output"
            )
    else:
        files.manifest.write_text(json.dumps(manifest, indent=1) + "\n")


def _next_steps(console: Any, files: Files, control: str, stream: str) -> None:
    from specklenet.training.demo_daemon import DEFAULT_CONTROL, DEFAULT_STREAM

    root = files.root
    default = (control, stream) == (DEFAULT_CONTROL, DEFAULT_STREAM)  # what the clients connect to
    connect = "" if default else f" --control {control}"
    watch = "" if default else f" --stream {stream}"
    console.print(f"\nfiles in {root}/:")
    for name, what in (
        (files.panel.name, "the panel: displayed targets, their speckle, live reconstructions and PCC"),
        (files.twin.name, "the optical twin: a digit and a face, their camera frames"),
        (f"targets-{CASE}*.h5", "training targets and the held-out test sets (digits, faces, scenes)"),
        (files.pairs.name, "the training pairs the daemon acquired"),
        (f"{files.run.name}/", "the training run (train.log, history.csv, curves.png, best.pt)"),
        (files.model.name, "the exported model (ONNX, with its metadata)"),
        (f"{files.config.name}, {files.log.name}", "the daemon's settings and its log"),
    ):
        console.print(f"  {name:<34} {what}")
    console.print("\ntry next:")
    for command, what in (
        (f"specklenetd serve --sim --config {files.config}", "the same daemon, left running"),
        (
            f"specklenet live{connect} --model {files.model.name} --targets targets-{CASE}-test-faces.h5",
            "faces through a digit model: the paper's question",
        ),
        (f"specklenet watch{watch}", "the reconstructions and their PCC, streaming"),
        (
            f"specklenet view --port 8080{watch} --targets {files.root}/targets-{CASE}-test-faces.h5",
            "then open http://127.0.0.1:8080",
        ),
        (f"specklenet shutdown{connect}", "stop the daemon"),
        ("make demo DATA=../shared/data", "the same on the real MNIST and LFW"),
    ):
        console.print(f"  {command}\n      {what}")
