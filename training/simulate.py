"""Targets file → pairs file through the optical twin: the training data the bench would record.

Frames are rendered in batches (``Twin.expose`` on uint8 canvases; on the GPU through torch tensors
when one is available) and recorded with :class:`~specklenet.daemon.records.PairsWriter` (source
``"twin"``, acquisition = ``twin.describe()``). The frame id of a target is its index in the targets
file, and the twin seeds each frame's camera noise with (seed, frame id), so the daemon's simulated
acquisition of the same targets with the same twin reproduces these frames one for one.

Resumable: when the pairs file exists (a run was interrupted, crashed or killed), only its missing
frames are rendered, after checking that it holds the same targets and the same twin; a mismatch is an
error rather than a silent mix of two simulations.

Not thread-safe (one twin, one writer).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from specklenet.daemon.errors import ConfigError, FileFormatError
from specklenet.daemon.records import PairsWriter, Targets, read_pairs, read_targets
from specklenet.daemon.twin import Twin

_logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class SimulationResult:
    """What a :func:`simulate` call did.

    Attributes:
        path: the pairs file.
        rendered: frames rendered by this call (0 when the file was already complete).
        total: targets in the file.
        seconds: wall time of the rendering and recording.
        device: ``"cpu"`` or the torch device the twin ran on.
    """

    path: Path
    rendered: int
    total: int
    seconds: float
    device: str

    @property
    def frames_per_s(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0


def simulate(
    targets_path: str | Path,
    pairs_path: str | Path,
    twin: Twin,
    *,
    batch_size: int = 32,
    device: Device = "auto",
    progress: bool = True,
) -> SimulationResult:
    """Render every missing frame of ``pairs_path`` (created, or resumed when it exists).

    Args:
        targets_path: a targets file (or a pairs file, whose targets are used).
        twin: the optical twin; its description is recorded, and checked on resume.
        batch_size: canvases rendered together (memory grows with it; GPUs like 64–256).
        device: ``"auto"`` uses CUDA when torch sees a GPU, else numpy on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    targets = read_targets(targets_path)
    if targets.canvas_shape != twin.canvas_shape:
        shapes = f"canvases are {targets.canvas_shape}, the twin shows {twin.canvas_shape}"
        raise FileFormatError(f"{targets_path}: {shapes}")
    render, device_name = _renderer(twin, device)
    writer = _open_writer(Path(pairs_path), targets, twin)
    with writer:
        missing = writer.missing()
        started = time.perf_counter()
        bar = tqdm(total=len(missing), desc="simulate", unit="frame", disable=not progress)
        with bar:
            for first in range(0, len(missing), batch_size):
                indices = missing[first : first + batch_size]
                frames = render(targets.canvases[indices], indices)
                for index, frame in zip(indices, frames, strict=True):
                    writer.write(int(index), frame, frame_id=int(index), timestamp_ns=time.time_ns())
                bar.update(len(indices))
        seconds = time.perf_counter() - started
    return SimulationResult(Path(pairs_path), len(missing), len(targets), seconds, device_name)


def _open_writer(path: Path, targets: Targets, twin: Twin) -> PairsWriter:
    description = json.loads(json.dumps(twin.describe()))  # as it reads back from the file
    if not path.exists():
        config = description["twin_config"]  # the camera the twin models: its binning and black level
        return PairsWriter.create(
            path,
            targets,
            source="twin",
            acquisition=description,
            frame_shape=(config["frame_px"], config["frame_px"]),
            binning=config["roi_px"] // config["frame_px"],
            dark_offset_counts=config["camera"]["dark_offset_counts"],
        )
    with read_pairs(path) as existing:
        if existing.source != "twin" or _comparable(existing.acquisition) != _comparable(description):
            raise FileFormatError(
                f"{path}: exists and was recorded with another twin (or from hardware); "
                "choose another output name to simulate with these settings"
            )
        if not np.array_equal(existing.targets.canvases, targets.canvases):
            raise FileFormatError(f"{path}: exists and holds other targets; choose another output name")
    _logger.info("%s exists: resuming, rendering only its missing frames", path)
    return PairsWriter.resume(path)


def _comparable(description: dict[str, Any]) -> dict[str, Any]:
    """The twin description without the package version (a resumed run may use a newer release)."""
    return {key: value for key, value in description.items() if key != "package_version"}


def _renderer(twin: Twin, device: Device):
    """A function (canvases uint8 (B, R, C), frame ids) → float32 numpy frames, and the device's name."""
    use_cuda = device == "cuda"
    if device == "auto":
        try:
            import torch

            use_cuda = torch.cuda.is_available()
        except ImportError:  # the twin runs on numpy alone
            use_cuda = False
    if not use_cuda:
        return (lambda canvases, ids: twin.expose(canvases, frame_ids=ids)), "cpu"
    import torch

    if not torch.cuda.is_available():
        raise ConfigError("simulate: device 'cuda' asked for, but torch sees no CUDA GPU")
    gpu = torch.device("cuda")
    return _torch_renderer(twin, gpu), torch.cuda.get_device_name(gpu)


def _torch_renderer(twin: Twin, device: Any):
    """Render through torch tensors on ``device`` (a ``torch.device``), returning numpy frames."""
    import torch

    def render(canvases: np.ndarray, ids: np.ndarray) -> np.ndarray:
        frames = twin.expose(torch.from_numpy(np.ascontiguousarray(canvases)).to(device), frame_ids=ids)
        return frames.cpu().numpy()

    return render
