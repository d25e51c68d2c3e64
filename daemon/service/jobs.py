"""Jobs of the service, one at a time, each on its own thread: ``acquire`` (record a pairs file) and
``live`` (loop test targets, reconstruct, publish; see :mod:`.live_job`).

:class:`JobRunner` starts a :class:`Job`, refuses a second one (``busy``), stops it on request (the job's
``stop`` event: DMD halted, queues drained, files closed), and keeps the last outcome for ``status``.
A job that raises is logged and reported (``last.error``); the service keeps running, and the bench is
checked again before the next job (a removed camera is reconnected).

Thread-safety: :class:`JobRunner`'s methods are called from the service loop; jobs run on their own
thread and expose thread-safe ``status()`` snapshots and a ``progress`` count (frames handled, which
the service turns into systemd watchdog pings: a stalled frame loop stops feeding the watchdog).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from specklenet.daemon import acquire_job
from specklenet.daemon.acquire_job import Progress
from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records import PairsWriter, Targets
from specklenet.daemon.service.bench import Bench
from specklenet.daemon.service.control import CommandError

log = structlog.get_logger(__name__)


class Job(Protocol):
    """What the runner needs of a job."""

    name: str

    def run(self, stop: threading.Event) -> dict[str, Any]:
        """Do the work until done or ``stop`` is set; returns a summary (msgpack-able)."""
        ...

    def status(self) -> dict[str, Any]:
        """A snapshot of the job's counters (thread-safe)."""
        ...

    @property
    def progress(self) -> int:
        """Frames handled so far; grows while the frame loop is healthy."""
        ...


class JobRunner:
    """Runs at most one :class:`Job` at a time on a worker thread."""

    def __init__(self) -> None:
        self.current: Job | None = None
        self.last: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self.busy and self._stop.is_set()

    def start(self, job: Job) -> None:
        """Start ``job``; raises ``CommandError("busy")`` while another one runs."""
        if self.busy:
            assert self.current is not None
            raise CommandError("busy", f"a {self.current.name} job is running; send stop first")
        self._stop = threading.Event()
        self.current = job
        self._thread = threading.Thread(target=self._run, args=(job, self._stop), name=f"job-{job.name}")
        self._thread.start()

    def stop(self) -> str | None:
        """Ask the running job to stop (returns at once; idempotent); returns its name or None."""
        if not self.busy:
            return None
        self._stop.set()
        return self.current.name if self.current else None

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the job to end; False if it is still running after ``timeout_s``."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def status(self) -> dict[str, Any]:
        """``{"job": ..., "running": {...} | None, "last": {...} | None}``."""
        job = self.current if self.busy else None
        with self._lock:
            last = self.last
        return {"job": job.name if job else None, "running": job.status() if job else None, "last": last}

    def _run(self, job: Job, stop: threading.Event) -> None:
        started = time.time()
        outcome: dict[str, Any] = {"job": job.name, "started_s": started}
        log.info("job_started", job=job.name)
        try:
            outcome.update(ok=True, result=job.run(stop), error="")
            log.info("job_finished", job=job.name, stopped=stop.is_set())
        except Exception as error:  # reported on status; the service keeps running
            log.exception("job_failed", job=job.name)
            outcome.update(ok=False, result=job.status(), error=f"{type(error).__name__}: {error}")
        outcome["ended_s"] = time.time()
        with self._lock:
            self.last = outcome


class AcquireJob:
    """``acquire``: record the missing targets of a pairs file on the open bench (as
    ``specklenetd acquire`` does, without reopening the devices).

    Args:
        bench: the open bench.
        targets: the targets file's contents; ``targets_path`` and ``output`` are resolved paths.
        resume: continue an existing pairs file instead of creating one.
    """

    name = "acquire"

    def __init__(
        self, bench: Bench, targets: Targets, targets_path: Path, output: Path, resume: bool
    ) -> None:
        bench.check_canvases(targets)
        if output.exists() and not resume:
            raise CommandError("refused", f"output: {output.name} exists; pass resume=true to continue it")
        if resume and not output.exists():
            raise CommandError("not_found", f"output: {output.name} does not exist; nothing to resume")
        self.bench, self.targets, self.targets_path, self.output, self.resume = (
            bench,
            targets,
            targets_path,
            output,
            resume,
        )
        self._state = Progress(total=len(targets), done=0)

    @property
    def progress(self) -> int:
        return self._state.recorded + self._state.lost

    def status(self) -> dict[str, Any]:
        state = self._state
        return {
            "targets": self.targets_path.name,
            "output": self.output.name,
            "done": state.done,
            "total": state.total,
            "recorded": state.recorded,
            "lost": state.lost,
            "rate_hz": round(state.rate_hz, 2),
            "device_errors": state.device_errors,
        }

    def run(self, stop: threading.Event) -> dict[str, Any]:
        bench = self.bench
        bench.recover()
        acquisition = json.loads(json.dumps({**bench.describe_twin(), "daemon": bench.settings.describe()}))
        with self._open(acquisition) as writer:
            job = acquire_job.AcquireJob(
                writer, bench.dmd, bench.camera, bench.settings, progress=self._update, stop=stop
            )
            self._state = job.progress
            final = job.run()
        return {**self.status(), "interrupted": final.interrupted, "missing": final.missing}

    def _update(self, state: Progress) -> None:
        self._state = state

    def _open(self, acquisition: dict[str, Any]) -> PairsWriter:
        flush = self.bench.settings.acquisition.flush_interval_s
        if not self.resume:
            return PairsWriter.create(
                self.output,
                self.targets,
                source=self.bench.source,
                acquisition=acquisition,
                flush_interval_s=flush,
            )
        writer = PairsWriter.resume(self.output, flush_interval_s=flush)
        try:
            if not np.array_equal(writer.targets.canvases, self.targets.canvases):
                raise FileFormatError(f"{self.output.name}: was recorded for other targets")
            if writer.source != self.bench.source:
                raise FileFormatError(
                    f"{self.output.name}: holds {writer.source} frames, not {self.bench.source}"
                )
            for key in ("twin_config", "seed"):  # frames of one file must come from one twin
                if key in acquisition and writer.acquisition.get(key) != acquisition[key]:
                    raise FileFormatError(
                        f"{self.output.name}: was recorded with another twin ({key} differs)"
                    )
        except BaseException:
            writer.close()
            raise
        return writer
