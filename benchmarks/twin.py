"""Speed of the optical twin: frames per second for each fidelity level and backend, side by side.

Usage: python benchmarks/twin.py [--frames N] [--quick] [--rounds R] [--fused-only] [--json PATH]

First, side by side: the FFT bound of "dataset" fidelity on this CPU (two 512² complex64 FFTs per
binary frame, scipy on all cores) and the numpy twin's frames/s on its generic array-API path
(``twin.fused = False``, the code before the fused path) and on the fused in-place path, in
interleaved rounds (best of each, and the median of each round's ratios with its 95 % interval from
order statistics: the machine is shared, one run's median moves by ±10 %). Then it renders binary
(one bit-plane) and 8-bit grey (up to eight bit-planes) canvases through the default multislice
twin, with camera noise, on numpy (scipy.fft on all cores) and on torch (CPU, and CUDA when present),
at "dataset" and "full" fidelity, and projects the time to synthesise a 9,950-pair case. Figures vary
with the machine's load; ratios measured in one run are the comparable numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy.fft
import scipy.stats
from bench_table import row, save

from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.daemon.twin.backend import CPU_CORES

CASE_PAIRS = 9_950


def canvases(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """Centre-64×64 targets: binary digit-like blobs or 8-bit grey noise (all eight planes lit)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 128, 128), np.uint8)
    if kind == "binary":
        out[:, 32:96, 32:96] = np.where(rng.random((n, 64, 64)) > 0.8, 255, 0)
    else:
        out[:, 32:96, 32:96] = rng.integers(1, 256, (n, 64, 64))
    return out


def measure(twin: Twin, batch, repeats: int = 2) -> float:
    """Frames per second of ``twin.expose`` on ``batch`` (best of ``repeats`` after a warm-up)."""
    twin.expose(batch[:2])
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        out = twin.expose(batch)
        if hasattr(out, "cpu"):
            out.cpu()  # wait for the device
        best = min(best, time.perf_counter() - started)
    return len(batch) / best


def fft_bound() -> float:
    """Frames/s if a binary frame cost only two 512² complex64 FFTs (scipy, all cores, in batches)."""
    rng = np.random.default_rng(0)
    batch = (rng.standard_normal((16, 512, 512)) + 1j * rng.standard_normal((16, 512, 512))).astype(
        np.complex64
    )
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        scipy.fft.fft2(batch, workers=CPU_CORES)
        best = min(best, time.perf_counter() - started)
    return len(batch) / (2 * best)


def median_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval of the median of ``values`` (order statistics k and n + 1 − k,
    the widest pair whose binomial tail stays within (1 − confidence) / 2); (nan, nan) when there
    are too few values (fewer than 6 at 95 %)."""
    ordered, n = np.sort(np.asarray(values, float)), len(values)
    k = int(scipy.stats.binom.ppf((1 - confidence) / 2, n, 0.5))  # P(B ≤ k − 1) ≤ α/2 < P(B ≤ k)
    if scipy.stats.binom.cdf(k, n, 0.5) <= (1 - confidence) / 2:
        k += 1
    if k < 1:
        return float("nan"), float("nan")
    return float(ordered[k - 1]), float(ordered[n - k])


def _with_interval(values: np.ndarray) -> str:
    low, high = median_interval(values)
    return f"{np.median(values):4.2f} [{low:.2f}, {high:.2f}]"


def side_by_side(n: int, rounds: int) -> list[dict]:
    """The FFT bound, the generic and the fused numpy path, interleaved so that load hits all three.

    Prints the best rate of each over the rounds and the median over rounds of each round's ratios
    with its 95 % interval (the machine is shared: a ratio measured within one round is the comparable
    number); returns the same as table rows.
    """
    twin = Twin(TwinConfig(), seed=0)
    print(f"dataset fidelity, numpy, {CPU_CORES} cores, {n} frames, {rounds} interleaved rounds")
    rows = []
    for kind in ("binary", "grey"):
        batch = canvases(kind, n if kind == "binary" else max(8, n // 4))
        rates: dict[str, list[float]] = {"bound": [], "generic": [], "fused": []}
        for _ in range(rounds):
            rates["bound"].append(fft_bound() / (1 if kind == "binary" else 8))
            for path in ("generic", "fused"):
                twin.fused = path == "fused"
                rates[path].append(measure(twin, batch, repeats=1))
        bound, old, new = (np.array(rates[key]) for key in ("bound", "generic", "fused"))
        print(
            f"  {kind:6}: best FFT bound {bound.max():6.1f}/s  generic (before) {old.max():6.1f}/s"
            f"  fused {new.max():6.1f}/s;  median per round [95 %]:"
            f" fused/generic {_with_interval(new / old)}×"
            f"  fused/bound {_with_interval(new / bound)}  generic/bound {np.median(old / bound):4.2f}"
        )
        per_round = f"ratio: median of {rounds} interleaved rounds' ratios; figures: best round"
        low, high = median_interval(new / bound)
        bound_interval = f"95 % interval of the median ratio [{low:.2f}, {high:.2f}]"
        rows += [
            row(
                f"twin dataset numpy {kind}: fused vs generic path",
                new.max(),
                "frames/s",
                baseline=old.max(),
                baseline_label="generic path, the code before",
                ratio=np.median(new / old),
                notes=per_round,
            ),
            row(
                f"twin dataset numpy {kind}: fused vs FFT bound",
                new.max(),
                "frames/s",
                baseline=bound.max(),
                baseline_label="FFT bound" + ("" if kind == "binary" else " / 8 planes"),
                ratio=np.median(new / bound),
                notes=f"{per_round}; {bound_interval}; generic/bound {np.median(old / bound):.2f}",
            ),
        ]
    twin.fused = True
    return rows


def backends(quick: bool) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [("numpy", None)]
    try:
        import torch
    except ImportError:
        return found
    if not quick:
        found.append(("torch-cpu", torch.device("cpu")))
    if torch.cuda.is_available():
        found.append((f"torch-cuda ({torch.cuda.get_device_name()})", torch.device("cuda")))
    return found


def main(argv: list[str] | None = None) -> dict:
    """Print the tables; return (and with ``--json PATH`` write) the figures as table rows."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=96, help="frames per measurement (CPU)")
    parser.add_argument("--quick", action="store_true", help="numpy only, fewer frames")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of the side-by-side")
    parser.add_argument("--fused-only", action="store_true", help="only the side-by-side")
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    args = parser.parse_args(argv)
    n = 32 if args.quick else args.frames
    print(f"optical twin benchmark — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    rows = side_by_side(n, args.rounds)
    if args.fused_only:
        return save({"rows": rows}, args.json)
    bounds = {kind: rows[2 * index + 1]["baseline"] for index, kind in enumerate(("binary", "grey"))}
    print(
        f"{'fidelity':9} {'backend':34} {'canvas':7} {'frames/s':>9} {'planes/s':>9} {'9,950-pair case':>16}"
    )
    rates: dict[tuple[str, str, str], float] = {}
    for fidelity in ("dataset", "full"):
        twin = Twin(TwinConfig(fidelity=fidelity), seed=0)
        for name, device in backends(args.quick):
            count = n if fidelity == "dataset" else max(2, n // 32)
            if device is not None and device.type == "cuda":
                count *= 64
            for kind in ("binary", "grey"):
                batch = canvases(kind, count)
                if device is not None:
                    import torch

                    batch = torch.from_numpy(batch).to(device)
                rate = measure(twin, batch)
                rates[(fidelity, name, kind)] = rate
                planes = 1 if kind == "binary" else 8
                print(
                    f"{fidelity:9} {name:34} {kind:7} {rate:9.1f} {rate * planes:9.0f} "
                    f"{_duration(CASE_PAIRS / rate):>16}"
                )
                rows.append(_backend_row(fidelity, name, kind, count, rates, bounds[kind]))
    print("ratios:")
    for name, _ in backends(args.quick):
        for kind in ("binary", "grey"):
            fast, full = rates[("dataset", name, kind)], rates[("full", name, kind)]
            print(f"  {name} {kind}: dataset / full = {fast / full:.0f}×")
        if name != "numpy":
            speedup = rates[("dataset", name, "grey")] / rates[("dataset", "numpy", "grey")]
            print(f"  {name} / numpy (dataset, grey) = {speedup:.1f}×")
    return save({"rows": rows}, args.json)


def _backend_row(
    fidelity: str, name: str, kind: str, count: int, rates: dict[tuple[str, str, str], float], bound: float
) -> dict:
    """One rate of the backend table beside its baseline: the FFT bound for numpy at "dataset" fidelity,
    numpy for another backend, the same backend's "dataset" fidelity for "full"."""
    rate = rates[(fidelity, name, kind)]
    notes = f"best of 2 batches of {count}; a 9,950-pair case: {_duration(CASE_PAIRS / rate)}"
    if fidelity == "full":
        base, label = rates[("dataset", name, kind)], f"{name} at dataset fidelity"
    elif name == "numpy":
        base, label = bound, "FFT bound" + ("" if kind == "binary" else " / 8 planes")
    else:
        base, label = rates[("dataset", "numpy", kind)], "numpy (fused)"
    return row(
        f"twin {fidelity} {name} {kind}", rate, "frames/s", baseline=base, baseline_label=label, notes=notes
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
