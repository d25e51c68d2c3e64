"""Export a trained run to one self-contained ONNX file, checked against PyTorch, with its metadata.

``export_onnx(run_dir, "case2.onnx")`` takes the best checkpoint of a run (:mod:`.train`), exports the
network in fp32 with a dynamic batch axis and the weights embedded (no ``.onnx.data`` sidecar), writes
:class:`~specklenet.daemon.modelinfo.ModelInfo` into ``metadata_props`` (what the daemon needs: input
and output resolution, output window, speckle normalisation, case, training-data checksum, profile,
package version, plus provenance), then runs the file in ONNX Runtime (CPU) and compares it with the
PyTorch model on random speckle-like inputs and on real validation frames kept with the checkpoint. The
file appears at its destination only when the largest absolute difference is below the tolerance
(1e-4); otherwise :class:`ParityError` is raised and nothing is written.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from specklenet.daemon.errors import FileFormatError, SpecklenetError
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation
from specklenet.training.model import UNet
from specklenet.training.profiles import Profile

PARITY_TOLERANCE = 1e-4
INPUT_NAME, OUTPUT_NAME = "speckle", "reconstruction"


class ParityError(SpecklenetError):
    """ONNX Runtime and PyTorch disagree on the exported model by more than the tolerance."""


@dataclass(frozen=True)
class ExportResult:
    """What was written: the metadata and the measured ONNX-vs-PyTorch differences (max abs)."""

    path: Path
    info: ModelInfo
    max_abs_random: float
    max_abs_real: float
    size_bytes: int


def load_best(run_dir: str | Path) -> tuple[UNet, dict[str, Any]]:
    """The best model of a run (eval mode, fp32, CPU) and its checkpoint dict."""
    path = Path(run_dir) / "best.pt"
    if not path.is_file():
        raise FileFormatError(f"{path}: no best checkpoint here (train with `specklenet-train fit` first)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        profile = Profile.from_dict(checkpoint["profile"], source=str(path))
        model = UNet(profile.model)
        model.load_state_dict(checkpoint["model"])
    except (KeyError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise FileFormatError(f"{path}: not a usable specklenet checkpoint: {error}") from error
    return model.eval(), checkpoint


def model_info(checkpoint: dict[str, Any], *, case: str | None = None) -> ModelInfo:
    """The ONNX metadata of a best checkpoint; ``case`` relabels a model trained on a set shared by
    several cases (the provenance keeps the case the training targets were made for)."""
    profile, data = checkpoint["profile"], checkpoint["data"]
    provenance = {
        "training_targets_case": data["case"],
        "model": json.dumps(profile["model"], sort_keys=True),
        "training": json.dumps({k: v for k, v in profile.items() if k != "model"}, sort_keys=True),
        "best_epoch": str(checkpoint["epoch"]),
        "best_val_dice": f"{checkpoint['val_dice']:.6f}",
        "n_pairs": str(data["n_pairs"]),
        "trained_on": checkpoint["device"],
        "torch_version": checkpoint["torch_version"],
        "targets": json.dumps(data["provenance"], sort_keys=True),
        "acquisition": json.dumps(data["acquisition"], sort_keys=True),
        "exported_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    return ModelInfo(
        case=case or data["case"],
        profile=profile["name"],
        frame_px=profile["model"]["frame_px"],
        output_px=profile["model"]["resolution_px"],
        window=tuple(data["window"]),  # type: ignore[arg-type]
        normalisation=Normalisation.from_metadata(data["normalisation"]),
        training_data_sha256=data["sha256"],
        package_version=checkpoint["package_version"],
        canvas_px=data["canvas_px"],
        training_source=data["source"],
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        provenance=provenance,
    )


def export_onnx(
    run_dir: str | Path,
    output: str | Path,
    *,
    real_frames: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
    seed: int = 0,
    case: str | None = None,
) -> ExportResult:
    """Export the best model of ``run_dir`` to ``output`` (see the module docstring).

    Args:
        real_frames: further normalised frames ``(K, 1, frame_px, frame_px)`` for the parity check, in
            addition to the validation frames stored with the checkpoint.
        tolerance: largest accepted absolute difference between ONNX Runtime and PyTorch outputs.
        seed: seeds the random parity inputs.
        case: the case to record (default: the case of the training targets).
    """
    model, checkpoint = load_best(run_dir)
    info = model_info(checkpoint, case=case)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    try:
        _export_graph(model, partial, info)
        _write_metadata(partial, info)
        random_inputs = _speckle_like(3, info.frame_px, seed)
        real = checkpoint["examples"].numpy()
        if real_frames is not None:
            real = np.concatenate([real, np.asarray(real_frames, np.float32)])
        max_random = _max_abs_difference(model, partial, random_inputs)
        max_real = _max_abs_difference(model, partial, real)
        if not max(max_random, max_real) < tolerance:
            raise ParityError(
                f"{output}: ONNX Runtime and PyTorch differ by up to {max(max_random, max_real):.3g} "
                f"(random inputs {max_random:.3g}, real frames {max_real:.3g}; tolerance {tolerance:g})"
            )
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(output, info, max_random, max_real, output.stat().st_size)


def read_model_info(path: str | Path) -> ModelInfo:
    """The :class:`ModelInfo` of an ONNX file, read the way the daemon reads it (ONNX Runtime)."""
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # ORT raises its own untyped errors for missing or corrupt files
        raise FileFormatError(f"{path}: not a readable ONNX model: {error}") from error
    return ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)


def _export_graph(model: UNet, path: Path, info: ModelInfo) -> None:
    example = torch.from_numpy(_speckle_like(2, info.frame_px, seed=1))
    batch = torch.export.Dim("batch", min=1)
    with _quiet_exporter():
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            external_data=False,  # one file: the weights travel with the graph
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            verbose=False,
        )


def _write_metadata(path: Path, info: ModelInfo) -> None:
    import onnx

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    for key, value in sorted(info.to_metadata().items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"specklenet U-Net for case {info.case} (profile {info.profile})"
    onnx.save(proto, str(path))


def _max_abs_difference(model: UNet, path: Path, inputs: np.ndarray) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {INPUT_NAME: np.ascontiguousarray(inputs, np.float32)})
    with torch.no_grad():
        torch_out = model(torch.from_numpy(np.ascontiguousarray(inputs, np.float32))).numpy()
    return float(np.max(np.abs(onnx_out - torch_out)))


def _speckle_like(count: int, frame_px: int, seed: int) -> np.ndarray:
    """Normalised fully developed speckle: exponential intensities of mean 1, ``(count, 1, px, px)``."""
    rng = np.random.default_rng(seed)
    return rng.exponential(1.0, size=(count, 1, frame_px, frame_px)).astype(np.float32)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's own noise: a FutureWarning raised inside torch.export (torch 2.13's
    pytree deprecation, not our code) and its log lines about torchvision operators it skips."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._export")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
