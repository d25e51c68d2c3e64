"""The twin's public surface: shapes, dtypes, backends, per-frame equality, provenance, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from specklenet.daemon.twin import Twin, TwinConfig


@pytest.fixture(scope="module")
def twin() -> Twin:
    return Twin(TwinConfig(), seed=3)


@pytest.fixture(scope="module")
def canvases() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros((5, 128, 128), np.uint8)
    out[:, 32:96, 32:96] = np.where(rng.random((5, 64, 64)) > 0.7, 255, 0)
    out[3, 32:96, 32:96] = rng.integers(0, 256, (64, 64))  # one grey canvas (8 bit-planes)
    return out


def test_expose_shapes_and_dtypes(twin: Twin, canvases: np.ndarray) -> None:
    frames = twin.expose(canvases)
    assert twin.canvas_shape == (128, 128) and twin.frame_shape == (256, 256)
    assert isinstance(frames, np.ndarray) and frames.shape == (5, 256, 256) and frames.dtype == np.float32
    assert frames.min() >= 0 and frames.max() <= twin.config.camera.saturation_counts


def test_one_frame_equals_its_batch_frame(twin: Twin, canvases: np.ndarray) -> None:
    batch = twin.expose(canvases, frame_ids=[10, 11, 12, 13, 14])
    for i in (0, 3):
        assert np.array_equal(twin.expose_one(canvases[i], 10 + i), batch[i])


def test_frame_ids_seed_only_the_noise(twin: Twin, canvases: np.ndarray) -> None:
    a = twin.expose(canvases[:1], frame_ids=[0])[0]
    b = twin.expose(canvases[:1], frame_ids=[1])[0]
    assert not np.array_equal(a, b)
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


def test_torch_backend_agrees_with_numpy(twin: Twin, canvases: np.ndarray) -> None:
    reference = twin.intensity(canvases)
    tensor = twin.intensity(torch.from_numpy(canvases))
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), reference, rtol=2e-3, atol=2e-4 * float(reference.max()))
    frames = twin.expose(torch.from_numpy(canvases))
    assert isinstance(frames, torch.Tensor) and tuple(frames.shape) == (5, 256, 256)
    assert float(frames.mean()) == pytest.approx(float(twin.expose(canvases).mean()), rel=0.01)


def test_intensity_is_relative_to_the_reference_canvas(twin: Twin) -> None:
    reference = np.zeros((1, 128, 128), np.uint8)
    reference[0, 32:96, 32:96] = 255
    assert float(twin.intensity(reference).mean()) == pytest.approx(1.0, rel=1e-5)
    dark = np.zeros((1, 128, 128), np.uint8)
    assert float(twin.intensity(dark).max()) == 0.0


def test_describe_is_json_provenance(twin: Twin) -> None:
    described = json.loads(json.dumps(twin.describe()))
    assert described["seed"] == 3
    assert described["twin_config"]["diffuser"] == "multislice"
    assert TwinConfig.from_mapping(described["twin_config"]) == twin.config
    assert described["slice_gap_mm"] > 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 64, 64), np.uint8), r"shape \(N, 128, 128\)"),
        (np.zeros((128, 128), np.uint8), r"shape \(N, 128, 128\)"),
        (np.zeros((2, 128, 128), np.float32), "uint8"),
    ],
)
def test_bad_canvases_are_named(twin: Twin, bad: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        twin.expose(bad)


def test_frame_ids_must_match_the_canvases(twin: Twin, canvases: np.ndarray) -> None:
    with pytest.raises(ValueError, match="frame_ids"):
        twin.expose(canvases, frame_ids=[1, 2])


def test_binary_canvas_needs_one_propagation_grey_up_to_eight(canvases: np.ndarray) -> None:
    import array_api_compat

    from specklenet.daemon.twin.pwm import bit_planes

    planes = bit_planes(array_api_compat.array_namespace(canvases), canvases)
    counts = np.bincount(planes.canvas, minlength=5)
    assert counts.tolist() == [1, 1, 1, 8, 1]
    np.testing.assert_allclose(np.bincount(planes.canvas, weights=planes.weight), 1.0, rtol=1e-6)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_bit_planes_merge_exactly_the_equal_planes(library: str) -> None:
    """Planes one pixel apart stay apart, equal ones merge, empty ones go; odd canvas sizes too."""
    import array_api_compat

    from specklenet.daemon.twin.pwm import WEIGHTS, bit_planes

    rng = np.random.default_rng(1)
    canvases = np.zeros((4, 5, 7), np.uint8)
    canvases[0] = 3  # bits 0 and 1 equal everywhere...
    canvases[0, 4, 6] = 1  # ...but one pixel: two planes
    canvases[1] = 255 * (rng.random((5, 7)) > 0.5)  # one plane of weight 1
    canvases[2] = rng.integers(0, 256, (5, 7))
    # canvases[3] stays dark: no plane at all
    array = canvases if library == "numpy" else torch.from_numpy(canvases)
    planes = bit_planes(array_api_compat.array_namespace(array), array)
    got = {}
    for canvas, coefficients, weight in zip(
        np.asarray(planes.canvas), np.asarray(planes.coefficients), np.asarray(planes.weight), strict=True
    ):
        got.setdefault(int(canvas), {})[coefficients.astype(np.uint8).tobytes()] = float(weight)
    expected: dict[int, dict[bytes, float]] = {}
    for index, canvas in enumerate(canvases):
        for bit in range(8):
            plane = ((canvas >> bit) & 1).astype(np.uint8)
            if plane.any():
                by_plane = expected.setdefault(index, {})
                by_plane[plane.tobytes()] = by_plane.get(plane.tobytes(), 0.0) + WEIGHTS[bit]
    assert got.keys() == expected.keys() == {0, 1, 2}
    assert len(got[0]) == 2 and len(got[1]) == 1
    for index, by_plane in expected.items():
        assert got[index].keys() == by_plane.keys()
        for key, weight in by_plane.items():
            assert got[index][key] == pytest.approx(weight, rel=1e-6)


def test_frames_do_not_depend_on_their_batch_companions(twin: Twin) -> None:
    """Each frame is the same alone or beside canvases lit elsewhere, edge pixels included."""
    canvases = np.zeros((3, 128, 128), np.uint8)
    canvases[0, 127, 127] = 255  # the canvas corner
    canvases[1, 0, 5:9] = 255
    canvases[2, 60:70, 60:70] = 200
    batch = twin.intensity(canvases)
    for i in range(3):
        alone = twin.intensity(canvases[i : i + 1])[0]
        assert alone.max() > 0
        np.testing.assert_allclose(batch[i], alone, rtol=1e-4, atol=1e-6 * float(alone.max()))
