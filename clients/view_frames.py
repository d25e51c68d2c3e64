"""Frames for ``specklenet view``'s page: display pixels, the binary WebSocket message, the targets file.

:func:`to_uint8` turns an array of the stream into grey levels, :func:`pack_image` frames it for the
page (``[uint32 LE n][n bytes of JSON][rows × cols uint8]``), :class:`Targets` reads the displayed
target's canvas from the targets file (the stream carries only its index). Pure functions;
a Targets object belongs to one thread.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.clients.connection import ClientError


def to_uint8(image: np.ndarray, kind: str) -> np.ndarray:
    """Display pixels: reconstructions are [0, 1]; speckle is scaled from its minimum to 3× its mean
    excess (an exponential speckle's 95th percentile), cheaply, per frame; targets are already uint8."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    values = image.astype(np.float32, copy=False)
    if kind == "recon":
        return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    low = float(values.min())
    span = 3.0 * (float(values.mean()) - low) or 1.0
    return (np.clip((values - low) / span, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def pack_image(kind: str, pixels: np.ndarray, info: dict[str, Any]) -> bytes:
    """One binary WebSocket message (see the module docstring)."""
    rows, cols = pixels.shape[-2:]
    meta = json.dumps({"kind": kind, "rows": int(rows), "cols": int(cols), **info}).encode()
    return struct.pack("<I", len(meta)) + meta + pixels.reshape(rows, cols).tobytes()


class Targets:
    """Canvases of a targets file, read lazily by index (uint8 [index, row, column])."""

    def __init__(self, path: Path) -> None:
        import h5py

        try:
            self._file = h5py.File(path, "r")
            self._canvases = self._file["canvases"]
        except (OSError, KeyError) as error:
            raise ClientError(f"--targets {path}: not a targets file with /canvases ({error})") from None
        if self._canvases.ndim != 3 or self._canvases.dtype != np.uint8:
            raise ClientError(f"--targets {path}: /canvases must be uint8 [index, row, column]")
        self.path = path

    def __len__(self) -> int:
        return int(self._canvases.shape[0])

    def image(self, index: int) -> np.ndarray | None:
        return np.asarray(self._canvases[index]) if 0 <= index < len(self) else None

    def close(self) -> None:
        self._file.close()
