"""Training profiles: network size and resolution, optimiser, stopping rule, data sizes, fast path.

Four built-in profiles (``PROFILES``):

``paper``  The paper's settings, for a GPU: 256×256 network resolution (targets resized 64→256, speckle
           at the camera's 256×256), depth-4 U-Net with 7×7 kernels, Adam 1e-4, up to 50 epochs with
           early stopping on validation Dice, 9,950 training pairs per case. The paper does not state the
           U-Net's width; we take base width 32 (32→512 channels, 39.1 M parameters), the classic
           U-Net's 64 halved — the issue's GPU throughput targets are stated for this network — and
           batch 32. Patience 10 (the authors' published code uses 10).
``quick``  Every case on a 2-core CPU in about an hour: 64×64 resolution (the window's native size;
           speckle area-averaged 256→64), depth 4, base width 8 (2.5 M parameters), 2,000 training
           pairs, up to 20 epochs, patience 4. Sized from one epoch's measured cost (README).
``demo``   ``make demo``: the ``quick`` network trained on 2,000 pairs for 6 epochs (1–3 min on 2 CPU
           cores), which already reconstructs held-out digits recognisably (PCC ≈ 0.78 on case 2).
``ci``     Seconds on a CPU, for the tests: 32×32, depth 2, base width 4.

A profile may also be a TOML file: ``base = "quick"`` (optional, default ``quick``) plus any fields to
override, strictly checked (``[model]`` table for the network). Profiles are frozen: thread-safe.

Fast path (``precision``, ``channels_last``, ``compile``): ``"auto"`` precision trains under bf16
autocast where the device has native bf16 (CUDA with bf16, CPUs with AVX512-BF16/AMX through oneDNN),
fp32 elsewhere; ``compile = "auto"`` uses ``torch.compile`` on CUDA only (on this CPU its ~40 s of
compiling cost about what a ``quick`` run gains: 182 against 153 samples/s, benchmarks/training.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.toml_loader import build, load_toml
from specklenet.training.model import UNetConfig

Precision = Literal["auto", "fp32", "bf16"]
Switch = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class Profile:
    """Everything that decides how a model is trained (saved with every checkpoint and ONNX file).

    Attributes:
        name: the profile's name, recorded in the model's metadata.
        model: the network's shape and resolution.
        batch_size: pairs per optimiser step.
        learning_rate: Adam's initial learning rate (the paper: 1e-4).
        max_epochs: upper bound on epochs (the paper: 50).
        patience: epochs without a validation-Dice improvement before stopping early.
        min_improvement: the smallest rise in validation Dice that counts as an improvement.
        mse_weight, dice_weight: weights of the loss terms (see :mod:`.losses`).
        validation_fraction: share of the training pairs held out for early stopping.
        seed: fixes the initial weights (identical for every case), the split and the batch order.
        n_train: training targets per case (``reproduce``); n_test: held-out test targets per set.
        precision, channels_last, compile: the fast path (module docstring).
        cpu_threads: torch's intra-op threads while training on a CPU (None: torch's default, one per
            core). ``ci`` uses 1: a tiny network gains little from a second thread, and on a shared
            machine every OpenMP barrier stalls while the other thread waits for a core (measured: 24 s
            with 2 threads against 6 s with 1 for a ``ci`` run beside two busy processes).
    """

    name: str
    model: UNetConfig = field(default_factory=UNetConfig)
    batch_size: int = 32
    learning_rate: float = 1e-4
    max_epochs: int = 50
    patience: int = 10
    min_improvement: float = 1e-4
    mse_weight: float = 1.0
    dice_weight: float = 1.0
    validation_fraction: float = 0.1
    seed: int = 0
    n_train: int = 9950
    n_test: int = 50
    precision: Precision = "auto"
    channels_last: bool = True
    compile: Switch = "auto"
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ConfigError(f"profile.batch_size: must be >= 2 (batch norm), got {self.batch_size}")
        if not self.learning_rate > 0 or self.max_epochs < 1 or self.patience < 1:
            raise ConfigError("profile: learning_rate must be > 0, max_epochs and patience >= 1")
        if not 0 < self.validation_fraction < 1:
            raise ConfigError(
                f"profile.validation_fraction: must be in (0, 1), got {self.validation_fraction}"
            )
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"profile.cpu_threads: must be >= 1, got {self.cpu_threads}")
        if self.n_train < 4 or self.n_test < 1:
            raise ConfigError(
                f"profile: n_train must be >= 4 and n_test >= 1, got {self.n_train}, {self.n_test}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, mapping: dict[str, Any], *, source: str = "") -> Profile:
        """Strict construction (unknown keys and wrong types raise :class:`ConfigError`)."""
        return build(cls, mapping, where="profile", source=source)


PROFILES: dict[str, Profile] = {
    "paper": Profile(
        name="paper",
        model=UNetConfig(depth=4, base_width=32, kernel_size=7, resolution_px=256),
        batch_size=32,
        max_epochs=50,
        patience=10,
    ),
    "quick": Profile(
        name="quick",
        model=UNetConfig(depth=4, base_width=8, kernel_size=7, resolution_px=64),
        batch_size=16,
        max_epochs=20,
        patience=4,
        n_train=2000,
        n_test=50,
    ),
    "demo": Profile(
        name="demo",
        model=UNetConfig(depth=4, base_width=8, kernel_size=7, resolution_px=64),
        batch_size=16,
        max_epochs=6,
        patience=4,
        n_train=2000,
        n_test=50,
    ),
    "ci": Profile(
        name="ci",
        model=UNetConfig(depth=2, base_width=4, kernel_size=7, resolution_px=32),
        batch_size=8,
        learning_rate=3e-3,
        max_epochs=6,
        patience=3,
        n_train=64,
        n_test=4,
        compile="off",
        cpu_threads=1,
    ),
}


def load_profile(name_or_path: str | Path) -> Profile:
    """A built-in profile by name, or a TOML file overriding one (``base = "quick"`` by default)."""
    if str(name_or_path) in PROFILES:
        return PROFILES[str(name_or_path)]
    path = Path(name_or_path)
    if path.suffix != ".toml":
        raise ConfigError(
            f"unknown profile {str(name_or_path)!r}: use one of {sorted(PROFILES)} or a .toml file"
        )
    overrides = load_toml(path)
    base_name = overrides.pop("base", "quick")
    if base_name not in PROFILES:
        raise ConfigError(f"{path}: base: unknown profile {base_name!r} (known: {sorted(PROFILES)})")
    merged = _merge(PROFILES[base_name].to_dict(), {"name": path.stem, **overrides})
    return Profile.from_dict(merged, source=str(path))


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
