"""Pairs files → tensors the network trains and is evaluated on.

Input: normalised speckle ``frames[index, 1, row, column]`` (float32, the camera's 256×256, normalised
with :class:`~specklenet.daemon.normalisation.Normalisation`). Output (ground truth): the canvas inside
the targets' output window, grey level / 255 in [0, 1], resized to the network's output resolution
with a bilinear, antialiased filter (64→256 upsampling in the ``paper`` profile, as the paper resizes
its 64×64 targets to 256×256; downsampling for smaller profiles). Training, export checks and
evaluation all use :func:`resize_truth`, so metrics are computed on exactly what the network learnt.

The training-data checksum is a SHA-256 over the targets' canvases and the raw frames (camera counts)
of the pairs used, in order: it identifies the data, not the HDF5 file's layout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.normalisation import DEFAULT_METHOD, Method, Normalisation
from specklenet.daemon.records import Targets, read_pairs

_CHUNK = 256  # frames normalised at a time: bounds the temporary memory to a few 100 MB


@dataclass(frozen=True, eq=False)
class PairTensors:
    """Pairs in memory, ready for the network (immutable container; the tensors are not copied).

    Attributes:
        frames: float32 ``(K, 1, frame_px, frame_px)`` normalised speckle.
        truth: float32 ``(K, 1, output_px, output_px)`` ground truth in [0, 1].
        indices: int64 ``(K,)`` indices of these pairs in their file.
        targets: the targets of these pairs (canvases, metadata, case, window).
        normalisation: how the frames were normalised.
        source: ``"twin"`` or ``"hardware"``.
        sha256: checksum of the canvases and raw frames (module docstring).
        acquisition: the acquisition settings recorded in the pairs file.
    """

    frames: torch.Tensor
    truth: torch.Tensor
    indices: np.ndarray
    targets: Targets
    normalisation: Normalisation
    source: str
    sha256: str
    acquisition: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def resize_truth(truth: np.ndarray | torch.Tensor, output_px: int) -> torch.Tensor:
    """``(K, rows, columns)`` in [0, 1] → float32 ``(K, 1, output_px, output_px)``, bilinear, antialiased."""
    images = torch.as_tensor(np.asarray(truth, dtype=np.float32))[:, None]
    if tuple(images.shape[-2:]) == (output_px, output_px):
        return images.contiguous()
    resized = functional.interpolate(
        images, size=(output_px, output_px), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.clamp_(0.0, 1.0)


def normalise_frames(frames: np.ndarray, normalisation: Normalisation) -> torch.Tensor:
    """Raw counts ``(K, rows, columns)`` → normalised float32 ``(K, 1, rows, columns)``, in chunks."""
    out = torch.empty((frames.shape[0], 1, *frames.shape[1:]), dtype=torch.float32)
    for start in range(0, frames.shape[0], _CHUNK):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start : start + _CHUNK], dtype=np.float32))
        out[start : start + _CHUNK, 0] = normalisation.apply(chunk)
    return out


def checksum(canvases: np.ndarray, frames: np.ndarray) -> str:
    """SHA-256 hex digest of the canvases and the raw frames, in order."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(canvases).tobytes())
    for start in range(0, frames.shape[0], _CHUNK):
        digest.update(np.ascontiguousarray(frames[start : start + _CHUNK], dtype=np.float32).tobytes())
    return digest.hexdigest()


def load_pairs(
    path: str | Path,
    *,
    output_px: int,
    normalisation: Normalisation | None = None,
    indices: Iterable[int] | None = None,
    method: Method = DEFAULT_METHOD,
) -> PairTensors:
    """Read the complete pairs of a pairs file (or those at ``indices``) into memory.

    ``normalisation`` defaults to :class:`Normalisation` of ``method`` with the dark offset recorded in
    the file's acquisition settings (when it has one), so twin and camera frames are treated alike.
    Raises :class:`FileFormatError` when the file has no complete pair to use.
    """
    with read_pairs(path) as pairs:
        wanted = pairs.complete_indices() if indices is None else np.asarray(list(indices), dtype=np.int64)
        if wanted.size == 0:
            raise FileFormatError(f"{path}: no complete pairs to use (nothing recorded yet?)")
        raw = pairs.load_frames(wanted)
        targets = pairs.targets.subset(wanted)
        source, acquisition = pairs.source, dict(pairs.acquisition)
    normalisation = normalisation or Normalisation(
        method=method, dark_offset_counts=dark_offset_counts(acquisition)
    )
    return PairTensors(
        frames=normalise_frames(raw, normalisation),
        truth=resize_truth(targets.ground_truth(), output_px),
        indices=wanted,
        targets=targets,
        normalisation=normalisation,
        source=source,
        sha256=checksum(targets.canvases, raw),
        acquisition=acquisition,
    )


def dark_offset_counts(acquisition: dict[str, Any]) -> float:
    """The camera's dark offset as recorded in a pairs file's acquisition settings, or the default.

    Looks for ``dark_offset_counts`` at any depth (the twin's description nests it under its camera
    configuration; a hardware acquisition records the camera's black level).
    """
    stack: list[Any] = [acquisition]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("dark_offset_counts"), int | float):
                return float(item["dark_offset_counts"])
            stack.extend(item.values())
    return Normalisation().dark_offset_counts
