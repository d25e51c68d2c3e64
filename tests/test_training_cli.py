"""``specklenet-train fit | export | evaluate | reproduce`` from the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import onnxruntime
import pytest
from twin_pairs import cached_twin_pairs

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.normalisation import DEFAULT_METHOD
from specklenet.training import evaluate as evaluate_module
from specklenet.training.cli import main
from specklenet.training.datasets import StandInWarning
from specklenet.training.profiles import load_profile
from specklenet.training.reproduce import Options
from specklenet.training.reproduce import _check_settings as check_settings


def test_help_lists_the_model_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "export", "evaluate", "reproduce"):
        assert command in out


@pytest.mark.slow
def test_fit_export_evaluate(tmp_path: Path, tmp_path_factory, capsys: pytest.CaptureFixture[str]) -> None:
    pairs = cached_twin_pairs(tmp_path_factory.getbasetemp(), 256)
    run, model = tmp_path / "run", tmp_path / "shapes.onnx"
    assert main(["fit", str(pairs), "--profile", "ci", "-o", str(run)]) == 0
    out = capsys.readouterr().out
    assert "256 complete pairs" in out
    assert "best validation Dice" in out
    assert main(["fit", str(pairs), "--profile", "ci", "-o", str(run)]) == 0
    assert "already trained" in capsys.readouterr().out
    assert main(["export", str(run), "-o", str(model), "--pairs", str(pairs)]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch" in out
    assert "window (32, 32, 64, 64)" in out
    assert main(["evaluate", str(model), str(pairs), "-o", str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out
    assert "PCC: mean" in out
    assert (tmp_path / "eval" / "metrics.csv").exists()


def test_bad_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", str(tmp_path / "missing.h5"), "-o", str(tmp_path / "run")]) == 2
    assert "missing.h5" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "missing.h5"), "--profile", "huge", "-o", str(tmp_path / "run")]) == 2
    assert "unknown profile 'huge'" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "no best checkpoint" in capsys.readouterr().err
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    assert main(["evaluate", str(tmp_path / "junk.onnx"), str(tmp_path / "missing.h5")]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_runs_cases_over_seeds_end_to_end_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    command = ["reproduce", "--profile", "ci", "-o", str(out), "--cases", "2", "SI", "--seeds", "2"]
    command += ["--normalisation", "frame_mean", "--n-train", "16", "--n-test", "3"]  # not the default
    real_evaluate = evaluate_module.evaluate

    def interrupted(model, pairs, *, name):  # Ctrl-C while evaluating SI's second seed
        if name.startswith("digits-p") and "seed1" in str(model.path):
            raise KeyboardInterrupt
        return real_evaluate(model, pairs, name=name)

    monkeypatch.setattr(evaluate_module, "evaluate", interrupted)
    with pytest.warns(StandInWarning):
        assert main(command) == 130
    for case, seed in (("2", 0), ("2", 1), ("SI", 0)):
        assert (out / "cases" / case / f"seed{seed}" / "result.json").exists()
    assert not (out / "cases" / "SI" / "seed1" / "result.json").exists()
    runs = {p.name: (p / "state.pt").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    assert len(runs) == 4  # 2 cases × 2 seeds, each another diffuser and other initial weights
    finished = out / "cases" / "2" / "seed1" / "result.json"
    finished_mtime = finished.stat().st_mtime_ns
    capsys.readouterr()

    monkeypatch.setattr(evaluate_module, "evaluate", real_evaluate)
    with pytest.warns(StandInWarning):
        assert main(command) == 0
    captured = capsys.readouterr()
    assert "case 2 seed 1: finished earlier, skipped" in captured.err
    for name, mtime in runs.items():  # nothing retrained
        assert (out / "runs" / name / "state.pt").stat().st_mtime_ns == mtime
    assert finished.stat().st_mtime_ns == finished_mtime
    for name in (
        "report.md",
        "table1.csv",
        "table1.md",
        "tests.csv",
        "fig3.png",
        "figS6-si.png",
        "probe.png",
    ):
        assert (out / name).exists(), name
    with (out / "table1.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 * 3  # 3 metrics × (faces, digits, scenes) of case 2
    for row in rows:  # every mean with its interval and its baseline's, over 3 images × 2 seeds
        assert float(row["ci_low"]) <= float(row["mean"]) <= float(row["ci_high"])
        assert float(row["baseline_ci_low"]) <= float(row["baseline"]) <= float(row["baseline_ci_high"])
        assert (row["n_images"], row["n_seeds"]) == ("3", "2")
    seeds = [json.loads((out / "cases" / "SI" / f"seed{k}" / "result.json").read_text()) for k in (0, 1)]
    assert sorted(seeds[0]["tests"]) == ["digits-p1", "digits-p2", "digits-p3", "digits-p4"]
    assert (
        seeds[0]["tests"]["digits-p1"]["metrics"]["pcc"] != seeds[1]["tests"]["digits-p1"]["metrics"]["pcc"]
    )
    assert len(seeds[0]["probe"]["pcc"]) == 64
    report = (out / "report.md").read_text()
    assert "SI: random placement succeeds at every position" in report
    assert "baseline" in report and "Spearman" in report
    assert "## The paper's claims" in captured.out

    assert main([*command[:-4], "--n-train", "30", "--n-test", "3"]) == 2
    assert "other settings (n_train)" in capsys.readouterr().err

    # Every training used the normalisation asked for, and the models tell the daemon so.
    assert "normalised by frame_mean" in report
    model = out / "models" / "case2-seed0.onnx"
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map["normalisation.method"] == "frame_mean"
    assert DEFAULT_METHOD != "frame_mean"
    assert main([arg for arg in command if arg not in ("--normalisation", "frame_mean")]) == 2
    assert "other settings (normalisation)" in capsys.readouterr().err


def test_a_report_from_before_the_normalisation_setting_resumes_as_mean_only(tmp_path: Path) -> None:
    settings = Options(profile=load_profile("ci"), out_dir=tmp_path, normalisation="frame_mean").settings()
    older = {key: value for key, value in settings.items() if key != "normalisation"}
    (tmp_path / "settings.json").write_text(json.dumps(older, default=str))
    check_settings(tmp_path / "settings.json", settings)  # the same reproduction: accepted
    zscore = {**settings, "normalisation": "zscore"}
    with pytest.raises(ConfigError, match=r"other settings \(normalisation\)"):
        check_settings(tmp_path / "settings.json", zscore)
