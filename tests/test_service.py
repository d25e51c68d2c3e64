"""``specklenetd serve`` end to end on the simulated bench: a subprocess driven over its control channel,
watched through its stream and a fake systemd notify socket.

One daemon serves the module's tests in order (start-up costs a model warm-up and the twin): acquire
through the control channel, path and busy refusals, live mode with recording (reconstructions
scored against the displayed targets, beating a constant-output baseline), sequence numbers, latency
fields, a stalled subscriber, a model swap while live, 10,000 fuzzed control messages, and SIGTERM.
The bench runs in real time at 50 pictures/s with the live targets rendered ahead, so the camera's
pace is the DMD's whatever this machine's load.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq
from service_daemon import Daemon
from twin_pairs import WINDOW, shapes

from specklenet.daemon import protocol
from specklenet.daemon.inference import Reconstructor
from specklenet.daemon.records import Targets, read_pairs, write_targets
from specklenet.daemon.twin import Twin, TwinConfig

LIVE_TARGETS = 8
CONFIG = """
[dmd]
picture_time_us = 20_000
[acquisition]
sequence_pictures = 8
frame_timeout_s = 0.5
flush_interval_s = 0.1
[sim]
realtime = true
[sim.faults]
remove_at = 60  # the camera is unplugged early in live mode, and found again
[service]
data_dir = "{data}"
control_address = "{control}"
stream_address = "{stream}"
speckle_every = 1
status_interval_s = 0.2
send_hwm = 16  # above a matching window of recon messages, which the inference publishes in a burst
"""


@pytest.fixture(scope="module")
def targets() -> Targets:
    """Held-out shapes (another seed than the training set's), in the model's output window."""
    return Targets.from_canvases(shapes(LIVE_TARGETS, seed=1234), output_window=WINDOW)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, ci_model: Path, targets: Targets):
    work = tmp_path_factory.mktemp("serve")
    data = work / "data"
    data.mkdir()
    shutil.copy(ci_model, data / "model-a.onnx")
    shutil.copy(ci_model, data / "model-b.onnx")
    write_targets(data / "live.h5", targets)
    config = CONFIG.format(data=data, control=f"ipc://{work}/control", stream=f"ipc://{work}/stream")
    service = Daemon(work, config, watchdog_usec=2_000_000)
    service.data = data  # type: ignore[attr-defined]
    service.wait_notice("READY=1")
    yield service
    service.close()


def rendered(targets: Targets, indices: np.ndarray) -> np.ndarray:
    """What the simulated camera sees of each target (the twin, its noise seeded by the target index)."""
    twin = Twin(TwinConfig(), seed=0)
    return np.stack([twin.expose_one(targets.canvases[i], int(i)) for i in indices])


def wait_status(daemon: Daemon, predicate: Any) -> dict[str, Any]:
    """Poll ``status`` until ``predicate(result)``; every reply is a fresh state, no sleeping."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = daemon.ok("status")
        if predicate(status):
            return status
    raise AssertionError(f"status never satisfied the condition; last: {status}")


def test_ready_and_idle(daemon: Daemon) -> None:
    status = daemon.ok("status")
    assert status["state"] == "idle" and status["bench"] == "twin" and status["model"] is None


def test_acquire_runs_through_the_control_channel(daemon: Daemon, targets: Targets) -> None:
    result = daemon.ok("acquire", {"targets": "live.h5", "output": "acquired.h5"})
    assert result["job"] == "acquire"
    status = wait_status(daemon, lambda s: s["state"] == "idle" and s["last"] is not None)
    assert status["last"]["ok"], status["last"]
    with read_pairs(daemon.data / "acquired.h5") as pairs:  # type: ignore[attr-defined]
        assert pairs.complete.all()
        frames = pairs.load_frames(np.arange(LIVE_TARGETS))
    np.testing.assert_array_equal(frames, rendered(targets, np.arange(LIVE_TARGETS)))  # each target's own


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"targets": "../live.h5", "output": "x.h5"}, "refused"),
        ({"targets": "/etc/hostname", "output": "x.h5"}, "refused"),
        ({"targets": "live.h5", "output": "/tmp/x.h5"}, "refused"),
        ({"targets": "missing.h5", "output": "x.h5"}, "not_found"),
        ({"targets": "live.h5", "output": "acquired.h5"}, "refused"),  # exists, no resume
        ({"targets": "model-a.onnx", "output": "x.h5"}, "refused"),  # not a targets file
    ],
)
def test_bad_paths_are_refused(daemon: Daemon, args: dict[str, Any], code: str) -> None:
    reply = daemon.request("acquire", args)
    assert (reply.ok, reply.code) == (False, code), reply
    assert not (daemon.data / "x.h5").exists()  # type: ignore[attr-defined]


def baseline_pcc(targets: Targets, model: Path) -> float:
    """PCC of a constant output, the mean training target, against the displayed targets."""
    reconstructor = Reconstructor.load(model, frame_shape=(256, 256), canvas_shape=(128, 128), warmup_runs=0)
    mean_target = shapes(256, seed=0).mean(axis=0).round().astype(np.uint8)  # the ci model's training set
    constant = reconstructor.target_image(mean_target)
    return float(np.mean([reconstructor.pcc(constant, canvas) for canvas in targets.canvases]))


def collect(daemon: Daemon, sub: zmq.Socket, count: int) -> list[protocol.DataMessage]:
    return [daemon.receive(sub) for _ in range(count)]


def test_live_reconstructs_the_displayed_targets(daemon: Daemon, targets: Targets, ci_model: Path) -> None:
    sub = daemon.subscriber("recon")
    result = daemon.ok("live", {"model": "model-a.onnx", "targets": "live.h5", "record": "live-pairs.h5"})
    assert result["job"] == "live" and result["model"] == "model-a.onnx"
    busy = daemon.request("acquire", {"targets": "live.h5", "output": "other.h5"})
    assert (busy.ok, busy.code) == (False, "busy")
    messages = collect(daemon, sub, 40)  # a late joiner: the next frames, whatever came before
    seqs = [m.header["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + 40))  # no gaps for a subscriber that keeps up
    scored = [m.header["pcc"] for m in messages if m.header["pcc"] is not None]
    assert len(scored) >= 30
    for message in messages:
        header = message.header
        assert header["model"] == "model-a.onnx" and header["case"] == "shapes"
        assert message.array.shape == (32, 32) and message.array.dtype == np.float32
        assert 0 <= header["t_publish_ns"] - header["t_capture_ns"] < 10e9
        assert header["target_index"] in range(LIVE_TARGETS)
    baseline = baseline_pcc(targets, ci_model)
    assert np.mean(scored) > baseline + 0.2, (np.mean(scored), baseline)
    # Each reconstruction resembles the target the daemon says was displayed more than any other.
    judge = Reconstructor.load(ci_model, frame_shape=(256, 256), canvas_shape=(128, 128), warmup_runs=0)
    identified = 0
    for message in messages:
        if message.header["pcc"] is None:
            continue
        against = [judge.pcc(message.array, canvas) for canvas in targets.canvases]
        assert message.header["pcc"] == pytest.approx(against[message.header["target_index"]], abs=1e-6)
        identified += int(np.argmax(against)) == message.header["target_index"]
    assert identified >= 0.8 * len(scored), (identified, len(scored))
    sub.close()


def heartbeat(daemon: Daemon, sub: zmq.Socket, frames_at_least: int) -> dict[str, Any]:
    while True:
        header = daemon.receive(sub).header
        running = header.get("running") or {}
        if running.get("counters", {}).get("frames", 0) >= frames_at_least:
            return header


def test_status_reports_rate_latency_and_counts(daemon: Daemon) -> None:
    sub = daemon.subscriber("status")
    header = heartbeat(daemon, sub, 256)  # a whole rate window after the camera was found again
    assert header["state"] == "live"
    running = header["running"]
    assert running["rate_hz"] == pytest.approx(50, rel=0.05)  # the DMD's 20 ms pictures
    assert all(running["latency_ms"][p] > 0 for p in ("p50", "p95", "p99"))
    assert running["latency_ms"]["p50"] <= running["latency_ms"]["p95"] <= running["latency_ms"]["p99"]
    counters = header["counters"]
    assert {"frames", "received", "accepted", "lost", "skipped", "consumers"} <= set(counters)
    assert counters["lost"] == 0
    assert counters["consumers"]["recorder"]["skipped"] == 0  # critical: lossless
    sub.close()


def test_raw_speckle_frames_are_streamed(daemon: Daemon, targets: Targets) -> None:
    sub = daemon.subscriber("speckle")
    message = daemon.receive(sub)
    assert message.array.shape == (256, 256) and message.array.dtype == np.float32
    index = message.header["target_index"]
    assert index in range(LIVE_TARGETS) and message.header["t_capture_ns"] > 0
    np.testing.assert_array_equal(message.array, rendered(targets, np.array([index]))[0])
    sub.close()


def test_a_stalled_subscriber_does_not_slow_the_daemon(daemon: Daemon) -> None:
    watch = daemon.subscriber("status")
    before = heartbeat(daemon, watch, 0)
    frames = before["running"]["counters"]["frames"]
    stalled = daemon.subscriber("", rcvhwm=1)  # everything, including 256 KiB speckle frames
    daemon.receive(stalled)  # connected and subscribed; from now on it never reads
    fast = daemon.subscriber("recon")
    first = daemon.receive(fast).header["seq"]
    after = heartbeat(daemon, watch, frames + 256)  # a whole rate window later, with the stall
    received = [daemon.receive(fast).header["seq"] for _ in range(20)]
    assert received == list(range(first + 1, first + 21))  # still flowing, without gaps
    rate_before, rate_after = before["running"]["rate_hz"], after["running"]["rate_hz"]
    assert rate_after == pytest.approx(rate_before, rel=0.05)
    assert after["counters"]["lost"] == before["counters"]["lost"]
    stale = [daemon.receive(stalled) for _ in range(40)]  # what it held, then fresh messages
    seqs = [m.header["seq"] for m in stale if m.topic == "recon"]
    assert np.any(np.diff(seqs) > 1)  # its messages were dropped (PUB: per subscriber), never waited for
    for sock in (stalled, fast, watch):
        sock.close()


def test_load_model_swaps_while_live_without_dropping_the_stream(daemon: Daemon) -> None:
    sub = daemon.subscriber("recon")
    before = daemon.receive(sub).header
    assert before["model"] == "model-a.onnx"
    result = daemon.ok("load_model", {"model": "model-b.onnx"})
    assert result["swapped"] and result["model"]["path"] == "model-b.onnx"
    seqs, models = [before["seq"]], []
    while "model-b.onnx" not in models[-3:] or models[-3:].count("model-b.onnx") < 3:
        header = daemon.receive(sub).header
        seqs.append(header["seq"])
        models.append(header["model"])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one stream, no gap across the swap
    assert daemon.ok("status")["state"] == "live"
    sub.close()


def fuzz_messages(count: int, seed: int = 0) -> list[list[bytes]]:
    """Garbage bytes, wrong types, unknown commands, oversized and multi-frame requests; never a valid
    request (a valid stop or shutdown would end the scenario)."""
    rng = random.Random(seed)
    values = [None, True, 1.5, -1, 2**40, "x", "../../etc/passwd", [1, 2], {"a": 1}, b"\x00\xff"]
    messages: list[list[bytes]] = []
    while len(messages) < count:
        kind = rng.randrange(5)
        if kind == 0:
            frames = [rng.randbytes(rng.randrange(0, 64))]
        elif kind == 1:
            command = rng.choice([*protocol.COMMANDS, "fly", "", "STATUS"])
            args = {rng.choice(["targets", "output", "model", "record", "resume", "zz"]): rng.choice(values)}
            frames = [msgpack.packb({"id": rng.choice(values), "cmd": command, "args": args})]
        elif kind == 2:
            frames = [msgpack.packb({"id": 1, "cmd": "status", "args": {}, "pad": "x" * 70_000})]
        elif kind == 3:
            frames = [msgpack.packb(rng.choice(values))]
        else:
            frames = [protocol.encode_request("status", id=7)] * rng.randrange(2, 4)
        try:
            if len(frames) == 1:
                protocol.decode_request(frames[0])
                continue  # valid: not fuzz
        except protocol.ProtocolError:
            pass
        messages.append(frames)
    return messages


def test_fuzzed_control_messages_leave_the_daemon_alive_and_answering(daemon: Daemon) -> None:
    messages = fuzz_messages(10_000)
    dealer = daemon.context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(daemon.control)
    replies = 0
    for start in range(0, len(messages), 500):  # in batches, so that neither side's queue overflows
        for frames in messages[start : start + 500]:
            dealer.send_multipart(frames)
        for _ in messages[start : start + 500]:
            assert dealer.poll(120_000), daemon.log_text()[-2000:]
            reply = protocol.decode_reply(dealer.recv())
            assert not reply.ok and reply.code in ("bad_request", "unknown_command")
            replies += 1
    dealer.close()
    assert replies == 10_000
    status = daemon.ok("status")
    assert daemon.alive and status["state"] == "live"
    assert status["counters"]["control"]["error.bad_request"] > 0


def test_a_removed_camera_was_reported_and_found_again(daemon: Daemon) -> None:
    status = daemon.ok("status")
    assert status["state"] == "live"  # the job went on
    assert status["running"]["device_errors"] == 1
    assert "removed" in status["running"]["last_device_error"]
    assert '"event": "device_error"' in daemon.log_text()


def test_stop_ends_the_job_and_closes_its_pairs_file(daemon: Daemon, targets: Targets) -> None:
    wait_status(daemon, lambda s: s["running"].get("recorded", 0) == LIVE_TARGETS)
    assert daemon.ok("stop") == {"stopping": "live"}
    status = wait_status(daemon, lambda s: s["state"] == "idle")
    assert status["last"]["ok"] and status["last"]["job"] == "live"
    assert daemon.ok("stop") == {"stopping": None}  # idempotent
    with read_pairs(daemon.data / "live-pairs.h5") as pairs:  # type: ignore[attr-defined]
        assert pairs.complete.all()
        np.testing.assert_array_equal(pairs.load_frames(), rendered(targets, np.arange(LIVE_TARGETS)))


def test_sigterm_stops_cleanly_with_a_readable_pairs_file(daemon: Daemon, targets: Targets) -> None:
    daemon.ok("live", {"model": "model-b.onnx", "targets": "live.h5", "record": "live-pairs-2.h5"})
    wait_status(daemon, lambda s: s["running"].get("recorded", 0) == LIVE_TARGETS)
    assert daemon.wait_notice("WATCHDOG=1") == "WATCHDOG=1"
    assert daemon.wait_notice("STATUS=live").startswith("STATUS=live: ")
    assert daemon.terminate() == 0, daemon.log_text()[-3000:]
    assert daemon.wait_notice("STOPPING=1") == "STOPPING=1"
    with read_pairs(daemon.data / "live-pairs-2.h5") as pairs:  # type: ignore[attr-defined]
        recorded = pairs.complete_indices()
        frames = pairs.load_frames(recorded)
    assert len(recorded) == LIVE_TARGETS
    np.testing.assert_array_equal(
        frames, rendered(targets, recorded)
    )  # recorded alongside live mode: each target's own
    log = daemon.log_text()
    assert '"event": "service_stopped"' in log and "Traceback" not in log
