"""Run every benchmark and write one table: ``make bench``.

Each benchmark script runs in its own subprocess (a crash or a hang costs that benchmark only: it becomes
a failed row) with its own timeout and arguments sized so that the whole run takes about 10–15 minutes on
the shared 2-core CPU. A script hands its figures over as JSON (``--json PATH``: rows of figure, baseline
in the same run, ratio, unit, notes; see ``bench_table.py``); its human-readable output is echoed as it
runs. The table, with the machine's description (CPU, cores, RAM, GPU, OS, versions, load average at
start and end), goes to ``benchmarks/results/<cpu>-<cores>cores[-<gpu>]-<date>.md`` and ``.json``: the
file name says where and when it was measured, so figures of different machines are never mixed.

Usage: python benchmarks/run_all.py [--only twin,live] [--output benchmarks/results] [--timeout-scale 1]
       [--list]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_table import describe_machine, failed_row, load_average, markdown, slug, write_report

HERE = Path(__file__).resolve().parent
TAIL_LINES = 30  # output lines kept to explain a failure


@dataclasses.dataclass(frozen=True)
class Benchmark:
    """A script of this folder, the arguments that size it for the whole run, and its wall-clock limit."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    timeout_s: float = 300.0
    gpu_args: tuple[str, ...] = ()  # added when the machine has an NVIDIA GPU


# Sized for about 8 minutes in all on two shared cores (≤ 15 under heavy load); timeouts about 2.5× the
# expected time. The scripts' own defaults are longer runs for a closer look at one subject. On a GPU
# machine the twin and training scripts pick CUDA themselves; live.py needs --gpu.
BENCHMARKS = (
    Benchmark("twin", "twin.py", ("--frames", "48", "--rounds", "9"), 300),
    Benchmark("recording", "recording.py", ("--seconds", "4", "--rates", "150,300,600,1000"), 150),
    Benchmark("records", "records.py", ("--frames", "1000"), 90),
    Benchmark("simulate", "simulate.py", ("--count", "512"), 120),
    Benchmark(
        "live",
        "live.py",
        ("--seconds", "8", "--frames", "1000", "--iterations", "30", "--paper-iterations", "3"),
        300,
        gpu_args=("--gpu",),
    ),
    Benchmark(
        "service",
        "service.py",
        ("--rates", "50", "150", "--networks", "ci", "quick", "--seconds", "6"),
        240,
    ),
    Benchmark("training", "training.py", ("--steps", "10", "--rounds", "4"), 420),
)

NOTES = (
    "ratio = figure / baseline, both measured in this run; ↑ higher is better, ↓ lower is better.",
    "Absolute figures move with the machine's load (load averages above): on the shared 2-core development "
    "machine by up to 2× from run to run, training by more. Ratios measured side by side (in interleaved "
    "rounds where the script does so) are the comparable numbers; a row's notes give the spread where the "
    "script measures one. Runs are sized to fit about 8 minutes: single runs, not medians of repeated runs.",
)


def run_benchmark(
    bench: Benchmark, folder: Path, *, timeout_scale: float = 1.0, echo: bool = True, gpu: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    """Run one benchmark in a subprocess; its rows (or one failed row), its run entry and its notes."""
    result_path = folder / f"{bench.name}.json"
    args = (*bench.args, *bench.gpu_args) if gpu else bench.args
    command = [sys.executable, str(HERE / bench.script), *args, "--json", str(result_path)]
    timeout = bench.timeout_s * timeout_scale
    started = time.perf_counter()
    status, tail = _run(command, timeout, echo)
    entry = {
        "name": bench.name,
        "command": [Path(command[1]).name, *command[2:-2]],
        "timeout_s": timeout,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if status == "ok":
        try:
            figures = json.loads(result_path.read_text())
            rows = [{"benchmark": bench.name, **one} for one in figures["rows"]]
            notes = [f"{bench.name}: {note}" for note in figures.get("notes", [])]
            return rows, {**entry, "status": "ok"}, notes
        except (OSError, ValueError, KeyError, TypeError) as error:
            status = f"exited 0 but handed over no figures ({type(error).__name__}: {error})"
    reason = f"{status}; last output: {' / '.join(tail[-3:]) or '(none)'}"
    return [{"benchmark": bench.name, **failed_row(bench.name, reason)}], {**entry, "status": "failed"}, []


def _run(command: list[str], timeout: float, echo: bool) -> tuple[str, list[str]]:
    """Run ``command`` in its own process group, echoing its output; ``("ok" | why it failed, tail)``."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        cwd=HERE.parent,
        start_new_session=True,  # a timeout ends the benchmark and everything it started
    ) as process:

        def pump() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                tail.append(line.rstrip())
                if echo:
                    print("   " + line, end="", flush=True)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=timeout)
            status = "ok" if code == 0 else f"exited with status {code}"
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it may have ended meanwhile
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            status = f"timed out after {timeout:.0f} s"
        reader.join(timeout=5)  # the pipe closes when the group is gone
    return status, list(tail)


def assemble(
    results: list[tuple[list[dict[str, Any]], dict[str, Any], list[str]]],
    machine: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The report: machine, run (start, load averages, wall time), notes, every row, every benchmark."""
    notes = list(NOTES)
    if not has_gpu(machine):
        notes.append("No GPU on this machine: inference and training figures are CPU figures.")
    rows, entries = [], []
    for bench_rows, entry, bench_notes in results:
        rows += bench_rows
        entries.append(entry)
        notes += bench_notes
    return {"machine": machine, "run": run, "notes": notes, "rows": rows, "benchmarks": entries}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names (default: all)")
    parser.add_argument("--output", type=Path, default=HERE / "results", help="folder of the .md and .json")
    parser.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every timeout (slow machine)"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and their arguments")
    args = parser.parse_args(argv)
    chosen = _choose(args.only)
    if args.list:
        for bench in chosen:
            print(
                f"{bench.name:<10} {bench.script} {' '.join(bench.args)}  (timeout {bench.timeout_s:.0f} s)"
            )
        return 0
    when = datetime.datetime.now().astimezone()
    machine, load_start, started = describe_machine(), load_average(), time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="specklenet-bench-") as folder:
        for bench in chosen:
            print(f"== {bench.name}: {bench.script} {' '.join(bench.args)}", flush=True)  # + GPU args
            results.append(
                run_benchmark(bench, Path(folder), timeout_scale=args.timeout_scale, gpu=has_gpu(machine))
            )
    run = {
        "started": when.isoformat(timespec="seconds"),
        "load_start": load_start,
        "load_end": load_average(),
        "wall_s": round(time.perf_counter() - started, 1),
        "only": [bench.name for bench in chosen],
    }
    report = assemble(results, machine, run)
    md_path, json_path = write_report(report, args.output, slug(machine, when))
    print("\n" + markdown(report))
    print(f"written: {md_path} and {json_path.name}")
    return 0 if all(entry["status"] == "ok" for entry in report["benchmarks"]) else 1


def has_gpu(machine: dict[str, Any]) -> bool:
    return not machine["gpu"].startswith("none")


def _choose(only: str) -> list[Benchmark]:
    if not only:
        return list(BENCHMARKS)
    names = [name.strip() for name in only.split(",") if name.strip()]
    known = {bench.name: bench for bench in BENCHMARKS}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name] for name in names]


if __name__ == "__main__":
    sys.exit(main())
