"""Targets and pairs files: round trips, clear errors for bad files, crash safety of the pairs writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records import (
    PairsWriter,
    Targets,
    read_pairs,
    read_targets,
    write_targets,
)

FRAME = (256, 256)


def make_targets(count: int = 12, *, seed: int = 0) -> Targets:
    rng = np.random.default_rng(seed)
    canvases = rng.integers(0, 256, (count, 128, 128), dtype=np.uint8)
    columns = {
        "dataset": np.array(["mnist", "lfw"] * (count // 2) + ["mnist"] * (count % 2)),
        "source_index": np.stack([np.arange(count) * 7, np.full(count, -1)], axis=1).astype(np.int64),
        "label": np.array([f"{i % 10}" for i in range(count)]),
        "placement": np.tile(np.array([32, 32], np.int16), (count, 1)),
        "modulation_amplitude": rng.random(count).astype(np.float32),
    }
    return Targets(
        canvases, columns, "4b", "train", (32, 32, 64, 64), {"seed": seed, "checksums": {"a": "b"}}
    )


def frame_for(index: int) -> np.ndarray:
    """A frame that identifies its index everywhere (so a torn or misplaced frame is caught)."""
    return np.full(FRAME, 1000.0 + index, np.float32) + np.arange(FRAME[1], dtype=np.float32)


# --- targets ------------------------------------------------------------------------------------------


def test_targets_round_trip_keeps_canvases_metadata_and_provenance(tmp_path: Path) -> None:
    targets = make_targets()
    write_targets(tmp_path / "t.h5", targets)
    back = read_targets(tmp_path / "t.h5")
    np.testing.assert_array_equal(back.canvases, targets.canvases)
    assert set(back.columns) == set(targets.columns)
    for name, values in targets.columns.items():
        np.testing.assert_array_equal(back.columns[name], values)
        assert back.columns[name].dtype.kind == values.dtype.kind
    assert (back.case, back.split, back.output_window) == ("4b", "train", (32, 32, 64, 64))
    assert dict(back.provenance) == {"seed": 0, "checksums": {"a": "b"}}
    assert not (tmp_path / "t.h5.partial").exists()


def test_targets_are_immutable_views_and_leave_the_callers_array_writable() -> None:
    canvases = np.zeros((2, 128, 128), np.uint8)
    targets = Targets.from_canvases(canvases)
    assert canvases.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        targets.canvases[0, 0, 0] = 1
    assert targets.output_window == (0, 0, 128, 128)
    assert list(targets.columns["dataset"]) == ["custom", "custom"]


def test_ground_truth_is_the_output_window_scaled_to_unit_range() -> None:
    targets = make_targets(3)
    truth = targets.ground_truth()
    assert truth.shape == (3, 64, 64)
    assert truth.dtype == np.float32
    np.testing.assert_allclose(truth * 255, targets.canvases[:, 32:96, 32:96])
    np.testing.assert_array_equal(targets.ground_truth(np.array([2])), truth[2:3])


def test_ground_truth_follows_each_targets_truth_window_when_given() -> None:
    base = make_targets(2)
    windows = np.array([[32, 32, 64, 64], [10, 60, 64, 64]], np.int16)
    targets = Targets(base.canvases, dict(base.columns, truth_window=windows), "5", "test", (32, 32, 64, 64))
    truth = targets.ground_truth()
    np.testing.assert_allclose(truth[0] * 255, base.canvases[0, 32:96, 32:96])
    np.testing.assert_allclose(truth[1] * 255, base.canvases[1, 10:74, 60:124])
    np.testing.assert_array_equal(targets.ground_truth(np.array([1])), truth[1:])
    for bad in ([[0, 0, 64, 64], [0, 0, 32, 32]], [[0, 0, 64, 64], [70, 0, 64, 64]]):
        with pytest.raises(FileFormatError, match="truth_window"):
            Targets(
                base.canvases, dict(base.columns, truth_window=np.array(bad)), "5", "test", (0, 0, 64, 64)
            )


def test_subset_keeps_order_metadata_and_case() -> None:
    targets = make_targets(6)
    part = targets.subset([4, 1], split="test")
    np.testing.assert_array_equal(part.canvases, targets.canvases[[4, 1]])
    np.testing.assert_array_equal(part.columns["source_index"][:, 0], [28, 7])
    assert (part.case, part.split, len(part)) == ("4b", "test", 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"canvases": np.zeros((2, 128, 128), np.float32)}, "uint8"),
        ({"canvases": np.zeros((128, 128), np.uint8)}, "uint8"),
        ({"output_window": (100, 0, 64, 64)}, "output_window"),
        ({"output_window": (0, 100, 64, 64)}, "output_window"),
        ({"output_window": (0, 0, 64)}, "output_window"),
        ({"columns": {"dataset": np.array(["a", "b"])}}, "standard column"),
        ({"provenance": {"when": object()}}, "JSON"),
    ],
)
def test_invalid_targets_are_refused_with_the_reason(change: dict, message: str) -> None:
    base = make_targets(2)
    fields = {
        "canvases": base.canvases,
        "columns": dict(base.columns),
        "case": "2",
        "split": "train",
        "output_window": (32, 32, 64, 64),
        "provenance": {},
    }
    fields.update(change)
    with pytest.raises(FileFormatError, match=message):
        Targets(**fields)


def test_a_metadata_column_of_the_wrong_length_is_named() -> None:
    base = make_targets(2)
    columns = dict(base.columns, label=np.array(["1", "2", "3"]))
    with pytest.raises(FileFormatError, match="'label'"):
        Targets(base.canvases, columns, "2", "train", (0, 0, 64, 64))


# --- bad files ----------------------------------------------------------------------------------------


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match=r"nothere\.h5: no such file"):
        read_targets(tmp_path / "nothere.h5")
    with pytest.raises(FileFormatError, match="no such file"):
        read_pairs(tmp_path / "nothere.h5")


def test_truncated_and_foreign_files_are_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    write_targets(path, make_targets())
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"cut\.h5"):
        read_targets(tmp_path / "cut.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FileFormatError, match="truncated or damaged"):
        read_targets(tmp_path / "text.h5")


def test_wrong_format_version_and_kind_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    write_targets(path, make_targets())
    with pytest.raises(FileFormatError, match=r"not a specklenet\.pairs file"):
        read_pairs(path)
    with h5py.File(path, "r+") as file:
        file.attrs["format_version"] = 99
    with pytest.raises(FileFormatError, match="format version 99"):
        read_targets(path)


def test_wrong_canvas_dtype_or_missing_dataset_in_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.h5"
    write_targets(path, make_targets())
    with h5py.File(path, "r+") as file:
        del file["canvases"]
        file["canvases"] = np.zeros((12, 128, 128), np.float64)
    with pytest.raises(FileFormatError, match=r"t\.h5.*uint8"):
        read_targets(path)
    with h5py.File(path, "r+") as file:
        del file["canvases"]
    with pytest.raises(FileFormatError, match="/canvases is missing"):
        read_targets(path)


def test_pairs_file_with_wrong_frame_dtype_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    PairsWriter.create(path, make_targets(2), source="twin", acquisition={}).close()
    with h5py.File(path, "r+") as file:
        del file["frames"]
        file.create_dataset("frames", (2, 256, 256), np.float64, chunks=(1, 256, 256))
    with pytest.raises(FileFormatError, match="/frames is float64"):
        read_pairs(path)


# --- pairs writer and reader ---------------------------------------------------------------------------


def test_pairs_round_trip_in_any_order_with_metadata(tmp_path: Path) -> None:
    targets = make_targets(8)
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, targets, source="twin", acquisition={"seed": 3}) as writer:
        for index in (5, 0, 7, 2):
            writer.write(index, frame_for(index), frame_id=100 + index, timestamp_ns=10**18 + index)
        np.testing.assert_array_equal(writer.missing(), [1, 3, 4, 6])
    with read_pairs(path) as pairs:
        assert (pairs.source, pairs.acquisition, len(pairs)) == ("twin", {"seed": 3}, 8)
        np.testing.assert_array_equal(pairs.complete_indices(), [0, 2, 5, 7])
        np.testing.assert_array_equal(pairs.frame_id, [100, -1, 102, -1, -1, 105, -1, 107])
        assert pairs.timestamp_ns[5] == 10**18 + 5
        assert pairs.timestamp_ns[1] == -1
        loaded = pairs.load_frames([7, 0])
        np.testing.assert_array_equal(loaded, [frame_for(7), frame_for(0)])
        np.testing.assert_array_equal(pairs.frames[2], frame_for(2))
        np.testing.assert_array_equal(pairs.targets.canvases, targets.canvases)
        with pytest.raises(FileFormatError, match=r"not recorded, e\.g\. index 1"):
            pairs.load_frames([0, 1])
    assert read_targets(path).case == "4b"  # a pairs file is also a targets file


def test_re_recording_an_index_replaces_its_frame(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, make_targets(3), source="hardware", acquisition={}) as writer:
        writer.write(1, frame_for(1), frame_id=1, timestamp_ns=1)
        writer.write(1, frame_for(9), frame_id=2, timestamp_ns=2)
    with read_pairs(path) as pairs:
        np.testing.assert_array_equal(pairs.load_frames([1])[0], frame_for(9))
        assert pairs.frame_id[1] == 2


def test_camera_integer_frames_are_stored_exactly_and_bad_frames_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, make_targets(3), source="hardware", acquisition={}) as writer:
        writer.write(0, np.full(FRAME, 4095, np.uint16), frame_id=0, timestamp_ns=0)
        with pytest.raises(FileFormatError, match=r"index 1 is float32 \(128, 128\)"):
            writer.write(1, np.zeros((128, 128), np.float32), frame_id=1, timestamp_ns=0)
        with pytest.raises(FileFormatError, match="index 1 is float64"):
            writer.write(1, np.zeros(FRAME), frame_id=1, timestamp_ns=0)
        with pytest.raises(FileFormatError, match=r"outside 0\.\.2"):
            writer.write(3, frame_for(3), frame_id=3, timestamp_ns=0)
    with read_pairs(path) as pairs:
        assert pairs.load_frames([0]).max() == 4095.0
        np.testing.assert_array_equal(pairs.complete, [True, False, False])


def test_close_is_idempotent_and_a_closed_writer_refuses_frames(tmp_path: Path) -> None:
    writer = PairsWriter.create(tmp_path / "p.h5", make_targets(2), source="twin", acquisition={})
    writer.close()
    writer.close()
    assert writer.closed
    with pytest.raises(FileFormatError, match="closed"):
        writer.write(0, frame_for(0), frame_id=0, timestamp_ns=0)


def test_create_never_replaces_a_recording_and_a_second_writer_is_locked_out(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, make_targets(2), source="twin", acquisition={}) as writer:
        writer.write(0, frame_for(0), frame_id=0, timestamp_ns=0)
        with pytest.raises(FileFormatError, match="another process is writing"):
            PairsWriter.resume(path)
    with pytest.raises(FileFormatError, match="already exists"):
        PairsWriter.create(path, make_targets(2), source="twin", acquisition={})
    with read_pairs(path) as pairs:
        assert pairs.complete[0]
    with pytest.raises(FileFormatError, match="source must be one of"):
        PairsWriter.create(tmp_path / "q.h5", make_targets(2), source="camera", acquisition={})  # type: ignore[arg-type]


def test_resume_after_a_clean_close_records_only_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, make_targets(4), source="twin", acquisition={}) as writer:
        writer.write(2, frame_for(2), frame_id=2, timestamp_ns=0)
    with PairsWriter.resume(path) as writer:
        np.testing.assert_array_equal(writer.missing(), [0, 1, 3])
        for index in writer.missing():
            writer.write(index, frame_for(index), frame_id=int(index), timestamp_ns=0)
    with read_pairs(path) as pairs:
        np.testing.assert_array_equal(pairs.load_frames(), [frame_for(i) for i in range(4)])


def _complete_count_seen_by_another_process(path: Path) -> int:
    code = (
        f"from specklenet.daemon.records import read_pairs as r\nprint(int(r({str(path)!r}).complete.sum()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout)


def test_batched_commits_follow_the_injected_clock(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "p.h5"
    with PairsWriter.create(
        path, make_targets(4), source="twin", acquisition={}, flush_interval_s=1.0, clock=lambda: now[0]
    ) as writer:
        writer.write(0, frame_for(0), frame_id=0, timestamp_ns=0)
        writer.write(1, frame_for(1), frame_id=1, timestamp_ns=0)
        assert _complete_count_seen_by_another_process(path) == 0
        now[0] = 1.0
        writer.write(2, frame_for(2), frame_id=2, timestamp_ns=0)  # a second has passed: commit all
        assert _complete_count_seen_by_another_process(path) == 3
    with pytest.raises(FileFormatError, match="flush_interval_s"):
        PairsWriter.create(
            tmp_path / "q.h5", make_targets(1), source="twin", acquisition={}, flush_interval_s=5
        )


CHILD = textwrap.dedent(
    """
    import sys, numpy as np
    from specklenet.daemon.records import PairsWriter, read_pairs
    sys.path.insert(0, {tests!r})
    from test_records import frame_for, make_targets
    path, resume = {path!r}, {resume!r}
    if resume:
        writer = PairsWriter.resume(path)
    else:
        writer = PairsWriter.create(path, make_targets({count}), source="twin", acquisition={{"k": 1}})
    order = np.random.default_rng(1).permutation(writer.missing())
    if not resume:
        order = order[: len(order) // 2]
    for index in order:
        writer.write(int(index), frame_for(int(index)), frame_id=int(index), timestamp_ns=int(index))
        print(int(index), flush=True)   # reported only after write() returned: the frame is committed
    if not resume:
        sys.stdin.readline()  # idle, file open, until killed: the kill never finds the work finished
    writer.close()
    print("closed", flush=True)
    """
)


def _start_writer(path: Path, count: int, *, resume: bool) -> subprocess.Popen[str]:
    code = CHILD.format(tests=str(Path(__file__).parent), path=str(path), resume=resume, count=count)
    return subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def test_sigkill_midway_loses_no_committed_frame_and_resume_finishes(tmp_path: Path) -> None:
    path, count = tmp_path / "p.h5", 400
    child = _start_writer(path, count, resume=False)
    reported: list[int] = []
    assert child.stdout is not None
    for line in child.stdout:
        reported.append(int(line))
        if len(reported) == 40:
            with read_pairs(path) as live:  # SWMR: readable while the writer runs
                assert live.complete.sum() >= 40
        if len(reported) == 150:
            # The child writes 200 frames, so it is usually killed mid-write, 50 frames from its end
            # (a random moment); when it has already finished, the kill finds it idle with the file open.
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    child.stdout.close()
    assert child.stdin is not None
    child.stdin.close()
    assert child.returncode == -signal.SIGKILL

    with read_pairs(path) as pairs:
        committed = pairs.complete_indices()
        assert set(reported) <= set(committed), "a frame reported as written was lost"
        assert len(committed) <= count // 2
        np.testing.assert_array_equal(pairs.load_frames(committed), [frame_for(i) for i in committed])
        np.testing.assert_array_equal(pairs.frame_id[committed], committed)

    resumed = _start_writer(path, count, resume=True)
    out, _ = resumed.communicate(timeout=120)
    assert resumed.returncode == 0
    assert out.splitlines()[-1] == "closed"
    assert not set(map(int, out.splitlines()[:-1])) & set(committed)  # only the missing ones recorded
    with read_pairs(path) as pairs:
        assert pairs.complete.all()
        np.testing.assert_array_equal(pairs.load_frames(), [frame_for(i) for i in range(count)])
        assert pairs.acquisition == {"k": 1}
    assert not (tmp_path / "p.h5.partial").exists()
