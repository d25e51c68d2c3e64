"""The live job: the DMD loops a sequence of targets, every frame goes, matched, to the consumers.

Public names::

    job = LiveJob(dmd, camera, settings, canvases, target_indices, stop=event)
    job.pipeline.add(inference, name="inference", critical=False)   # newest frame only
    job.pipeline.add(recorder, name="recorder", critical=True)      # optional: loses nothing
    job.run()            # until `stop` is set: DMD halted, queues drained, sequence freed

Frames are matched per window of blocks (see :meth:`~specklenet.daemon.runner.SequenceRunner.loop`);
rejected ones reach the consumers too, with ``accepted=False`` and the reason.

Thread-safety: ``run`` belongs to one thread; ``stop`` may be set from any thread.
"""

from __future__ import annotations

import threading

import numpy as np

from specklenet.daemon.devices.camera import Camera
from specklenet.daemon.devices.dmd import Dmd
from specklenet.daemon.pipeline import Pipeline
from specklenet.daemon.runner import SequenceRunner
from specklenet.daemon.settings import DaemonSettings


class LiveJob:
    """Shows ``canvases`` (of targets ``target_indices``) in a loop until ``stop``; see the module."""

    def __init__(
        self,
        dmd: Dmd,
        camera: Camera,
        settings: DaemonSettings,
        canvases: np.ndarray,
        target_indices: np.ndarray,
        *,
        stop: threading.Event,
        window: int | None = None,
    ) -> None:
        self.runner = SequenceRunner(dmd, camera, settings, stop=stop)
        self.pipeline = Pipeline()
        self._canvases, self._indices, self._window = canvases, np.asarray(target_indices), window

    def run(self) -> None:
        """Until the stop event is set; raises DeviceError or ConsumerFailedError (devices left idle)."""
        with self.pipeline:
            for frame in self.runner.loop(self._canvases, self._indices, window=self._window):
                self.pipeline.dispatch(frame)
            self.pipeline.drain()
