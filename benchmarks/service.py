"""The live service end to end: ``Service`` on the simulated bench (real time, the live targets rendered
ahead so the camera keeps the DMD's pace), driven through its control socket, watched by a subscriber.

For each camera rate (``--rates``, pictures/s) and network (``--networks``: ``ci``, ``quick``; seeded
random weights, exported with daemon metadata), one live run of ``--seconds``, first with one
subscriber, then with a second, stalled one (subscribed to everything, 256 KiB speckle frames
included, never reading). Printed side by side: the camera's frame rate as the daemon measures it,
``recon`` messages published per second, the share of frames the inference skipped (newest-frame
policy), frames lost, latency capture → publish p50/p95/p99 (from the ``status`` heartbeat), and the
stalled run's rate as a ratio of the free one's (1.00 = a stalled subscriber costs nothing).

Usage: python benchmarks/service.py [--rates 50 100 150] [--networks ci quick] [--seconds 6] [--json PATH]
Default run: about 1–2 minutes on the shared 2-core CPU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).parent))
from bench_table import row, save
from live import export_network

from specklenet.daemon import protocol
from specklenet.daemon.cli import configure_logging
from specklenet.daemon.records import Targets, write_targets
from specklenet.daemon.service.service import Service
from specklenet.daemon.settings import load_settings

CONFIG = """
[dmd]
picture_time_us = {picture_us}
illuminate_time_us = {illuminate_us}
synch_delay_us = 100
[camera]
exposure_us = {exposure_us}
[twin.camera]
exposure_us = {exposure_us}
[sim]
realtime = true
max_frame_rate_hz = 1000.0
[service]
data_dir = "{data}"
control_address = "ipc://{data}/control"
stream_address = "ipc://{data}/stream"
speckle_every = 1
status_interval_s = 0.25
"""


def live_targets(count: int = 16) -> Targets:
    rng = np.random.default_rng(0)
    canvases = np.zeros((count, 128, 128), np.uint8)
    for canvas in canvases:
        row, col = rng.integers(32, 70, size=2)
        canvas[row : row + 24, col : col + 24] = 255
    return Targets.from_canvases(canvases, output_window=(32, 32, 64, 64))


def run(data: Path, rate_hz: float, model: str, seconds: float, stalled: bool) -> dict[str, Any]:
    picture_us = int(1e6 / rate_hz)
    exposure_us = picture_us - 300
    config = data / "daemon.toml"
    config.write_text(
        CONFIG.format(
            picture_us=picture_us, illuminate_us=exposure_us - 200, exposure_us=float(exposure_us), data=data
        )
    )
    stop = threading.Event()
    service = Service(load_settings(config).simulated(), stop=stop)
    service.start()
    loop = threading.Thread(target=service.run)
    loop.start()
    context = zmq.Context()
    try:
        dealer = context.socket(zmq.DEALER)
        dealer.connect(f"ipc://{data}/control")
        dealer.send(protocol.encode_request("live", {"model": model, "targets": "live.h5"}, id=1))
        assert dealer.poll(60_000) and protocol.decode_reply(dealer.recv()).ok
        watch = context.socket(zmq.SUB)
        for topic in (b"status", b"recon"):
            watch.setsockopt(zmq.SUBSCRIBE, topic)
        watch.connect(f"ipc://{data}/stream")
        if stalled:
            idle = context.socket(zmq.SUB)
            idle.setsockopt(zmq.RCVHWM, 1)
            idle.setsockopt(zmq.SUBSCRIBE, b"")
            idle.connect(f"ipc://{data}/stream")
            assert idle.poll(60_000)  # subscribed; never read again
        return measure(watch, seconds)
    finally:
        stop.set()
        loop.join()
        service.close()
        context.destroy(linger=0)


def measure(watch: zmq.Socket, seconds: float) -> dict[str, Any]:
    """Skip the first second (warm-up), then count recon messages and keep the last heartbeat."""
    start = time.monotonic()
    recon_seqs: list[tuple[float, int]] = []
    status: dict[str, Any] = {}
    first_status: dict[str, Any] = {}
    while time.monotonic() - start < seconds + 1:
        if not watch.poll(1000):
            continue
        message = protocol.decode_data(watch.recv_multipart())
        if time.monotonic() - start < 1:
            continue
        if message.topic == "recon":
            recon_seqs.append((message.header["t_publish_ns"], message.header["seq"]))
        elif message.header.get("running"):
            status = message.header
            first_status = first_status or status
    (t0, s0), (t1, s1) = recon_seqs[0], recon_seqs[-1]
    running, counters = status["running"], status["counters"]
    frames = counters["frames"] - first_status["counters"]["frames"]
    skipped = counters["skipped"] - first_status["counters"]["skipped"]
    return {
        "rate": running["rate_hz"],
        "recon": (s1 - s0) * 1e9 / (t1 - t0),
        "skipped": skipped / max(frames, 1),
        "lost": counters["lost"],
        "latency": running["latency_ms"],
    }


def main(argv: list[str] | None = None) -> dict:
    """Print the table; return (and with ``--json PATH`` write) the figures as table rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[50.0, 100.0, 150.0])
    parser.add_argument("--networks", nargs="+", default=["ci", "quick"])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    configure_logging("warning")
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        data = Path(folder)
        write_targets(data / "live.h5", live_targets())
        for name in args.networks:
            export_network(name, data)
        print(
            f"{'network':<7} {'camera/s':>8} {'frames/s':>8} {'recon/s':>8} {'skipped':>7} {'lost':>5}"
            f" {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7}  stalled subscriber: frames/s, recon/s ratio"
        )
        for name in args.networks:
            for rate in args.rates:
                free = run(data, rate, f"{name}.onnx", args.seconds, stalled=False)
                slow = run(data, rate, f"{name}.onnx", args.seconds, stalled=True)
                latency = free["latency"]
                print(
                    f"{name:<7} {rate:8.0f} {free['rate']:8.1f} {free['recon']:8.1f} {free['skipped']:7.0%}"
                    f" {free['lost']:5d} {latency['p50']:7.1f} {latency['p95']:7.1f} {latency['p99']:7.1f}"
                    f"  {slow['rate'] / free['rate']:.3f}, {slow['recon'] / free['recon']:.2f}",
                    flush=True,
                )
                rows += _rows(name, rate, free, slow, args.seconds)
    return save({"rows": rows}, args.json)


def _rows(name: str, rate: float, free: dict[str, Any], slow: dict[str, Any], seconds: float) -> list[dict]:
    """One live run's figures: rates against the camera's, latency, and the stalled subscriber's cost."""
    what = f"service {name} at {rate:g}/s"
    run = f"{seconds:g} s live run on the simulated bench (real time)"
    latency = free["latency"]
    return [
        row(
            f"{what}: camera frame rate",
            free["rate"],
            "frames/s",
            baseline=rate,
            baseline_label="offered",
            notes=f"{run}; {free['lost']} frames lost",
        ),
        row(
            f"{what}: recon messages published",
            free["recon"],
            "messages/s",
            baseline=free["rate"],
            baseline_label="camera frames/s",
            notes=f"newest-frame inference, {free['skipped']:.0%} of frames skipped",
        ),
        row(
            f"{what}: latency capture → publish p50",
            latency["p50"],
            "ms",
            better="lower",
            notes=f"from the status heartbeat; p95 {latency['p95']:.1f} ms; naive loop: see live rows",
        ),
        row(f"{what}: latency capture → publish p99", latency["p99"], "ms", better="lower", notes=run),
        row(
            f"{what}: camera frame rate, stalled subscriber",
            slow["rate"],
            "frames/s",
            baseline=free["rate"],
            baseline_label="no stalled subscriber",
            notes="a second SUB that never reads (1.00: a stalled subscriber costs nothing)",
        ),
        row(
            f"{what}: recon messages, stalled subscriber",
            slow["recon"],
            "messages/s",
            baseline=free["recon"],
            baseline_label="no stalled subscriber",
        ),
    ]


if __name__ == "__main__":
    main()
