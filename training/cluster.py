"""Executors that run independent task lists elsewhere: on a Ray cluster (``reproduce --executor ray``).

An executor is ``executor(tasks, function) -> [function(task) for task in tasks]``, results in the tasks'
order (:mod:`.reproduce`, :mod:`.ablate`). :class:`RayExecutor` submits one Ray task per task
description, each with its share of a GPU (``gpus_per_task``: 0.25 runs four trainings per GPU; 0 on a
CPU-only cluster) and ``cpus_per_task`` cores, and gathers the results. Tasks are resumable on their
own (each skips work whose result file exists and resumes partial renders and trainings), so a task
that dies with its worker is retried (``max_retries``), and rerunning the whole command after the
driver dies redoes only what is missing. Every task reads and writes files under the output folder,
which must be the same path on every node (a shared filesystem).

Ray is optional (``pip install 'specklenet[cluster]'``); it is imported only when a Ray executor is
made. Connects to ``address`` (``"auto"``: the cluster this node belongs to, as ``ray start`` or a
Slurm job script set it up; None: a new local instance on this machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from specklenet.daemon.errors import ConfigError

T, R = TypeVar("T"), TypeVar("R")


@dataclass(frozen=True)
class RayExecutor:
    """Runs each task as one Ray task; see the module docstring.

    Attributes:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``) or None for a local instance.
        gpus_per_task: GPU share per task (fractions pack several trainings on one GPU).
        cpus_per_task: CPU cores reserved per task.
        max_retries: retries of a task whose worker died (tasks resume, so a retry is cheap).
    """

    address: str | None = None
    gpus_per_task: float = 0.0
    cpus_per_task: float = 1.0
    max_retries: int = 2

    def __call__(self, tasks: Sequence[T], function: Callable[[T], R]) -> list[R]:
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
        remote = ray.remote(
            num_gpus=self.gpus_per_task, num_cpus=self.cpus_per_task, max_retries=self.max_retries
        )(_call)
        return ray.get([remote.remote(function, task) for task in tasks])


def _call(function: Callable[[Any], Any], task: Any) -> Any:
    return function(task)


def make_executor(
    name: str, *, address: str | None = None, gpus_per_task: float | None = None
) -> RayExecutor | None:
    """``"local"`` → None (the caller's in-process default); ``"ray"`` → a :class:`RayExecutor` whose GPU
    share defaults to one whole GPU per task where this node has a GPU, none elsewhere."""
    if name == "local":
        return None
    if name != "ray":
        raise ConfigError(f"executor: expected 'local' or 'ray', got {name!r}")
    _ray()  # a clear error now, not after the plan
    if gpus_per_task is None:
        import torch

        gpus_per_task = 1.0 if torch.cuda.is_available() else 0.0
    return RayExecutor(address=address, gpus_per_task=gpus_per_task)


def _ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ConfigError(
            "executor 'ray' needs Ray: pip install 'specklenet[cluster]' (or ray[default])"
        ) from error
    return ray
