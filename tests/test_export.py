"""ONNX export: one self-contained file, ONNX Runtime agrees with PyTorch, metadata the daemon can read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from twin_pairs import cached_ci_run, cached_twin_pairs

from specklenet.daemon.errors import ConfigError, FileFormatError
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation
from specklenet.training.export import (
    ExportResult,
    ParityError,
    export_onnx,
    load_best,
    model_info,
    read_model_info,
)
from specklenet.training.pairdata import load_pairs


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> ExportResult:
    base = tmp_path_factory.getbasetemp()
    out = tmp_path_factory.mktemp("export") / "shapes.onnx"
    return export_onnx(cached_ci_run(base), out)


@pytest.mark.slow
def test_export_writes_a_single_self_contained_file(exported: ExportResult) -> None:
    assert sorted(p.name for p in exported.path.parent.iterdir()) == ["shapes.onnx"]  # no .data sidecar
    proto = onnx.load(str(exported.path), load_external_data=False)
    assert proto.graph.initializer  # the weights are in the graph...
    assert all(not tensor.external_data for tensor in proto.graph.initializer)  # ...not beside it
    onnx.checker.check_model(proto)


@pytest.mark.slow
def test_onnx_runtime_agrees_with_pytorch_at_any_batch_size(exported: ExportResult, tmp_path_factory) -> None:
    assert exported.max_abs_random < 1e-4
    assert exported.max_abs_real < 1e-4
    model, _ = load_best(cached_ci_run(tmp_path_factory.getbasetemp()))
    real = load_pairs(cached_twin_pairs(tmp_path_factory.getbasetemp(), 256), output_px=32).frames
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    (speckle,) = session.get_inputs()
    assert speckle.name == "speckle"
    assert speckle.shape[1:] == [1, 256, 256]
    assert isinstance(speckle.shape[0], str)  # a named, dynamic batch axis
    for batch in (1, 5):
        frames = real[10 : 10 + batch]
        (out,) = session.run(None, {"speckle": frames.numpy()})
        assert out.shape == (batch, 1, 32, 32)
        with torch.no_grad():
            np.testing.assert_allclose(out, model(frames).numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_metadata_tells_the_daemon_how_to_use_the_model(exported: ExportResult, tmp_path_factory) -> None:
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert info == read_model_info(exported.path) == exported.info
    pairs = load_pairs(cached_twin_pairs(tmp_path_factory.getbasetemp(), 256), output_px=32)
    assert info.case == "shapes"
    assert info.profile == "ci"
    assert (info.frame_px, info.output_px) == (256, 32)
    assert info.window == (32, 32, 64, 64)
    assert info.normalisation == pairs.normalisation
    assert info.training_data_sha256 == pairs.sha256
    assert info.training_source == "twin"
    assert info.package_version == "0.1.0"
    assert '"kernel_size": 7' in info.provenance["model"]
    assert "dark_offset_counts" in info.provenance["acquisition"]  # the twin's description


def test_a_parity_failure_leaves_no_file(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    run = cached_ci_run(tmp_path_factory.getbasetemp())
    with pytest.raises(ParityError, match="differ by up to"):
        export_onnx(run, tmp_path / "model.onnx", tolerance=0.0)  # nothing is strictly below 0
    assert list(tmp_path.iterdir()) == []


def test_exporting_without_a_trained_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no best checkpoint"):
        export_onnx(tmp_path, tmp_path / "model.onnx")
    (tmp_path / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(FileFormatError, match="not a usable specklenet checkpoint"):
        export_onnx(tmp_path, tmp_path / "model.onnx")


def test_a_foreign_onnx_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, str(path))
    with pytest.raises(ConfigError, match="not exported by specklenet"):
        read_model_info(path)
    with pytest.raises(FileFormatError, match="not a readable ONNX model"):
        read_model_info(tmp_path / "missing.onnx")


def test_metadata_carries_the_runs_normalisation_and_case_label(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _, checkpoint = load_best(cached_ci_run(tmp_path_factory.getbasetemp()))
    custom = Normalisation(method="fixed", dark_offset_counts=12.5, full_scale_counts=255.0)
    checkpoint["data"]["normalisation"] = custom.to_metadata()
    info = model_info(checkpoint, case="5")
    assert info.normalisation == custom
    assert info.case == "5"
    assert info.provenance["training_targets_case"] == "shapes"
