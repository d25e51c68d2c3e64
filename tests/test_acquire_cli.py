"""``specklenetd acquire``: the command line, crash safety (SIGKILL, SIGTERM) and --resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from specklenet.daemon.cli import main
from specklenet.daemon.records import Targets, read_pairs, write_targets
from specklenet.daemon.twin import Twin, TwinConfig

# Real-time simulated bench with long pictures, so that a run lasts long enough to be interrupted.
SLOW = """
[dmd]
picture_time_us = 20_000
[acquisition]
sequence_pictures = 8
frame_timeout_s = 0.2
flush_interval_s = 0.1
[sim]
realtime = true
"""


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(seed=0)


def make_targets(path: Path, count: int) -> Targets:
    rng = np.random.default_rng(count)
    canvases = np.zeros((count, 128, 128), np.uint8)
    for canvas, (row, column) in zip(canvases, rng.integers(16, 96, (count, 2)), strict=True):
        canvas[row : row + 20, column : column + 20] = rng.integers(60, 256)
    targets = Targets.from_canvases(canvases)
    write_targets(path, targets)
    return targets


def assert_matched(path: Path, targets: Targets, twin: Twin, *, complete: bool = True) -> np.ndarray:
    """Every recorded frame is the twin's frame of its own target; returns the recorded indices."""
    with read_pairs(path) as pairs:
        recorded = pairs.complete_indices()
        frames = pairs.load_frames(recorded)
        assert not complete or pairs.complete.all()
        np.testing.assert_array_equal(pairs.frame_id[recorded], recorded)
    rendered = [
        twin.expose_one(canvas, int(i))
        for canvas, i in zip(targets.canvases[recorded], recorded, strict=True)
    ]
    np.testing.assert_array_equal(frames, np.stack(rendered))
    return recorded


def start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "specklenet.daemon.cli",
        "acquire",
        "targets.h5",
        "-o",
        "pairs.h5",
        *extra,
    ]
    return subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)


def wait_for_frames(path: Path, count: int, process: subprocess.Popen[str]) -> int:
    """Poll the file (readable while written: SWMR) until it holds ``count`` committed frames."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        if path.exists():
            try:
                with read_pairs(path) as pairs:
                    if (done := int(pairs.complete.sum())) >= count:
                        return done
            except Exception:  # the file is being created; try again
                pass
        time.sleep(0.02)
    raise AssertionError(f"{path}: fewer than {count} frames after 60 s")


def test_help_explains_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["acquire", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for phrase in ("--sim", "--resume", "--config", "examples:", "Exit status"):
        assert phrase in text


def test_bad_input_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_targets(tmp_path / "targets.h5", 2)
    (tmp_path / "bad.toml").write_text("[camera]\nexposure_ms = 5\n")
    arguments = ["acquire", str(tmp_path / "targets.h5"), "-o", str(tmp_path / "pairs.h5"), "--sim"]
    assert main([*arguments, "--config", str(tmp_path / "bad.toml")]) == 2
    assert "bad.toml: camera.exposure_ms: unknown key" in capsys.readouterr().err
    assert main(["acquire", str(tmp_path / "none.h5"), "-o", str(tmp_path / "pairs.h5"), "--sim"]) == 2
    assert "none.h5: no such file" in capsys.readouterr().err
    (tmp_path / "software.toml").write_text("[camera]\ntrigger_source = 'Software'\n")
    assert main([*arguments, "--config", str(tmp_path / "software.toml")]) == 2
    assert "nothing triggers the camera" in capsys.readouterr().err
    assert not (tmp_path / "pairs.h5").exists()
    assert main(arguments) == 0
    assert main(arguments) == 2
    assert "already exists; resume it" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_midway_loses_nothing_and_resume_completes(
    tmp_path: Path, twin: Twin, capsys: pytest.CaptureFixture[str]
) -> None:
    targets = make_targets(tmp_path / "targets.h5", 40)
    (tmp_path / "slow.toml").write_text(SLOW)
    process = start(tmp_path, "--sim", "--config", "slow.toml", "--no-progress")
    try:
        wait_for_frames(tmp_path / "pairs.h5", 8, process)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(30)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    recorded = assert_matched(tmp_path / "pairs.h5", targets, twin, complete=False)
    assert 8 <= len(recorded) < 40
    resume = ["acquire", str(tmp_path / "targets.h5"), "-o", str(tmp_path / "pairs.h5"), "--sim", "--resume"]
    assert main(resume) == 0
    assert f"40/40 targets recorded ({40 - len(recorded)} in this run" in capsys.readouterr().err
    assert_matched(tmp_path / "pairs.h5", targets, twin)


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_the_file_resumes(tmp_path: Path, twin: Twin) -> None:
    targets = make_targets(tmp_path / "targets.h5", 40)
    (tmp_path / "slow.toml").write_text(SLOW)
    process = start(tmp_path, "--sim", "--config", "slow.toml", "--no-progress")
    try:
        wait_for_frames(tmp_path / "pairs.h5", 4, process)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, errors
    assert "interrupted" in errors and "finish with --resume" in errors
    recorded = assert_matched(tmp_path / "pairs.h5", targets, twin, complete=False)
    assert 4 <= len(recorded) < 40


def test_resume_refuses_another_twin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_targets(tmp_path / "targets.h5", 2)
    arguments = ["acquire", str(tmp_path / "targets.h5"), "-o", str(tmp_path / "pairs.h5"), "--sim"]
    assert main(arguments) == 0
    (tmp_path / "seed.toml").write_text("[sim]\nseed = 3\n")
    assert main([*arguments, "--resume", "--config", str(tmp_path / "seed.toml")]) == 2
    assert "was recorded with another twin (seed differs)" in capsys.readouterr().err
    for setting, named in (
        ("pixel_format = 'Mono8'", "camera.pixel_format = 'Mono12'"),
        ("roi_offset_px = [0, 0]", "camera.roi_offset_px = None"),
    ):
        (tmp_path / "camera.toml").write_text(f"[camera]\n{setting}\n")
        assert main([*arguments, "--resume", "--config", str(tmp_path / "camera.toml")]) == 2
        assert f"was recorded with {named}, this run has" in capsys.readouterr().err
    other = tmp_path / "other.h5"
    make_targets(other, 3)
    assert main(["acquire", str(other), "-o", str(tmp_path / "pairs.h5"), "--sim", "--resume"]) == 2
    assert "was recorded for other targets" in capsys.readouterr().err


def test_the_simulated_bench_equals_specklenet_train_simulate(tmp_path: Path) -> None:
    simulate = pytest.importorskip("specklenet.training.simulate", reason="needs the training package")
    targets = make_targets(tmp_path / "targets.h5", 9)
    simulate.simulate(
        tmp_path / "targets.h5", tmp_path / "twin.h5", Twin(TwinConfig(), seed=0), progress=False
    )
    assert main(["acquire", str(tmp_path / "targets.h5"), "-o", str(tmp_path / "bench.h5"), "--sim"]) == 0
    with read_pairs(tmp_path / "twin.h5") as simulated, read_pairs(tmp_path / "bench.h5") as acquired:
        np.testing.assert_array_equal(acquired.load_frames(), simulated.load_frames())
        np.testing.assert_array_equal(acquired.frame_id, simulated.frame_id)
        assert acquired.acquisition["twin_config"] == simulated.acquisition["twin_config"]
        assert len(targets) == len(acquired) and acquired.source == simulated.source == "twin"
