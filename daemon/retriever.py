"""The camera's own thread while a run lasts: it starts and stops the streams and retrieves every
frame as soon as the camera delivers it, into an unbounded queue, so that it never waits for matching
or for a consumer (the camera's buffers are the only other place frames wait, and they are few).

Thread-safety: the camera is used only on the retriever's thread between :meth:`Retriever.open` and
:meth:`Retriever.close`; the other methods are called from one other thread (the runner's).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from specklenet.daemon.devices.base import quietly
from specklenet.daemon.devices.camera import Camera, CameraFrame

POLL_S = 0.002  # retrieve timeout: how quickly a command (start, stop) is taken up while grabbing


@dataclass(frozen=True, slots=True)
class Retrieved:
    """A frame of stream ``stream`` received at host ``received_ns`` (``time.time_ns``)."""

    stream: int
    frame: CameraFrame
    received_ns: int


class Retriever:
    """Owns ``camera`` on its own thread: ``begin()`` a stream, read :attr:`frames`, ``end()`` it.

    :attr:`frames` yields :class:`Retrieved` items, or the exception the camera raised (the stream
    is then stopped). :attr:`idle_since` is when the latest retrieve that found no frame started
    (monotonic seconds): the camera had delivered everything it had exposed before then.
    """

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.frames: queue.SimpleQueue[Retrieved | BaseException] = queue.SimpleQueue()
        self.idle_since = 0.0
        self._commands: queue.SimpleQueue[tuple[Callable[[], None] | None, _Reply]] = queue.SimpleQueue()
        self._stream = 0
        self._grabbing = False
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        self._thread = threading.Thread(target=self._run, name="retriever", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop grabbing and the thread. Safe to call twice."""
        if self._thread is not None:
            self._call(None)
            self._thread.join()
            self._thread = None

    def begin(self) -> int:
        """Start a new stream (block ids from 0), ready for triggers; returns its number."""
        self._stream += 1
        stream = self._stream
        self._call(lambda: self._start(stream))
        return stream

    def end(self) -> None:
        """Stop the stream (frames not retrieved yet are discarded)."""
        self._call(self._stop)

    def _call(self, command: Callable[[], None] | None) -> None:
        reply = _Reply()
        self._commands.put((command, reply))
        reply.done.wait()
        if reply.error is not None:
            raise reply.error

    # --- the thread --------------------------------------------------------------------------------

    def _start(self, stream: int) -> None:
        self.camera.start()
        self._current, self._grabbing = stream, True
        self.idle_since = 0.0

    def _stop(self) -> None:
        self._grabbing = False
        self.camera.stop()

    def _run(self) -> None:
        while True:
            try:
                command, reply = self._commands.get(block=not self._grabbing)
            except queue.Empty:
                self._retrieve()
                continue
            if command is None:
                self._grabbing = False
                quietly(self.camera.name, "stop", self.camera.stop)
                reply.done.set()
                return
            try:
                command()
            except BaseException as error:  # handed to the caller
                reply.error = error
            reply.done.set()

    def _retrieve(self) -> None:
        started = time.monotonic()
        try:
            frame = self.camera.retrieve(POLL_S)
        except BaseException as error:  # DeviceRemovedError and the like: the runner decides
            self._grabbing = False
            self.frames.put(error)
            return
        if frame is None:
            self.idle_since = started
        else:
            self.frames.put(Retrieved(self._current, frame, time.time_ns()))


class _Reply:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None
