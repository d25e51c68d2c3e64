"""The bench's two hardware roles behind small interfaces: a DMD that shows targets, a camera that records.

Each role has one real implementation (:mod:`.alp_dmd`, :mod:`.basler_camera`) and one simulated
(:mod:`.sim_dmd`, :mod:`.sim_camera`), chosen by one configuration key. The public methods here check
arguments and state once, then call a backend's ``_do_*`` hook; backends turn their vendor's errors into
:class:`~specklenet.daemon.errors.DeviceError` naming the device and the call.

Timing model (the DMD is master, the camera its slave): the DMD shows an uploaded sequence once; for
each picture it raises its synch output, waits ``synch_delay_us``, illuminates the picture's PWM
bit-planes for ``illuminate_time_us``, and starts the next picture ``picture_time_us`` after the
previous synch edge. The camera starts an exposure of ``exposure_us`` on each rising edge (after its
``trigger_delay_us``); the exposure must contain the whole illumination.

Array conventions: ``canvases[index, row, column]`` uint8 grey levels (128×128 on the bench);
``mirrors[index, row, column]`` uint8 on the DMD's 768×1024 mirror array; ``counts[row, column]`` float32
camera counts after binning (256×256 on the bench).

Thread-safety: a device object belongs to one thread (the acquisition's), except where a method says
otherwise. ``close()`` is idempotent and always leaves the hardware idle.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from specklenet.daemon.errors import DeviceError

_logger = logging.getLogger(__name__)


class Device(abc.ABC):
    """The lifecycle both roles share: ``open()`` connects and puts the device into a known state,
    ``close()`` leaves the hardware idle and releases it; both are safe to call twice; also a context
    manager. ``close()`` runs on error paths too, so a failure while releasing (e.g. of a removed
    device) is logged, not raised: the error that led there is the one the caller needs to see.
    """

    name = "device"

    def __init__(self) -> None:
        self._open = False

    def open(self) -> None:
        """Connect and configure. Safe to call twice."""
        if not self._open:
            self._do_open()
            self._open = True

    def close(self) -> None:
        """Leave the hardware idle (:meth:`_release`) and release it. Safe to call twice."""
        if not self._open:
            return
        self._release()
        self._open = False
        quietly(self.name, "close", self._do_close)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if not self._open:
            raise DeviceError(f"{self.name}: not open")

    @abc.abstractmethod
    def _release(self) -> None:
        """The role's steps before release (halt, stop); each run through :func:`quietly`."""

    @abc.abstractmethod
    def _do_open(self) -> None: ...

    @abc.abstractmethod
    def _do_close(self) -> None: ...


def quietly(device: str, what: str, step: Callable[..., Any], *args: Any) -> None:
    """Run a release or recovery step; log a device error instead of raising, so the remaining
    steps still run."""
    try:
        step(*args)
    except DeviceError as error:
        _logger.warning("%s: %s failed (continuing): %s", device, what, error)
