"""``specklenet-train fit | export | evaluate | reproduce`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from twin_pairs import cached_twin_pairs

from specklenet.training import reproduce as reproduce_module
from specklenet.training.cli import main
from specklenet.training.datasets import StandInWarning


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
def test_reproduce_runs_cases_end_to_end_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "report"
    command = [
        "reproduce",
        "--profile",
        "ci",
        "-o",
        str(out),
        "--cases",
        "2",
        "SI",
        "--n-train",
        "24",
        "--n-test",
        "3",
    ]
    real_evaluate = reproduce_module.evaluate

    def interrupted(model, pairs, *, name):  # Ctrl-C while evaluating the second case
        if name.startswith("digits-p"):
            raise KeyboardInterrupt
        return real_evaluate(model, pairs, name=name)

    monkeypatch.setattr(reproduce_module, "evaluate", interrupted)
    with pytest.warns(StandInWarning):
        assert main(command) == 130
    assert (out / "cases" / "2" / "result.json").exists()
    assert not (out / "cases" / "SI" / "result.json").exists()
    runs = {p.name: (p / "state.pt").stat().st_mtime_ns for p in (out / "runs").iterdir()}
    finished = [out / "cases" / "2" / "result.json", out / "models" / "case2.onnx"]
    finished_mtimes = [path.stat().st_mtime_ns for path in finished]
    capsys.readouterr()

    monkeypatch.setattr(reproduce_module, "evaluate", real_evaluate)
    with pytest.warns(StandInWarning):
        assert main(command) == 0
    captured = capsys.readouterr()
    assert "case 2: finished earlier, skipped" in captured.err
    for name, mtime in runs.items():  # nothing retrained: case 2's and SI's runs were both complete
        assert (out / "runs" / name / "state.pt").stat().st_mtime_ns == mtime
    assert [path.stat().st_mtime_ns for path in finished] == finished_mtimes  # case 2 not redone
    for name in ("report.md", "table1.csv", "table1.md", "fig3.png", "figS6-si.png"):
        assert (out / name).exists(), name
    assert (out / "cases" / "2" / "analysis" / "case2-superimposed.png").exists()
    table = (out / "table1.csv").read_text().splitlines()
    assert table[0].startswith("metric,case,test,img1")
    assert len(table) == 1 + 3 * 2  # 3 metrics × (faces, digits) of case 2
    result = json.loads((out / "cases" / "SI" / "result.json").read_text())
    assert sorted(result["tests"]) == ["digits-p1", "digits-p2", "digits-p3", "digits-p4"]
    assert "SI: random placement succeeds at every position" in (out / "report.md").read_text()
    assert "## The paper's trends" in captured.out

    assert main([*command[:-4], "--n-train", "30", "--n-test", "3"]) == 2
    assert "other settings (n_train)" in capsys.readouterr().err
