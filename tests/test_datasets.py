"""MNIST/LFW loading, resampling to 64×64, embedded stand-ins and deterministic splits."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from specklenet.daemon.errors import FileFormatError
from specklenet.training import datasets
from specklenet.training.datasets import (
    RepeatedImagesWarning,
    StandInWarning,
    draw,
    face_to_target,
    lfw_index,
    lfw_source,
    load_lfw,
    load_mnist,
    resample,
    resample_matrix,
    split_digits,
    split_faces,
    split_indices,
)


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> None:
    header = bytes((0, 0, 8, array.ndim)) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def fake_mnist(folder: Path, *, compress: bool = True, count: int = 6) -> np.ndarray:
    """t10k files whose image i has a lit 8×8 block at rows 10..17, columns 4..11 (grey 200)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 10:18, 4:12] = 200
    suffix = ".gz" if compress else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", images, compress=compress)
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", np.arange(count) % 10, compress=compress)
    return images


# --- resampling ---------------------------------------------------------------------------------------


def test_enlarging_is_bilinear_with_pixel_centred_coordinates() -> None:
    np.testing.assert_allclose(resample_matrix(2, 4) @ [0.0, 1.0], [0.0, 0.25, 0.75, 1.0])
    assert np.allclose(resample_matrix(28, 64).sum(axis=1), 1.0)


def test_shrinking_averages_the_covered_input_area() -> None:
    np.testing.assert_allclose(resample_matrix(4, 2) @ [1.0, 3.0, 5.0, 7.0], [2.0, 6.0])
    np.testing.assert_allclose(
        resample_matrix(3, 2) @ [3.0, 6.0, 9.0], [(3 + 0.5 * 6) / 1.5, (0.5 * 6 + 9) / 1.5]
    )
    assert np.allclose(resample_matrix(150, 64).sum(axis=1), 1.0)


def test_resample_maps_rows_and_columns_independently() -> None:
    image = np.outer(np.arange(4.0), np.ones(6)) * 10  # value = 10 × row
    out = resample(image[None], (2, 3))[0]
    np.testing.assert_allclose(out, [[5.0] * 3, [25.0] * 3])


def test_lfw_crop_is_the_central_150_pixels_then_area_resampled() -> None:
    ramp = np.tile(np.arange(250, dtype=np.float64), (250, 1))  # value = column index
    target = face_to_target(ramp)
    assert target.shape == (64, 64)
    # Output column j averages crop columns [50 + j·150/64, 50 + (j+1)·150/64): centre value below.
    expected = 50 + (np.arange(64) + 0.5) * 150 / 64 - 0.5
    np.testing.assert_allclose(target[10], np.rint(expected), atol=1)
    framed = np.zeros((250, 250))
    framed[50:200, 50:200] = 255  # the crop keeps exactly this square
    assert (face_to_target(framed) == 255).all()


# --- MNIST --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_idx_is_resized_to_64_and_binarised(tmp_path: Path, compress: bool) -> None:
    fake_mnist(tmp_path / "mnist", compress=compress)
    digits = load_mnist(tmp_path)
    assert digits.images.shape == (6, 64, 64)
    assert set(np.unique(digits.images)) == {0, 255}
    rows, cols = np.nonzero(digits.images[0])
    scale = 64 / 28  # the whole 28×28 field maps onto 64×64: block 10..18 → 22.9..41.1
    assert abs(rows.min() - 10 * scale) <= 1
    assert abs(rows.max() + 1 - 18 * scale) <= 1
    assert abs(cols.min() - 4 * scale) <= 1
    assert abs(cols.max() + 1 - 12 * scale) <= 1
    assert list(digits.labels) == ["0", "1", "2", "3", "4", "5"]
    assert set(digits.datasets) == {"mnist-t10k"}
    np.testing.assert_array_equal(digits.source_index, np.arange(6))
    name = "t10k-images-idx3-ubyte" + (".gz" if compress else "")
    expected = hashlib.sha256((tmp_path / "mnist" / name).read_bytes()).hexdigest()
    assert digits.checksums[name] == expected


def test_mnist_grey_levels_are_kept_on_request(tmp_path: Path) -> None:
    fake_mnist(tmp_path, count=2)
    grey = load_mnist(tmp_path, binarise_digits=False)
    assert 200 in grey.images
    assert len(np.unique(grey.images)) > 2


def test_bad_mnist_files_are_named(tmp_path: Path) -> None:
    images = fake_mnist(tmp_path / "a", compress=False)
    data = (tmp_path / "a" / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "a" / "t10k-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(FileFormatError, match=r"t10k-images-idx3-ubyte: truncated"):
        load_mnist(tmp_path / "a")
    write_idx(tmp_path / "a" / "t10k-images-idx3-ubyte", images[:, :, :, None], compress=False)
    with pytest.raises(FileFormatError, match="bad magic number"):
        load_mnist(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(FileFormatError, match="no matching t10k-labels"):
        load_mnist(tmp_path / "b")
    (tmp_path / "b" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(FileFormatError, match="cannot read or decompress"):
        load_mnist(tmp_path / "b")
    (tmp_path / "c").mkdir()
    with pytest.raises(FileFormatError, match="no MNIST IDX files"):
        load_mnist(tmp_path / "c")
    with pytest.raises(FileFormatError, match="no such data folder"):
        load_mnist(tmp_path / "nowhere")


# --- LFW ----------------------------------------------------------------------------------------------


def fake_lfw(folder: Path) -> list[str]:
    """Three people, four JPEGs of 250×250 RGB; person k's images are flat colour (60k, 30k, 10k)."""
    names = []
    for k, (person, count) in enumerate((("Ann_Lee", 2), ("Bo", 1), ("Cy_Dee", 1)), start=1):
        (folder / person).mkdir(parents=True)
        for number in range(1, count + 1):
            name = f"{person}/{person}_{number:04d}.jpg"
            Image.new("RGB", (250, 250), (60 * k, 30 * k, 10 * k)).save(folder / name, quality=95)
            names.append(name)
    (folder / "README.txt").write_text("not an image")
    return sorted(names)


def test_lfw_folder_and_tgz_give_the_same_faces(tmp_path: Path) -> None:
    names = fake_lfw(tmp_path / "data" / "lfw")
    folder = lfw_source(tmp_path / "data")
    assert lfw_index(folder) == names
    from_folder = load_lfw(folder, [3, 0], progress=False)
    assert list(from_folder.labels) == ["Cy_Dee", "Ann_Lee"]
    luma = 0.299 * 180 + 0.587 * 90 + 0.114 * 30  # ITU-R 601 grey of Cy_Dee's colour
    assert abs(from_folder.images[0].mean() - luma) <= 2
    assert from_folder.images.dtype == np.uint8
    with tarfile.open(tmp_path / "lfw-deepfunneled.tgz", "w:gz") as archive:
        archive.add(tmp_path / "data" / "lfw", arcname="lfw-deepfunneled")
    archive_source = lfw_source(tmp_path)
    assert archive_source.name == "lfw-deepfunneled.tgz"
    assert lfw_index(archive_source) == names
    from_archive = load_lfw(archive_source, [3, 0], progress=False)
    np.testing.assert_array_equal(from_archive.images, from_folder.images)
    assert list(from_archive.checksums.values()) == list(from_folder.checksums.values())


def test_missing_or_broken_lfw_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="no LFW images"):
        lfw_source(tmp_path)
    fake_lfw(tmp_path / "lfw")
    (tmp_path / "lfw" / "Bo" / "Bo_0001.jpg").write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match=r"Bo_0001\.jpg: not a readable JPEG"):
        load_lfw(tmp_path / "lfw", [2], progress=False)
    (tmp_path / "lfw.tgz").write_bytes(b"garbage")
    with pytest.raises(FileFormatError, match="not a readable tar archive"):
        lfw_index(tmp_path / "lfw.tgz")


# --- stand-ins and splits -----------------------------------------------------------------------------


def test_stand_ins_warn_and_are_64_pixel_targets() -> None:
    with pytest.warns(StandInWarning, match="sklearn-digits"):
        digits = datasets.load_stand_in("digits")
    with pytest.warns(StandInWarning, match="skimage-lfw"):
        faces = datasets.load_stand_in("faces")
    assert digits.images.shape == (1797, 64, 64)
    assert set(np.unique(digits.images)) == {0, 255}
    assert faces.images.shape == (100, 64, 64)
    assert len(np.unique(faces.images)) > 200
    assert digits.stand_in
    assert faces.stand_in


def test_splits_are_deterministic_disjoint_and_independent_of_n_train() -> None:
    test_a, pool_a = split_indices(1000, seed=3, stream=1, n_test=50)
    test_b, pool_b = split_indices(1000, seed=3, stream=1, n_test=50)
    np.testing.assert_array_equal(test_a, test_b)
    np.testing.assert_array_equal(pool_a, pool_b)
    assert not set(test_a) & set(pool_a)
    assert len(set(test_a) | set(pool_a)) == 1000
    other, _ = split_indices(1000, seed=4, stream=1, n_test=50)
    assert set(other) != set(test_a)
    with pytest.raises(ValueError, match="n_test"):
        split_indices(10, seed=0, stream=1, n_test=10)


def test_draw_is_distinct_while_the_pool_lasts_then_even() -> None:
    rng = np.random.default_rng(0)
    assert len(set(draw(100, 100, rng))) == 100
    counts = np.bincount(draw(10, 25, rng), minlength=10)
    assert counts.min() >= 2
    assert counts.max() <= 3


def test_split_digits_holds_out_test_images_and_warns_when_images_repeat(tmp_path: Path) -> None:
    fake_mnist(tmp_path, count=30)
    split = split_digits(tmp_path, seed=0, n_test=5, n_train=20)
    assert len(split.test) == 5
    assert len(split.train) == 20
    assert len(set(split.train.source_index)) == 20  # distinct while the pool lasts
    assert not set(split.test.source_index) & set(split.train.source_index)
    again = split_digits(tmp_path, seed=0, n_test=5, n_train=10)
    np.testing.assert_array_equal(again.test.source_index, split.test.source_index)
    with pytest.warns(RepeatedImagesWarning, match="40 training digits requested but only 25"):
        split_digits(tmp_path, seed=0, n_test=5, n_train=40)


def test_split_faces_decodes_only_what_it_needs(tmp_path: Path) -> None:
    fake_lfw(tmp_path / "lfw")
    split = split_faces(tmp_path, seed=1, n_test=1, n_train=2, progress=False)
    np.testing.assert_array_equal(split.test.source_index, split_indices(4, seed=1, stream=2, n_test=1)[0])
    assert len(split.test) == 1
    assert len(split.train) == 2
    assert not set(split.test.source_index) & set(split.train.source_index)
    means = {int(image.mean()) // 10 for image in split.train.images}
    assert len(means) == 2  # two different people's flat images


# --- real data ----------------------------------------------------------------------------------------


@pytest.mark.realdata
def test_real_mnist_and_lfw_load_with_the_published_checksums(shared_data: Path) -> None:
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (shared_data / "SHA256SUMS").read_text().splitlines()
        if line
    )
    digits = load_mnist(shared_data)
    assert digits.images.shape == (10000, 64, 64)
    assert digits.checksums["t10k-images-idx3-ubyte.gz"] == sums["mnist/t10k-images-idx3-ubyte.gz"]
    assert np.bincount(digits.labels.astype(int)).tolist()[:3] == [980, 1135, 1032]
    names = lfw_index(lfw_source(shared_data))
    assert len(names) == 13071
    assert names[0] == "AJ_Cook/AJ_Cook_0001.jpg"
    faces = load_lfw(lfw_source(shared_data), [0, 5000], progress=False)
    assert faces.images.shape == (2, 64, 64)
    assert faces.images.std() > 20  # real faces, not flat
