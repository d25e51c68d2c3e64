"""Hand-built ONNX models with specklenet metadata, for the inference tests (not a test module).

:func:`pooling_model` writes a model of the exported models' signature — ``speckle`` float32
(batch, 1, frame_px, frame_px) in, ``reconstruction`` (batch, 1, output_px, output_px) out — made of an
average pool, a scale and a sigmoid: milliseconds to build, deterministic, and its output differs from
a trained model's, so a test can tell which model produced an image.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation


def model_info(**overrides: object) -> ModelInfo:
    """The ``ci`` model's metadata (256² frames, 32² output of the centre 64² window), with overrides."""
    fields: dict[str, object] = {
        "case": "pool",
        "profile": "test",
        "frame_px": 256,
        "output_px": 32,
        "window": (32, 32, 64, 64),
        "normalisation": Normalisation(),
        "training_data_sha256": "0" * 64,
        "package_version": "0.1.0",
    }
    fields.update(overrides)
    return ModelInfo(**fields)  # type: ignore[arg-type]


def pooling_model(
    path: Path,
    info: ModelInfo | None = None,
    *,
    scale: float = 1.0,
    graph_frame_px: int | None = None,
    metadata: bool = True,
) -> Path:
    """Write the model (see the module docstring); ``graph_frame_px`` makes the graph's input disagree
    with the metadata, ``metadata=False`` leaves the metadata out."""
    info = info or model_info()
    frame_px = graph_frame_px or info.frame_px
    kernel = frame_px // info.output_px
    nodes = [
        helper.make_node(
            "AveragePool", ["speckle_in"], ["pooled"], kernel_shape=[kernel, kernel], strides=[kernel, kernel]
        ),
        helper.make_node("Mul", ["pooled", "scale"], ["scaled"]),
        helper.make_node("Sigmoid", ["scaled"], ["out"]),
    ]
    nodes[0].input[0] = info.input_name
    nodes[2].output[0] = info.output_name
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info(info.input_name, TensorProto.FLOAT, ["batch", 1, frame_px, frame_px])],
        [
            helper.make_tensor_value_info(
                info.output_name, TensorProto.FLOAT, ["batch", 1, frame_px // kernel, frame_px // kernel]
            )
        ],
        [helper.make_tensor("scale", TensorProto.FLOAT, [], [scale])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    if metadata:
        for key, value in sorted(info.to_metadata().items()):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
