"""Data-parallel training under torchrun: two CPU ranks (gloo) end with identical weights and learn."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from twin_pairs import cached_twin_pairs

from specklenet.daemon.errors import ConfigError
from specklenet.training.ddp import fit_distributed
from specklenet.training.pairdata import load_pairs
from specklenet.training.profiles import PROFILES


def test_ddp_outside_torchrun_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    pairs = load_pairs(cached_twin_pairs(tmp_path, 8), output_px=32)
    with pytest.raises(ConfigError, match="torchrun"):
        fit_distributed(pairs, PROFILES["ci"], tmp_path / "run", device="cpu")


@pytest.mark.slow
def test_two_gloo_ranks_train_one_model(tmp_path: Path) -> None:
    pairs = cached_twin_pairs(tmp_path, 64)
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "specklenet.training.cli", "fit", str(pairs), "-o", str(run), "--profile", "ci",
        "--device", "cpu", "--ddp",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((run / "ddp.json").read_text())
    assert record["world_size"] == 2 and record["backend"] == "gloo"
    first, second = record["weights_sha256"]
    assert first == second  # both ranks hold the same weights and buffers
    with (run / "history.csv").open() as stream:
        history = list(csv.DictReader(stream))
    losses = [float(row["train_loss"]) for row in history[1:]]
    assert len(losses) >= 2 and losses[-1] < losses[0]  # the loss falls
    assert max(float(row["val_dice"]) for row in history) > float(history[0]["val_dice"])
    assert (run / "best.pt").exists() and (run / "state.pt").exists()
    # The same command again resumes a finished run on both ranks: nothing more to train.
    again = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    with (run / "history.csv").open() as stream:
        assert len(list(csv.DictReader(stream))) == len(history)
