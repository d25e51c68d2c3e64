"""Pipeline frames (:class:`~specklenet.daemon.frames.MatchedFrame`) made by hand, and the frames of a
twin pairs file, for the live-inference tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.records import read_pairs


def matched(
    counts: np.ndarray,
    frame_id: int,
    target_index: int | None,
    *,
    accepted: bool = True,
    capture_ns: int = 1_000_000_000,
    loop: int = 0,
) -> MatchedFrame:
    """An accepted frame showing picture ``target_index`` (0 when unknown)."""
    return MatchedFrame(
        counts=counts,
        frame_id=frame_id,
        picture=target_index or 0,
        target_index=target_index,
        loop=loop,
        camera_timestamp_ns=None,
        capture_ns=capture_ns,
        received_ns=capture_ns + 1000,
        accepted=accepted,
        reason="" if accepted else "transport",
    )


def pairs_frames(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The raw frames (float32 mean counts) and canvases of a pairs file's complete pairs, in order."""
    with read_pairs(path) as pairs:
        indices = pairs.complete_indices()
        return pairs.load_frames(indices), np.asarray(pairs.targets.canvases[indices])
