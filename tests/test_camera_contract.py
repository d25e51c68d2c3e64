"""Camera contract: the same behavioural tests against every implementation of the role.

Implementations: ``pylon`` (the real adapter against Basler's camera emulator shipped with pypylon:
software trigger standing in for Line1, frames from PNG files, forced failed buffers, the removal
callback) and ``sim`` (the simulated camera wired to the simulated DMD, rendering through the twin).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("PYLON_CAMEMU", "1")  # before pylon's transport layer starts

import numpy as np
import pytest

from specklenet.daemon.devices import CameraGeometry, SimulatedCamera, SimulatedDmd, VirtualClock
from specklenet.daemon.devices.basler_camera import BaslerCamera
from specklenet.daemon.devices.camera import Camera
from specklenet.daemon.errors import DeviceError, DeviceRemovedError
from specklenet.daemon.twin import Twin


def write_png(path: Path, image: np.ndarray) -> None:
    """A minimal 8-bit greyscale PNG writer (the emulator reads PNG and TIFF)."""
    rows = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(image, np.uint8))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", image.shape[1], image.shape[0], 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)


class PylonHarness:
    """pypylon's camera emulator; frames are PNG files cycled in name order from each stream start."""

    name = "pylon"
    loses_frames = False  # the emulator never drops frames in OneByOne

    def __init__(self, folder: Path) -> None:
        rng = np.random.default_rng(5)
        self.images = [rng.integers(0, 256, (256, 256), dtype=np.uint8) for _ in range(3)]
        for number, image in enumerate(self.images):
            write_png(folder / f"{number:03d}.png", image)
        self.camera = BaslerCamera(
            geometry=CameraGeometry(roi_px=256, binning=4),
            pixel_format="Mono12",
            exposure_us=2_000.0,
            trigger_source="Software",
            buffers=16,
            emulator_images=folder,
        )

    def trigger(self, count: int) -> None:
        for _ in range(count):
            self.camera.trigger_software()

    def expected(self, position: int) -> np.ndarray:
        # An 8-bit file read as Mono12 is shifted left by 4 (measured with pylon 12.4); 4×4 mean binning.
        image = self.images[position % 3].astype(np.float64) * 16
        return image.reshape(64, 4, 64, 4).mean(axis=(1, 3)).astype(np.float32)

    def fail_next(self, count: int) -> None:
        self.camera._camera.ForceFailedBufferCount.Value = count
        self.camera._camera.ForceFailedBuffer.Execute()

    def remove(self) -> None:
        camera = self.camera._camera
        camera.UserSetSelector.Value = "Default"  # the camera comes back power-cycled, in its defaults
        camera.UserSetLoad.Execute()
        camera.FirePnPCallback.Execute()

    def configuration(self) -> dict[str, object]:
        camera = self.camera._camera
        names = ("PixelFormat", "ExposureTime", "TriggerMode", "TriggerSource", "Width", "OffsetX", "OffsetY")
        return {name: getattr(camera, name).Value for name in names}


class SimHarness:
    """The simulated camera looking at the simulated DMD through the twin."""

    name = "sim"
    loses_frames = True

    def __init__(self, twin: Twin) -> None:
        self.twin = twin
        self.dmd = SimulatedDmd(clock=VirtualClock())
        self.camera = SimulatedCamera(twin, dmd=self.dmd, exposure_us=10_000.0)
        self.dmd.connect(self.camera.on_sync)
        self.dmd.open()
        self.canvases = np.zeros((0, 128, 128), np.uint8)

    def trigger(self, count: int) -> None:
        rng = np.random.default_rng(len(self.canvases))
        shown = np.zeros((count, 128, 128), np.uint8)
        for canvas, (row, column) in zip(shown, rng.integers(10, 90, (count, 2)), strict=True):
            canvas[row : row + 24, column : column + 24] = 255
        ids = np.arange(len(self.canvases), len(self.canvases) + count)
        self.canvases = np.concatenate([self.canvases, shown])
        sequence = self.dmd.upload(shown, picture_ids=ids)
        self.dmd.start(sequence)
        assert self.dmd.wait(30.0)
        self.dmd.free(sequence)

    def expected(self, position: int) -> np.ndarray:
        return self.twin.expose_one(self.canvases[self._offset + position], self._offset + position)

    def fail_next(self, count: int) -> None:
        self.camera.force_failed_buffers(count)

    def remove(self) -> None:
        self.camera.fire_removal()

    def configuration(self) -> dict[str, object]:
        return {"exposure_us": self.camera.exposure_us, "trigger_source": self.camera.trigger_source}

    def stream_started(self) -> None:
        self._offset = len(self.canvases)


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(seed=0)


@pytest.fixture(params=["pylon", "sim"])
def harness(request: pytest.FixtureRequest, tmp_path: Path, twin: Twin) -> Iterator[object]:
    harness = PylonHarness(tmp_path) if request.param == "pylon" else SimHarness(twin)
    harness.camera.open()
    yield harness
    harness.camera.close()
    if isinstance(harness, SimHarness):
        harness.dmd.close()


def start(harness: PylonHarness | SimHarness) -> Camera:
    harness.camera.start()
    if isinstance(harness, SimHarness):
        harness.stream_started()
    return harness.camera


def collect(camera: Camera, count: int) -> list:
    frames = [camera.retrieve(5.0) for _ in range(count)]
    assert all(frame is not None for frame in frames), "a frame did not arrive"
    return frames


def test_frames_arrive_in_trigger_order_with_their_content(harness) -> None:
    camera = start(harness)
    harness.trigger(4)
    frames = collect(camera, 4)
    assert [frame.block_id for frame in frames] == [0, 1, 2, 3]
    assert all(frame.ok and frame.lost_before == 0 for frame in frames)
    assert len({frame.frame_id for frame in frames}) == 4
    for position, frame in enumerate(frames):
        assert frame.counts.dtype == np.float32 and frame.counts.shape == camera.frame_shape
        np.testing.assert_array_equal(frame.counts, harness.expected(position))
    assert camera.retrieve(0.05) is None  # nothing more was triggered


def test_each_stream_starts_at_block_zero_and_stop_discards_the_rest(harness) -> None:
    camera = start(harness)
    harness.trigger(3)
    assert collect(camera, 1)[0].block_id == 0
    camera.stop()
    camera.stop()  # twice is fine
    with pytest.raises(DeviceError, match="not grabbing"):
        camera.retrieve(0.05)
    camera = start(harness)
    harness.trigger(2)
    frames = collect(camera, 2)
    assert [frame.block_id for frame in frames] == [0, 1]
    np.testing.assert_array_equal(frames[1].counts, harness.expected(1))
    assert camera.retrieve(0.05) is None  # the two left over from the first stream are gone


def test_failed_buffers_are_flagged_and_use_their_block_id(harness) -> None:
    camera = start(harness)
    harness.trigger(1)
    frames = collect(camera, 1)  # out of the pipeline: the emulator fails buffers already in flight
    harness.fail_next(2)
    harness.trigger(3)
    frames += collect(camera, 3)
    assert [frame.ok for frame in frames] == [True, False, False, True]
    assert [frame.block_id for frame in frames] == [0, 1, 2, 3]
    assert "incompletely grabbed" in frames[1].error
    np.testing.assert_array_equal(frames[3].counts, harness.expected(3))
    assert camera.stats.failed == 2 and camera.stats.lost == 0


def test_frames_lost_on_the_way_show_as_block_id_gaps(harness) -> None:
    if not harness.loses_frames:
        pytest.skip(f"{harness.name}: the camera emulator never loses frames in OneByOne mode")
    camera = start(harness)
    harness.camera.faults = type(harness.camera.faults)(drop_every=3)  # exposures 3, 6 since open
    harness.trigger(7)
    frames = collect(camera, 5)
    assert [frame.block_id for frame in frames] == [0, 1, 3, 4, 6]
    assert [frame.lost_before for frame in frames] == [0, 0, 1, 0, 1]
    assert camera.stats.lost == 2


def test_removal_is_detected_and_reconnection_restores_the_configuration(harness) -> None:
    camera = start(harness)
    configured = harness.configuration()
    harness.remove()
    assert camera.removed
    with pytest.raises(DeviceRemovedError, match="removed"):
        camera.retrieve(0.5)
    camera.reconnect(5.0)
    assert not camera.removed and not camera.grabbing
    assert harness.configuration() == configured
    camera = start(harness)
    harness.trigger(2)
    frames = collect(camera, 2)
    assert [frame.block_id for frame in frames] == [0, 1]
    np.testing.assert_array_equal(frames[1].counts, harness.expected(1))
    assert camera.stats.reconnects == 1


def test_a_failed_configuration_closes_the_camera_again(tmp_path: Path) -> None:
    camera = BaslerCamera(geometry=CameraGeometry(roi_px=256, binning=4), exposure_us=-5.0)
    with pytest.raises(DeviceError, match=r"setting ExposureTime = -5\.0 failed: .*greater than or equal 1"):
        camera.open()
    assert camera._camera is None  # closed and destroyed (the emulator would not refuse a second open)
    with BaslerCamera(geometry=CameraGeometry(roi_px=256, binning=4)) as again:
        assert again.serial_number == camera.serial_number


def test_misuse_is_a_clear_error(harness) -> None:
    camera = harness.camera
    with pytest.raises(DeviceError, match="start"):
        camera.retrieve(0.01)
    with pytest.raises(DeviceError, match="start"):
        camera.trigger_software()
    camera.close()
    camera.close()  # twice is fine
    with pytest.raises(DeviceError, match="not open"):
        camera.start()
    camera.open()
