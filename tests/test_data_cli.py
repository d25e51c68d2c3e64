"""``specklenet-train targets | simulate | inspect`` end to end, and the resumable simulation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records import PairsWriter, Targets, read_pairs, read_targets
from specklenet.daemon.twin import Twin
from specklenet.training.cli import main
from specklenet.training.simulate import simulate


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(seed=3)


def small_targets(path: Path, count: int = 5) -> Targets:
    canvases = np.zeros((count, 128, 128), np.uint8)
    for index in range(count):
        canvases[index, 32 + 4 * index : 60 + 4 * index, 40:80] = 255  # a different bar per target
    canvases[-1, 40:90, 40:90] = 100  # and one grey target
    targets = Targets.from_canvases(canvases, case="2", split="train", output_window=(32, 32, 64, 64))
    from specklenet.daemon.records import write_targets

    write_targets(path, targets)
    return targets


def test_targets_command_writes_train_and_test_files_and_reports_coverage(tmp_path: Path, capsys) -> None:
    output = tmp_path / "t4b.h5"
    status = main(["targets", "--case", "4b", "--n-train", "40", "--n-test", "5", "-o", str(output)])
    assert status == 0
    out, err = capsys.readouterr()
    assert "low-resolution stand-ins" in err
    assert "case 4b train: 40 targets; never lit:" in out
    train = read_targets(output)
    assert (train.case, train.split, len(train)) == ("4b", "train", 40)
    assert read_targets(tmp_path / "t4b-test-faces.h5").split == "test-faces"
    assert len(read_targets(tmp_path / "t4b-test-digits.h5")) == 5


def test_targets_command_never_replaces_a_pairs_file(tmp_path: Path, capsys) -> None:
    pairs = tmp_path / "precious.h5"
    PairsWriter.create(
        pairs, Targets.from_canvases(np.zeros((1, 128, 128), np.uint8)), source="hardware", acquisition={}
    ).close()
    status = main(
        ["targets", "--case", "2", "--n-train", "10", "--n-test", "2", "--no-tests", "-o", str(pairs)]
    )
    assert status == 2
    assert "exists and is not a targets file" in capsys.readouterr().err
    assert read_pairs(pairs).source == "hardware"


@pytest.mark.realdata
def test_targets_command_from_real_data(tmp_path: Path, shared_data: Path, capsys) -> None:
    output = tmp_path / "t2.h5"
    argv = ["targets", "--case", "2", "--data-dir", str(shared_data), "--n-train", "50", "--n-test", "3"]
    assert main([*argv, "--no-tests", "-o", str(output)]) == 0
    assert "stand-in" not in capsys.readouterr().err
    targets = read_targets(output)
    assert set(targets.columns["dataset"]) == {"mnist-t10k"}
    assert "t10k-images-idx3-ubyte.gz" in targets.provenance["dataset_sha256"]


def test_inspect_command_writes_both_figures_per_file(tmp_path: Path, capsys) -> None:
    small_targets(tmp_path / "small.h5")
    assert main(["inspect", str(tmp_path / "small.h5"), "-o", str(tmp_path / "fig")]) == 0
    out = capsys.readouterr().out
    assert "small.h5 (case 2, train): 5 targets" in out
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "small-histograms.png",
        "small-superimposed.png",
    ]
    assert main(["inspect", str(tmp_path / "missing.h5")]) == 2


def test_simulate_records_every_frame_as_the_twin_renders_it(tmp_path: Path, twin: Twin) -> None:
    targets = small_targets(tmp_path / "t.h5")
    result = simulate(tmp_path / "t.h5", tmp_path / "p.h5", twin, batch_size=2, progress=False)
    assert (result.rendered, result.total, result.device) == (5, 5, "cpu")
    with read_pairs(tmp_path / "p.h5") as pairs:
        assert pairs.complete.all()
        np.testing.assert_array_equal(pairs.frame_id, np.arange(5))  # frame id = target index
        assert pairs.source == "twin"
        assert pairs.acquisition == json.loads(json.dumps(twin.describe()))
        frames = pairs.load_frames()
    # Frame for frame what the daemon's simulated camera renders for the same target and frame id.
    np.testing.assert_array_equal(frames[3], twin.expose_one(targets.canvases[3], 3))
    np.testing.assert_array_equal(frames, twin.expose(targets.canvases, frame_ids=np.arange(5)))


def test_the_torch_path_used_on_gpus_returns_numpy_frames_of_the_same_statistics(twin: Twin) -> None:
    torch = pytest.importorskip("torch")
    from specklenet.training.simulate import _torch_renderer

    canvases = np.zeros((2, 128, 128), np.uint8)
    canvases[0, 40:80, 40:80] = 255
    canvases[1, 70:90, 30:100] = 255
    frames = _torch_renderer(twin, torch.device("cpu"))(canvases, np.array([5, 6]))
    reference = twin.expose(canvases, frame_ids=np.array([5, 6]))
    assert isinstance(frames, np.ndarray)
    assert frames.dtype == np.float32
    assert frames.shape == (2, 256, 256)
    # the torch backend draws its own camera noise: compare the speckle, not the noise
    np.testing.assert_allclose(frames.mean(axis=(1, 2)), reference.mean(axis=(1, 2)), rtol=0.02)
    for frame, expected in zip(frames, reference, strict=True):
        assert np.corrcoef(frame.ravel(), expected.ravel())[0, 1] > 0.9


class FailingTwin:
    """Delegates to a twin but raises KeyboardInterrupt (a user's Ctrl-C) at the given call."""

    def __init__(self, twin: Twin, fail_at_call: int) -> None:
        self.twin, self.calls, self.fail_at_call = twin, 0, fail_at_call
        self.canvas_shape = twin.canvas_shape

    def describe(self) -> dict[str, Any]:
        return self.twin.describe()

    def expose(self, canvases: np.ndarray, frame_ids: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_at_call:
            raise KeyboardInterrupt
        return self.twin.expose(canvases, frame_ids=frame_ids)


def test_an_interrupted_simulation_resumes_with_only_the_missing_frames(tmp_path: Path, twin: Twin) -> None:
    small_targets(tmp_path / "t.h5")
    with pytest.raises(KeyboardInterrupt):
        simulate(tmp_path / "t.h5", tmp_path / "p.h5", FailingTwin(twin, 2), batch_size=2, progress=False)  # type: ignore[arg-type]
    with read_pairs(tmp_path / "p.h5") as pairs:
        np.testing.assert_array_equal(pairs.complete, [True, True, False, False, False])
    counting = FailingTwin(twin, 0)
    result = simulate(tmp_path / "t.h5", tmp_path / "p.h5", counting, batch_size=2, progress=False)  # type: ignore[arg-type]
    assert result.rendered == 3
    assert counting.calls == 2
    simulate(tmp_path / "t.h5", tmp_path / "fresh.h5", twin, batch_size=5, progress=False)
    with read_pairs(tmp_path / "p.h5") as resumed, read_pairs(tmp_path / "fresh.h5") as fresh:
        np.testing.assert_array_equal(resumed.load_frames(), fresh.load_frames())


def test_resuming_with_another_twin_or_other_targets_is_refused(tmp_path: Path, twin: Twin) -> None:
    small_targets(tmp_path / "t.h5")
    simulate(tmp_path / "t.h5", tmp_path / "p.h5", twin, progress=False)
    with pytest.raises(FileFormatError, match="another twin"):
        simulate(tmp_path / "t.h5", tmp_path / "p.h5", Twin(seed=4), progress=False)
    small_targets(tmp_path / "other.h5", count=4)
    with pytest.raises(FileFormatError, match="other targets"):
        simulate(tmp_path / "other.h5", tmp_path / "p.h5", twin, progress=False)


def test_simulate_command_reports_rate_and_resumes(tmp_path: Path, capsys) -> None:
    small_targets(tmp_path / "t.h5", count=3)
    argv = [
        "simulate",
        str(tmp_path / "t.h5"),
        "-o",
        str(tmp_path / "p.h5"),
        "--seed",
        "3",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    assert "3 frames rendered on cpu" in capsys.readouterr().out
    assert main(argv) == 0
    assert "0 frames rendered" in capsys.readouterr().out
    (tmp_path / "twin.toml").write_text("[twin]\nfidelity = 'dataset'\nnot_a_key = 1\n")
    assert main([*argv, "--twin", str(tmp_path / "twin.toml")]) == 2
    assert "not_a_key" in capsys.readouterr().err
