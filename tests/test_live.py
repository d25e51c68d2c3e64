"""The live reconstruction consumer: headers the protocol accepts, PCC as evaluate scores it, model swaps
between frames while frames flow, and the latency statistics of the status heartbeat."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from live_frames import matched, pairs_frames
from onnx_models import pooling_model
from twin_pairs import cached_twin_pairs

from specklenet.daemon import protocol
from specklenet.daemon.errors import ModelError
from specklenet.daemon.inference import Reconstructor
from specklenet.daemon.live import LatencyStats, ReconstructionConsumer
from specklenet.training.evaluate import evaluate

FRAME, CANVAS = (256, 256), (128, 128)


class Wire:
    """A stand-in for the C6 publisher: fills seq and t_publish_ns, encodes, decodes (strictly), keeps."""

    def __init__(self) -> None:
        self.messages: list[protocol.DataMessage] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    def publish(self, topic: str, header: dict[str, Any], array: np.ndarray | None = None) -> None:
        with self.lock:
            full = {**header, "stream_id": 1, "seq": len(self.messages), "t_publish_ns": 0}
            self.messages.append(protocol.decode_data(protocol.encode_data(topic, full, array)))
            self.arrived.notify_all()

    def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout_s)


def load(path: Path) -> Reconstructor:
    return Reconstructor.load(path, frame_shape=FRAME, canvas_shape=CANVAS, warmup_runs=1)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cached_twin_pairs(tmp_path_factory.getbasetemp(), 32, seed=1)


def test_each_frame_is_published_as_recon_with_the_required_fields(ci_model: Path, held_out: Path) -> None:
    frames, canvases = pairs_frames(held_out)
    wire = Wire()
    consumer = ReconstructionConsumer(
        load(ci_model), canvases, wire.publish, clock=lambda: 1_000_000_000 + 7_500_000
    )
    consumer(matched(frames[3], frame_id=40, target_index=3, capture_ns=1_000_000_000, loop=2))
    (message,) = wire.messages
    assert message.topic == "recon"
    header = message.header
    assert header["frame_id"] == 40 and header["picture"] == 3 and header["target_index"] == 3
    assert header["t_capture_ns"] == 1_000_000_000 and header["loop"] == 2 and header["accepted"] is True
    assert header["model"] == ci_model.name and header["case"] == "shapes"
    assert header["provider"] == "CPUExecutionProvider" and header["inference_ms"] > 0
    assert isinstance(header["pcc"], float) and header["pcc"] > 0.3
    assert message.array is not None and message.array.shape == (32, 32) and message.array.dtype == np.float32
    assert consumer.stats.snapshot()["latency_p50_ms"] == pytest.approx(7.5)


def test_no_pcc_for_an_unknown_target_or_a_doubtful_frame(ci_model: Path, held_out: Path) -> None:
    frames, canvases = pairs_frames(held_out)
    wire = Wire()
    consumer = ReconstructionConsumer(load(ci_model), canvases, wire.publish)
    consumer(matched(frames[0], frame_id=1, target_index=None))
    consumer(matched(frames[1], frame_id=2, target_index=1, accepted=False))
    assert [m.header["pcc"] for m in wire.messages] == [None, None]
    assert [m.header["target_index"] for m in wire.messages] == [None, 1]
    with pytest.raises(IndexError, match="target_index 99 outside the 32 live targets"):
        consumer(matched(frames[1], frame_id=3, target_index=99))
    assert consumer.stats.snapshot()["errors"] == 1


def test_published_pcc_equals_specklenet_train_evaluate(ci_model: Path, held_out: Path) -> None:
    frames, canvases = pairs_frames(held_out)
    wire = Wire()
    consumer = ReconstructionConsumer(load(ci_model), canvases, wire.publish)
    for index, frame in enumerate(frames):
        consumer(matched(frame, frame_id=index, target_index=index))
    published = [m.header["pcc"] for m in wire.messages]
    np.testing.assert_allclose(published, evaluate(ci_model, held_out).metrics["pcc"], atol=1e-5, rtol=0)


def test_truth_windows_score_targets_shown_elsewhere(ci_model: Path, held_out: Path) -> None:
    frames, canvases = pairs_frames(held_out)
    shifted = np.zeros_like(canvases)
    shifted[:, 0:64, 64:128] = canvases[:, 32:96, 32:96]  # each target moved to the top-right corner
    windows = np.tile([0, 64, 64, 64], (len(canvases), 1))
    wire = Wire()
    model = load(ci_model)
    consumer = ReconstructionConsumer(model, shifted, wire.publish, truth_windows=windows)
    consumer(matched(frames[5], frame_id=0, target_index=5))
    expected = model.pcc(model.reconstruct(frames[5]), canvases[5])
    assert wire.messages[0].header["pcc"] == pytest.approx(expected, abs=1e-9)


def test_swap_changes_the_model_between_frames_while_frames_flow(
    ci_model: Path, held_out: Path, tmp_path: Path
) -> None:
    frames, canvases = pairs_frames(held_out)
    first, second = load(ci_model), load(pooling_model(tmp_path / "pool.onnx", scale=0.01))
    wire = Wire()
    consumer = ReconstructionConsumer(first, canvases, wire.publish)
    stop, failures = threading.Event(), []

    def worker() -> None:  # the pipeline's consumer thread: frames back to back
        frame_id = 0
        while not stop.is_set():
            try:
                consumer(matched(frames[frame_id % 32], frame_id=frame_id, target_index=frame_id % 32))
            except Exception as error:  # reported below
                failures.append(error)
            frame_id += 1

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        wire.wait_for(5)
        assert consumer.swap(second) is first
        first.close()  # idle once swap returned: closing it must not disturb the flow
        swapped_at = len(wire.messages)
        wire.wait_for(swapped_at + 5)
    finally:
        stop.set()
        thread.join()
    assert failures == []
    names = [m.header["model"] for m in wire.messages]
    assert names[0] == ci_model.name and names[-1] == "pool.onnx"
    switch = names.index("pool.onnx")
    assert switch <= swapped_at and set(names[switch:]) == {"pool.onnx"}  # never back to the old model
    assert [m.header["frame_id"] for m in wire.messages] == list(range(len(names)))  # none lost, none twice
    reference = {ci_model.name: load(ci_model), "pool.onnx": second}
    for message in wire.messages[switch - 2 : switch + 2]:  # each image is its own header's model's
        frame = frames[message.header["frame_id"] % 32]
        np.testing.assert_allclose(
            message.array, reference[message.header["model"]].reconstruct(frame), atol=1e-6
        )
    assert {m.header["case"] for m in wire.messages[switch:]} == {"pool"}


def test_swap_refuses_a_model_loaded_for_another_bench(ci_model: Path, tmp_path: Path) -> None:
    from onnx_models import model_info

    consumer = ReconstructionConsumer(load(ci_model), np.zeros((1, *CANVAS), np.uint8), Wire().publish)
    other = Reconstructor.load(
        pooling_model(tmp_path / "wide.onnx", model_info(canvas_px=256, window=(0, 0, 64, 64))),
        frame_shape=FRAME,
        canvas_shape=(256, 256),
        warmup_runs=0,
    )
    with pytest.raises(ModelError, match=r"wide.onnx: loaded for .* on a \(256, 256\) canvas"):
        consumer.swap(other)
    assert consumer.reconstructor.path == ci_model


def test_latency_percentiles_rate_and_counts() -> None:
    stats = LatencyStats(window=100)
    for k in range(100):  # latencies 1..100 ms, published every 10 ms, every other frame id
        stats.record(
            frame_id=2 * k,
            capture_ns=k * 10_000_000 - (k + 1) * 1_000_000,
            publish_ns=k * 10_000_000,
            inference_ms=2.0,
        )
    snap = stats.snapshot()
    assert snap["latency_p50_ms"] == pytest.approx(50.5)
    assert snap["latency_p95_ms"] == pytest.approx(95.05)
    assert snap["latency_p99_ms"] == pytest.approx(99.01)
    assert snap["frame_rate_hz"] == pytest.approx(100.0)
    assert snap["inference_p50_ms"] == 2.0
    assert (snap["processed"], snap["skipped"], snap["errors"], snap["window"]) == (100, 99, 0, 100)


def test_latency_window_rolls_and_a_new_stream_does_not_count_as_skipped() -> None:
    stats = LatencyStats(window=10)
    for k in range(50):
        stats.record(
            frame_id=k, capture_ns=0, publish_ns=(1000 if k < 40 else 5000) * 1_000_000, inference_ms=1.0
        )
    stats.record(frame_id=0, capture_ns=0, publish_ns=5000 * 1_000_000, inference_ms=1.0)  # camera restarted
    snap = stats.snapshot()
    assert snap["window"] == 10 and snap["latency_p99_ms"] == 5000.0  # only the last 10 frames
    assert snap["processed"] == 51 and snap["skipped"] == 0


def test_an_empty_snapshot_has_no_figures() -> None:
    snap = LatencyStats().snapshot()
    assert snap["latency_p50_ms"] is None and snap["frame_rate_hz"] is None and snap["processed"] == 0
    with pytest.raises(ValueError, match="window"):
        LatencyStats(window=1)


def test_latency_stats_count_every_frame_from_many_threads() -> None:
    stats = LatencyStats(window=50)
    barrier = threading.Barrier(4)

    def record(offset: int) -> None:
        barrier.wait()
        for k in range(2000):
            stats.record(frame_id=offset, capture_ns=0, publish_ns=k, inference_ms=0.0)
            if k % 100 == 0:
                stats.snapshot()

    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats.snapshot()["processed"] == 8000
