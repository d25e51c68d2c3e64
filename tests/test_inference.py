"""The daemon's Reconstructor: provider choice, refusals, I/O binding, PCC exactly as training scores it."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import structlog
import torch
from live_frames import pairs_frames
from onnx_models import model_info, pooling_model
from twin_pairs import cached_twin_pairs, shapes

from specklenet.daemon.errors import ModelError
from specklenet.daemon.inference import Reconstructor, normalise_into, pearson, resize, resize_taps
from specklenet.daemon.normalisation import METHODS, Normalisation
from specklenet.daemon.providers import CPU, CUDA, PREFERENCE, TENSORRT, rank_providers
from specklenet.training.evaluate import evaluate
from specklenet.training.metrics import pcc as training_pcc
from specklenet.training.pairdata import resize_truth

FRAME, CANVAS = (256, 256), (128, 128)


def load(path: Path, **kwargs: object) -> Reconstructor:
    return Reconstructor.load(path, frame_shape=FRAME, canvas_shape=CANVAS, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 twin pairs of shapes the ci model never saw (another seed, same diffuser)."""
    return cached_twin_pairs(tmp_path_factory.getbasetemp(), 32, seed=1)


# --- provider choice ---------------------------------------------------------------------------------


def usable(provider: str) -> None:
    return None


def test_providers_rank_tensorrt_then_cuda_then_cpu() -> None:
    choice = rank_providers([CPU, CUDA, TENSORRT], probe=usable)
    assert choice.candidates == (TENSORRT, CUDA, CPU)
    assert choice.passed_over == ()


def test_a_provider_missing_from_the_build_or_the_machine_is_passed_over_with_its_reason() -> None:
    choice = rank_providers([CUDA, CPU], probe=lambda p: None if p == CPU else "no CUDA device")
    assert choice.candidates == (CPU,)
    assert dict(choice.passed_over) == {TENSORRT: "not in this ONNX Runtime build", CUDA: "no CUDA device"}


def test_requested_providers_restrict_the_choice() -> None:
    assert rank_providers(PREFERENCE, requested=[CPU], probe=usable).candidates == (CPU,)
    assert rank_providers(PREFERENCE, requested=[CPU, CUDA], probe=usable).candidates == (CUDA, CPU)
    with pytest.raises(ModelError, match=r"unknown execution provider.*'OpenVINO'"):
        rank_providers(PREFERENCE, requested=["OpenVINO"], probe=usable)
    with pytest.raises(ModelError, match=r"no usable execution provider.*CUDAExecutionProvider: no GPU"):
        rank_providers(PREFERENCE, requested=[CUDA], probe=lambda p: "no GPU")


def test_a_gpu_provider_that_falls_back_silently_does_not_count_and_one_line_says_why(
    ci_model: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # This machine has no GPU: claim one anyway; ORT then falls back to the CPU on its own.
    with structlog.testing.capture_logs() as logs:
        reconstructor = load(ci_model, available_providers=PREFERENCE, probe=usable)
    assert reconstructor.provider == CPU
    (line,) = logs
    assert line["event"] == "model_loaded" and line["provider"] == CPU
    assert f"{TENSORRT}: ONNX Runtime fell back from it" in line["why"]
    assert f"{CUDA}: ONNX Runtime fell back from it" in line["why"]
    capfd.readouterr()  # ORT prints its own fallback notices


def test_on_this_machine_the_cpu_is_chosen_because_there_is_no_gpu(ci_model: Path) -> None:
    with structlog.testing.capture_logs() as logs:
        reconstructor = load(ci_model)
    assert reconstructor.provider == CPU
    assert "no NVIDIA driver" in logs[0]["why"] or "no CUDA device" in logs[0]["why"]


def test_the_model_is_warmed_up_before_load_returns(ci_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = Reconstructor.reconstruct
    monkeypatch.setattr(Reconstructor, "reconstruct", lambda self, c: calls.append(1) or original(self, c))
    load(ci_model, warmup_runs=4)
    assert len(calls) == 4


# --- refusals ----------------------------------------------------------------------------------------


def test_a_model_for_other_frames_is_refused_naming_both_shapes(ci_model: Path) -> None:
    with pytest.raises(ModelError, match=r"takes 256×256 frames but the camera gives 128×128"):
        Reconstructor.load(ci_model, frame_shape=(128, 128), canvas_shape=CANVAS)


def test_a_model_for_another_canvas_is_refused(tmp_path: Path) -> None:
    path = pooling_model(tmp_path / "m.onnx", model_info(canvas_px=256, window=(96, 96, 64, 64)))
    with pytest.raises(ModelError, match=r"of a 256×256 canvas but the DMD shows 128×128"):
        load(path)


def test_a_graph_that_contradicts_its_metadata_is_refused(tmp_path: Path) -> None:
    path = pooling_model(tmp_path / "m.onnx", graph_frame_px=128)
    with pytest.raises(ModelError, match=r"input is tensor\(float\) \['batch', 1, 128, 128\].*promises"):
        load(path)


def test_a_model_without_specklenet_metadata_is_refused(ci_model: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(ci_model))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(ModelError, match=r"bare.onnx: model metadata lacks specklenet.schema_version"):
        load(tmp_path / "bare.onnx")


def test_a_model_with_one_key_missing_is_refused_naming_it(tmp_path: Path) -> None:
    path = pooling_model(tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    keep = [(e.key, e.value) for e in proto.metadata_props if e.key != "specklenet.output_px"]
    del proto.metadata_props[:]
    for key, value in keep:
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    with pytest.raises(ModelError, match=r"lacks specklenet.output_px"):
        load(path)


def test_a_corrupt_or_missing_file_is_refused(ci_model: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(ci_model.read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"truncated.onnx: not a usable ONNX model"):
        load(truncated)
    with pytest.raises(ModelError, match=r"absent.onnx: model file not found"):
        load(tmp_path / "absent.onnx")


def test_a_corrupt_file_is_refused_before_a_gpu_session_is_tried(ci_model: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not a model" * 100)
    with pytest.raises(ModelError, match=r"garbage.onnx: not a usable ONNX model"):
        load(garbage, available_providers=PREFERENCE, probe=usable)


# --- running the model -------------------------------------------------------------------------------


def test_reconstruct_equals_a_plain_session_run_and_hands_out_its_own_arrays(
    ci_model: Path, held_out: Path
) -> None:
    frames, _ = pairs_frames(held_out)
    reconstructor = load(ci_model)
    session = onnxruntime.InferenceSession(str(ci_model), providers=[CPU])
    first = reconstructor.reconstruct(frames[0])
    second = reconstructor.reconstruct(frames[1])
    for image, frame in ((first, frames[0]), (second, frames[1])):  # `first` was not overwritten
        (expected,) = session.run(None, {"speckle": Normalisation().apply(frame)[None, None]})
        np.testing.assert_allclose(image, expected[0, 0], atol=1e-6, rtol=0)
    assert first.shape == (32, 32) and first.dtype == np.float32
    assert not np.allclose(first, second)
    with pytest.raises(ValueError, match=r"expects a \(256, 256\) frame, got \(128, 128\)"):
        reconstructor.reconstruct(frames[0][:128, :128])


def test_a_closed_reconstructor_refuses_frames(ci_model: Path) -> None:
    reconstructor = load(ci_model)
    reconstructor.close()
    reconstructor.close()
    with pytest.raises(ModelError, match=r"closed"):
        reconstructor.reconstruct(np.ones(FRAME, np.float32))


@pytest.mark.parametrize("method", METHODS)  # every method a model's metadata may name
@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_in_place_normalisation_is_bit_identical_to_normalisation_apply(method: str, dtype: type) -> None:
    rng = np.random.default_rng(3)
    counts = (rng.exponential(200.0, FRAME) + 10).astype(dtype)
    normalisation = Normalisation(method=method, dark_offset_counts=16.0)  # type: ignore[arg-type]
    out = np.full(FRAME, np.nan, np.float32)
    normalise_into(counts, normalisation, out)
    np.testing.assert_array_equal(out, normalisation.apply(counts))


@pytest.mark.parametrize(("in_px", "out_px"), [(64, 32), (64, 256), (96, 40), (128, 128), (64, 17)])
def test_resize_weights_reproduce_trainings_antialiased_bilinear_resize(in_px: int, out_px: int) -> None:
    images = np.random.default_rng(in_px * out_px).random((3, in_px, in_px), dtype=np.float32)
    taps = resize_taps(in_px, out_px)
    ours = np.clip([resize(image, taps, taps) for image in images], 0.0, 1.0)
    np.testing.assert_allclose(ours, resize_truth(images, out_px)[:, 0].numpy(), atol=2e-6, rtol=0)


def test_pearson_is_trainings_pcc() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((2, 32, 32), dtype=np.float32)
    assert pearson(x, y + 0.5 * x) == pytest.approx(float(training_pcc(x, y + 0.5 * x)), abs=1e-12)
    assert pearson(x, np.full_like(x, 0.3)) == 0.0 == float(training_pcc(x, np.full_like(x, 0.3)))


def test_daemon_pcc_equals_specklenet_train_evaluate(ci_model: Path, held_out: Path) -> None:
    reconstructor = load(ci_model)
    frames, canvases = pairs_frames(held_out)
    evaluation = evaluate(ci_model, held_out)
    truth = np.stack([reconstructor.target_image(canvas) for canvas in canvases])
    np.testing.assert_allclose(truth, evaluation.truth, atol=1e-6, rtol=0)
    ours = [reconstructor.pcc(reconstructor.reconstruct(f), c) for f, c in zip(frames, canvases, strict=True)]
    np.testing.assert_allclose(ours, evaluation.metrics["pcc"], atol=1e-5, rtol=0)


def test_reconstructions_beat_the_best_constant_guess_on_held_out_frames(
    ci_model: Path, held_out: Path
) -> None:
    reconstructor = load(ci_model)
    frames, canvases = pairs_frames(held_out)
    # The constant guess: the mean training target (a blob where the shapes usually are).
    mean_target = np.mean([reconstructor.target_image(c) for c in shapes(256, seed=0)], axis=0)
    baseline = np.mean([reconstructor.pcc(mean_target, c) for c in canvases])
    ours = np.mean(
        [reconstructor.pcc(reconstructor.reconstruct(f), c) for f, c in zip(frames, canvases, strict=True)]
    )
    assert ours > baseline + 0.2, (ours, baseline)
    assert ours > 0.6


def test_target_image_takes_another_window_of_the_same_size(ci_model: Path) -> None:
    reconstructor = load(ci_model)
    canvas = np.zeros(CANVAS, np.uint8)
    canvas[0:64, 64:128] = 255
    assert reconstructor.target_image(canvas).mean() == pytest.approx(0.25)  # the centre window: a quarter
    np.testing.assert_array_equal(reconstructor.target_image(canvas, (0, 64, 64, 64)), 1.0)
    with pytest.raises(ValueError, match=r"not the size"):
        reconstructor.target_image(canvas, (0, 0, 32, 32))
    with pytest.raises(ValueError, match=r"expects a \(128, 128\) canvas"):
        reconstructor.target_image(canvas[:64])


def test_tensorrt_engines_are_cached_where_asked(tmp_path: Path) -> None:
    from specklenet.daemon.providers import provider_options

    options = provider_options(TENSORRT, input_name="speckle", frame_px=256, cache_dir=tmp_path)
    assert options["trt_fp16_enable"] and options["trt_engine_cache_path"] == str(tmp_path)
    assert options["trt_profile_opt_shapes"] == "speckle:1x1x256x256"
    assert provider_options(CPU, input_name="speckle", frame_px=256, cache_dir=None) == {}


def test_copies_of_a_model_load_alike(ci_model: Path, tmp_path: Path) -> None:
    copy = shutil.copy(ci_model, tmp_path / "copy.onnx")
    frame = np.random.default_rng(1).exponential(100.0, FRAME).astype(np.float32)
    np.testing.assert_array_equal(load(ci_model).reconstruct(frame), load(Path(copy)).reconstruct(frame))
    assert torch is not None  # training's resize is torch's: the parity tests above need it


def test_callers_on_several_threads_each_get_their_own_frames_reconstruction(
    ci_model: Path, held_out: Path
) -> None:
    frames, _ = pairs_frames(held_out)
    reconstructor = load(ci_model)
    expected = [reconstructor.reconstruct(frame) for frame in frames[:4]]
    barrier, wrong = threading.Barrier(4), []

    def work(k: int) -> None:
        barrier.wait()
        for _ in range(50):
            if not np.array_equal(reconstructor.reconstruct(frames[k]), expected[k]):
                wrong.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
