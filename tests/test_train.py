"""The training loop on speckle rendered by the optical twin: learning, early stopping, resume, files."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from twin_pairs import cached_twin_pairs, write_twin_pairs

from specklenet.daemon.errors import ConfigError, FileFormatError
from specklenet.training import train
from specklenet.training.pairdata import PairTensors, checksum, load_pairs
from specklenet.training.profiles import PROFILES, Profile
from specklenet.training.train import FastPath, fit, resolve_fast_path, split

CI = PROFILES["ci"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> PairTensors:
    path = cached_twin_pairs(tmp_path_factory.getbasetemp(), 256)
    return load_pairs(path, output_px=CI.model.resolution_px)


def _subset(pairs: PairTensors, count: int) -> PairTensors:
    return dataclasses.replace(
        pairs, frames=pairs.frames[:count], truth=pairs.truth[:count], sha256=f"first-{count}"
    )


@pytest.mark.slow
def test_ci_profile_learns_from_twin_speckle(pairs: PairTensors, tmp_path: Path) -> None:
    result = fit(pairs, CI, tmp_path, progress=False)
    assert result.stopped in ("max-epochs", "early-stopped")
    # The Dice the early stopping monitors rises well above the untrained network's.
    assert result.best_val_dice > result.untrained_val_dice + 0.1
    dice = [row["val_dice"] for row in result.history]
    assert result.best_epoch == int(np.argmax(dice))
    with (tmp_path / "history.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == result.epochs + 1
    assert float(rows[result.best_epoch]["val_dice"]) == pytest.approx(result.best_val_dice)
    assert result.stopped in (tmp_path / "train.log").read_text()
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert best["data"]["sha256"] == pairs.sha256


def test_early_stopping_waits_patience_epochs_without_improvement(pairs: PairTensors, tmp_path: Path) -> None:
    profile = dataclasses.replace(
        CI, min_improvement=1.0, patience=2, max_epochs=10
    )  # nothing can improve by 1
    result = fit(_subset(pairs, 32), profile, tmp_path, progress=False)
    assert result.stopped == "early-stopped"
    assert result.epochs == 2
    assert result.best_epoch == 0


def test_resume_after_an_interruption_retraces_the_uninterrupted_run(
    pairs: PairTensors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = dataclasses.replace(CI, max_epochs=3, precision="fp32")
    data = _subset(pairs, 48)
    straight = fit(data, profile, tmp_path / "straight", progress=False)

    original = train._Run._train_epoch

    def interrupted(self, epoch, *args, **kwargs):  # Ctrl-C during the second epoch
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch, *args, **kwargs)

    monkeypatch.setattr(train._Run, "_train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(data, profile, tmp_path / "resumed", progress=False)
    monkeypatch.setattr(train._Run, "_train_epoch", original)
    resumed = fit(data, profile, tmp_path / "resumed", progress=False)

    assert "resuming after epoch 1" in (tmp_path / "resumed" / "train.log").read_text()
    assert [row["val_dice"] for row in resumed.history] == pytest.approx(
        [r["val_dice"] for r in straight.history]
    )
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "state.pt", weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_a_finished_run_is_left_alone(pairs: PairTensors, tmp_path: Path) -> None:
    profile = dataclasses.replace(CI, max_epochs=1)
    data = _subset(pairs, 32)
    fit(data, profile, tmp_path, progress=False)
    before = (tmp_path / "state.pt").stat().st_mtime_ns
    again = fit(data, profile, tmp_path, progress=False)
    assert again.stopped == "already-finished"
    assert again.epochs == 1
    assert (tmp_path / "state.pt").stat().st_mtime_ns == before


def test_a_folder_holding_another_run_is_refused_unless_restarted(pairs: PairTensors, tmp_path: Path) -> None:
    profile = dataclasses.replace(CI, max_epochs=1)
    fit(_subset(pairs, 32), profile, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different training data"):
        fit(_subset(pairs, 40), profile, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="different profile"):
        fit(_subset(pairs, 32), dataclasses.replace(profile, learning_rate=1e-3), tmp_path, progress=False)
    result = fit(_subset(pairs, 40), profile, tmp_path, progress=False, restart=True)
    assert result.stopped == "max-epochs"


def test_on_batch_reports_every_batch_of_every_epoch(pairs: PairTensors, tmp_path: Path) -> None:
    calls: list[tuple[int, int, int, float | None]] = []
    profile = dataclasses.replace(CI, max_epochs=2, batch_size=8)
    result = fit(_subset(pairs, 40), profile, tmp_path, progress=False, on_batch=lambda *a: calls.append(a))
    per_epoch = 32  # 36 training pairs (10 % validation) in whole batches of 8
    assert [(epoch, done) for epoch, done, _, _ in calls] == [
        (epoch, done) for epoch in (1, 2) for done in range(8, per_epoch + 1, 8)
    ]
    assert {total for _, _, total, _ in calls} == {per_epoch}
    dice = [row["val_dice"] for row in result.history]
    assert [d for epoch, _, _, d in calls if epoch == 2] == [dice[1]] * 4  # the latest validation Dice


def test_split_is_seeded_disjoint_and_complete() -> None:
    train_a, val_a = split(100, 0.1, seed=0)
    train_b, val_b = split(100, 0.1, seed=0)
    _, val_c = split(100, 0.1, seed=1)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert not torch.equal(val_a, val_c)
    assert len(val_a) == 10
    assert sorted(torch.cat([train_a, val_a]).tolist()) == list(range(100))


def test_fast_path_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_fast_path(dataclasses.replace(CI, precision="fp32"), cpu).bf16 is False
    assert resolve_fast_path(dataclasses.replace(CI, precision="bf16"), cpu).bf16 is True
    assert resolve_fast_path(dataclasses.replace(CI, compile="auto"), cpu).compile is False  # CUDA only
    conv = torch.nn.Conv2d(1, 2, 3).to(memory_format=torch.channels_last)
    with FastPath(bf16=True, channels_last=True, compile=False).autocast(cpu):
        out = conv(torch.rand(1, 1, 8, 8).contiguous(memory_format=torch.channels_last))
    assert out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_bf16_channels_last_training_learns_too(pairs: PairTensors, tmp_path: Path) -> None:
    profile = dataclasses.replace(CI, precision="bf16", channels_last=True, max_epochs=3)
    result = fit(_subset(pairs, 96), profile, tmp_path, progress=False)
    assert result.best_val_dice > result.untrained_val_dice


def test_too_few_pairs_or_wrong_frames_are_config_errors(pairs: PairTensors, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 4"):
        fit(_subset(pairs, 3), CI, tmp_path, progress=False)
    other = dataclasses.replace(CI, model=dataclasses.replace(CI.model, frame_px=128))
    with pytest.raises(ConfigError, match="expects 128"):
        fit(pairs, other, tmp_path, progress=False)


def test_load_pairs_uses_complete_frames_and_the_recorded_dark_offset(tmp_path: Path) -> None:
    path = write_twin_pairs(tmp_path / "partial.h5", 12, only=7)
    data = load_pairs(path, output_px=32)
    assert len(data) == 7
    assert data.indices.tolist() == list(range(7))
    assert data.normalisation.dark_offset_counts == 16.0  # the twin's camera default, found in the file
    assert data.frames.shape == (7, 1, 256, 256)
    assert data.truth.shape == (7, 1, 32, 32)
    per_frame = data.frames.flatten(1)  # the default normalisation, a per-frame z-score
    assert data.normalisation.method == "zscore"
    assert per_frame.mean(dim=1).abs().max().item() < 1e-4
    assert per_frame.std(dim=1).sub(1.0).abs().max().item() < 1e-3
    assert float(data.truth.min()) >= 0.0
    assert float(data.truth.max()) <= 1.0
    first = load_pairs(path, output_px=32, indices=[0, 1])
    assert first.sha256 != data.sha256
    assert first.sha256 == load_pairs(path, output_px=32, indices=[0, 1]).sha256
    with pytest.raises(FileFormatError, match="not recorded"):
        load_pairs(path, output_px=32, indices=[8])


def test_profile_round_trips_with_checkpoints() -> None:
    assert Profile.from_dict(CI.to_dict()) == CI


def test_checksum_covers_targets_and_frames_in_order() -> None:
    canvases, frames = np.zeros((3, 8, 8), np.uint8), np.ones((3, 4, 4), np.float32)
    reference = checksum(canvases, frames)
    other_canvas = canvases.copy()
    other_canvas[1, 2, 3] = 1
    other_frame = frames.copy()
    other_frame[2, 0, 0] = 1.5
    assert checksum(other_canvas, frames) != reference
    assert checksum(canvases, other_frame) != reference
    assert checksum(canvases[::-1], frames[::-1].copy()) == reference  # all equal: same bytes
    swapped = frames.copy()
    swapped[0] = 2.0
    assert checksum(canvases, swapped) != checksum(canvases, swapped[::-1].copy())


def test_cpu_threads_apply_during_training_only(pairs: PairTensors, tmp_path: Path, monkeypatch) -> None:
    seen = []
    original = train._Run._train_epoch

    def spy(self, *args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(train._Run, "_train_epoch", spy)
    before = torch.get_num_threads()
    profile = dataclasses.replace(CI, max_epochs=1, cpu_threads=before + 1)
    fit(_subset(pairs, 24), profile, tmp_path, progress=False)
    assert seen == [before + 1]
    assert torch.get_num_threads() == before
