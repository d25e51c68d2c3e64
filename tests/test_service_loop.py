"""The service loop's watchdog and heartbeat, with a fake job and a fake notifier (no bench, no sockets)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specklenet.daemon import protocol
from specklenet.daemon.service.control import CommandError
from specklenet.daemon.service.notify import Notifier
from specklenet.daemon.service.service import Service
from specklenet.daemon.service.settings import ServiceSettings
from specklenet.daemon.settings import DaemonSettings


class Recording(Notifier):
    def __init__(self) -> None:
        super().__init__(None)
        self.sent: list[str] = []

    def send(self, message: str) -> None:
        self.sent.append(message)


class FakeJob:
    name = "live"
    progress = 0

    def status(self) -> dict[str, Any]:
        return {"rate_hz": 50.0, "latency_ms": {"p50": 12.0}, "counters": {"frames": self.progress}}


class FakeRunner:
    """What the service reads of its JobRunner."""

    def __init__(self, job: FakeJob | None) -> None:
        self.current, self.busy, self.stopping = job, job is not None, False

    def status(self) -> dict[str, Any]:
        job = self.current
        return {"job": job.name if job else None, "running": job.status() if job else None, "last": None}


@pytest.fixture
def service(tmp_path: Path):
    def make(job: FakeJob | None) -> tuple[Service, Recording, list[float]]:
        now = [0.0]
        notifier = Recording()
        notifier.watchdog_interval_s = 0.0  # no rate limit here: count the loop's decisions
        settings = DaemonSettings(service=ServiceSettings(data_dir=str(tmp_path), status_interval_s=1.0))
        service = Service(settings, stop=threading.Event(), notifier=notifier, clock=lambda: now[0])
        service.jobs = FakeRunner(job)  # type: ignore[assignment]
        return service, notifier, now

    return make


def test_idle_the_loop_itself_feeds_the_watchdog(service) -> None:
    svc, notifier, _ = service(None)
    for _ in range(3):
        svc.tick()
    assert notifier.sent.count("WATCHDOG=1") == 3


def test_a_stalled_frame_loop_stops_feeding_the_watchdog(service) -> None:
    job = FakeJob()
    svc, notifier, now = service(job)
    job.progress = 10
    svc.tick()
    assert notifier.sent.count("WATCHDOG=1") == 1
    for step in range(5):  # the loop ticks on, the job's frame count does not move
        now[0] = 0.1 * step
        svc.tick()
    assert notifier.sent.count("WATCHDOG=1") == 1
    job.progress = 11
    svc.tick()
    assert notifier.sent.count("WATCHDOG=1") == 2


def test_status_lines_name_the_job_and_its_rate_once_per_interval(service) -> None:
    svc, notifier, now = service(FakeJob())
    svc.tick()
    now[0] = 0.5
    svc.tick()
    now[0] = 1.0
    svc.tick()
    lines = [m for m in notifier.sent if m.startswith("STATUS=")]
    assert lines == ["STATUS=live: 50.0 frames/s, latency p50 12.0 ms"] * 2


def test_a_configuration_error_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "daemon.toml"
    config.write_text(f'[service]\ndata_dir = "{tmp_path}"\ncontrol_address = "tcp://0.0.0.0:5555"\n')
    command = [sys.executable, "-m", "specklenet.daemon.cli", "serve", "--sim", "--config", str(config)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 78, result.stderr
    assert "service.control_address" in result.stderr and "allow_remote" in result.stderr
    config.write_text("[service]\nsend_hwm = 0\n")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 78 and "service.send_hwm" in result.stderr
    help_text = subprocess.run(
        [sys.executable, "-m", "specklenet.daemon.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert "78" in help_text and "EX_CONFIG" in help_text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cmd=st.sampled_from(["acquire", "live", "load_model"]),
    name=st.text(min_size=0, max_size=300) | st.sampled_from(["..", "/", "a/../../b", "x" * 5000, "a\x00b"]),
)
def test_any_path_in_a_command_is_refused_or_not_found(service, cmd: str, name: str) -> None:
    svc, _, _ = service(None)
    args = {
        "acquire": {"targets": name, "output": name},
        "live": {"model": name, "targets": name},
        "load_model": {"model": name},
    }[cmd]
    with pytest.raises(CommandError) as raised:
        svc.handle(protocol.Request(1, cmd, args))
    assert raised.value.code in ("refused", "not_found")


def test_shutdown_replies_and_sets_the_stop_request(service) -> None:
    svc, _, _ = service(None)
    assert svc.handle(protocol.Request(1, "shutdown", {})) == {"shutting_down": True}
    assert svc.stop_request.is_set()


def test_speckle_frames_are_decimated_by_frame_number_not_by_call() -> None:
    import numpy as np

    from specklenet.daemon.frames import MatchedFrame
    from specklenet.daemon.service.live_job import SpeckleConsumer

    class Sink:
        def __init__(self) -> None:
            self.sent: list[tuple[str, dict[str, Any], Any]] = []

        def publish(self, topic: str, header: dict[str, Any], array: Any = None) -> bool:
            self.sent.append((topic, header, array))
            return True

    sink = Sink()
    consumer = SpeckleConsumer(sink, every=3)  # type: ignore[arg-type]
    counts = np.zeros((4, 4), np.float32)
    seen = [0, 1, 2, 3, 5, 6, 7, 10]  # a non-critical consumer does not see every frame
    for block in seen:
        consumer(MatchedFrame(counts, block, block % 8, block % 8, block // 8, None, block, block, True, ""))
    assert [h["picture"] + 8 * h["loop"] for _, h, _ in sink.sent] == [0, 3, 6, 10]
    assert all(topic == "speckle" and array is counts for topic, _, array in sink.sent)  # no copy
