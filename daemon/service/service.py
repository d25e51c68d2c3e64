"""The service: the bench held open, commands from the control channel, the status heartbeat.

Lifecycle (:meth:`Service.start`, :meth:`Service.run`, :meth:`Service.close`): open the bench, bind the
sockets, load the configured model (warmed up), tell systemd ``READY=1``; then the loop answers
commands and, every ``status_interval_s``, publishes the ``status`` heartbeat (job, counters, frame
rate, latency percentiles) and a ``STATUS=`` line. ``WATCHDOG=1`` follows the frame loop: while a job
runs, only when its frame count advanced; while idle, from the loop's own tick. A stop request
(SIGTERM, ``shutdown``) sends ``STOPPING=1``, stops the job (DMD halted, queues drained, files closed),
closes the bench and the sockets.

Commands (:data:`specklenet.daemon.protocol.COMMANDS`): ``status``, ``acquire``, ``live``, ``stop``,
``load_model``, ``shutdown``. Paths are checked by :class:`~.paths.DataDir`.

Thread-safety: everything here runs on the service loop's thread except the jobs (their own threads)
and the publisher (shared, locked).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog
import zmq

from specklenet.daemon import protocol
from specklenet.daemon.errors import ConfigError, FileFormatError, ModelError
from specklenet.daemon.records import read_targets
from specklenet.daemon.service.bench import Bench
from specklenet.daemon.service.control import CommandError, ControlChannel
from specklenet.daemon.service.jobs import AcquireJob, JobRunner
from specklenet.daemon.service.notify import Notifier
from specklenet.daemon.service.paths import DataDir, PathMissingError, PathRefusedError
from specklenet.daemon.service.publisher import Publisher
from specklenet.daemon.service.sockets import Sockets, check_endpoint
from specklenet.daemon.settings import DaemonSettings

log = structlog.get_logger(__name__)

TICK_S = 0.05  # the loop's poll timeout: how quickly a stop request or a due heartbeat is seen


class Service:
    """``specklenetd serve``'s whole state (see the module docstring).

    Args:
        settings: all settings (``[service]`` and the bench's tables).
        stop: set from any thread (a signal handler, ``shutdown``) to end :meth:`run`.
        notifier: systemd notifications (a no-op outside systemd).
        context: the ZeroMQ context (the caller terminates it).
        clock: monotonic seconds for heartbeats.
    """

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        stop: threading.Event,
        notifier: Notifier | None = None,
        context: zmq.Context[Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.stop_request = stop
        self.notifier = notifier or Notifier()
        self.context = context or zmq.Context.instance()
        self._clock = clock
        self.data = DataDir(settings.service.data_dir)
        if not self.data.root.is_dir():
            raise ConfigError(f"service.data_dir: {self.data.root} is not a folder")
        check_endpoint(settings.service.control_address, "control_address", settings.service)
        check_endpoint(settings.service.stream_address, "stream_address", settings.service)
        self.jobs = JobRunner()
        self.bench: Bench | None = None
        self.sockets: Sockets | None = None
        self.publisher: Publisher | None = None
        self.channel = ControlChannel(None, self.handle)
        self.model: Any = None  # a Reconstructor (inference); loaded lazily so a bench needs no model
        self._last_progress = -1
        self._next_status = 0.0
        self._next_log = 0.0
        self._started = clock()

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the bench, bind the sockets, load the configured model; then READY=1."""
        self.bench = Bench(self.settings)
        self.bench.open()
        self.sockets = Sockets(self.context, self.settings.service)
        self.channel.socket = self.sockets.control
        self.publisher = Publisher(self.sockets.stream)
        if self.settings.service.model:
            try:
                self.model = self._load_model(self.settings.service.model, key="service.model")
            except (CommandError, PathRefusedError, PathMissingError) as error:
                raise ConfigError(str(error)) from error
        log.info(
            "service_ready",
            control=self.settings.service.control_address,
            stream=self.settings.service.stream_address,
            data_dir=str(self.data.root),
            bench=self.bench.source,
            model=str(self.model.path) if self.model else None,
        )
        self.notifier.ready(self._status_line())

    def run(self) -> None:
        """Answer commands and publish heartbeats until the stop request is set."""
        while not self.stop_request.is_set():
            self.channel.serve(int(TICK_S * 1000))
            self.tick()

    def tick(self) -> None:
        """Heartbeat and watchdog; called by :meth:`run` after every poll."""
        now = self._clock()
        job = self.jobs.current if self.jobs.busy else None
        if job is None:
            self.notifier.watchdog()  # idle: the loop itself is the thing that must not hang
        elif job.progress != self._last_progress:
            self._last_progress = job.progress
            self.notifier.watchdog()
        if now >= self._next_status:
            self._next_status = now + self.settings.service.status_interval_s
            self._heartbeat(now)

    def close(self) -> None:
        """STOPPING=1, stop the job, close the bench and the sockets. Idempotent."""
        self.notifier.stopping()
        if self.jobs.stop():
            log.info("job_stopping", job=self.jobs.current.name if self.jobs.current else None)
        if not self.jobs.join(self.settings.service.stop_timeout_s):
            log.error("job_did_not_stop", timeout_s=self.settings.service.stop_timeout_s)
        if self.bench is not None:
            self.bench.close()
        if self.publisher is not None:
            self.publisher.close()
        if self.sockets is not None:
            self.sockets.close()
        if self.model is not None and hasattr(self.model, "close"):
            self.model.close()
        log.info("service_stopped")

    # --- commands ----------------------------------------------------------------------------------

    def handle(self, request: protocol.Request) -> Any:
        """Run one decoded command (the control channel's handler)."""
        command = getattr(self, f"cmd_{request.cmd}")
        try:
            return command(**request.args)
        except (PathRefusedError, ConfigError, FileFormatError) as error:
            raise CommandError("refused", str(error)) from error
        except PathMissingError as error:
            raise CommandError("not_found", str(error)) from error
        except ModelError as error:  # e.g. a model for other frames swapped into a running job
            raise CommandError("refused", str(error)) from error

    def cmd_status(self) -> dict[str, Any]:
        return self.status()

    def cmd_acquire(self, targets: str, output: str, resume: bool = False) -> dict[str, Any]:
        self._refuse_if_busy()
        targets_path = self.data.resolve(targets, must_exist=True, what="targets")
        output_path = self.data.resolve(output, what="output")
        assert self.bench is not None
        job = AcquireJob(self.bench, read_targets(targets_path), targets_path, output_path, resume)
        self.jobs.start(job)
        return {"job": job.name, **job.status()}

    def cmd_live(self, model: str, targets: str, record: str | None = None) -> dict[str, Any]:
        self._refuse_if_busy()
        from specklenet.daemon.service.live_job import LiveJob

        targets_path = self.data.resolve(targets, must_exist=True, what="targets")
        record_path = self.data.resolve(record, what="record") if record is not None else None
        if record_path is not None and record_path.exists():
            raise CommandError("refused", f"record: {record} exists; name a new pairs file")
        model_path = self.data.resolve(model, must_exist=True, what="model")
        if self.model is None or Path(self.model.path).resolve() != model_path:
            self.model = self._load_model(model, key="model")
        assert self.bench is not None and self.publisher is not None
        job = LiveJob(
            self.bench,
            read_targets(targets_path),
            targets_path,
            self.model,
            self.publisher,
            record=record_path,
            speckle_every=self.settings.service.speckle_every,
        )
        self.jobs.start(job)
        return {"job": job.name, **job.status()}

    def cmd_stop(self) -> dict[str, Any]:
        return {"stopping": self.jobs.stop()}

    def cmd_load_model(self, model: str) -> dict[str, Any]:
        reconstructor = self._load_model(model, key="model")
        job = self.jobs.current if self.jobs.busy else None
        if job is not None and hasattr(job, "swap"):
            job.swap(reconstructor)  # the stream goes on; the next frame uses the new model
        self.model = reconstructor  # the previous one is freed once no frame uses it any more
        return {"model": _describe_model(reconstructor), "swapped": job is not None}

    def cmd_shutdown(self) -> dict[str, Any]:
        log.info("shutdown_requested")
        self.stop_request.set()
        return {"shutting_down": True}

    def _refuse_if_busy(self) -> None:
        if self.jobs.busy:
            name = self.jobs.current.name if self.jobs.current else "job"
            raise CommandError("busy", f"a {name} job is running; send stop first")

    def _load_model(self, name: str, *, key: str) -> Any:
        from specklenet.daemon.inference import Reconstructor  # onnxruntime: loaded with the first model

        path = self.data.resolve(name, must_exist=True, what=key)
        assert self.bench is not None
        try:
            return Reconstructor.load(
                path, frame_shape=self.bench.frame_shape, canvas_shape=self.bench.canvas_shape
            )
        except ModelError as error:
            raise CommandError("refused", f"{key}: {error}") from error

    # --- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The service's state: job, model, counters (the ``status`` reply and heartbeat)."""
        jobs = self.jobs.status()
        running = jobs["running"] or {}
        state = "idle" if jobs["job"] is None else ("stopping" if self.jobs.stopping else jobs["job"])
        counters: dict[str, Any] = {
            "control": dict(self.channel.counters),
            "published": self.publisher.counters() if self.publisher else {},
        }
        counters.update(running.get("counters", {}))
        return {
            "state": state,
            "job": jobs["job"],
            "running": running,
            "last": jobs["last"],
            "model": _describe_model(self.model),
            "bench": self.bench.source if self.bench else None,
            "uptime_s": round(self._clock() - self._started, 3),
            "counters": counters,
        }

    def _heartbeat(self, now: float) -> None:
        status = self.status()
        if self.publisher is not None:
            self.publisher.publish("status", status)
        self.notifier.status(self._status_line(status))
        if now >= self._next_log and status["state"] != "idle":
            self._next_log = now + self.settings.acquisition.log_interval_s
            log.info("status", **{k: status[k] for k in ("state", "running")})

    def _status_line(self, status: dict[str, Any] | None = None) -> str:
        status = status or self.status()
        running = status.get("running") or {}
        if status["state"] == "idle":
            return f"idle; model {Path(self.model.path).name if self.model else 'none'}"
        line = f"{status['state']}: {running.get('rate_hz', 0.0)} frames/s"
        p50 = (running.get("latency_ms") or {}).get("p50")
        return line + (f", latency p50 {p50:.1f} ms" if p50 is not None else "")


def _describe_model(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    return {"path": Path(model.path).name, "case": model.info.case, "provider": model.provider}
