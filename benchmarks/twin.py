"""Speed of the optical twin: frames per second for each fidelity level and backend, side by side.

Usage: python benchmarks/twin.py [--frames N] [--quick]

Renders binary (one bit-plane) and 8-bit grey (up to eight bit-planes) canvases through the default
multislice twin, with camera noise, on numpy (scipy.fft on all cores) and on torch (CPU, and CUDA
when present), at "dataset" and "full" fidelity, and projects the time to synthesise a 9,950-pair
case. Figures vary with the machine's load; ratios measured in one run are the comparable numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from specklenet.daemon.twin import Twin, TwinConfig

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=96, help="frames per measurement (CPU)")
    parser.add_argument("--quick", action="store_true", help="numpy only, fewer frames")
    args = parser.parse_args()
    n = 32 if args.quick else args.frames
    print(f"optical twin benchmark — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
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
    print("ratios:")
    for name, _ in backends(args.quick):
        for kind in ("binary", "grey"):
            fast, full = rates[("dataset", name, kind)], rates[("full", name, kind)]
            print(f"  {name} {kind}: dataset / full = {fast / full:.0f}×")
        if name != "numpy":
            speedup = rates[("dataset", name, "grey")] / rates[("dataset", "numpy", "grey")]
            print(f"  {name} / numpy (dataset, grey) = {speedup:.1f}×")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


if __name__ == "__main__":
    main()
