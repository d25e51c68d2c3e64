"""One training across several GPUs (or CPU processes): PyTorch DDP under ``torchrun``.

    torchrun --standalone --nproc-per-node 8 -m specklenet.training.cli fit pairs.h5 -o runs/big --ddp

Every process (rank) holds all pairs, as :func:`.train.fit` does, and the same seeded batch order; each
global batch of ``profile.batch_size`` pairs is split between the ranks (``batch_size`` must divide by
the world size), DDP averages the gradients, so one step sees the same pairs as a single-process step.
Batch norm keeps per-rank batch statistics (the usual DDP behaviour; SyncBatchNorm needs CUDA), and DDP
broadcasts rank 0's running statistics before every forward pass, so all ranks hold identical weights
and buffers; validation runs on every rank and rank 0's Dice decides early stopping for all. Rank 0
alone writes the run folder (``state.pt``, ``best.pt``, ``history.csv``, ``train.log``, ``curves.png``,
and ``ddp.json``: world size, backend and each rank's SHA-256 of its final weights). Rerunning the
same command resumes from ``state.pt`` on every rank. Backend: ``nccl`` on CUDA, ``gloo`` on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from specklenet.daemon.errors import ConfigError
from specklenet.training.pairdata import PairTensors
from specklenet.training.profiles import Profile
from specklenet.training.train import FitResult, _cpu_threads, _generator, _Run, _synchronize


def fit_distributed(
    pairs: PairTensors, profile: Profile, run_dir: str | Path, *, device: str | None = None
) -> FitResult:
    """:func:`.train.fit` as one rank of a ``torchrun`` job (environment: RANK, WORLD_SIZE, LOCAL_RANK).

    ``device``: ``"cpu"`` forces CPU ranks (gloo); by default rank ``LOCAL_RANK`` takes ``cuda:LOCAL_RANK``
    when CUDA is present. Returns the same result on every rank.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("--ddp runs under torchrun (RANK and WORLD_SIZE are unset); see the README")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device != "cpu" and torch.cuda.is_available()
    target = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(target)
    backend = "nccl" if cuda else "gloo"
    started_here = not dist.is_initialized()
    if started_here:
        dist.init_process_group(backend)
    try:
        world = dist.get_world_size()
        if profile.batch_size % world:
            raise ConfigError(f"batch size {profile.batch_size} does not divide between {world} ranks")
        with _cpu_threads(profile.cpu_threads if not cuda else None):
            run = _DistributedRun(pairs, profile, Path(run_dir), target, dist.get_rank(), world)
            result = run.fit(progress=False, restart=False)
            run.record(backend)
        return result
    finally:
        if started_here:
            dist.destroy_process_group()


class _DistributedRun(_Run):
    """A :class:`~.train._Run` whose steps are DDP steps and whose files only rank 0 writes."""

    def __init__(
        self, pairs: PairTensors, profile: Profile, run_dir: Path, device: torch.device, rank: int, world: int
    ) -> None:
        super().__init__(pairs, profile, run_dir, device)
        self.rank, self.world = rank, world
        ids = [device.index] if device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        self.step_model = torch.compile(self.ddp) if self.fast.compile else self.ddp

    def fit(self, *, progress: bool, restart: bool) -> FitResult:
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        dist.barrier()  # rank 0 may clear or create the folder before the others look into it
        return super().fit(progress=False, restart=restart)

    def _train_epoch(
        self, epoch: int, frames: torch.Tensor, truth: torch.Tensor, progress: bool
    ) -> tuple[float, float, float]:
        self.model.train()
        shuffle = torch.randperm(len(self.train_index), generator=_generator(self.profile.seed, epoch))
        order = self.train_index[shuffle]  # the same order on every rank
        n_batches = len(order) // self.batch_size
        total = torch.zeros((), device=self.device)
        start = time.perf_counter()
        for batch in range(n_batches):
            whole = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            index = whole[self.rank :: self.world].to(self.device)  # this rank's share of the batch
            total += self._step(frames[index], truth[index]).detach()
        dist.all_reduce(total)  # the mean over ranks of each step's loss
        _synchronize(self.device)
        seconds = time.perf_counter() - start
        mean = total.item() / self.world / max(n_batches, 1)
        return mean, n_batches * self.batch_size / seconds, seconds

    def _validate(self, frames: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
        loss, dice = super()._validate(frames, truth)
        decided = torch.tensor([loss, dice], dtype=torch.float64, device=self.device)
        dist.broadcast(decided, 0)  # every rank stops when rank 0 does
        return float(decided[0]), float(decided[1])

    # Files: rank 0 only; the others wait at the next collective call.
    def _clear(self) -> None:
        if self.rank == 0:
            super()._clear()

    def _save_best(self) -> None:
        if self.rank == 0:
            super()._save_best()

    def _save_state(self) -> None:
        if self.rank == 0:
            super()._save_state()
        dist.barrier()  # state.pt complete before any rank may be interrupted and resume from it

    def _write_history(self) -> None:
        if self.rank == 0:
            super()._write_history()

    def _log(self, message: str) -> None:
        if self.rank == 0:
            super()._log(message)

    def _plot_curves(self) -> None:
        if self.rank == 0:
            super()._plot_curves()

    def record(self, backend: str) -> None:
        """Gather every rank's weight digest; rank 0 writes ``ddp.json``."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        digests: list[str | None] = [None] * self.world
        dist.all_gather_object(digests, digest.hexdigest())
        if self.rank == 0:
            record = {"world_size": self.world, "backend": backend, "weights_sha256": digests}
            (self.run_dir / "ddp.json").write_text(json.dumps(record, indent=2) + "\n")
