"""Each experimental case builds, from real data and from the stand-ins, and has its defining property."""

from __future__ import annotations

import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from specklenet.training.analysis import coverage
from specklenet.training.cases import (
    CASE5_POSITIONS,
    CASES,
    CENTRE_WINDOW,
    SI_POSITIONS,
    WHOLE_CANVAS,
    CaseData,
    _distinct_pairs,
    build_case,
    modulation,
    place,
)
from specklenet.training.datasets import RepeatedImagesWarning, StandInWarning

N_TRAIN, N_TEST = 400, 10


@cache
def real_case(name: str, data_dir: Path) -> CaseData:
    return build_case(name, data_dir=data_dir, n_train=N_TRAIN, n_test=N_TEST, progress=False)


@pytest.fixture
def real(shared_data: Path):
    return lambda name: real_case(name, shared_data)


def identities(targets) -> set[tuple[str, int]]:
    """(dataset, source index) of every image used by ``targets``."""
    names = [name.split("+") for name in targets.columns["dataset"]]
    return {
        (parts[k], int(row[k]))
        for parts, row in zip(names, targets.columns["source_index"], strict=True)
        for k in range(len(parts))
    }


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(CASES))
def test_every_case_builds_from_real_data_with_held_out_tests(real, name: str) -> None:
    data = real(name)
    assert data.train.canvases.shape == (N_TRAIN, 128, 128)
    assert data.train.case == name
    assert data.train.split == "train"
    assert list(data.tests) == data.case.test_names()
    for key, test in data.tests.items():
        assert len(test) == N_TEST
        assert test.split == f"test-{key}"
        assert not identities(test) & identities(data.train), f"{key} test images leak into training"
    assert data.train.output_window == (WHOLE_CANVAS if name == "SI" else CENTRE_WINDOW)
    assert data.train.provenance["dataset_sha256"]
    assert not data.train.provenance["stand_in"]


@pytest.mark.realdata
def test_the_same_seed_tests_every_case_on_the_same_images(real) -> None:
    for key in ("faces", "digits"):
        np.testing.assert_array_equal(real("1").tests[key].canvases, real("4c").tests[key].canvases)


@pytest.mark.realdata
def test_digits_cases_differ_only_by_their_transformation(real) -> None:
    """Cases 2, 3, 4a and 4b draw the same digits; enlarging and modulating never light a dark pixel."""
    plain, enlarged, fixed = real("2").train, real("3").train, real("4a").train
    np.testing.assert_array_equal(plain.columns["source_index"], fixed.columns["source_index"])
    assert set(np.unique(plain.canvases)) == {0, 255}
    assert set(np.unique(enlarged.canvases)) == {0, 255}
    assert not fixed.canvases[enlarged.canvases == 0].any()


@pytest.mark.realdata
def test_enlarging_lights_more_area_and_modulation_spreads_grey_levels(real) -> None:
    summary = {name: coverage(real(name).train) for name in ("1", "2", "3", "4a", "4b", "4c")}
    assert summary["3"].lit_area > 1.5 * summary["2"].lit_area
    assert summary["3"].never_lit_window < summary["2"].never_lit_window
    assert summary["2"].never_lit_window > 0.1  # MNIST's black border (Fig. 1b)
    assert summary["1"].never_lit_window == 0.0  # faces light every pixel
    for name in ("4a", "4b", "4c"):
        assert summary[name].grey_entropy_bits > summary["3"].grey_entropy_bits + 1.0, name
        assert summary[name].lit_grey_entropy_bits > 6.0, name
    assert summary["4c"].lit_area > summary["4b"].lit_area  # two superimposed digits


@pytest.mark.realdata
def test_case_4_records_the_fluctuation_it_drew(real) -> None:
    fixed, drawn, pairs = real("4a").train, real("4b").train, real("4c").train
    assert (fixed.columns["modulation_amplitude"] == 1.0).all()
    amplitude = drawn.columns["modulation_amplitude"]
    assert 0.0 < amplitude.min() < 0.2
    assert 0.8 < amplitude.max() <= 1.0
    assert set(np.unique(drawn.columns["modulation_period_px"])) == {16.0, 24.0}
    phases = drawn.columns["modulation_phase_rad"]
    assert phases.min() >= 0.0
    assert phases.max() < 2 * np.pi
    # The brightest pixel of each target is at most A of full scale (m ≤ A).
    assert (drawn.canvases.max(axis=(1, 2)) <= np.ceil(255 * amplitude) + 1).all()
    assert (pairs.columns["source_index"] >= 0).all()
    assert (pairs.columns["source_index"][:, 0] != pairs.columns["source_index"][:, 1]).all()
    assert "+" in pairs.columns["label"][0]


@pytest.mark.realdata
def test_case_5_scores_the_output_window_against_the_canvas_inside_it(real) -> None:
    data = real("5")
    assert set(data.tests) == {
        "faces",
        "digits",
        "faces-shift1",
        "digits-shift1",
        "faces-shift2",
        "digits-shift2",
    }
    for key, position in (
        ("faces-shift1", CASE5_POSITIONS["shift1"]),
        ("digits-shift2", CASE5_POSITIONS["shift2"]),
    ):
        shifted = data.tests[key]
        assert (shifted.columns["placement"] == position).all()
        assert shifted.output_window == CENTRE_WINDOW  # the network's window stays put, and so does
        np.testing.assert_array_equal(
            shifted.ground_truth(), shifted.canvases[:, 32:96, 32:96] / np.float32(255)
        )
        centred = data.tests[key.split("-")[0]]  # the truth: what the window shows (Fig. 4)
        assert not np.array_equal(shifted.ground_truth(), centred.ground_truth())
        row, col = position  # the part of the shifted target inside the window, at its place there
        overlap = shifted.ground_truth()[:, max(row - 32, 0) :, max(col - 32, 0) :]
        shown = centred.ground_truth()[:, max(32 - row, 0) :, max(32 - col, 0) :]
        rows, cols = min(overlap.shape[1], shown.shape[1]), min(overlap.shape[2], shown.shape[2])
        np.testing.assert_array_equal(overlap[:, :rows, :cols], shown[:, :rows, :cols])


@pytest.mark.realdata
def test_si_placements_cover_the_canvas(real) -> None:
    data = real("SI")
    placements = data.train.columns["placement"]
    assert placements.min() == 0
    assert placements.max() == 64
    assert coverage(data.train).never_lit_canvas < 0.5 * coverage(real("2").train).never_lit_canvas
    footprint = np.zeros((128, 128), bool)  # the union of the placed 64×64 squares
    for row, col in placements:
        footprint[row : row + 64, col : col + 64] = True
    assert footprint.mean() > 0.98
    for key, position in zip(data.tests, SI_POSITIONS.values(), strict=True):
        assert (data.tests[key].columns["placement"] == position).all()
        np.testing.assert_array_equal(data.tests[key].ground_truth().shape, (N_TEST, 128, 128))


@pytest.mark.parametrize("name", list(CASES))
def test_every_case_builds_from_the_embedded_stand_ins(name: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = build_case(name, n_train=60, n_test=5, progress=False)
    assert any(issubclass(w.category, StandInWarning) for w in caught)
    assert len(data.train) == 60
    assert list(data.tests) == data.case.test_names()
    assert data.train.provenance["stand_in"]
    assert data.train.columns["dataset"][0].startswith(("sklearn-digits", "skimage-lfw", "designed"))
    assert len(data.probe) == 64 and data.probe.output_window == data.train.output_window


def test_a_training_set_larger_than_the_stand_in_pool_repeats_with_a_warning() -> None:
    with pytest.warns(StandInWarning), pytest.warns(RepeatedImagesWarning, match="faces"):
        data = build_case("1", n_train=120, n_test=5, progress=False)
    assert len(data.train) == 120


def test_superimposed_digits_are_re_paired_when_both_are_the_same_image() -> None:
    source_index = np.array([5, 5, 7, 8, 9, 9])  # positions 0/1 and 4/5 hold the same images
    order = _distinct_pairs(np.arange(6).reshape(3, 2), source_index)
    pairs = source_index[order]
    assert (pairs[:, 0] != pairs[:, 1]).all()
    assert sorted(order.ravel()) == list(range(6))  # every drawn image still used once


def test_builds_are_deterministic_by_seed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandInWarning)
        first = build_case("4b", n_train=30, n_test=5, seed=7)
        second = build_case("4b", n_train=30, n_test=5, seed=7)
        other = build_case("4b", n_train=30, n_test=5, seed=8)
    np.testing.assert_array_equal(first.train.canvases, second.train.canvases)
    assert not np.array_equal(first.train.canvases, other.train.canvases)


def test_modulation_is_p_shifted_by_2a_and_scaled_into_0_to_a() -> None:
    amplitude = np.array([1.0, 0.3])
    periods = np.array([[16.0, 24.0], [24.0, 16.0]])
    phases = np.array([[0.0, np.pi / 2], [1.0, 2.0]])
    m = modulation(amplitude, periods, phases, 96)
    x, y = np.meshgrid(np.arange(96), np.arange(96))  # x' = column, y' = row
    p = 0.3 * (np.sin(2 * np.pi * x / 24 + 1.0) + np.sin(2 * np.pi * y / 16 + 2.0))
    np.testing.assert_allclose(m[1], (p + 0.6) / 4)
    assert m[0].min() >= 0.0
    assert m[0].max() <= 1.0
    assert m[0].min() < 0.01  # A = 1 reaches full depth ...
    assert m[0].max() > 0.99  # ... and full scale
    assert m[1].max() <= 0.3 + 1e-12


def test_place_puts_the_top_left_corner_and_refuses_the_outside() -> None:
    canvases = place(np.full((1, 64, 64), 7, np.uint8), np.array([[10, 60]]))
    assert canvases[0, 10, 60] == 7
    assert canvases[0, 73, 123] == 7
    assert canvases[0, 9, 60] == 0
    assert canvases.sum() == 7 * 64 * 64
    with pytest.raises(ValueError, match="outside the canvas"):
        place(np.zeros((1, 64, 64), np.uint8), np.array([[65, 0]]))


def test_unknown_case_is_named() -> None:
    with pytest.raises(KeyError, match="unknown case '6'"):
        build_case("6")


def test_the_designed_set_fills_the_window_and_exercises_every_bit_plane() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StandInWarning)
        data = build_case("designed", n_train=400, n_test=5, progress=False)
        digits = build_case("2", n_train=400, n_test=5, progress=False)
    window = data.train.canvases[:, 32:96, 32:96]
    assert not data.train.canvases[:, :32].any()  # centred, nothing outside the window
    lit = window > 0
    assert lit.any(axis=0).all()  # no never-lit pixel (MNIST: a black border)
    assert lit.mean(axis=0).min() > 0.35 and lit.mean(axis=0).max() < 0.75  # every pixel lit about half
    levels = window[lit]
    for plane in range(8):  # each bit-plane on for half of the lit pixels
        assert abs(((levels >> plane) & 1).mean() - 0.5) < 0.02, plane
    assert coverage(data.train).lit_grey_entropy_bits > 7.9
    density = data.train.columns["designed_density"]
    assert density.min() < 0.2 and density.max() > 0.9  # sparse and full targets
    np.testing.assert_allclose(lit.mean(axis=(1, 2)), density, atol=1 / 4096 + 1e-6)
    assert set(data.tests) == {"faces", "digits", "scenes"}  # the same held-out images as case 2
    for kind in ("faces", "digits", "scenes"):
        np.testing.assert_array_equal(data.tests[kind].canvases, digits.tests[kind].canvases)


def test_scenes_are_grey_crops_of_neither_dataset_and_deterministic() -> None:
    from specklenet.training.designed import load_scenes

    scenes = load_scenes(20, seed=0)
    assert scenes.images.shape == (20, 64, 64)
    assert len(np.unique(scenes.images)) > 200  # grey, not binary
    assert len({label.split("@")[0] for label in scenes.labels}) > 5
    np.testing.assert_array_equal(scenes.images, load_scenes(20, seed=0).images)
    assert not np.array_equal(scenes.images, load_scenes(20, seed=1).images)


def test_probe_lights_one_square_per_grid_cell() -> None:
    from specklenet.training.designed import probe_targets

    probes = probe_targets(CENTRE_WINDOW, 128)
    assert probes.shape == (64, 128, 128)
    assert not probes[:, :32].any() and not probes[:, 96:].any()  # inside the window only
    union = np.zeros((128, 128), bool)
    for index, canvas in enumerate(probes):
        rows, cols = np.nonzero(canvas)
        assert len(rows) == 16 and set(canvas[rows, cols]) == {255}  # a 4×4 square at full grey
        assert (rows.min() - 32) // 8 == index // 8 and (cols.min() - 32) // 8 == index % 8  # its cell
        union |= canvas > 0
    assert union.sum() == 64 * 16  # disjoint
