"""``specklenet-train demo`` (what ``make demo`` runs), end to end at test size through the real daemon.

``--size ci`` runs the whole lab loop — targets, ``specklenetd serve --sim`` as a subprocess, acquire
over its control channel, fit (``ci`` profile), export, live on the held-out test digits, the PNG,
``shutdown`` — then runs again on a pairs file cut in half, as after an interruption: the second run
must record only the missing pairs (the same frames as the first time) and skip what is done.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from scipy import ndimage

from specklenet.daemon.inference import Reconstructor
from specklenet.daemon.records import PairsWriter, read_pairs, read_targets
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training.cli import main
from specklenet.training.demo_daemon import DaemonError, DaemonProcess, write_config
from specklenet.training.metrics import pcc
from specklenet.training.pairdata import resize_truth

PCC_LINE = re.compile(
    r"live PCC (-?\d\.\d{3}) on (\d+) of (\d+) held-out test digits the model never saw; "
    r"constant-output baseline (-?\d\.\d{3})"
)
SHOWN = 4  # the ci size shows its 4 test digits


def run_demo(folder: Path, work: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "specklenet.training.cli", "demo", "--size", "ci", "-o", str(folder)]
    command += ["--control", f"ipc://{work}/control", "--stream", f"ipc://{work}/stream"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def panels(png: Path) -> int:
    """Image panels in the figure: each axes' frame encloses its image; filled, it is one big blob
    (titles and labels are small ones)."""
    image = matplotlib.image.imread(png)[..., :3]
    filled = ndimage.binary_fill_holes((image < 0.9).any(axis=2))
    labels, _ = ndimage.label(filled)
    areas = np.bincount(labels.ravel())[1:]
    return int(np.count_nonzero(areas > 0.5 * areas.max()))


def expected_scores(folder: Path) -> tuple[float, float]:
    """What the live PCC and the baseline must be, computed here without the demo: the model run on
    the frames the simulated camera shows for each test digit (the twin, its noise seeded by the
    target index), and the mean training target scored against the same digits."""
    test, train = read_targets(folder / "targets-2-test-digits.h5"), read_targets(folder / "targets-2.h5")
    model = Reconstructor.load(folder / "model.onnx", frame_shape=(256, 256), canvas_shape=(128, 128))
    twin = Twin(TwinConfig(), seed=0)
    live = [model.pcc(model.reconstruct(twin.expose_one(c, i)), c) for i, c in enumerate(test.canvases)]
    px = model.output_shape[0]
    constant = resize_truth(train.ground_truth(), px)[:, 0].numpy().mean(axis=0)
    truth = resize_truth(test.ground_truth(), px)[:, 0].numpy()
    return float(np.mean(live)), float(np.mean(pcc(np.broadcast_to(constant, truth.shape), truth)))


def cut_in_half(pairs_path: Path) -> np.ndarray:
    """Rewrite a pairs file with only its first half recorded (as a killed acquisition leaves it);
    returns the frames of the whole file as they were."""
    with read_pairs(pairs_path) as pairs:
        frames, acquisition, source = pairs.load_frames(), dict(pairs.acquisition), pairs.source
    targets = read_targets(pairs_path)
    with PairsWriter.create(pairs_path, targets, source=source, acquisition=acquisition, overwrite=True) as w:
        for index in range(len(frames) // 2):
            w.write(index, frames[index], frame_id=index, timestamp_ns=1)
    return frames


def test_demo_runs_the_lab_loop_through_the_daemon_and_resumes(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    first = run_demo(folder, tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    out = " ".join(first.stdout.split())  # rich wraps long lines at its console width
    match = PCC_LINE.search(out)
    assert match, out[-2000:]
    live_pcc, scored, total, baseline = float(match[1]), int(match[2]), int(match[3]), float(match[4])
    assert scored == total == SHOWN
    expected_live, expected_baseline = expected_scores(folder)
    assert live_pcc == pytest.approx(expected_live, abs=2e-3)  # measured live, on the held-out digits
    assert baseline == pytest.approx(expected_baseline, abs=1e-3)  # the mean training target
    result = json.loads((folder / "demo-result.json").read_text())
    assert round(result["live_pcc"], 3) == live_pcc and round(result["baseline_pcc"], 3) == baseline
    assert result["reconstructions"] >= SHOWN
    assert "exit status 0" in out and "http://127.0.0.1:8080" in out
    # every step's outcome starts a line of its own, also after the live view's table
    assert re.search(r"^  done in [\d.]+ s: live PCC", first.stdout, re.MULTILINE), first.stdout[-3000:]

    png = folder / "demo.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(png)[..., :3].std() > 0.1  # not a blank page
    assert panels(png) == 3 * SHOWN + 1  # target, speckle, reconstruction per digit; the constant output

    with read_pairs(folder / "pairs-2.h5") as pairs:
        assert pairs.complete.all() and len(pairs.complete) == 64
    recorded = cut_in_half(folder / "pairs-2.h5")

    second = run_demo(folder, tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    out = " ".join(second.stdout.split())
    assert "resuming pairs-2.h5: 32 of 64 pairs recorded" in out
    assert "32 frames recorded" in out  # only the missing ones
    for skipped in ("twin-demo.png exists", "its test sets exist", "training skipped", "model.onnx exists"):
        assert skipped in out, skipped
    assert PCC_LINE.search(out)
    with read_pairs(folder / "pairs-2.h5") as pairs:
        assert pairs.complete.all()
        np.testing.assert_array_equal(pairs.load_frames(), recorded)  # each target's own frame again


def test_a_folder_of_another_demo_is_refused(tmp_path: Path, capsys) -> None:
    (tmp_path / "demo.json").write_text(json.dumps({"case": "2", "size": {}, "data": "x", "seed": 0}))
    assert main(["demo", "--size", "ci", "-o", str(tmp_path)]) == 2
    assert "holds a demo with another size, data" in capsys.readouterr().err


def test_a_daemon_that_cannot_start_is_reported_with_its_log(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "daemon.toml", data_dir=tmp_path, control="tcp://192.0.2.1:5555", stream="ipc://x"
    )
    daemon = DaemonProcess(
        config, tmp_path / "daemon.log", control="tcp://192.0.2.1:5555", stream="ipc://x", timeout_s=60
    )
    try:
        with pytest.raises(DaemonError, match=r"exit status 78\); its log"):
            daemon.wait_ready()
    finally:
        daemon.close()
