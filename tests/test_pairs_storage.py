"""How pairs files store frames: uint16 binned sums (half of float32), identical float32 values read
back, non-integral frames refused, camera timestamps kept, old float32 (version 1) files still read."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records import PairsWriter, Targets, read_pairs
from specklenet.daemon.twin import Twin, TwinConfig

FRAME = (256, 256)


def camera_frames(count: int, seed: int = 0) -> np.ndarray:
    """float32 binned mean counts as the camera makes them: sums of 16 12-bit pixels, times 1/16."""
    rng = np.random.default_rng(seed)
    sums = rng.integers(16 * 16, 16 * 4095 + 1, (count, *FRAME)).astype(np.float32)
    return sums * np.float32(1 / 16)


def targets(count: int) -> Targets:
    return Targets.from_canvases(np.zeros((count, 128, 128), np.uint8), case="2", split="train")


def write_old_format(path: Path, frames: np.ndarray) -> None:
    """A version 1 pairs file, laid out by hand as specklenet wrote them before: float32 mean counts,
    no camera timestamps, no binning attributes."""
    PairsWriter.create(path, targets(len(frames)), source="hardware", acquisition={"old": 1}).close()
    with h5py.File(path, "r+") as file:
        for name in ("frames", "camera_timestamp_ns"):
            del file[name]
        for name in ("binning", "dark_offset_counts"):
            del file.attrs[name]
        file.attrs["format_version"] = 1
        file.create_dataset("frames", data=frames, dtype=np.float32, chunks=(1, *FRAME))
        file["frame_id"][:] = np.arange(len(frames))
        file["timestamp_ns"][:] = 10**18 + np.arange(len(frames))
        file["complete"][:] = 1


def write_new_format(path: Path, frames: np.ndarray) -> None:
    with PairsWriter.create(path, targets(len(frames)), source="hardware", acquisition={}) as writer:
        for index, frame in enumerate(frames):
            writer.write(index, frame, frame_id=index, timestamp_ns=10**18 + index)


def test_frames_take_half_the_space_and_read_back_bit_identical(tmp_path: Path) -> None:
    frames = camera_frames(200)
    write_old_format(tmp_path / "old.h5", frames)
    write_new_format(tmp_path / "new.h5", frames)
    old_size, new_size = (tmp_path / "old.h5").stat().st_size, (tmp_path / "new.h5").stat().st_size
    assert new_size < 0.52 * old_size, (old_size, new_size)
    with h5py.File(tmp_path / "new.h5", "r") as file:
        assert file["frames"].dtype == np.uint16
        assert (file.attrs["binning"], file.attrs["dark_offset_counts"]) == (4, 16.0)
        np.testing.assert_array_equal(file["frames"][3], frames[3] * 16)  # the camera's integer sums
    with read_pairs(tmp_path / "new.h5") as new, read_pairs(tmp_path / "old.h5") as old:
        assert (new.version, new.binning, new.dark_offset_counts) == (2, 4, 16.0)
        for pairs in (new, old):
            loaded = pairs.load_frames([7, 0, 199])
            assert loaded.dtype == np.float32
            assert loaded.tobytes() == frames[[7, 0, 199]].tobytes()  # bit-identical, not just close
            assert pairs.frames[5].dtype == np.float32
            assert pairs.frames[5].tobytes() == frames[5].tobytes()
            assert pairs.frames[2:4].tobytes() == frames[2:4].tobytes()
            assert pairs.frames.shape == (200, *FRAME) and pairs.frames.dtype == np.float32


def test_old_float32_files_read_the_same_and_resume_in_their_own_layout(tmp_path: Path) -> None:
    frames = camera_frames(4)
    path = tmp_path / "old.h5"
    write_old_format(path, frames[:2])
    with read_pairs(path) as pairs:
        assert (pairs.version, pairs.binning, pairs.dark_offset_counts) == (1, None, None)
        assert pairs.acquisition == {"old": 1}
        assert pairs.load_frames().tobytes() == frames[:2].tobytes()
        np.testing.assert_array_equal(pairs.camera_timestamp_ns, [-1, -1])
        np.testing.assert_array_equal(pairs.timestamp_ns, [10**18, 10**18 + 1])
    with h5py.File(path, "r+") as file:  # two more targets to record: reopen as an unfinished file
        file["complete"][1] = 0
    with PairsWriter.resume(path) as writer:
        np.testing.assert_array_equal(writer.missing(), [1])
        writer.write(1, frames[3], frame_id=9, timestamp_ns=5, camera_timestamp_ns=77)
    with read_pairs(path) as pairs:
        assert pairs.version == 1 and pairs.frames.dataset.dtype == np.float32
        assert pairs.load_frames().tobytes() == frames[[0, 3]].tobytes()


def test_camera_timestamps_are_stored_and_minus_one_when_absent(tmp_path: Path) -> None:
    frames = camera_frames(3)
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, targets(3), source="hardware", acquisition={}) as writer:
        writer.write(0, frames[0], frame_id=5, timestamp_ns=100, camera_timestamp_ns=42_000)
        writer.write(2, frames[2], frame_id=6, timestamp_ns=200, camera_timestamp_ns=7)
        writer.write(2, frames[2], frame_id=6, timestamp_ns=200)  # re-recorded without one
    with read_pairs(path) as pairs:
        np.testing.assert_array_equal(pairs.camera_timestamp_ns, [42_000, -1, -1])
        np.testing.assert_array_equal(pairs.timestamp_ns, [100, -1, 200])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1000.03, r"holds 1000\.03.* at \[0, 1\].*not a whole number"),
        (1000.5 + 1 / 32, r"at \[0, 1\].*not a whole number"),
        (-0.0625, r"at \[0, 1\].*outside 0\.\.65535"),
        (4096.0, r"= 65536\.0 is outside 0\.\.65535"),
        (np.nan, r"holds nan at \[0, 1\]"),
    ],
)
def test_frames_that_are_not_whole_binned_sums_are_refused(
    tmp_path: Path, value: float, message: str
) -> None:
    frame = camera_frames(1)[0]
    frame[0, 1] = value
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, targets(2), source="hardware", acquisition={}) as writer:
        with pytest.raises(FileFormatError, match=rf"p\.h5: frame for index 1 .*{message}"):
            writer.write(1, frame, frame_id=1, timestamp_ns=0)
        writer.write(0, camera_frames(1)[0], frame_id=0, timestamp_ns=0)  # the writer carries on
    with read_pairs(path) as pairs:
        np.testing.assert_array_equal(pairs.complete, [True, False])


def test_another_binning_is_recorded_and_read_back_exactly(tmp_path: Path) -> None:
    """2×2 binning: means are multiples of 1/4 (a frame of quarter counts); 3×3 is not a power of two."""
    path = tmp_path / "p.h5"
    for binning in (2, 3):
        sums = np.random.default_rng(binning).integers(0, binning**2 * 4095, (2, *FRAME))
        frames = sums.astype(np.float32) * np.float32(1 / binning**2)  # as the camera's bin_mean does
        with PairsWriter.create(
            path, targets(2), source="hardware", acquisition={}, binning=binning, overwrite=True
        ) as writer:
            for index, frame in enumerate(frames):
                writer.write(index, frame, frame_id=index, timestamp_ns=0)
        with read_pairs(path) as pairs:
            assert pairs.binning == binning
            assert pairs.load_frames().tobytes() == frames.tobytes()


def test_twin_frames_are_whole_binned_sums_and_record_exactly(tmp_path: Path) -> None:
    twin = Twin(TwinConfig(), seed=0)
    canvases = np.zeros((2, 128, 128), np.uint8)
    canvases[:, 40:90, 50:80] = 255
    frames = twin.expose(canvases)
    sums = frames * np.float32(16)
    assert np.array_equal(sums, np.rint(sums)), "twin frames are not multiples of 1/16"
    path = tmp_path / "p.h5"
    with PairsWriter.create(path, targets(2), source="twin", acquisition=twin.describe()) as writer:
        for index, frame in enumerate(frames):
            writer.write(index, frame, frame_id=index, timestamp_ns=0)
    with read_pairs(path) as pairs:
        assert pairs.load_frames().tobytes() == np.asarray(frames, np.float32).tobytes()


def test_an_old_float32_file_left_by_a_crash_is_recovered_in_its_own_layout(tmp_path: Path) -> None:
    from test_pairs_resume import crash  # a resumed writer that commits index 2, then dies of SIGKILL

    frames = camera_frames(4)
    path = tmp_path / "old.h5"
    write_old_format(path, frames)
    with h5py.File(path, "r+") as file:
        file["complete"][2:] = 0
    crash(path)
    with PairsWriter.resume(path) as writer:
        assert writer.missing().tolist() in ([3], [2, 3])
    with read_pairs(path) as pairs:
        assert pairs.version == 1 and pairs.frames.dataset.dtype == np.float32
        assert pairs.load_frames([0, 1]).tobytes() == frames[:2].tobytes()
