"""Evaluation: the model as the daemon runs it, ground truth in each target's own window, metrics saved."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from twin_pairs import WINDOW, cached_ci_run, shapes

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.normalisation import Normalisation
from specklenet.daemon.records import PairsWriter, Targets, read_pairs
from specklenet.daemon.twin import Twin, TwinConfig
from specklenet.training.evaluate import Reconstructor, evaluate, format_evaluation, write_evaluation
from specklenet.training.export import export_onnx
from specklenet.training.metrics import all_metrics
from specklenet.training.pairdata import normalise_frames, resize_truth


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "shapes.onnx"
    export_onnx(cached_ci_run(tmp_path_factory.getbasetemp()), path)
    return path


def _shifted_pairs(path: Path, count: int, shift: tuple[int, int]) -> Path:
    """Shapes moved by ``shift`` on the canvas, each with its own truth window (as case 5's shifted tests)."""
    canvases = np.roll(shapes(count, seed=7), shift, axis=(1, 2))
    base = Targets.from_canvases(canvases, case="shapes", split="test-shifted", output_window=WINDOW)
    columns = dict(base.columns)
    columns["truth_window"] = np.tile(
        np.array([[32 + shift[0], 32 + shift[1], 64, 64]], np.int16), (count, 1)
    )
    targets = Targets(canvases, columns, "shapes", "test-shifted", WINDOW, {})
    twin = Twin(TwinConfig(), seed=0)
    frames = twin.expose(canvases, frame_ids=np.arange(count) + 1000)
    with PairsWriter.create(path, targets, source="twin", acquisition=twin.describe()) as writer:
        for index in range(count):
            writer.write(index, frames[index], frame_id=1000 + index, timestamp_ns=0)
    return path


@pytest.mark.slow
def test_evaluation_scores_what_onnx_runtime_reconstructs(model: Path, tmp_path: Path) -> None:
    pairs_path = _shifted_pairs(tmp_path / "shifted.h5", 6, shift=(8, -16))
    evaluation = evaluate(model, pairs_path)
    with read_pairs(pairs_path) as pairs:
        raw = pairs.load_frames()
        canvases = pairs.targets.canvases.copy()
    # ground truth: the target in its own (shifted) window, resized to the model's output
    expected_truth = resize_truth(canvases[:, 40:104, 16:80] / 255.0, evaluation.info.output_px)[:, 0].numpy()
    np.testing.assert_allclose(evaluation.truth, expected_truth, atol=1e-6)
    # input: the frames normalised with the model's own metadata, run through ONNX Runtime
    frames = normalise_frames(raw, evaluation.info.normalisation).numpy()
    np.testing.assert_allclose(evaluation.frames, frames[:, 0], atol=1e-6)
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"speckle": frames})
    np.testing.assert_allclose(evaluation.reconstruction, expected[:, 0], atol=1e-6)
    for name, values in all_metrics(expected[:, 0], expected_truth).items():
        np.testing.assert_allclose(evaluation.metrics[name], values, atol=1e-9)
    assert evaluation.name == "test-shifted"


@pytest.mark.slow
def test_results_are_saved_and_printed(model: Path, tmp_path: Path) -> None:
    evaluation = evaluate(model, _shifted_pairs(tmp_path / "pairs.h5", 5, shift=(0, 0)))
    paths = write_evaluation(evaluation, tmp_path / "eval")
    assert [p.name for p in paths] == ["metrics.csv", "summary.json", "examples.png"]
    with paths[0].open() as stream:
        rows = list(csv.DictReader(stream))
    assert [float(row["pcc"]) for row in rows] == pytest.approx(evaluation.metrics["pcc"], abs=1e-4)
    summary = json.loads(paths[1].read_text())
    assert summary["metrics"]["ssim"]["mean"] == pytest.approx(float(np.mean(evaluation.metrics["ssim"])))
    assert summary["metrics"]["cs"]["n"] == 5
    assert paths[2].read_bytes()[:4] == b"\x89PNG"
    text = format_evaluation(evaluation)
    assert f"{evaluation.metrics['pcc'].mean():.4f}" in text


def test_frames_of_the_wrong_size_are_refused(model: Path) -> None:
    reconstructor = Reconstructor(model)
    with pytest.raises(FileFormatError, match="expects frames"):
        reconstructor(np.zeros((2, 1, 128, 128), np.float32))


@pytest.mark.slow
def test_the_normalisation_comes_from_the_models_metadata(model: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(model))
    for entry in proto.metadata_props:
        if entry.key == "normalisation.dark_offset_counts":
            entry.value = "100.0"
    other = tmp_path / "offset100.onnx"
    onnx.save(proto, str(other))
    pairs_path = _shifted_pairs(tmp_path / "pairs.h5", 3, shift=(0, 0))
    evaluation = evaluate(other, pairs_path)
    with read_pairs(pairs_path) as pairs:
        raw = pairs.load_frames()
    expected = normalise_frames(raw, Normalisation(dark_offset_counts=100.0))[:, 0].numpy()
    np.testing.assert_allclose(evaluation.frames, expected, atol=1e-6)
