"""Basler ace USB camera (acA2440-75um on the bench) through pypylon: the only module that imports it.

Recording configuration (../shared/reference/daemon.md §1): the user set "Default" first (a known
state), then a centred region of interest (width and height before the offsets), Mono8 or Mono12,
automatic exposure and gain off, ``ExposureMode = Timed`` with the configured exposure, frame-rate
limit off (the DMD's triggers set the rate), ``FrameStart`` triggered by ``Line1`` on the rising edge
of the DMD's synch output, and ``MaxNumBuffer`` buffers. Frames are grabbed one by one
(``GrabStrategy_OneByOne``) in our own ``RetrieveResult`` loop; each is area-binned into float32
counts straight from pylon's buffer (zero-copy view, released at once).

Lost frames: ``BlockID`` restarts at 0 with every ``StartGrabbing`` (measured on the emulator), so
gaps within a stream are frames lost between camera and host; failed buffers
(``GrabSucceeded() == False``) come back as frames with ``ok=False``. Triggers the camera ignored
(overtriggering) leave no trace here; the acquisition detects them by counting.

Removal: a :class:`pylon.ConfigurationEventHandler` flags ``OnCameraDeviceRemoved``;
:meth:`reconnect` destroys the device, polls the transport layer for the same serial number with
back-off, re-opens it and re-applies the whole configuration.

Tests drive this module against pylon's camera emulator (``PYLON_CAMEMU=1``): software trigger for
Line1, frames from image files (``emulator_images``), forced failed buffers, ``FirePnPCallback``.

Thread-safety: one thread drives the camera; ``trigger_software`` may be called from another thread
while that one retrieves (pylon allows it).
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np

from specklenet.daemon.devices.camera import Camera, CameraFrame, CameraGeometry, bin_mean
from specklenet.daemon.errors import DeviceError, DeviceRemovedError

try:  # the SDK is needed only when this backend is chosen
    with warnings.catch_warnings():
        # pypylon's SWIG types warn while the module initialises; turned into errors (python -W error,
        # pytest's filterwarnings = error) the warning crashes the interpreter (segfault, pypylon 26.9).
        warnings.filterwarnings("ignore", r"builtin type \w+ has no __module__", DeprecationWarning)
        from pypylon import genicam, pylon
except ImportError as _error:  # pragma: no cover - pypylon is a base dependency
    genicam = pylon = None
    _IMPORT_ERROR: ImportError | None = _error
else:
    _IMPORT_ERROR = None

_logger = logging.getLogger(__name__)

PixelFormat = Literal["Mono8", "Mono12"]


class _RemovalHandler(pylon.ConfigurationEventHandler if pylon else object):  # type: ignore[misc]
    """Sets a flag when pylon reports the device removed (called on a pylon thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.removed = threading.Event()

    def OnCameraDeviceRemoved(self, camera: Any) -> None:  # noqa: N802 - pylon's callback name
        self.removed.set()


class BaslerCamera(Camera):
    """A Basler camera triggered by the DMD, recording one frame per trigger.

    Args:
        serial_number: the camera to open; "" opens the first one found (and remembers its serial
            number for reconnection).
        geometry: region of interest and binning (frames are ``roi // binning`` square).
        pixel_format: "Mono8" (counts 0..255) or "Mono12" (0..4095).
        exposure_us: exposure per trigger; must contain the DMD's illumination of one picture.
        trigger_source: "Line1" (the DMD's synch output), "Line3"/"Line4" (GPIO) or "Software".
        trigger_activation: edge of the trigger signal that starts an exposure.
        trigger_delay_us: delay from the trigger edge to the exposure start.
        buffers: ``MaxNumBuffer``; covers the longest stall of the consumer (150 fps × 0.5 s ≈ 75).
        emulator_images: for pylon's camera emulator only: a PNG/TIFF file or folder fed as frames.
    """

    name = "camera (Basler)"

    def __init__(
        self,
        *,
        serial_number: str = "",
        geometry: CameraGeometry | None = None,
        pixel_format: PixelFormat = "Mono12",
        exposure_us: float = 10_000.0,
        trigger_source: str = "Line1",
        trigger_activation: str = "RisingEdge",
        trigger_delay_us: float = 0.0,
        buffers: int = 128,
        emulator_images: str | Path | None = None,
    ) -> None:
        self.geometry = geometry or CameraGeometry()
        super().__init__(frame_shape=self.geometry.frame_shape)
        self.serial_number = serial_number
        self.pixel_format = pixel_format
        self.exposure_us = exposure_us
        self.trigger_source = trigger_source
        self.trigger_activation = trigger_activation
        self.trigger_delay_us = trigger_delay_us
        self.buffers = buffers
        self.emulator_images = None if emulator_images is None else str(Path(emulator_images).resolve())
        self._camera: Any = None
        self._handler: _RemovalHandler | None = None
        self._frames = 0  # frames delivered since open: the frame id

    # --- lifecycle ---------------------------------------------------------------------------------

    def _do_open(self) -> None:
        if pylon is None:
            raise DeviceError(f"{self.name}: pypylon is not installed: {_IMPORT_ERROR}")
        factory = pylon.TlFactory.GetInstance()
        devices = self._guard("EnumerateDevices", lambda: factory.EnumerateDevices(self._filter()))
        if not devices:
            wanted = f"serial number {self.serial_number}" if self.serial_number else "any"
            raise DeviceRemovedError(f"{self.name}: no camera found ({wanted}); is it plugged in, powered?")
        self._attach(factory, devices[0])

    def _attach(self, factory: Any, info: Any) -> None:
        """Create, open and configure the camera for ``info``."""

        def create() -> Any:
            camera = pylon.InstantCamera(factory.CreateDevice(info))
            handler = _RemovalHandler()
            camera.RegisterConfiguration(handler, pylon.RegistrationMode_Append, pylon.Cleanup_None)
            camera.Open()
            return camera, handler

        self._camera, self._handler = self._guard("Open", create)
        self.serial_number = self._camera.GetDeviceInfo().GetSerialNumber()
        try:
            self._configure()
        except BaseException:
            self._release_device()  # opened but not configured: close it again
            raise
        model = self._camera.GetDeviceInfo().GetModelName()
        _logger.info("%s: opened %s, serial %s", self.name, model, self.serial_number)

    def _do_close(self) -> None:
        self._release_device()

    def _release_device(self) -> None:
        """Stop, close and destroy the pylon device; errors (e.g. of a removed device) are logged."""
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for name in ("StopGrabbing", "Close", "DeregisterConfiguration", "DestroyDevice"):
            try:
                if name == "DeregisterConfiguration":
                    camera.DeregisterConfiguration(self._handler)
                else:
                    getattr(camera, name)()
            except genicam.GenericException as error:
                _logger.debug("%s: %s while releasing the device: %s", self.name, name, error)
        # The camera object must go before its event handler: pylon calls the handler while the
        # camera is destroyed, and a handler collected first crashes the interpreter.
        del camera
        self._handler = None

    def _configure(self) -> None:
        """Apply the whole configuration (also after a reconnection)."""
        self._set("UserSetSelector", "Default", required=False)
        self._execute("UserSetLoad", required=False)
        self._set("PixelFormat", self.pixel_format)
        roi = self.geometry.roi_px
        self._set("Width", roi)
        self._set("Height", roi)
        row, column = self._roi_offset()
        self._set("OffsetX", column)
        self._set("OffsetY", row)
        self._set("ExposureAuto", "Off", required=False)
        self._set("GainAuto", "Off", required=False)
        self._set("ExposureMode", "Timed", required=False)
        self._set("ExposureTime", float(self.exposure_us))
        self._set("AcquisitionFrameRateEnable", False, required=False)
        self._set("TriggerSelector", "FrameStart")
        self._set("TriggerMode", "On")
        self._set("TriggerSource", self.trigger_source)
        self._set("TriggerActivation", self.trigger_activation)
        self._set("TriggerDelay", float(self.trigger_delay_us), required=False)
        if self.emulator_images is not None:
            self._set("TestImageSelector", "Off")  # the emulator ignores image files otherwise
            self._set("ImageFilename", self.emulator_images)
            self._set("ImageFileMode", "On")
        self._guard("MaxNumBuffer", lambda: setattr(self._camera.MaxNumBuffer, "Value", self.buffers))

    def _roi_offset(self) -> tuple[int, int]:
        camera = self._camera
        if self.geometry.roi_offset_px is not None:
            return self.geometry.roi_offset_px
        # Centred (Width and Height are set, so Offset.Max is the free margin), on the increments.
        row = (camera.OffsetY.Max // 2) // camera.OffsetY.Inc * camera.OffsetY.Inc
        column = (camera.OffsetX.Max // 2) // camera.OffsetX.Inc * camera.OffsetX.Inc
        return int(row), int(column)

    # --- grabbing ----------------------------------------------------------------------------------

    def _do_start(self) -> None:
        self._check_present("StartGrabbing")
        self._guard("StartGrabbing", lambda: self._camera.StartGrabbing(pylon.GrabStrategy_OneByOne))

    def _do_stop(self) -> None:
        if self._camera is not None:
            self._guard("StopGrabbing", self._camera.StopGrabbing)

    def _do_retrieve(self, timeout_s: float) -> CameraFrame | None:
        self._check_present("RetrieveResult")
        timeout_ms = max(0, int(timeout_s * 1000))
        result = self._guard(
            "RetrieveResult", lambda: self._camera.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
        )
        if not result.IsValid():
            self._check_present("RetrieveResult")
            return None
        try:
            return self._frame(result)
        finally:
            result.Release()  # hand the buffer back to pylon at once

    def _frame(self, result: Any) -> CameraFrame:
        self._frames += 1
        block_id = int(result.BlockID)
        stamp = int(result.GetTimeStamp())  # camera ticks (ns on ace USB); the emulator gives 0
        timestamp_ns = stamp or None
        roi = self.geometry.roi_px
        if not result.GrabSucceeded():
            error = f"{result.ErrorDescription} (error code {result.ErrorCode:#x})"
            return self._failed(block_id, timestamp_ns, error)
        with result.GetArrayZeroCopy() as image:
            if image.shape != (roi, roi):  # e.g. an emulator image file smaller than the ROI
                error = f"image of shape {image.shape}, expected {(roi, roi)}"
                return self._failed(block_id, timestamp_ns, error)
            counts = bin_mean(image, self.geometry.binning)
        return CameraFrame(counts, block_id, self._frames, timestamp_ns)

    def _failed(self, block_id: int, timestamp_ns: int | None, error: str) -> CameraFrame:
        counts = np.zeros(self.frame_shape, np.float32)
        return CameraFrame(counts, block_id, self._frames, timestamp_ns, ok=False, error=error)

    def _do_trigger_software(self) -> None:
        if self.trigger_source != "Software":
            raise DeviceError(f"{self.name}: trigger_software: the trigger source is {self.trigger_source}")
        camera = self._camera

        def fire() -> None:
            camera.WaitForFrameTriggerReady(1000, pylon.TimeoutHandling_ThrowException)
            camera.ExecuteSoftwareTrigger()

        self._guard("ExecuteSoftwareTrigger", fire)

    # --- removal -----------------------------------------------------------------------------------

    def _do_removed(self) -> bool:
        if self._handler is not None and self._handler.removed.is_set():
            return True
        try:
            return self._camera is None or bool(self._camera.IsCameraDeviceRemoved())
        except genicam.GenericException:
            return True

    def _do_reconnect(self, timeout_s: float) -> None:
        self._release_device()  # the Basler DeviceRemovalHandling sequence: stop, destroy, find, open
        factory = pylon.TlFactory.GetInstance()
        deadline, pause = time.monotonic() + timeout_s, 0.05
        while True:
            devices = self._guard("EnumerateDevices", lambda: factory.EnumerateDevices(self._filter()))
            if devices:
                self._attach(factory, devices[0])
                _logger.info("%s: reconnected serial %s", self.name, self.serial_number)
                return
            if time.monotonic() + pause > deadline:
                raise DeviceRemovedError(
                    f"{self.name}: serial number {self.serial_number} not found again within {timeout_s} s"
                )
            time.sleep(pause)
            pause = min(1.0, pause * 2)

    # --- pylon calls -------------------------------------------------------------------------------

    def _filter(self) -> list[Any]:
        if not self.serial_number:
            return []
        info = pylon.DeviceInfo()
        info.SetSerialNumber(self.serial_number)
        return [info]

    def _check_present(self, call: str) -> None:
        if self._do_removed():
            raise DeviceRemovedError(f"{self.name}: {call}: camera {self.serial_number} has been removed")

    def _node(self, name: str, required: bool) -> Any:
        node = self._camera.GetNodeMap().GetNode(name)
        if genicam.IsAvailable(node) and genicam.IsWritable(node):
            return node
        if required:
            model = self._camera.GetDeviceInfo().GetModelName()
            raise DeviceError(f"{self.name}: the feature {name} is not available or writable on this {model}")
        _logger.debug("%s: optional feature %s not available; skipped", self.name, name)
        return None

    def _set(self, name: str, value: object, *, required: bool = True) -> None:
        node = self._node(name, required)
        if node is not None:
            self._guard(f"setting {name} = {value!r}", lambda: setattr(node, "Value", value))

    def _execute(self, name: str, *, required: bool = True) -> None:
        node = self._node(name, required)
        if node is not None:
            self._guard(name, node.Execute)

    def _guard(self, call: str, action: Any) -> Any:
        """Run a pylon call; its exceptions become DeviceError (DeviceRemovedError if the camera is gone)."""
        try:
            return action()
        except genicam.GenericException as error:
            message = f"{self.name}: {call} failed: {str(error).splitlines()[0] if str(error) else error}"
            if self._do_removed():
                raise DeviceRemovedError(message) from error
            raise DeviceError(message) from error
