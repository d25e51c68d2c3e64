"""The paper's experimental cases as named configurations, and the targets they train and test on.

Every target is a 64×64 image on the DMD's 128×128 canvas (``canvases[index, row, column]``, uint8
grey levels), placed by its top-left corner. Zhang et al., Methods, Fig. 1c, Fig. 2 and SI C:

====  ===========================================================  ==================  ================
case  training targets (9,950 by default), centred unless stated     output window       tests
====  ===========================================================  ==================  ================
1     LFW faces, 8-bit grey                                           centre 64×64        faces, digits
2     MNIST digits, binary                                            centre 64×64        faces, digits
3     digits enlarged 64→96, centre 64 cropped                        centre 64×64        faces, digits
4a    3, times the fluctuation P(x', y') of Eq. 4 with A = 1          centre 64×64        faces, digits
4b    3, times P with A uniform in (0, 1]                             centre 64×64        faces, digits
4c    two digits superimposed, enlarged, times P (A in (0, 1])        centre 64×64        faces, digits
5     LFW faces (as case 1)                                           centre 64×64        faces, digits at
                                                                                          the centre and
                                                                                          shifted I and II
SI    digits at uniformly random positions inside the canvas          whole 128×128       digits at p1..p4
designed  random grey fields from the forward model (below), no       centre 64×64        faces, digits,
      dataset image                                                                       scenes
====  ===========================================================  ==================  ================

Cases 1–4c and ``designed`` are also tested on a third kind neither dataset holds, ``scenes`` (crops of
scikit-image's sample photographs, :mod:`.designed`), and every case on the mapping probe
(:attr:`CaseData.probe`: one lit square per cell of an 8×8 grid over its output window, :mod:`.probe`).

**The designed case** is not the paper's: it is the training set the paper's conclusion calls for —
lit pixels filling the whole window at random densities, grey levels uniform over 1..255 so that every
DMD bit-plane is on for half of the lit pixels, every spatial scale from one pixel to a quarter window
— drawn from random fields, not from faces or digits (design and reasons: :mod:`.designed`). Its goal:
one network that reconstructs faces at least as well as case 1, digits at least as well as case 2, and
scenes, which neither was trained on.

Tests use the original targets (binary digits, grey faces, not enlarged or modulated), held out from
every training set; the same seed gives the same test images in every case. A test's ground truth is
the canvas inside the output window — also for case 5's shifted tests: what the paper's Fig. 4 shows
is the network's output window, and a perfect inverse of that window reproduces the part of the
shifted target inside it (scored against the displaced target instead, even an exact inverse scores
≤ 0.11, so no network could pass). The first 5 images of each test set are the paper's Table 1 quintet
(:data:`TABLE1_COUNT`).

**P(x', y') as printed goes negative** (A·[sin + sin] spans [−2A, 2A]), and a DMD shows only
intensities in [0, 1]. We add the smallest offset that makes every P non-negative, 2A, and scale by ¼
(the range at A = 1), so the digit is multiplied by

    m(x', y') = (P(x', y') + 2A) / 4 = A · ½ · (1 + ½[sin(kx x' + φx) + sin(ky y' + φy)])  ∈  [0, A].

This keeps P's shape exactly (the fluctuation is P/4, as in any such mapping), never clips, and
keeps A's meaning: m is A times a fixed full-depth pattern, so A is the target's peak intensity as a
fraction of full scale. A = 1 (case 4a) spans the whole 0–255 range; A drawn in (0, 1] (4b, 4c) also
varies the brightness from target to target, as faces' brightness varies. Dark pixels stay dark (SI
A: "the 0 value will not be changed"). The alternative, a modulation of depth A around half scale,
½ + P/4 ∈ [(1 − A)/2, (1 + A)/2], is physical too but keeps every target equally bright and crowds
small-A targets around grey 128 (grey-level entropy over lit pixels, measured for 4b: 7.1 bits
against 7.4 for ours; A = 1 gives 7.9 under both). (x', y') are the column and row of the 96×96
enlarged array; kx, ky are each 2π/16 or 2π/24 and the phases uniform in [0, 2π), drawn independently
per target; the values are stored in the ``modulation_*`` columns.

Functions are pure apart from reading the datasets (thread-safe). Longer than the house's 300 lines:
the case table, the mapping of P and the composition functions that implement them belong together.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np

from specklenet.daemon.records import Targets
from specklenet.training.datasets import (
    TARGET_PX,
    ImageSet,
    binarise,
    centre_crop,
    resample,
    split_digits,
    split_faces,
    to_uint8,
)
from specklenet.training.designed import designed_targets, load_scenes, probe_targets

CANVAS_PX = 128
ENLARGED_PX = 96
CENTRE = (32, 32)
CENTRE_WINDOW = (32, 32, TARGET_PX, TARGET_PX)
WHOLE_CANVAS = (0, 0, CANVAS_PX, CANVAS_PX)
PERIODS_PX = (16.0, 24.0)
TABLE1_COUNT = 5
_BLOCK = 1000  # targets transformed at a time
# Case 5's shifted test areas I and II (top-left corners): 16 px right, and 24 px down and 24 px left,
# both inside the illuminated canvas and mostly outside the trained centre.
CASE5_POSITIONS = {"centre": CENTRE, "shift1": (32, 48), "shift2": (56, 8)}
# SI: four placements 24 px off the centre diagonally, one per quadrant of the canvas.
SI_POSITIONS = {"p1": (8, 8), "p2": (8, 56), "p3": (56, 8), "p4": (56, 56)}

Modulation = Literal["none", "fixed", "random"]
TrainKind = Literal["faces", "digits", "designed"]
TestKind = Literal["faces", "digits", "scenes"]
TEST_KINDS: tuple[TestKind, ...] = ("faces", "digits", "scenes")


@dataclass(frozen=True)
class Case:
    """One experimental case (see the module docstring's table).

    Attributes:
        name: "1", "2", "3", "4a", "4b", "4c", "5", "SI" or "designed".
        title: one line for listings and ``--help``.
        paper: where the paper describes it.
        train_kind: what the training targets are made of.
        enlarge: digits enlarged 64→96, then the centre 64×64 cropped.
        modulation: "fixed" multiplies by m with A = 1, "random" with A uniform in (0, 1].
        digits_per_target: 2 superimposes two digits (case 4c).
        random_placement: training targets anywhere inside the canvas (SI), else centred.
        output_window: (row0, col0, rows, columns) the network reconstructs.
        test_kinds: test sets' image kinds.
        test_positions: name → top-left corner of the test targets ("centre" keeps the plain name).
        ground_truth: what a test's ground truth is, in words.
    """

    name: str
    title: str
    paper: str
    train_kind: TrainKind
    enlarge: bool = False
    modulation: Modulation = "none"
    digits_per_target: int = 1
    random_placement: bool = False
    output_window: tuple[int, int, int, int] = CENTRE_WINDOW
    test_kinds: tuple[TestKind, ...] = TEST_KINDS
    test_positions: Mapping[str, tuple[int, int]] = field(default_factory=lambda: {"centre": CENTRE})
    ground_truth: str = "the canvas inside the centre 64×64 output window (the target itself)"

    def test_names(self) -> list[str]:
        """Keys of :attr:`CaseData.tests`: ``"faces"``, ``"digits"``, ``"faces-shift1"``, ..."""
        return [
            kind if position == "centre" else f"{kind}-{position}"
            for position in self.test_positions
            for kind in self.test_kinds
        ]


CASES: dict[str, Case] = {
    case.name: case
    for case in (
        Case("1", "faces: train on LFW faces", "Fig. 1c and Fig. 3, case 1", "faces"),
        Case("2", "digits: train on binary MNIST digits", "Fig. 1c and Fig. 3, case 2", "digits"),
        Case(
            "3",
            "enlarged digits: 64→96, centre 64 cropped",
            "Fig. 3, case 3; Fig. S4",
            "digits",
            enlarge=True,
        ),
        Case(
            "4a",
            "enlarged digits × intensity fluctuation P, A = 1",
            "Fig. 2a, Fig. 3 case 4a; Fig. S3, S4",
            "digits",
            enlarge=True,
            modulation="fixed",
        ),
        Case(
            "4b",
            "enlarged digits × intensity fluctuation P, A in (0, 1]",
            "Fig. 2b, Fig. 3 case 4b",
            "digits",
            enlarge=True,
            modulation="random",
        ),
        Case(
            "4c",
            "two superimposed digits, enlarged, × P, A in (0, 1]",
            "Fig. 2c, Fig. 3 case 4c",
            "digits",
            enlarge=True,
            modulation="random",
            digits_per_target=2,
        ),
        Case(
            "5",
            "faces at the centre; tested also at two shifted positions",
            "Fig. 1c and Fig. 4, case 5",
            "faces",
            test_kinds=("faces", "digits"),
            test_positions=CASE5_POSITIONS,
            ground_truth="the canvas inside the centre 64×64 output window: at a shifted position, the "
            "part of the target inside it (what Fig. 4 shows)",
        ),
        Case(
            "SI",
            "digits at random positions in the whole canvas; tested at 4 positions",
            "SI section C, Fig. S6",
            "digits",
            random_placement=True,
            output_window=WHOLE_CANVAS,
            test_kinds=("digits",),
            test_positions=SI_POSITIONS,
            ground_truth="the whole 128×128 canvas",
        ),
        Case(
            "designed",
            "designed: random grey fields filling the window, every bit-plane exercised (not the paper's)",
            "the paper's Discussion and Conclusion (a training set designed for generalisation)",
            "designed",
        ),
    )
}


@dataclass(frozen=True, eq=False)
class CaseData:
    """A case's training targets, its named test sets (keys: :meth:`Case.test_names`) and its probe
    targets (one lit square per cell of an 8×8 grid over the output window, row-major; :mod:`.probe`)."""

    case: Case
    train: Targets
    tests: dict[str, Targets]
    probe: Targets


def build_case(
    name: str,
    *,
    data_dir: Path | None = None,
    seed: int = 0,
    n_train: int = 9950,
    n_test: int = 50,
    binarise_digits: bool = True,
    progress: bool = True,
) -> CaseData:
    """Build a case's training and test targets, deterministically from ``seed``.

    Args:
        name: a key of :data:`CASES`.
        data_dir: folder with ``mnist/`` and ``lfw/`` (see :mod:`.datasets`); None uses the embedded
            low-resolution stand-ins, with a warning.
        n_train: training targets; n_test: held-out test images of each kind.
        binarise_digits: False keeps MNIST's grey levels instead of the paper's binary digits.
        progress: show a progress bar while decoding LFW images.
    """
    if name not in CASES:
        raise KeyError(f"unknown case {name!r}; the cases are {', '.join(CASES)}")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be >= 1, got {n_train} and {n_test}")
    case = CASES[name]
    per_target = case.digits_per_target
    digits = split_digits(
        data_dir,
        seed=seed,
        n_test=n_test,
        n_train=n_train * per_target if case.train_kind == "digits" else 0,
        binarise_digits=binarise_digits,
    )
    faces_train = n_train if case.train_kind == "faces" else 0
    faces = split_faces(data_dir, seed=seed, n_test=n_test, n_train=faces_train, progress=progress)
    scenes = load_scenes(n_test, seed) if "scenes" in case.test_kinds else None
    sets = (digits.train, faces.train) + ((scenes,) if scenes is not None else ())
    provenance = _provenance(case, seed, n_train, n_test, binarise_digits, *sets)
    rng = np.random.default_rng([seed, 3, zlib.crc32(name.encode())])
    if case.train_kind == "designed":
        train = _designed_training_targets(case, n_train, rng)
    else:
        train = _training_targets(case, faces.train if case.train_kind == "faces" else digits.train, rng)
    tests = {}
    test_images = {"faces": faces.test, "digits": digits.test, "scenes": scenes}
    for position_name, position in case.test_positions.items():
        for kind in case.test_kinds:
            key = kind if position_name == "centre" else f"{kind}-{position_name}"
            tests[key] = _test_targets(case, test_images[kind], position, f"test-{key}", provenance)
    probe = Targets.from_canvases(
        probe_targets(case.output_window, CANVAS_PX),
        case=case.name,
        split="probe",
        output_window=case.output_window,
        provenance=provenance,
    )
    return CaseData(case, Targets(split="train", provenance=provenance, **train), tests, probe)


def _designed_training_targets(case: Case, count: int, rng: np.random.Generator) -> dict:
    images, columns = designed_targets(count, rng)
    placements = np.tile(CENTRE, (count, 1))
    columns.update(
        dataset=np.full(count, "designed"),
        source_index=np.full((count, 2), -1, np.int64),
        label=np.full(count, "designed"),
        placement=placements.astype(np.int16),
    )
    return {
        "canvases": place(images, placements),
        "columns": columns,
        "case": case.name,
        "output_window": case.output_window,
    }


# --- target composition --------------------------------------------------------------------------------


def place(images: np.ndarray, placements: np.ndarray, canvas_px: int = CANVAS_PX) -> np.ndarray:
    """uint8 ``(N, canvas_px, canvas_px)`` canvases with each image's top-left corner at ``placements[i]``."""
    count, rows, cols = images.shape
    canvases = np.zeros((count, canvas_px, canvas_px), np.uint8)
    for canvas, image, (row, col) in zip(canvases, images, placements, strict=True):
        if not (0 <= row <= canvas_px - rows and 0 <= col <= canvas_px - cols):
            raise ValueError(f"placement ({row}, {col}) puts a {rows}×{cols} image outside the canvas")
        canvas[row : row + rows, col : col + cols] = image
    return canvases


def enlarge(images: np.ndarray, *, binary: bool) -> np.ndarray:
    """64×64 → 96×96, bilinear; binary images are re-binarised (they stay 0/255)."""
    enlarged = to_uint8(resample(images, (ENLARGED_PX, ENLARGED_PX)))
    return binarise(enlarged) if binary else enlarged


def modulation(
    amplitude: np.ndarray, periods_px: np.ndarray, phases_rad: np.ndarray, size: int
) -> np.ndarray:
    """float64 ``(N, size, size)``: m = (P + 2A) / 4 with P of Eq. 4 (module docstring), in [0, A].

    Args:
        amplitude: A per target ``(N,)``, in (0, 1].
        periods_px: ``(N, 2)`` periods (x, y) in pixels, so kx = 2π / periods_px[:, 0].
        phases_rad: ``(N, 2)`` phases (φx, φy).
    """
    coordinate = np.arange(size, dtype=np.float64)
    x_term = np.sin(2 * np.pi * coordinate[None, :] / periods_px[:, :1] + phases_rad[:, :1])  # (N, x')
    y_term = np.sin(2 * np.pi * coordinate[None, :] / periods_px[:, 1:] + phases_rad[:, 1:])  # (N, y')
    fluctuation = amplitude[:, None, None] * (y_term[:, :, None] + x_term[:, None, :])  # P[n, y', x']
    return (fluctuation + 2.0 * amplitude[:, None, None]) / 4.0


def _training_targets(case: Case, images: ImageSet, rng: np.random.Generator) -> dict:
    count = len(images) // case.digits_per_target
    order = np.arange(count * case.digits_per_target).reshape(count, case.digits_per_target)
    if case.digits_per_target == 2:
        order = _distinct_pairs(order, images.source_index)
    pixels = images.images[order].max(axis=1)  # superimposed digits: the union of their lit pixels
    columns = _identity_columns(images, order)
    binary = bool(np.isin(images.images, (0, 255)).all())
    if case.enlarge:
        if case.modulation != "none":
            fixed = case.modulation == "fixed"
            amplitude = np.ones(count) if fixed else 1.0 - rng.uniform(0.0, 1.0, count)  # (0, 1]
            periods = rng.choice(PERIODS_PX, size=(count, 2))
            phases = rng.uniform(0.0, 2 * np.pi, (count, 2))
            columns["modulation_amplitude"] = amplitude.astype(np.float32)
            columns["modulation_period_px"] = periods.astype(np.float32)
            columns["modulation_phase_rad"] = phases.astype(np.float32)
        for block in range(0, count, _BLOCK):  # bounds the float64 temporaries to ~100 MB
            part = slice(block, block + _BLOCK)
            enlarged = enlarge(pixels[part], binary=binary)
            if case.modulation != "none":
                m = modulation(amplitude[part], periods[part], phases[part], ENLARGED_PX)
                enlarged = to_uint8(enlarged * m)
            pixels[part] = centre_crop(enlarged, TARGET_PX)
    if case.random_placement:
        placements = rng.integers(0, CANVAS_PX - TARGET_PX + 1, (count, 2))
    else:
        placements = np.tile(CENTRE, (count, 1))
    columns["placement"] = placements.astype(np.int16)
    return {
        "canvases": place(pixels, placements),
        "columns": columns,
        "case": case.name,
        "output_window": case.output_window,
    }


def _test_targets(
    case: Case, images: ImageSet, position: tuple[int, int], split: str, provenance: dict
) -> Targets:
    placements = np.tile(position, (len(images), 1))
    columns = _identity_columns(images, np.arange(len(images))[:, None])
    columns["placement"] = placements.astype(np.int16)
    canvases = place(images.images, placements)
    return Targets(canvases, columns, case.name, split, case.output_window, provenance)


def _identity_columns(images: ImageSet, order: np.ndarray) -> dict[str, np.ndarray]:
    """dataset, source_index (N, 2) and label columns for targets made of the images ``order[i]``."""
    datasets = images.datasets[order]
    labels = images.labels[order]
    source_index = np.full((len(order), 2), -1, np.int64)
    source_index[:, : order.shape[1]] = images.source_index[order]
    return {
        "dataset": np.array(["+".join(row) for row in datasets]),
        "source_index": source_index,
        "label": np.array(["+".join(row) for row in labels]),
    }


def _distinct_pairs(order: np.ndarray, source_index: np.ndarray) -> np.ndarray:
    """Re-pair rows whose two digits are the same source image (possible once the pool repeats) by
    swapping second digits with the next row; every drawn image stays used exactly once."""
    order = order.copy()
    for _ in range(100):
        same = np.flatnonzero(source_index[order[:, 0]] == source_index[order[:, 1]])
        if not same.size or len(order) < 2:
            break
        for row in same:
            other = (row + 1) % len(order)
            order[[row, other], 1] = order[[other, row], 1]
    return order


def _provenance(
    case: Case, seed: int, n_train: int, n_test: int, binarise_digits: bool, *sets: ImageSet
) -> dict:
    checksums = {name: digest for images in sets for name, digest in images.checksums.items()}
    return {
        "case": case.name,
        "paper": case.paper,
        "seed": seed,
        "n_train": n_train,
        "n_test": n_test,
        "binarise_digits": binarise_digits,
        "stand_in": any(images.stand_in for images in sets),
        "dataset_sha256": checksums,
        "specklenet_version": metadata.version("specklenet"),
    }
