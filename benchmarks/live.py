"""Live reconstruction: the daemon's per-frame costs, ONNX Runtime against PyTorch, and the live rate
against a naive loop, side by side in one run.

Figures (frames are pre-rendered speckle-like counts dispatched into the real pipeline, so the twin's
rendering cost is excluded; a subscriber thread receives every message over ZeroMQ tcp loopback):

1. **Overhead** — the daemon's path without inference: :class:`Pipeline` (newest-frame consumer thread)
   → :class:`ReconstructionConsumer` with a no-op (Identity) model of the paper's 256² output →
   normalisation, PCC against the 128→256 upsampled canvas window, publish (msgpack header + raw array,
   as the C6 publisher sends it) → subscriber receipt and decode. p50/p99 of receipt − capture, and the
   same minus the (no-op) inference.
2. **ONNX Runtime vs PyTorch eager**, batch 1, the same U-Net (random weights) of the ``ci``, ``quick``
   and ``paper`` profiles: the daemon's ``Reconstructor.reconstruct`` (I/O binding, normalisation
   included) against ``model(x)`` under ``torch.inference_mode``, interleaved; median [min] ms.
3. **Sustained live rate** with the ``quick`` network: frames offered at ``--rate`` (150/s, the
   camera's) for ``--seconds``; frames published per second, skipped, latency p50/p99.
4. **Naive baseline**, the same job in one loop: grab (in order) → normalise → PyTorch eager →
   ``np.corrcoef`` → ``pickle`` over ZeroMQ; it never skips, so when it is slower than the camera its
   latency grows with the run. Ratios: daemon rate / naive rate.

``--gpu`` (on a machine with an NVIDIA GPU; not run on the CPU-only development machine) adds, for the
``paper`` and ``quick`` networks at batch 1: ONNX Runtime TensorRT (fp16 engine) and CUDA latency
(p50/p99 over ``--gpu-iterations``) beside PyTorch eager on CUDA in fp32 and fp16 autocast, and the
sustained live rate with the paper network on the best GPU provider.

Usage: python benchmarks/live.py [--rate 150] [--seconds 8] [--frames 1000] [--paper-iterations 3]
       [--skip-paper] [--gpu] [--gpu-iterations 200] [--json PATH]
Default run: about 2–3 minutes on the shared 2-core CPU (exports included).

Over the 300-line guide: the four figures must be measured in one run, side by side, so their
stand-ins (publisher, subscriber, the naive loop) and the GPU section live in this one script.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import pickle
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx

# Waiting OpenMP threads sleep instead of spinning (as ORT's do, `allow_spinning=0`): on a shared machine
# a spinning pool stalls a small network for hundreds of ms. Set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import zmq
from bench_table import row, save
from onnx import TensorProto, helper
from torch.nn import functional

from specklenet.daemon import protocol
from specklenet.daemon.frames import MatchedFrame
from specklenet.daemon.inference import Reconstructor
from specklenet.daemon.live import LatencyStats, ReconstructionConsumer
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation
from specklenet.daemon.pipeline import Pipeline
from specklenet.training.export import _export_graph, _write_metadata
from specklenet.training.model import build_model
from specklenet.training.profiles import PROFILES

try:  # the service's C6 publisher once it is merged; until then the stand-in below does the same
    from specklenet.daemon.service.publisher import Publisher as ServicePublisher
except ImportError:
    ServicePublisher = None

FRAME, CANVAS, DISTINCT = (256, 256), (128, 128), 32
CPU = ["CPUExecutionProvider"]


def info_for(output_px: int, window: tuple[int, int, int, int], profile: str) -> ModelInfo:
    return ModelInfo(
        case="bench",
        profile=profile,
        frame_px=FRAME[0],
        output_px=output_px,
        window=window,
        normalisation=Normalisation(),
        training_data_sha256="0" * 64,
        package_version="0.1.0",
    )


def identity_model(path: Path) -> Path:
    """A no-op model of the paper's output size: 256² in, the same 256² out (window: the whole canvas)."""
    info = info_for(FRAME[0], (0, 0, *CANVAS), "identity")
    shape = ["batch", 1, *FRAME]
    graph = helper.make_graph(
        [helper.make_node("Identity", [info.input_name], [info.output_name])],
        "identity",
        [helper.make_tensor_value_info(info.input_name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(info.output_name, TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    for key, value in info.to_metadata().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def export_network(name: str, folder: Path) -> tuple[torch.nn.Module, Path]:
    """The profile's U-Net (seeded random weights) and its ONNX export with daemon metadata."""
    profile = PROFILES[name]
    model = build_model(profile.model, seed=0).eval()
    info = info_for(profile.model.resolution_px, (32, 32, 64, 64), name)
    path = folder / f"{name}.onnx"
    _export_graph(model, path, info)
    _write_metadata(path, info)
    return model, path


def test_frames() -> tuple[np.ndarray, np.ndarray]:
    """Speckle-like float32 counts (exponential, dark offset 16) and canvases with one lit rectangle."""
    rng = np.random.default_rng(0)
    frames = (rng.exponential(300.0, (DISTINCT, *FRAME)) + 16.0).astype(np.float32)
    canvases = np.zeros((DISTINCT, *CANVAS), np.uint8)
    for canvas in canvases:
        row, col = rng.integers(32, 70, size=2)
        canvas[row : row + 24, col : col + 24] = 255
    return frames, canvases


# --- ZeroMQ plumbing ---------------------------------------------------------------------------------


class Publisher:
    """Stand-in for the C6 publisher: seq per topic, t_publish_ns, NOBLOCK, zero-copy; counts drops."""

    def __init__(self, socket: zmq.Socket) -> None:
        self.socket, self.lock, self.seq, self.dropped = socket, threading.Lock(), {}, 0

    def publish(self, topic: str, header: dict[str, Any], array: np.ndarray | None = None) -> None:
        with self.lock:
            seq = self.seq.get(topic, 0)
            self.seq[topic] = seq + 1
            full = {**header, "stream_id": 1, "seq": seq, "t_publish_ns": time.time_ns()}
            try:
                self.socket.send_multipart(protocol.encode_data(topic, full, array), zmq.NOBLOCK, copy=False)
            except zmq.Again:
                self.dropped += 1


class Subscriber:
    """A SUB socket on its own thread recording (receipt ns, decoded message) for every data message."""

    def __init__(self, context: zmq.Context, address: str, decode: Callable[[list[bytes]], Any]) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(address)
        self.decode, self.received = decode, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stop.is_set():
            if poller.poll(50):
                frames = self.socket.recv_multipart()
                self.received.append((time.time_ns(), self.decode(frames)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.socket.close(linger=0)


@contextlib.contextmanager
def wire(decode: Callable[[list[bytes]], Any], probe: Callable[[zmq.Socket], None]) -> Iterator[Any]:
    """A bound PUB socket and a connected subscriber, joined (probes sent until one arrives)."""
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    subscriber = Subscriber(context, f"tcp://127.0.0.1:{port}", decode)
    try:
        while not subscriber.received:  # the slow joiner: wait until the subscription is in place
            probe(pub)
            time.sleep(0.01)
        subscriber.received.clear()
        yield pub, subscriber
    finally:
        subscriber.close()
        pub.close(linger=0)
        context.term()


def _status_probe(pub: zmq.Socket) -> None:
    header = {"state": "probe", "counters": {}, "stream_id": 1, "seq": 0, "t_publish_ns": 0}
    pub.send_multipart(protocol.encode_data("status", header))


def _pickle_probe(pub: zmq.Socket) -> None:
    pub.send(pickle.dumps({"probe": True}))


# --- the daemon's path and the naive loop --------------------------------------------------------------


def daemon_run(model: Path, frames: np.ndarray, canvases: np.ndarray, *, rate_hz: float, count: int) -> dict:
    """Dispatch ``count`` frames at ``rate_hz`` into the pipeline; the figures of what arrived."""
    reconstructor = Reconstructor.load(model, frame_shape=FRAME, canvas_shape=CANVAS, providers=None)
    with wire(lambda f: protocol.decode_data(f), _status_probe) as (pub, subscriber):
        publisher = (ServicePublisher or Publisher)(pub)
        consumer = ReconstructionConsumer(reconstructor, canvases, publisher.publish, LatencyStats(count))
        pipeline = Pipeline()
        pipeline.add(consumer, name="reconstruction", critical=False)
        start = time.perf_counter()
        with pipeline:
            for k in range(count):
                _pace(start + k / rate_hz)
                now = time.time_ns()
                n = k % DISTINCT
                pipeline.dispatch(MatchedFrame(frames[n], k, n, n, k // DISTINCT, None, now, now, True, ""))
            _wait_for(lambda: len(subscriber.received) >= consumer.stats.processed, 10.0)
        elapsed = time.perf_counter() - start
        recon = [(t, m.header) for t, m in subscriber.received if m.topic == "recon"]
    latency = np.array([(t - h["t_capture_ns"]) / 1e6 for t, h in recon])
    overhead = latency - np.array([h["inference_ms"] for _, h in recon])
    return {
        "provider": reconstructor.provider,
        "received": len(recon),
        "rate": len(recon) / elapsed,
        "skipped": count - len(recon),
        "latency": _percentiles(latency),
        "overhead": _percentiles(overhead),
        "inference_p50": float(np.median([h["inference_ms"] for _, h in recon])),
    }


def naive_run(
    model: torch.nn.Module, frames: np.ndarray, canvases: np.ndarray, *, rate_hz: float, count: int
) -> dict:
    """One loop, frame after frame in arrival order (never skips), until the offered frames' time is up."""
    normalisation = Normalisation()
    with wire(lambda f: pickle.loads(f[0]), _pickle_probe) as (pub, subscriber):  # the baseline's way
        start_ns, processed = time.time_ns(), 0
        deadline = time.perf_counter() + count / rate_hz
        while processed < count and time.perf_counter() < deadline:
            arrival_ns = start_ns + int(processed * 1e9 / rate_hz)
            while time.time_ns() < arrival_ns:  # the camera has not produced it yet
                time.sleep(0.0005)
            n = processed % DISTINCT
            with torch.inference_mode():
                x = normalisation.apply(torch.from_numpy(frames[n]))[None, None]
                image = model(x)[0, 0].numpy()
                window = torch.from_numpy(canvases[n, 32:96, 32:96].astype(np.float32) / 255)[None, None]
                truth = functional.interpolate(window, size=image.shape, mode="bilinear", antialias=True)[
                    0, 0
                ]
            pcc = float(np.corrcoef(image.ravel(), truth.numpy().ravel())[0, 1])
            message = {"frame_id": processed, "t_capture_ns": arrival_ns, "pcc": pcc, "image": image}
            pub.send(pickle.dumps(message))
            processed += 1
        elapsed = time.perf_counter() - (deadline - count / rate_hz)
        _wait_for(lambda: len(subscriber.received) >= processed, 10.0)
        latency = np.array([(t - m["t_capture_ns"]) / 1e6 for t, m in subscriber.received])
    return {
        "received": len(latency),
        "rate": len(latency) / elapsed,
        "skipped": count - len(latency),
        "latency": _percentiles(latency),
    }


def latency_pair(reconstructor: Reconstructor, model: torch.nn.Module, iterations: int) -> tuple[list, list]:
    """Interleaved batch-1 latencies (ms) of the daemon's ONNX Runtime path and PyTorch eager."""
    frame = np.random.default_rng(1).exponential(300.0, FRAME).astype(np.float32) + 16
    x = Normalisation().apply(torch.from_numpy(frame))[None, None]
    ort_ms, torch_ms = [], []
    with torch.inference_mode():
        model(x)  # warm-up (the Reconstructor warmed up on load)
        for _ in range(iterations):
            start = time.perf_counter()
            reconstructor.reconstruct(frame)
            ort_ms.append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            model(x)
            torch_ms.append((time.perf_counter() - start) * 1e3)
    return ort_ms, torch_ms


def gpu_figures(networks: dict[str, tuple[torch.nn.Module, Path]], iterations: int) -> list[str]:
    """ORT TensorRT (fp16) / CUDA against PyTorch eager on CUDA (fp32, fp16 autocast), batch 1."""
    lines = []
    frame = np.random.default_rng(1).exponential(300.0, FRAME).astype(np.float32) + 16
    for name, (model, path) in networks.items():
        for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            try:
                loaded = Reconstructor.load(
                    path,
                    frame_shape=FRAME,
                    canvas_shape=CANVAS,
                    providers=[provider],
                    warmup_runs=20,
                    cache_dir=path.parent,
                )
            except Exception as error:  # reported in the table
                lines.append(f"{name:<6} ORT {provider:<26} unavailable: {error}")
                continue
            times = _timed(functools.partial(loaded.reconstruct, frame), iterations)
            lines.append(f"{name:<6} ORT {loaded.provider:<26} {_p50_p99(times)}")
        if torch.cuda.is_available():
            device_model = model.to("cuda")
            x = Normalisation().apply(torch.from_numpy(frame).cuda())[None, None]
            for label, dtype in (("fp32", None), ("fp16 autocast", torch.float16)):
                step = functools.partial(_torch_cuda_step, device_model, x, dtype)
                lines.append(
                    f"{name:<6} torch eager CUDA {label:<15} {_p50_p99(_timed(step, iterations, 20))}"
                )
            model.to("cpu")
    return lines


def _torch_cuda_step(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
        model(x).float().cpu()  # back on the host, as the daemon publishes it


# --- helpers -----------------------------------------------------------------------------------------


def _pace(until: float) -> None:
    delay = until - time.perf_counter()
    if delay > 0:
        time.sleep(delay)


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.perf_counter() + timeout_s
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.01)


def _timed(step: Callable[[], Any], iterations: int, warmup: int = 0) -> list[float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _p(values: list[float] | np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def _p50_p99(times: list[float] | tuple[float, float]) -> str:
    """``p50 … ms  p99 … ms`` of a list of times, or of a (p50, p99) pair."""
    p50, p99 = times if isinstance(times, tuple) else (_p(times, 50), _p(times, 99))
    return f"p50 {p50:8.3f} ms  p99 {p99:8.3f} ms"


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    return (_p(values, 50), _p(values, 99)) if len(values) else (float("nan"), float("nan"))


def main(argv: list[str] | None = None) -> dict:
    """Print the figures; return (and with ``--json PATH`` write) them as table rows."""
    args = _arguments(argv)
    torch.manual_seed(0)
    frames, canvases = test_frames()
    names = ["ci", "quick"] + ([] if args.skip_paper else ["paper"])
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        print(f"exporting {', '.join(names)} (random weights) ...", flush=True)
        networks = {name: export_network(name, folder_path) for name in names}
        threads = f"torch {torch.__version__}, {torch.get_num_threads()} threads"
        publisher = "the service's" if ServicePublisher else "a stand-in"
        lines = [
            "",
            f"{threads}; OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; {publisher} C6 publisher",
            "",
        ]

        identity = identity_model(folder_path / "identity.onnx")
        overhead = daemon_run(identity, frames, canvases, rate_hz=200.0, count=args.frames)
        naive_overhead = naive_run(torch.nn.Identity(), frames, canvases, rate_hz=200.0, count=args.frames)
        lines += [
            "1. daemon overhead per frame, no-op model of 256² output:",
            "   pipeline + normalise + PCC (128→256 window) + publish over tcp + subscriber decode",
            f"   receipt − capture       {_p50_p99(overhead['latency'])}",
            f"   minus the no-op model   {_p50_p99(overhead['overhead'])}"
            f"   ({overhead['received']}/{args.frames} frames at 200/s published)",
            f"   naive loop, no-op model {_p50_p99(naive_overhead['latency'])}"
            f"   ({naive_overhead['received']}/{args.frames} frames; np.corrcoef, pickle)",
            "",
            "2. batch-1 latency, same U-Net: daemon ONNX Runtime (CPU) vs PyTorch eager, median [min] ms",
        ]
        rows = _overhead_rows(overhead, naive_overhead, args.frames)
        for name, (model, path) in networks.items():
            reconstructor = Reconstructor.load(path, frame_shape=FRAME, canvas_shape=CANVAS, warmup_runs=1)
            iterations = args.paper_iterations if name == "paper" else args.iterations
            ort_ms, torch_ms = latency_pair(reconstructor, model, iterations)
            ratio = np.median(torch_ms) / np.median(ort_ms)
            lines.append(
                f"   {name:<6} ORT {_median_min(ort_ms)}  torch {_median_min(torch_ms)}"
                f"  torch/ORT {ratio:4.2f}×  ({iterations} iterations)"
            )
            rows.append(
                row(
                    f"inference {name} U-Net, batch 1: ONNX Runtime (daemon) vs PyTorch eager",
                    np.median(ort_ms),
                    "ms",
                    baseline=np.median(torch_ms),
                    baseline_label="PyTorch eager",
                    better="lower",
                    notes=f"{reconstructor.provider}, medians of {iterations} interleaved iterations; "
                    "ORT includes normalisation and I/O binding",
                )
            )
            reconstructor.close()

        count = int(args.rate * args.seconds)
        live = daemon_run(networks["quick"][1], frames, canvases, rate_hz=args.rate, count=count)
        naive = naive_run(networks["quick"][0], frames, canvases, rate_hz=args.rate, count=count)
        lines += [
            "",
            f"3./4. live, quick network, {count} frames offered at {args.rate:g}/s:",
            f"   daemon, {live['provider']} (newest frame): {_live(live)}",
            f"     (inference p50 {live['inference_p50']:.1f} ms)",
            f"   naive loop (in order, torch eager, pickle): {_live(naive)}",
            f"   daemon / naive: rate {live['rate'] / naive['rate']:.2f}×, "
            f"p99 latency {naive['latency'][1] / live['latency'][1]:.1f}× lower",
        ]
        rows += _live_rows(live, naive, args.rate, count)
        notes = []
        if args.gpu:
            gpu_lines = gpu_figures(networks, args.gpu_iterations)
            lines += ["", "GPU (batch 1):", *("   " + line for line in gpu_lines)]
            notes += [f"GPU batch 1: {' '.join(line.split())}" for line in gpu_lines]
            if "paper" in networks:
                gpu_live = daemon_run(networks["paper"][1], frames, canvases, rate_hz=args.rate, count=count)
                lines.append(f"   live, paper network, {gpu_live['provider']}: {_live(gpu_live)}")
                rows.append(
                    row(
                        f"live paper network, {gpu_live['provider']}: rate",
                        gpu_live["rate"],
                        "frames/s",
                        baseline=args.rate,
                        baseline_label="offered",
                        notes=f"latency {_p50_p99(gpu_live['latency'])}",
                    )
                )
        print("\n".join(lines))
    return save({"rows": rows, "notes": notes}, args.json)


def _overhead_rows(daemon: dict, naive: dict, count: int) -> list[dict]:
    """The daemon's per-frame cost without inference (p50, p99) beside the naive loop's, no-op models."""
    notes = (
        f"{count} frames at 200/s; daemon: pipeline + normalise + PCC + msgpack publish (tcp) + decode, "
        "minus the no-op model's time; naive: the same with np.corrcoef and pickle, torch Identity"
    )
    return [
        row(
            f"live per-frame overhead excluding inference, {label}",
            daemon["overhead"][index],
            "ms",
            baseline=naive["latency"][index],
            baseline_label="naive loop",
            better="lower",
            notes=notes,
        )
        for index, label in enumerate(("p50", "p99"))
    ]


def _live_rows(live: dict, naive: dict, rate_hz: float, count: int) -> list[dict]:
    """The live job's rate and end-to-end latency (capture → subscriber) beside the naive loop's."""
    offered = f"quick network, {count} frames offered at {rate_hz:g}/s"
    rows = [
        row(
            "live quick network: sustained rate",
            live["rate"],
            "frames/s",
            baseline=naive["rate"],
            baseline_label="naive loop",
            notes=f"{offered}; daemon publishes the newest frame ({live['skipped']} skipped), "
            f"inference p50 {live['inference_p50']:.1f} ms; the naive loop never skips",
        )
    ]
    for index, label in enumerate(("p50", "p99")):
        rows.append(
            row(
                f"live quick network: end-to-end latency {label}",
                live["latency"][index],
                "ms",
                baseline=naive["latency"][index],
                baseline_label="naive loop",
                better="lower",
                notes=f"{offered}; capture → subscriber decode; the naive loop's grows with the run",
            )
        )
    return rows


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=150.0, help="frames offered per second (camera)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each live run")
    parser.add_argument("--frames", type=int, default=1000, help="frames of the overhead run (at 200/s)")
    parser.add_argument("--iterations", type=int, default=30, help="ORT/torch latency iterations (ci, quick)")
    parser.add_argument("--paper-iterations", type=int, default=3)
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="add ORT TensorRT/CUDA and torch CUDA figures")
    parser.add_argument("--gpu-iterations", type=int, default=200)
    parser.add_argument("--json", default=None, help="also write the figures as JSON rows to this file")
    return parser.parse_args(argv)


def _median_min(times: list[float]) -> str:
    return f"{np.median(times):9.2f} [{min(times):8.2f}]"


def _live(figures: dict) -> str:
    return (
        f"{figures['rate']:6.1f} frames/s, {figures['skipped']:5d} not published, "
        f"latency {_p50_p99(figures['latency'])}"
    )


if __name__ == "__main__":
    main()
