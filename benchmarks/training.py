"""Training throughput (samples/s): plain fp32 eager against the fast path, side by side in one run.

Variants, all running the training loop's own step (:func:`specklenet.training.train.train_step`: Adam,
MSE + soft Dice) on batches gathered from data resident on the device, as ``fit`` does:
  * fp32 eager (NCHW) — the reference;
  * fp32 + channels-last;
  * bf16 autocast + channels-last;
  * bf16 autocast + channels-last + torch.compile (on CUDA by default; ``--compile`` on a CPU).
Variants run in interleaved rounds (round-robin, fresh model each) so a noisy, shared machine affects
them alike; the median round is reported with the ratio to fp32 eager.

The issue's GPU anchor (256², base 32, 7×7, batch 32, H200): fp32 259 samples/s, bf16 + channels-last 629,
+ torch.compile 751; the target is ≥ 3.5× fp32 eager on an H100/H200.

Usage: python benchmarks/training.py [--profile paper|quick|ci] [--batch 32] [--steps 10] [--rounds 3]
       [--compile] [--device cuda] [--json PATH]
Defaults: the paper's network on CUDA; the quick profile's network on a CPU (the paper's takes ~1 s per
sample there).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from bench_table import row, save

from specklenet.training.losses import ReconstructionLoss
from specklenet.training.model import build_model, count_parameters
from specklenet.training.profiles import PROFILES
from specklenet.training.train import FastPath, device_name, native_bf16, pick_device, train_step

POOL = 128  # distinct samples resident on the device, indexed at random like the training loop does


def variants(device: torch.device, compile_: bool) -> dict[str, FastPath]:
    found = {
        "fp32 eager": FastPath(bf16=False, channels_last=False, compile=False),
        "fp32 + channels-last": FastPath(bf16=False, channels_last=True, compile=False),
        "bf16 + channels-last": FastPath(bf16=True, channels_last=True, compile=False),
    }
    if compile_:
        found["bf16 + channels-last + compile"] = FastPath(bf16=True, channels_last=True, compile=True)
    return found


def measure(
    profile_name: str, fast: FastPath, device: torch.device, batch: int, steps: int, warmup: int
) -> float:
    """Samples per second over ``steps`` training steps after ``warmup`` (compilation happens there)."""
    profile = PROFILES[profile_name]
    model = build_model(profile.model, seed=0).to(device)
    if fast.channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if fast.compile else model
    optimizer = torch.optim.Adam(model.parameters(), lr=profile.learning_rate)
    loss = ReconstructionLoss(profile.mse_weight, profile.dice_weight)
    generator = torch.Generator(device="cpu").manual_seed(0)
    size, out = profile.model.frame_px, profile.model.resolution_px
    frames = torch.rand(POOL, 1, size, size, generator=generator).to(device) * 2
    truth = (torch.rand(POOL, 1, out, out, generator=generator) > 0.7).float().to(device)
    for step in range(warmup + steps):
        if step == warmup:
            _sync(device)
            start = time.perf_counter()
        index = torch.randint(0, POOL, (batch,), generator=generator).to(device)
        train_step(step_model, optimizer, loss, fast, frames[index], truth[index])
    _sync(device)
    return steps * batch / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    """Print the rounds and the table; return (and with ``--json PATH`` write) the figures as table rows."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch", type=int, default=None, help="default: the profile's batch size")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (default on CUDA only)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    args = parser.parse_args(argv)

    device = pick_device(args.device)
    profile_name = args.profile or ("paper" if device.type == "cuda" else "quick")
    profile = PROFILES[profile_name]
    batch = args.batch or profile.batch_size
    compile_ = args.compile or device.type == "cuda"
    model = profile.model
    print(
        f"device: {device} ({device_name(device)}); native bf16: {native_bf16(device)}; "
        f"torch {torch.__version__}"
    )
    print(
        f"network: profile {profile_name}, U-Net depth {model.depth}, base width {model.base_width}, "
        f"{model.kernel_size}×{model.kernel_size} kernels, "
        f"{model.frame_px}² in → {model.resolution_px}² out, "
        f"{count_parameters(build_model(model)) / 1e6:.2f} M parameters; batch {batch}; "
        f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} interleaved rounds"
    )
    found = variants(device, compile_)
    rates: dict[str, list[float]] = {name: [] for name in found}
    for round_ in range(args.rounds):
        for name, fast in found.items():
            warmup = args.warmup + (5 if fast.compile else 0)
            rates[name].append(measure(profile_name, fast, device, batch, args.steps, warmup))
        print(f"  round {round_ + 1}: " + ", ".join(f"{n} {r[-1]:.1f}" for n, r in rates.items()), flush=True)
    reference = statistics.median(rates["fp32 eager"])
    print(f"\n{'variant':<34} {'samples/s (median)':>18} {'min':>8} {'max':>8} {'× fp32 eager':>13}")
    rows = []
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{name:<34} {median:>18.1f} {min(values):>8.1f} {max(values):>8.1f} {median / reference:>13.2f}"
        )
        if name != "fp32 eager":
            rows.append(
                row(
                    f"training {profile_name} on {device.type}: {name}",
                    median,
                    "samples/s",
                    baseline=reference,
                    baseline_label="plain fp32 eager",
                    notes=f"batch {batch}, median of {args.rounds} interleaved rounds of {args.steps} steps "
                    f"({_spread(values)}; fp32 eager {_spread(rates['fp32 eager'])}); "
                    f"native bf16: {native_bf16(device)}",
                )
            )
    return save({"rows": rows}, args.json)


def _spread(values: list[float]) -> str:
    return f"min {min(values):.1f}, max {max(values):.1f}"


if __name__ == "__main__":
    main()
