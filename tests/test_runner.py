"""The sequence runner on the simulated bench: once and looped, every frame matched to its picture."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from specklenet.daemon.devices import make_bench
from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.live_job import LiveJob
from specklenet.daemon.runner import Planned, SequenceRunner
from specklenet.daemon.settings import DaemonSettings
from specklenet.daemon.toml_loader import build
from specklenet.daemon.twin import Twin


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(seed=1)


def canvases(count: int) -> np.ndarray:
    out = np.zeros((count, 128, 128), np.uint8)
    for index, canvas in enumerate(out):
        canvas[8 + 9 * index : 28 + 9 * index, 50:70] = 255
    return out


def settings(**faults: float) -> DaemonSettings:
    tables = {"acquisition": {"frame_timeout_s": 0.05}, "sim": {"faults": faults}}
    return build(DaemonSettings, tables).simulated()


def test_frames_of_a_looped_sequence_stay_matched_across_loops_and_slips(twin: Twin) -> None:
    ids = np.arange(100, 108)
    stop, frames = threading.Event(), []
    # A missed trigger (every 29th) shifts every later block id; the drifting clock and jitter stay.
    config = settings(ignore_every=29, clock_drift_ppm=150.0, jitter_rms_us=20.0)
    dmd, camera = make_bench(config, twin=twin)
    with dmd, camera:
        job = LiveJob(dmd, camera, config, canvases(8), ids, stop=stop, window=8)

        def consume(frame: MatchedFrame) -> None:
            frames.append(frame)
            if len(frames) >= 64:
                stop.set()

        job.pipeline.add(consume, name="collector", critical=True)
        job.run()
        assert dmd.used_pictures == 0 and not dmd.progress().active
    accepted = [f for f in frames if f.accepted]
    assert len(accepted) >= 40 and {f.reason for f in frames if not f.accepted} == {"count"}
    for frame in accepted:  # the simulated camera's frame id is the id of the picture it saw
        assert frame.frame_id == frame.target_index == ids[frame.picture]
    assert max(f.loop for f in frames) >= 2
    assert all(f.camera_timestamp_ns is not None and f.capture_ns <= f.received_ns for f in frames)


def test_show_matches_each_sequence_and_frees_it(twin: Twin) -> None:
    config = settings()
    dmd, camera = make_bench(config, twin=twin)
    plan = [Planned(np.arange(8) + 8 * n, canvases(8)) for n in range(2)]
    with dmd, camera:
        results = list(SequenceRunner(dmd, camera, config).show(plan))
        assert dmd.used_pictures == 0
    for planned, result in zip(plan, results, strict=True):
        assert [f.target_index for f in result.frames] == list(planned.indices)
        assert all(f.accepted and f.frame_id == f.target_index and f.loop == 0 for f in result.frames)
