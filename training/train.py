"""The training loop: Adam, early stopping on validation Dice, best checkpoint, resume, fast path.

``fit(pairs, profile, run_dir)`` trains one model on in-memory pairs (:mod:`.pairdata`) and leaves in
``run_dir``:

    state.pt     everything needed to resume (weights, optimiser, epoch, best Dice, history), rewritten
                 atomically after every epoch; an interrupted run continues from its last whole epoch
    best.pt      the weights of the epoch with the best validation Dice, with the profile, the data's
                 provenance and a few validation frames (export checks ONNX parity on them)
    history.csv  one row per epoch: losses, Dice, samples/s, seconds (epoch 0 = the untrained model)
    train.log    the same, human-readable, with start, resume and stop events
    curves.png   loss and validation Dice per epoch

Data path: all pairs live on the training device for the whole run (9,950 × 256² float32 is 2.6 GB),
batches are gathered there with a seeded permutation — no loader processes, nothing for the GPU to wait
for. The split, the batch order of every epoch and the initial weights depend only on the profile's
seed, so a resumed run retraces the uninterrupted one and every case starts from the same weights.

Fast path (see :mod:`.profiles`): bf16 autocast, channels-last tensors, ``torch.compile`` — on CUDA
when present; the same code runs on the CPU (bf16 there too when the CPU has native bf16).
Not thread-safe; one run per ``run_dir`` at a time.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from specklenet.daemon.errors import ConfigError
from specklenet.training.losses import ReconstructionLoss, soft_dice
from specklenet.training.model import UNet, build_model
from specklenet.training.pairdata import PairTensors
from specklenet.training.profiles import Profile

_logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
N_EXAMPLES = 4  # validation frames kept with the best checkpoint for the export's parity check
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_dice", "samples_per_s", "seconds", "best")


@dataclass(frozen=True)
class FastPath:
    """The resolved fast-path switches for one device."""

    bf16: bool
    channels_last: bool
    compile: bool

    def autocast(self, device: torch.device) -> AbstractContextManager[Any]:
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def describe(self) -> str:
        parts = ["bf16 autocast" if self.bf16 else "fp32"]
        parts += ["channels-last"] * self.channels_last + ["torch.compile"] * self.compile
        return " + ".join(parts)


@dataclass(frozen=True)
class FitResult:
    """How a run ended.

    Attributes:
        run_dir: where its files are.
        stopped: ``"early-stopped"``, ``"max-epochs"`` or ``"already-finished"`` (nothing to do).
        epochs: epochs trained in total (over all resumptions).
        best_epoch, best_val_dice: the checkpoint kept in best.pt.
        untrained_val_dice: validation Dice of the initial weights (epoch 0).
        history: one dict per epoch (the rows of history.csv).
    """

    run_dir: Path
    stopped: str
    epochs: int
    best_epoch: int
    best_val_dice: float
    untrained_val_dice: float
    history: list[dict[str, float]]


BatchHook = Callable[[int, int, int, float | None], None]
"""Called after every training batch with (epoch, pairs trained so far in this epoch, pairs per epoch,
the latest validation Dice or None before the first epoch ended); on the training thread."""


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` ("cpu", "cuda", "cuda:1"), or CUDA when available, else the CPU."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r} requested but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_fast_path(profile: Profile, device: torch.device) -> FastPath:
    """Turn the profile's ``auto`` switches into decisions for ``device``."""
    bf16 = native_bf16(device) if profile.precision == "auto" else profile.precision == "bf16"
    compile_ = profile.compile == "on" or (profile.compile == "auto" and device.type == "cuda")
    return FastPath(bf16=bf16, channels_last=profile.channels_last, compile=compile_)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively (otherwise autocast would be emulated and slow)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:  # oneDNN's own check: AVX512-BF16 or AMX
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fit(
    pairs: PairTensors,
    profile: Profile,
    run_dir: str | Path,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    restart: bool = False,
    on_batch: BatchHook | None = None,
) -> FitResult:
    """Train (or resume training) a U-Net on ``pairs`` with ``profile``; files go to ``run_dir``.

    A ``run_dir`` holding an unfinished run of the same profile and data is resumed; a finished one is
    left alone (``stopped == "already-finished"``). A run of other data or another profile raises
    :class:`ConfigError` unless ``restart`` discards it. ``progress`` shows tqdm bars on stderr;
    ``on_batch`` (see :data:`BatchHook`) lets a caller draw its own.
    """
    device = device if isinstance(device, torch.device) else pick_device(device)
    with _cpu_threads(profile.cpu_threads if device.type == "cpu" else None):
        run = _Run(pairs, profile, Path(run_dir), device)
        run.on_batch = on_batch
        return run.fit(progress=progress, restart=restart)


class _Run:
    """One training run's state (the body of :func:`fit`)."""

    def __init__(self, pairs: PairTensors, profile: Profile, run_dir: Path, device: torch.device) -> None:
        if len(pairs) < 4:
            raise ConfigError(f"training needs at least 4 pairs, got {len(pairs)}")
        if tuple(pairs.frames.shape[-2:]) != (profile.model.frame_px,) * 2:
            raise ConfigError(
                f"frames are {tuple(pairs.frames.shape[-2:])} but profile {profile.name!r} expects "
                f"{profile.model.frame_px}² frames"
            )
        self.pairs, self.profile, self.run_dir, self.device = pairs, profile, run_dir, device
        self.fast = resolve_fast_path(profile, device)
        self.loss = ReconstructionLoss(profile.mse_weight, profile.dice_weight)
        self.train_index, self.val_index = split(len(pairs), profile.validation_fraction, profile.seed)
        self.batch_size = min(profile.batch_size, len(self.train_index))
        self.model: UNet = build_model(profile.model, seed=profile.seed).to(device)
        if self.fast.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=profile.learning_rate)
        self.step_model: nn.Module = torch.compile(self.model) if self.fast.compile else self.model
        self.history: list[dict[str, float]] = []
        self.best_epoch, self.best_dice, self.bad_epochs, self.stopped = 0, -math.inf, 0, ""
        self.on_batch: BatchHook | None = None

    # --- orchestration ---------------------------------------------------------------------------

    def fit(self, *, progress: bool, restart: bool) -> FitResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state_path = self.run_dir / "state.pt"
        if state_path.exists() and not restart:
            self._load_state(state_path)
            if self.stopped:
                return self._result("already-finished")
        else:
            self._clear()
        frames = self.pairs.frames.to(self.device)
        truth = self.pairs.truth.to(self.device)
        if self.history:
            self._log(f"resuming after epoch {len(self.history) - 1}")
        else:
            self._start_fresh(frames, truth)
        try:
            while not self.stopped:
                epoch = len(self.history)
                train_loss, rate, seconds = self._train_epoch(epoch, frames, truth, progress)
                val_loss, val_dice = self._validate(frames, truth)
                self._end_epoch(epoch, train_loss, val_loss, val_dice, rate, seconds)
        except KeyboardInterrupt:
            self._log(
                f"interrupted during epoch {len(self.history)}; resume by running the same command again"
            )
            raise
        finally:
            self._plot_curves()
        return self._result(self.stopped)

    def _clear(self) -> None:
        for name in ("state.pt", "best.pt", "history.csv", "train.log", "curves.png"):
            (self.run_dir / name).unlink(missing_ok=True)

    def _start_fresh(self, frames: torch.Tensor, truth: torch.Tensor) -> None:
        model = self.profile.model
        self._log(
            f"profile {self.profile.name}: U-Net depth {model.depth}, base width {model.base_width}, "
            f"{model.kernel_size}×{model.kernel_size} kernels, {model.resolution_px}² output; "
            f"{len(self.train_index)} training + {len(self.val_index)} validation pairs of case "
            f"{self.pairs.targets.case!r} ({self.pairs.source}, sha256 {self.pairs.sha256[:12]}); "
            f"device {self.device} ({device_name(self.device)}), {self.fast.describe()}"
        )
        val_loss, val_dice = self._validate(frames, truth)
        self._end_epoch(0, math.nan, val_loss, val_dice, math.nan, 0.0)

    # --- one epoch -------------------------------------------------------------------------------

    def _train_epoch(
        self, epoch: int, frames: torch.Tensor, truth: torch.Tensor, progress: bool
    ) -> tuple[float, float, float]:
        self.model.train()
        order = self.train_index[
            torch.randperm(len(self.train_index), generator=_generator(self.profile.seed, epoch))
        ]
        n_batches = len(order) // self.batch_size  # drop the ragged tail: batch norm needs full batches
        total = torch.zeros((), device=self.device)
        last_dice = f"{self.history[-1]['val_dice']:.4f}" if self.history else "-"  # previous epoch's
        bar = tqdm(
            total=n_batches * self.batch_size,
            desc=f"epoch {epoch}/{self.profile.max_epochs}",
            unit="pair",
            disable=not progress,
            leave=False,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        with bar:
            for batch in range(n_batches):
                index = order[batch * self.batch_size : (batch + 1) * self.batch_size].to(self.device)
                loss = self._step(frames[index], truth[index])
                total += loss.detach()
                bar.update(self.batch_size)
                if self.on_batch is not None:
                    dice = self.history[-1]["val_dice"] if self.history else None
                    self.on_batch(epoch, (batch + 1) * self.batch_size, n_batches * self.batch_size, dice)
                if progress and (
                    batch % 10 == 9 or batch == n_batches - 1
                ):  # .item() syncs a GPU: not every step
                    bar.set_postfix(loss=f"{total.item() / (batch + 1):.4f}", val_dice=last_dice)
        _synchronize(self.device)
        seconds = time.perf_counter() - start
        return total.item() / max(n_batches, 1), n_batches * self.batch_size / seconds, seconds

    def _step(self, frames: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
        return train_step(self.step_model, self.optimizer, self.loss, self.fast, frames, truth)

    @torch.no_grad()
    def _validate(self, frames: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
        """Mean loss and mean soft Dice over the validation pairs (eval mode: running BN statistics)."""
        self.model.eval()
        losses, dice = [], []
        for start in range(0, len(self.val_index), 2 * self.batch_size):
            index = self.val_index[start : start + 2 * self.batch_size].to(self.device)
            batch = frames[index]
            if self.fast.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            with self.fast.autocast(self.device):
                prediction = self.step_model(batch).float()
            losses.append(self.loss(prediction, truth[index]) * len(index))
            dice.append(soft_dice(prediction, truth[index]))
        n = len(self.val_index)
        return float(torch.stack(losses).sum()) / n, float(torch.cat(dice).mean())

    def _end_epoch(
        self, epoch: int, train_loss: float, val_loss: float, val_dice: float, rate: float, seconds: float
    ) -> None:
        improved = val_dice > self.best_dice + self.profile.min_improvement
        if improved:
            self.best_epoch, self.best_dice, self.bad_epochs = epoch, val_dice, 0
            self._save_best()
        elif epoch > 0:
            self.bad_epochs += 1
        row = {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_dice": val_dice,
            "samples_per_s": rate,
            "seconds": seconds,
            "best": int(improved),
        }
        self.history.append(row)
        if self.bad_epochs >= self.profile.patience:
            self.stopped = "early-stopped"
        elif epoch >= self.profile.max_epochs:
            self.stopped = "max-epochs"
        self._save_state()
        self._write_history()
        label = (
            "untrained" if epoch == 0 else f"train loss {train_loss:.4f}, {rate:.1f} pairs/s, {seconds:.1f} s"
        )
        self._log(
            f"epoch {epoch}: {label}; val loss {val_loss:.4f}, val Dice {val_dice:.4f}"
            + (" (best)" if improved else f" (best {self.best_dice:.4f} at epoch {self.best_epoch})")
        )
        if self.stopped:
            self._log(
                f"{self.stopped} after epoch {epoch}; "
                f"best val Dice {self.best_dice:.4f} at epoch {self.best_epoch}"
            )

    # --- files -----------------------------------------------------------------------------------

    def _identity(self) -> dict[str, Any]:
        """What makes two runs the same run: profile and data (checked on resume)."""
        targets = self.pairs.targets
        return {
            "profile": self.profile.to_dict(),
            "data": {
                "sha256": self.pairs.sha256,
                "case": targets.case,
                "window": list(targets.output_window),
                "canvas_px": targets.canvas_shape[0],
                "source": self.pairs.source,
                "normalisation": self.pairs.normalisation.to_metadata(),
                "acquisition": _json_safe(self.pairs.acquisition),
                "provenance": _json_safe(dict(targets.provenance)),
                "n_pairs": len(self.pairs),
            },
        }

    def _save_best(self) -> None:
        examples = self.pairs.frames[self.val_index[:N_EXAMPLES]].clone()
        checkpoint = {
            "format": CHECKPOINT_FORMAT,
            **self._identity(),
            "model": _cpu_state(self.model),
            "epoch": self.best_epoch,
            "val_dice": self.best_dice,
            "examples": examples,
            "package_version": package_version(),
            "torch_version": str(torch.__version__),
            "device": f"{self.device} ({device_name(self.device)}), {self.fast.describe()}",
        }
        _atomic_save(checkpoint, self.run_dir / "best.pt")

    def _save_state(self) -> None:
        state = {
            "format": CHECKPOINT_FORMAT,
            **self._identity(),
            "model": _cpu_state(self.model),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
            "best_epoch": self.best_epoch,
            "best_dice": self.best_dice,
            "bad_epochs": self.bad_epochs,
            "stopped": self.stopped,
        }
        _atomic_save(state, self.run_dir / "state.pt")

    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        identity = self._identity()
        for key in ("profile", "data"):
            if state.get(key, {}) != identity[key]:
                what = "profile" if key == "profile" else "training data"
                raise ConfigError(
                    f"{self.run_dir}: holds a run with a different {what}; choose another output folder "
                    "or pass --restart to discard it"
                )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.history = list(state["history"])
        self.best_epoch, self.best_dice = int(state["best_epoch"]), float(state["best_dice"])
        self.bad_epochs, self.stopped = int(state["bad_epochs"]), str(state["stopped"])

    def _write_history(self) -> None:
        with (self.run_dir / "history.csv").open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows(self.history)

    def _log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with (self.run_dir / "train.log").open("a") as stream:
            stream.write(f"{stamp} {message}\n")
        _logger.info("%s: %s", self.run_dir, message)

    def _plot_curves(self) -> None:
        if len(self.history) > 1:
            plot_curves(
                self.history,
                self.run_dir / "curves.png",
                title=f"case {self.pairs.targets.case}, {self.profile.name}",
            )

    def _result(self, stopped: str) -> FitResult:
        return FitResult(
            run_dir=self.run_dir,
            stopped=stopped,
            epochs=len(self.history) - 1,
            best_epoch=self.best_epoch,
            best_val_dice=self.best_dice,
            untrained_val_dice=float(self.history[0]["val_dice"]),
            history=list(self.history),
        )


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: ReconstructionLoss,
    fast: FastPath,
    frames: torch.Tensor,
    truth: torch.Tensor,
) -> torch.Tensor:
    """One optimiser step on a batch (already on the model's device); returns the loss (not synced).

    The fast path's pieces: channels-last input, the forward pass under bf16 autocast, the loss in
    float32 (:mod:`.losses`), backward outside autocast as PyTorch recommends.
    """
    if fast.channels_last:
        frames = frames.contiguous(memory_format=torch.channels_last)
    with fast.autocast(frames.device):
        prediction = model(frames)
    loss = loss_fn(prediction, truth)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss


def split(n: int, validation_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of ``range(n)`` into (training, validation) index tensors, each non-empty."""
    order = torch.randperm(n, generator=_generator(seed, -1))
    n_val = min(max(1, round(validation_fraction * n)), n - 2)
    return order[n_val:].sort().values, order[:n_val].sort().values


def plot_curves(history: list[dict[str, float]], path: Path, *, title: str) -> None:
    """Loss (training and validation) and validation Dice per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
    left.plot(epochs[1:], [row["train_loss"] for row in history[1:]], "o-", label="training")
    left.plot(epochs, [row["val_loss"] for row in history], "s-", label="validation")
    left.set(xlabel="epoch", ylabel="loss (MSE + Dice loss)", title="loss")
    left.legend()
    right.plot(epochs, [row["val_dice"] for row in history], "s-", color="C2")
    right.set(xlabel="epoch", ylabel="soft Dice", title="validation Dice (early stopping)")
    figure.suptitle(title)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def device_name(device: torch.device) -> str:
    """A human name for the device: the GPU's, or the CPU's model name with its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = "CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {torch.get_num_threads()} threads"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("specklenet")
    except PackageNotFoundError:
        return "unknown"


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.uint32(seed * 1_000_003 + epoch + 1)))


@contextlib.contextmanager
def _cpu_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the block (None: left alone), then restored."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {
        key: value.detach().to("cpu", copy=True).contiguous() for key, value in model.state_dict().items()
    }


def _atomic_save(obj: Any, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    torch.save(obj, partial)
    os.replace(partial, path)  # a crash leaves the previous checkpoint, never half of one


def _json_safe(value: Any) -> Any:
    """Plain JSON types only (torch.load(weights_only=True) reads nothing else back)."""
    import json

    return json.loads(json.dumps(value, default=str))
