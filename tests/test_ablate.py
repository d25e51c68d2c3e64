"""The ablation command at ci size: variants planned, trained, evaluated through ONNX, reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from specklenet.daemon.errors import ConfigError
from specklenet.training import ablate_report
from specklenet.training.ablate import (
    Options,
    ablate,
    converging_profile,
    larger_profile,
    plan,
    run_training,
)
from specklenet.training.cli import main
from specklenet.training.profiles import PROFILES
from specklenet.training.statistics import bootstrap_mean, paired_difference

CI = PROFILES["ci"]
# The embedded stand-in datasets (no MNIST/LFW folder) warn; that is expected here.
pytestmark = pytest.mark.filterwarnings(
    "ignore::specklenet.training.datasets.StandInWarning",
    "ignore::specklenet.training.datasets.RepeatedImagesWarning",
)


def _options(tmp_path: Path, **overrides) -> Options:
    return Options(profile=CI, out_dir=tmp_path, n_train=16, n_test=4, device="cpu", **overrides)


def test_every_axis_plans_its_variants_with_shared_renders(tmp_path: Path) -> None:
    renders, trainings = plan(_options(tmp_path, cases=("2",), memory_px=(4.0, 16.0)))
    by_axis: dict[str, list[str]] = {}
    for training in trainings:
        by_axis.setdefault(training.axis, []).append(training.label)
    assert by_axis == {
        "normalisation": ["frame_mean", "zscore", "equalised"],
        "grey_model": ["pwm", "amplitude", "incoherent"],
        "size": ["32px-w4", "64px-w8"],
        "length": ["cap6", "converged"],
        "memory": ["me4px", "me16px"],
    }
    # One render per distinct target set × twin: case 2 (train + faces + digits + scenes) through pwm
    # (shared by normalisation, size, length), amplitude and incoherent; case 5 (train + 6 tests) per
    # memory range.
    assert len(renders) == 3 * 4 + 2 * 7
    assert len({r.pairs for r in renders}) == len(renders)
    memory = [t for t in trainings if t.axis == "memory"]
    assert {t.case for t in memory} == {"5"} and memory[0].train_pairs != memory[1].train_pairs


def test_the_axes_share_their_reference_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained: list = []

    def executor(tasks, function):  # records the trainings; renders and trains nothing
        if function is not run_training:
            return [None] * len(tasks)
        trained.extend(tasks)
        return [{"axis": "", "label": "", "pcc": {"faces": [float(i)]}} for i, _ in enumerate(tasks)]

    monkeypatch.setattr(ablate_report, "write_section", lambda results, out: results)
    options = _options(tmp_path, axes=("normalisation", "grey_model", "size", "length"), cases=("2",))
    results = ablate(options, executor)
    # 3 + 3 + 2 + 2 variants; frame_mean, pwm, the profile's own size and its epoch cap are one training.
    assert len(results) == 10 and len(trained) == 7
    references = [r for r in results if r["label"] in ("frame_mean", "pwm", "32px-w4", "cap6")]
    assert [r["axis"] for r in references] == ["normalisation", "grey_model", "size", "length"]
    assert len({r["pcc"]["faces"][0] for r in references}) == 1
    assert len({r["pcc"]["faces"][0] for r in results}) == 7
    # A reference an earlier run trained under another axis's name is found, not trained again.
    finished = tmp_path / "variants" / "length-case2-cap6" / "result.json"
    finished.parent.mkdir(parents=True)
    finished.write_text("{}")
    trained.clear()
    ablate(options, executor)
    assert "length-case2-cap6" in [t.ident for t in trained]
    assert "normalisation-case2-frame_mean" not in [t.ident for t in trained]


def test_seeds_repeat_the_ablation_in_their_own_folders_and_are_pooled(tmp_path: Path) -> None:
    renders: list = []
    trained: list = []

    def executor(tasks, function):  # renders nothing; "trains" to a PCC set by seed and method
        if function is not run_training:
            renders.extend(tasks)
            return [None] * len(tasks)
        trained.extend(tasks)
        results = []
        for task in tasks:
            k = int(Path(task.out_dir).name.removeprefix("seed"))
            level = 0.5 + 0.1 * k + (0.2 if task.normalisation == "zscore" else 0.0)
            results.append(
                {
                    "case": task.case,
                    "profile": task.profile.name,
                    "normalisation": task.normalisation,
                    "training": {"epochs": 3 + k, "stopped": "max-epochs"},
                    "pcc": {"faces": [level + 0.01 * i for i in range(4)]},
                    "baseline_pcc": {"faces": [0.3 + 0.1 * k] * 4},
                }
            )
        return results

    summary = ablate(_options(tmp_path, axes=("normalisation",), cases=("2",)), executor, seeds=2)
    assert sorted({(Path(t.out_dir).name) for t in trained}) == ["seed0", "seed1"]
    assert len(trained) == 2 * 3
    assert {r.seed for r in renders} == {0, 1}  # another split, diffuser and noise per seed
    rows = {row["label"]: row for row in summary["normalisation"]["2"]}
    assert list(rows) == ["frame_mean", "zscore", "equalised"]
    faces = rows["frame_mean"]["tests"]["faces"]
    assert faces["pcc"]["mean"] == pytest.approx(0.565)  # both seeds' images
    assert faces["pcc"]["low"] < 0.54 and faces["pcc"]["high"] > 0.59  # the seeds' spread is in it
    assert faces["baseline"]["mean"] == pytest.approx(0.35)
    assert rows["zscore"]["tests"]["faces"]["vs_reference"]["mean"] == pytest.approx(0.2)
    assert rows["frame_mean"]["training"]["epochs"] == "3/4"
    assert "Pooled over 2 seeds" in (tmp_path / "ablation.md").read_text()
    for k in (0, 1):
        section = (tmp_path / f"seed{k}" / "ablation.md").read_text()
        assert "One training per variant" in section
    with pytest.raises(ConfigError, match="seeds must be >= 1"):
        ablate(_options(tmp_path), executor, seeds=0)


@pytest.mark.parametrize("progress", [False, True])
def test_dataset_progress_bars_follow_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, progress: bool
) -> None:
    from specklenet.training import cases

    seen: list[bool] = []
    build_case = cases.build_case

    def spy(*args, **kwargs):
        seen.append(kwargs["progress"])
        return build_case(*args, **kwargs)

    monkeypatch.setattr(cases, "build_case", spy)
    plan(_options(tmp_path, axes=("normalisation",), cases=("2",), progress=progress))
    assert seen == [progress]  # no bars written into a log file by `ablate … 2> log`


def test_profiles_of_the_size_and_length_axes() -> None:
    larger = larger_profile(CI)
    assert (larger.model.resolution_px, larger.model.base_width) == (64, 8)
    converged = converging_profile(CI)
    assert converged.max_epochs == 10 * CI.max_epochs and converged.model == CI.model


def test_unknown_axis_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown axis"):
        _options(tmp_path, axes=("colour",))


def test_intervals_cover_the_mean_and_paired_differences_cancel_image_spread() -> None:
    rng = np.random.default_rng(0)
    hardness = rng.uniform(0.2, 0.9, 40)  # some images are harder for every model
    a, b = hardness + 0.03, hardness + rng.normal(0, 0.005, 40)
    unpaired = bootstrap_mean(a)
    assert unpaired.low < unpaired.mean < unpaired.high and not unpaired.excludes(float(b.mean()))
    difference = paired_difference(a, b)
    assert difference.excludes(0.0) and difference.low > 0.02
    assert not paired_difference(b, b).excludes(0.0)


def test_ci_ablation_end_to_end_records_the_normalisation_in_the_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One variant (an export takes seconds): trained, exported, evaluated as the daemon would, reported."""
    options = _options(tmp_path, axes=("normalisation",), cases=("2",), normalisations=("equalised",))
    with caplog.at_level("INFO", logger="specklenet.training.ablate"):
        summary = ablate(options)
    # A long ablation says where it is: each render, and each variant as it starts and ends.
    assert "4 pairs files to render, 1 trainings for 1 variants" in caplog.text
    assert "variant normalisation-case2-equalised: done in" in caplog.text and "faces PCC" in caplog.text
    (row,) = summary["normalisation"]["2"]
    # The exported model carries the normalisation it was trained with; evaluation applied that one.
    assert row["label"] == "equalised" and row["normalisation"] == "equalised"
    assert set(row["tests"]) == {"faces", "digits", "scenes"}  # scenes: the kind neither set trains on
    for test in row["tests"].values():
        assert -1.0 <= test["pcc"]["low"] <= test["pcc"]["mean"] <= test["pcc"]["high"] <= 1.0
        assert test["vs_reference"] == {"mean": 0.0, "low": 0.0, "high": 0.0}  # it is its own reference
        baseline = test["baseline"]  # the constant output scores something, with its own interval
        assert -1.0 <= baseline["low"] <= baseline["mean"] <= baseline["high"] <= 1.0 and baseline["high"] > 0
    report = (tmp_path / "ablation.md").read_text()
    assert "(a) speckle normalisation" in report and "| equalised |" in report and "faces baseline" in report
    assert (tmp_path / "ablation-normalisation.png").stat().st_size > 1000
    assert json.loads((tmp_path / "ablation.json").read_text()) == summary
    # A rerun finds the variant finished and writes the same summary without training again.
    result = tmp_path / "variants" / "normalisation-case2-equalised" / "result.json"
    stamp = result.stat().st_mtime_ns
    assert ablate(options) == summary
    assert result.stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_ci_ablation_of_every_axis_from_the_command_line(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    status = main(
        ["ablate", "-o", str(tmp_path), "--profile", "ci", "--cases", "2", "--n-train", "12", "--n-test", "3",
         "--memory-px", "4,16", "--device", "cpu"]
    )  # fmt: skip
    assert status == 0
    log = capfd.readouterr().err  # the command says where it is, epoch by epoch and variant by variant
    assert "26 pairs files to render, 9 trainings for 12 variants" in log
    assert "variant memory-case5-me16px: done in" in log and "epoch 1: train loss" in log
    summary = json.loads((tmp_path / "ablation.json").read_text())
    assert set(summary) == {"normalisation", "grey_model", "size", "length", "memory"}
    assert [row["normalisation"] for row in summary["normalisation"]["2"]] == [
        "frame_mean",
        "zscore",
        "equalised",
    ]
    assert set(summary["memory"]["5"][0]["tests"]) >= {"faces", "faces-shift1", "faces-shift2"}
    converged = summary["length"]["2"][1]["training"]
    assert converged["stopped"] == "early-stopped"  # trained to convergence, not to a cap
    report = (tmp_path / "ablation.md").read_text()
    assert all(f"ablation-{axis}.png" in report for axis in summary)
