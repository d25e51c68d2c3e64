"""The Ray executor on a local Ray instance (skipped where Ray is not installed)."""

from __future__ import annotations

import operator
import os
from pathlib import Path

import numpy as np
import pytest

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.records import read_pairs
from specklenet.training.ablate import Options, plan, run_render
from specklenet.training.cluster import RayExecutor, make_executor
from specklenet.training.profiles import PROFILES


def test_local_is_the_in_process_default_and_unknown_names_are_refused() -> None:
    assert make_executor("local") is None
    with pytest.raises(ConfigError, match="dask"):
        make_executor("dask")


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'specklenet[cluster]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.filterwarnings("ignore::specklenet.training.datasets.StandInWarning")
@pytest.mark.filterwarnings("ignore::specklenet.training.datasets.RepeatedImagesWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_ray_runs_each_task_in_its_own_worker_in_order_and_resumes(ray_instance, tmp_path: Path) -> None:
    renders, _ = plan(
        Options(PROFILES["ci"], tmp_path, axes=("normalisation",), cases=("2",), n_train=6, n_test=2)
    )
    executor = RayExecutor(cpus_per_task=1)
    pids = executor([os.getpid] * 3, operator.call)
    assert os.getpid() not in pids  # in Ray's worker processes, not here
    first = executor(renders, run_render)
    assert [r["pairs"] for r in first] == [task.pairs for task in renders]  # in the tasks' order
    assert all(r["rendered"] > 0 for r in first)
    for task in renders:  # every pairs file complete, written by the workers
        with read_pairs(tmp_path / task.pairs) as pairs:
            assert pairs.complete.all() and np.isfinite(pairs.load_frames()).all()
    again = executor(renders, run_render)  # a rerun (after a driver crash, say) redoes nothing
    assert [r["rendered"] for r in again] == [0] * len(renders)
