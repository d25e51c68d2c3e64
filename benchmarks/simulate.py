"""Simulation throughput: the optical twin alone vs ``simulate`` (twin + crash-safe recording).

Measured side by side in one run on the same binary MNIST targets (case 2): rendering with
``Twin.expose`` in batches, then the whole ``simulate`` path into a pairs file; the ratio is the
recording overhead. The issue's budget is a 9,950-target binary case in under 2 minutes on this CPU
(≥ 83 frames/s); ``--count 9950`` measures exactly that.

Usage: python benchmarks/simulate.py [--data-dir ../shared/data] [--count 1000] [--batch-size 32]
       [--json PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from bench_table import row, save

from specklenet.daemon.records import write_targets
from specklenet.daemon.twin import Twin
from specklenet.training.cases import build_case
from specklenet.training.datasets import StandInWarning
from specklenet.training.simulate import simulate

BUDGET_FRAMES_PER_S = 9950 / 120


def main(argv: list[str] | None = None) -> dict:
    """Print the figures; return (and with ``--json PATH`` write) them as table rows."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
    )
    parser.add_argument("--count", type=int, default=1000, help="targets to render (9950: the paper's case)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    args = parser.parse_args(argv)
    data_dir = args.data_dir if (args.data_dir / "mnist").is_dir() else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandInWarning)
        targets = build_case("2", data_dir=data_dir, n_train=args.count, n_test=5, progress=False).train
    twin = Twin(seed=0)
    twin.expose(targets.canvases[:2])  # warm-up: FFT plans, operators
    start = time.perf_counter()
    for first in range(0, len(targets), args.batch_size):
        batch = np.arange(first, min(first + args.batch_size, len(targets)))
        twin.expose(targets.canvases[batch], frame_ids=batch)
    alone = len(targets) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        write_targets(Path(folder) / "t.h5", targets)
        result = simulate(
            Path(folder) / "t.h5", Path(folder) / "p.h5", twin, batch_size=args.batch_size, progress=False
        )
    source = "MNIST" if data_dir else "stand-in digits"
    print(f"{len(targets)} binary case-2 targets ({source}), batch {args.batch_size}")
    print(f"twin.expose alone            : {alone:6.1f} frames/s")
    rate = result.frames_per_s
    print(f"simulate (twin + recording)  : {rate:6.1f} frames/s ({rate / alone:.2f}× alone)")
    print(
        f"9,950 targets at this rate   : {9950 / result.frames_per_s:6.1f} s "
        f"({result.frames_per_s / BUDGET_FRAMES_PER_S:.2f}× the 2-minute budget's rate)"
    )
    notes = f"{len(targets)} binary case-2 targets ({source}), batch {args.batch_size}"
    rows = [
        row(
            "simulate (twin + crash-safe recording)",
            rate,
            "frames/s",
            baseline=alone,
            baseline_label="twin.expose alone",
            notes=notes,
        ),
        row(
            "simulate: a 9,950-target binary case",
            rate,
            "frames/s",
            baseline=BUDGET_FRAMES_PER_S,
            baseline_label="the 2-minute budget's rate",
            notes=f"{9950 / rate:.0f} s at this rate",
        ),
    ]
    return save({"rows": rows}, args.json)


if __name__ == "__main__":
    main()
