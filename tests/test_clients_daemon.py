"""The clients against the real ``specklenetd serve --sim``: control commands and their exit statuses,
watch and record living through a daemon restart, and docs/protocol.md's subscriber.

Each test starts its own daemon subprocess on ipc:// sockets in a temporary folder (the simulated bench
in real time, the ``ci`` model); readiness is a ``status`` request answered, never a sleep.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from clients_helpers import DEADLINE_S, ClientProcess, wait_for
from test_protocol_doc import run_snippet

pytest.importorskip("specklenet.daemon.service.serve", reason="`specklenetd serve` is not in this tree yet")

from specklenet.clients import cli
from specklenet.clients.connection import ClientError, ControlClient
from specklenet.clients.stream_file import load_stream

CONFIG = """
[dmd]
picture_time_us = 20_000
[acquisition]
sequence_pictures = 8
frame_timeout_s = 0.5
flush_interval_s = 0.1
[sim]
realtime = true
[service]
data_dir = "{data}"
control_address = "{control}"
stream_address = "{stream}"
speckle_every = 2
status_interval_s = 0.2
"""


class Serve:
    """One ``specklenetd serve --sim`` process; ``start()`` returns once it answers ``status``."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.control = f"ipc://{work}/control"
        self.stream = f"ipc://{work}/stream"
        self.config = work / "daemon.toml"
        data = work / "data"
        self.config.write_text(CONFIG.format(data=data, control=self.control, stream=self.stream))
        self.runs = 0

    def start(self) -> Serve:
        self.runs += 1
        self.log = (self.work / f"serve-{self.runs}.log").open("w")
        command = [
            sys.executable,
            "-m",
            "specklenet.daemon.cli",
            "serve",
            "--sim",
            "--config",
            str(self.config),
        ]
        self.process = subprocess.Popen(command, stderr=self.log, stdout=self.log)
        client = ControlClient(self.control, timeout_s=1.0)
        try:
            end = time.monotonic() + 180
            while time.monotonic() < end:
                assert self.process.poll() is None, self.log_text()
                try:
                    client.request("status")
                    return self
                except ClientError:
                    continue  # not up yet: each try waits up to 1 s for the reply
            raise AssertionError(f"the daemon never answered; log:\n{self.log_text()}")
        finally:
            client.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.log.close()
        return status

    def log_text(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.work.glob("serve-*.log")))

    def run(self, *argv: str) -> int:
        return cli.main([*argv, "--control", self.control, "--timeout", "30"])


@pytest.fixture
def serve(tmp_path: Path, ci_model: Path):
    from twin_pairs import WINDOW, shapes

    from specklenet.daemon.records import Targets, write_targets

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(ci_model, data / "model.onnx")
    shutil.copy(ci_model, data / "model-b.onnx")
    write_targets(data / "live.h5", Targets.from_canvases(shapes(8, seed=1234), output_window=WINDOW))
    daemon = Serve(tmp_path).start()
    yield daemon
    daemon.stop()


def test_control_commands_and_exit_statuses(serve: Serve, capsys) -> None:
    assert serve.run("status") == 0
    assert "state: idle" in capsys.readouterr().out
    assert serve.run("acquire", "missing.h5", "-o", "p.h5") == 1
    assert "not_found" in capsys.readouterr().err
    assert serve.run("acquire", "../outside.h5", "-o", "p.h5") == 1
    assert "refused" in capsys.readouterr().err
    assert serve.run("live", "--model", "model.onnx", "--targets", "live.h5") == 0
    assert "job: live" in capsys.readouterr().out
    assert serve.run("acquire", "live.h5", "-o", "p.h5") == 1
    assert "busy" in capsys.readouterr().err
    assert serve.run("load-model", "model-b.onnx") == 0
    assert "swapped: True" in capsys.readouterr().out
    assert serve.run("stop") == 0
    assert serve.run("shutdown") == 0
    assert serve.process.wait(DEADLINE_S) == 0
    assert cli.main(["status", "--control", serve.control, "--timeout", "0.3"]) == 3
    assert serve.control in capsys.readouterr().err


def test_watch_and_record_live_through_a_daemon_restart(serve: Serve) -> None:
    path = serve.work / "stream.h5"
    assert serve.run("live", "--model", "model.onnx", "--targets", "live.h5") == 0
    watch = ClientProcess("watch", "--json", "--stream", serve.stream)
    record = ClientProcess(
        "record", "-o", str(path), "--speckle", "--flush-interval", "0.1", "--stream", serve.stream
    )

    def recorded(session: int) -> bool:
        try:
            return int(np.sum(load_stream(path, "recon")["session"] == session)) >= 5
        except (OSError, KeyError, ValueError):
            return False  # not created yet

    try:
        watch.json_lines(lambda line: line["event"] == "recon", "a reconstruction")
        wait_for(lambda: recorded(0), "5 recorded reconstructions")
        assert serve.stop() == 0  # serve stops cleanly on SIGTERM
        serve.start()
        assert serve.run("live", "--model", "model.onnx", "--targets", "live.h5") == 0
        after = watch.json_lines(
            lambda line: line["event"] == "recon" and line["session"] == 1, "the new run"
        )
        wait_for(lambda: recorded(1), "5 reconstructions recorded after the restart")
    finally:
        watch_status, watch_err = watch.stop()
        record_status, record_err = record.stop()
    assert watch_status == 0, watch_err
    assert record_status == 0, record_err
    assert any(line["event"] == "restart" for line in after), after
    assert "daemon restarted" in record_err
    recon, gaps = load_stream(path, "recon"), load_stream(path, "gaps")
    assert set(recon["session"]) == {0, 1} and 1 in set(gaps["kind"])
    runs = [set(recon["stream_id"][recon["session"] == session]) for session in (0, 1)]
    assert all(len(ids) == 1 for ids in runs) and runs[0] != runs[1]  # one stream id per daemon run
    assert recon["image"].dtype == np.float32 and recon["image"].min() >= 0.0 and recon["image"].max() <= 1.0
    assert {header["model"] for header in recon["headers"]} == {"model.onnx"}
    assert len(load_stream(path, "speckle")["seq"]) > 0 and len(load_stream(path, "status")["seq"]) > 0


def test_the_documented_subscriber_and_the_view_read_the_daemon(serve: Serve) -> None:
    import asyncio

    import aiohttp
    from test_clients_view import _receive

    from specklenet.daemon.records import read_targets

    assert serve.run("live", "--model", "model.onnx", "--targets", "live.h5") == 0
    lines = run_snippet(serve.stream, 3)
    assert len(lines) == 3 and all(line.startswith(("seq ", "gap: ")) for line in lines), lines
    assert any("image (32, 32)" in line for line in lines)

    canvases = read_targets(serve.work / "data" / "live.h5").canvases
    view = ClientProcess(
        "view", "--port", "0", "--targets", str(serve.work / "data" / "live.h5"), "--stream", serve.stream
    )

    async def tab(url: str) -> dict:
        async with aiohttp.ClientSession() as session, session.ws_connect(url + "ws") as ws:
            return await _receive(ws, {"recon", "speckle", "target", "stats"})

    try:
        seen = asyncio.run(tab(view.lines.get(timeout=DEADLINE_S).strip()))
    finally:
        status, err = view.stop()
    assert status == 0, err
    meta, target = seen["target"]
    np.testing.assert_array_equal(target, canvases[meta["target_index"]])  # the daemon's displayed target
    assert seen["recon"][1].shape == (32, 32) and seen["speckle"][1].shape == (256, 256)
    assert not seen["stats"][0]["targets_mismatch"]
