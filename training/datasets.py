"""The paper's two image sources, MNIST digits and LFW faces, as 64×64 uint8 targets.

Sources (``data_dir`` is the folder the user names, e.g. ``../shared/data``):
    MNIST: the original IDX files, gzip-compressed or not, in ``data_dir/mnist/`` or ``data_dir``
        itself: ``t10k-images-idx3-ubyte[.gz]`` + ``t10k-labels-idx1-ubyte[.gz]`` and, when present,
        the ``train-`` pair. Each file is its own dataset (``mnist-t10k``, ``mnist-train``).
    LFW: the standard layout ``<Person>/<Person>_NNNN.jpg`` in ``data_dir/lfw/``, or the archive
        ``data_dir/lfw*.tgz`` (e.g. ``lfw-deepfunneled.tgz``). Images are indexed in sorted path order.
    Embedded defaults (``data_dir=None``): scikit-learn's 1,797 handwritten digits (8×8, 17 grey
        levels) and scikit-image's LFW subset (the 100 faces, 25×25). They are low-resolution
        stand-ins, loaded with a :class:`StandInWarning`.

Resampling to the 64×64 target (:func:`resample`): a separable linear map with half-pixel-centred
coordinates. Enlarging (MNIST 28→64, the stand-ins) is bilinear; shrinking (LFW) averages the input
area each output pixel covers (box filter, no aliasing). MNIST keeps its whole 28×28 field, including
the 4-pixel empty border (the paper's black edges); LFW is first centre-cropped to 150×150 of its
250×250, which keeps the face and drops most background and the deep-funneled images' black corners.
Faces become 8-bit grey with ITU-R 601 luma (Pillow's "L"). Digits are then binarised by default
(grey ≥ 128 → 255, else 0), as the paper treats them as binary targets; ``binarise=False`` keeps grey.

Images are ``images[index, row, column]`` uint8. Functions are pure (thread-safe) apart from reading
files and emitting warnings.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import re
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from specklenet.daemon.errors import FileFormatError

TARGET_PX = 64
LFW_CROP_PX = 150
BINARY_THRESHOLD = 128
_LFW_NAME = re.compile(r"(?:^|/)([^/]+)/\1_(\d{4})\.jpg$")

Kind = Literal["digits", "faces"]


class StandInWarning(UserWarning):
    """The embedded low-resolution stand-in datasets are in use instead of MNIST or LFW."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images from one or more source datasets, resampled to the target size.

    Attributes:
        kind: ``"digits"`` or ``"faces"``.
        images: uint8 ``(N, 64, 64)``.
        labels: str ``(N,)``: the digit, or the person's name.
        datasets: str ``(N,)``: each image's source: ``"mnist-t10k"``, ``"mnist-train"``, ``"lfw"``,
            ``"sklearn-digits"``, ``"skimage-lfw"``.
        source_index: int64 ``(N,)``: index in that source (file order, or sorted LFW path order).
        checksums: SHA-256 of what was read, by file name (for LFW: one digest over the sorted
            ``path sha256`` lines of the images read), for provenance.
        stand_in: True for the embedded low-resolution defaults.
    """

    kind: Kind
    images: np.ndarray
    labels: np.ndarray
    datasets: np.ndarray
    source_index: np.ndarray
    checksums: dict[str, str] = field(default_factory=dict)
    stand_in: bool = False

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, positions: np.ndarray) -> ImageSet:
        """The images at ``positions`` in this set (not source indices), in that order."""
        return replace(
            self,
            images=self.images[positions],
            labels=self.labels[positions],
            datasets=self.datasets[positions],
            source_index=self.source_index[positions],
        )

    @staticmethod
    def concatenate(sets: Sequence[ImageSet]) -> ImageSet:
        """One set holding all images of ``sets`` (same kind), in order."""
        return ImageSet(
            sets[0].kind,
            np.concatenate([s.images for s in sets]),
            np.concatenate([s.labels for s in sets]),
            np.concatenate([s.datasets for s in sets]),
            np.concatenate([s.source_index for s in sets]),
            {k: v for s in sets for k, v in s.checksums.items()},
            any(s.stand_in for s in sets),
        )


def resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """float64 ``(n_out, n_in)`` matrix resampling one axis: bilinear when enlarging, area when shrinking.

    Coordinates are pixel-centred: output pixel j sits at input position (j + ½)·n_in/n_out − ½.
    Each row sums to 1, so flat images stay flat.
    """
    scale = n_in / n_out
    matrix = np.zeros((n_out, n_in))
    if n_out >= n_in:
        position = np.clip((np.arange(n_out) + 0.5) * scale - 0.5, 0, n_in - 1)
        left = np.minimum(np.floor(position).astype(int), n_in - 2) if n_in > 1 else np.zeros(n_out, int)
        weight = position - left
        matrix[np.arange(n_out), left] = 1 - weight
        if n_in > 1:
            matrix[np.arange(n_out), left + 1] += weight
        return matrix
    for j in range(n_out):  # box filter: the overlap of [j·s, (j+1)·s) with each input pixel
        start, stop = j * scale, (j + 1) * scale
        for i in range(int(np.floor(start)), int(np.ceil(stop))):
            matrix[j, i] = min(stop, i + 1) - max(start, i)
    return matrix / scale


def resample(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample ``images[index, row, column]`` (or one image) to ``shape``; returns float64."""
    rows = resample_matrix(images.shape[-2], shape[0])
    cols = resample_matrix(images.shape[-1], shape[1])
    # Two BLAS contractions: columns (..., i, j)·(c, j) → (..., i, c), then rows → (..., c, r).
    along_columns = np.tensordot(images.astype(np.float64), cols, axes=([-1], [1]))
    return np.swapaxes(np.tensordot(along_columns, rows, axes=([-2], [1])), -1, -2)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Round and clip float grey levels to uint8 0..255."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def binarise(images: np.ndarray) -> np.ndarray:
    """uint8 0/255: grey levels ≥ 128 become 255 (the paper's binary digits)."""
    return np.where(images >= BINARY_THRESHOLD, 255, 0).astype(np.uint8)


def centre_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central ``size``×``size`` pixels (the extra pixel goes to the end when odd)."""
    top = (images.shape[-2] - size) // 2
    left = (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


# --- MNIST -------------------------------------------------------------------------------------------


def load_mnist(data_dir: Path, *, binarise_digits: bool = True) -> ImageSet:
    """MNIST from IDX files (see the module docstring): the train images (if present), then t10k.

    Cached per folder for the life of the process (the arrays are read-only).
    """
    folder = data_dir / "mnist" if (data_dir / "mnist").is_dir() else data_dir
    if not folder.is_dir():
        raise FileFormatError(f"{data_dir}: no such data folder")
    return _load_mnist(folder, folder.stat().st_mtime_ns, binarise_digits)


@functools.lru_cache(maxsize=4)
def _load_mnist(folder: Path, mtime_ns: int, binarise_digits: bool) -> ImageSet:
    sets = []
    for part in ("train", "t10k"):
        images_path = _idx_path(folder, f"{part}-images-idx3-ubyte")
        if images_path is None:
            continue
        labels_path = _idx_path(folder, f"{part}-labels-idx1-ubyte")
        if labels_path is None:
            raise FileFormatError(
                f"{folder}: {images_path.name} has no matching {part}-labels-idx1-ubyte[.gz]"
            )
        raw_images, raw_labels = _read_idx(images_path, 3), _read_idx(labels_path, 1)
        if len(raw_images) != len(raw_labels):
            raise FileFormatError(f"{images_path}: {len(raw_images)} images but {len(raw_labels)} labels")
        images = to_uint8(resample(raw_images, (TARGET_PX, TARGET_PX)))
        sets.append(
            ImageSet(
                "digits",
                binarise(images) if binarise_digits else images,
                raw_labels.astype(str),
                np.full(len(raw_labels), f"mnist-{part}"),
                np.arange(len(raw_labels), dtype=np.int64),
                {path.name: _sha256(path.read_bytes()) for path in (images_path, labels_path)},
            )
        )
    if not sets:
        raise FileFormatError(f"{folder}: no MNIST IDX files (t10k-images-idx3-ubyte[.gz] and labels) found")
    mnist = ImageSet.concatenate(sets)
    for array in (mnist.images, mnist.labels, mnist.datasets, mnist.source_index):
        array.setflags(write=False)
    return mnist


def _idx_path(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file of unsigned bytes (magic 0x0000080N, big-endian sizes) as a uint8 array."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise FileFormatError(f"{path}: cannot read or decompress: {error}") from error
    header = 4 + 4 * ndim
    if len(data) < header or data[:4] != bytes((0, 0, 8, ndim)):
        raise FileFormatError(f"{path}: not an IDX file of {ndim}-D unsigned bytes (bad magic number)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise FileFormatError(
            f"{path}: truncated or padded: {len(data)} bytes, the header promises {expected}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


# --- LFW ---------------------------------------------------------------------------------------------


def lfw_source(data_dir: Path) -> Path:
    """The LFW folder or ``.tgz`` archive under ``data_dir``; :class:`FileFormatError` when absent."""
    for candidate in (data_dir / "lfw", data_dir):
        if candidate.is_dir() and any(candidate.glob("*/*_0001.jpg")):
            return candidate
    archives = sorted(data_dir.glob("lfw*.tgz")) + sorted(data_dir.glob("lfw/*.tgz"))
    if archives:
        return archives[0]
    raise FileFormatError(f"{data_dir}: no LFW images (lfw/<Person>/<Person>_NNNN.jpg) or lfw*.tgz archive")


def lfw_index(source: Path) -> list[str]:
    """Relative paths ``Person/Person_NNNN.jpg`` of every LFW image, sorted (the source index order).

    Cached per folder or archive for the life of the process.
    """
    return list(_lfw_index(source, source.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _lfw_index(source: Path, mtime_ns: int) -> tuple[str, ...]:
    if source.is_dir():
        names = [p.relative_to(source).as_posix() for p in source.glob("*/*.jpg")]
    else:
        with _open_tar(source) as archive:
            names = [_LFW_NAME.search(m.name) and _strip(m.name) for m in archive.getmembers() if m.isfile()]
    names = sorted(n for n in names if n and _LFW_NAME.search(n))
    if not names:
        raise FileFormatError(f"{source}: no images named <Person>/<Person>_NNNN.jpg")
    return tuple(names)


def load_lfw(source: Path, indices: Sequence[int], *, progress: bool = True) -> ImageSet:
    """The LFW images at ``indices`` (into :func:`lfw_index`), as 8-bit grey 64×64 faces."""
    names = lfw_index(source)
    wanted = {names[i]: position for position, i in enumerate(indices)}
    blobs: dict[str, bytes] = {}
    if source.is_dir():
        for name in wanted:
            blobs[name] = (source / name).read_bytes()
    else:
        with _open_tar(source) as archive:
            for member in archive:
                name = _strip(member.name)
                if name in wanted and (stream := archive.extractfile(member)) is not None:
                    blobs[name] = stream.read()
    images = np.empty((len(indices), TARGET_PX, TARGET_PX), np.uint8)
    for name, position in tqdm(
        wanted.items(), desc="LFW faces", unit="img", disable=not progress, leave=False
    ):
        images[position] = face_to_target(_decode_grey(source / name, blobs[name]))
    digest = hashlib.sha256("".join(f"{n} {_sha256(blobs[n])}\n" for n in sorted(blobs)).encode())
    labels = np.array([name.split("/")[0] for name in wanted])
    return ImageSet(
        "faces",
        images,
        labels,
        np.full(len(images), "lfw"),
        np.asarray(indices, np.int64),
        {f"{source.name} ({len(blobs)} images)": digest.hexdigest()},
    )


def face_to_target(grey: np.ndarray) -> np.ndarray:
    """One grey face ``(rows, columns)`` → uint8 64×64: centre crop to 150×150 (scaled for smaller
    images), then area resampling."""
    crop = round(min(grey.shape) * LFW_CROP_PX / 250)
    return to_uint8(resample(centre_crop(grey, crop), (TARGET_PX, TARGET_PX)))


def _decode_grey(path: Path, blob: bytes) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as image:
            return np.asarray(image.convert("L"))
    except (UnidentifiedImageError, OSError) as error:
        raise FileFormatError(f"{path}: not a readable JPEG: {error}") from error


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as error:
        raise FileFormatError(f"{path}: not a readable tar archive: {error}") from error


def _strip(member: str) -> str:
    """``lfw-deepfunneled/Person/Person_0001.jpg`` → ``Person/Person_0001.jpg``."""
    return "/".join(member.split("/")[-2:])


# --- embedded stand-ins ------------------------------------------------------------------------------


def load_stand_in(kind: Kind, *, binarise_digits: bool = True) -> ImageSet:
    """scikit-learn digits or scikit-image LFW faces, enlarged to 64×64, with a :class:`StandInWarning`."""
    if kind == "digits":
        from sklearn.datasets import load_digits

        originals = load_digits().images * (255.0 / 16.0)  # 0..16 grey levels
        labels = load_digits().target.astype(str)
        name = "sklearn-digits"
    else:
        from skimage.data import lfw_subset

        originals = lfw_subset()[:100] * 255.0  # the first 100 are faces, the other 100 are not
        labels = np.full(len(originals), "unknown")
        name = "skimage-lfw"
    warnings.warn(
        f"no data folder given: using {name} ({len(originals)} images of {originals.shape[1]}×"
        f"{originals.shape[2]} pixels) as low-resolution stand-ins; pass --data-dir for MNIST and LFW",
        StandInWarning,
        stacklevel=2,
    )
    images = to_uint8(resample(originals, (TARGET_PX, TARGET_PX)))
    if kind == "digits" and binarise_digits:
        images = binarise(images)
    count = len(images)
    checksums = {name: _sha256(images.tobytes())}
    return ImageSet(
        kind, images, labels, np.full(count, name), np.arange(count, dtype=np.int64), checksums, True
    )


# --- deterministic splits ----------------------------------------------------------------------------


class RepeatedImagesWarning(UserWarning):
    """A training set needs more images than its pool holds, so images repeat."""


@dataclass(frozen=True, eq=False)
class Split:
    """Held-out test images and training images of one kind; the two never share a source image."""

    test: ImageSet
    train: ImageSet


def draw(pool: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` positions from ``range(pool)``: distinct while the pool lasts, then each image reused
    as evenly as possible (whole shuffled passes over the pool)."""
    passes = -(-count // pool) if pool else 0
    if count and not pool:
        raise ValueError("cannot draw images from an empty pool")
    return np.concatenate([rng.permutation(pool) for _ in range(passes)] or [np.zeros(0, int)])[:count]


def split_indices(total: int, *, seed: int, stream: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """(test, training pool) positions in ``range(total)``, deterministic for (seed, stream).

    The test positions depend only on (seed, stream, n_test), never on the case or ``n_train``: every
    case of one seed is tested on the same images, as in the paper's Fig. 3.
    """
    if not 0 < n_test < total:
        raise ValueError(f"n_test must lie in 1..{total - 1} for a dataset of {total} images, got {n_test}")
    order = np.random.default_rng([seed, stream]).permutation(total)
    return np.sort(order[:n_test]), order[n_test:]


def split_digits(
    data_dir: Path | None, *, seed: int, n_test: int, n_train: int, binarise_digits: bool = True
) -> Split:
    """MNIST (or the stand-in) split into ``n_test`` held-out and ``n_train`` training digits."""
    if data_dir is None:
        pool = load_stand_in("digits", binarise_digits=binarise_digits)
    else:
        pool = load_mnist(data_dir, binarise_digits=binarise_digits)
    test, rest = split_indices(len(pool), seed=seed, stream=_DIGITS, n_test=n_test)
    train = rest[_draw_warned(len(rest), n_train, seed, _DIGITS, "digits")]
    return Split(pool.take(test), pool.take(train))


def split_faces(
    data_dir: Path | None, *, seed: int, n_test: int, n_train: int, progress: bool = True
) -> Split:
    """LFW (or the stand-in) split into ``n_test`` held-out and ``n_train`` training faces.

    Only the chosen LFW images are decoded.
    """
    if data_dir is None:
        pool = load_stand_in("faces")
        test, rest = split_indices(len(pool), seed=seed, stream=_FACES, n_test=n_test)
        train = rest[_draw_warned(len(rest), n_train, seed, _FACES, "faces")]
        return Split(pool.take(test), pool.take(train))
    source = lfw_source(data_dir)
    test, rest = split_indices(len(lfw_index(source)), seed=seed, stream=_FACES, n_test=n_test)
    train = rest[_draw_warned(len(rest), n_train, seed, _FACES, "faces")]
    unique, positions = np.unique(np.concatenate([test, train]), return_inverse=True)
    both = load_lfw(source, unique, progress=progress).take(positions)  # repeats decoded once
    return Split(both.take(np.arange(n_test)), both.take(np.arange(n_test, n_test + len(train))))


_DIGITS, _FACES = 1, 2  # random streams, so digit and face splits are independent


def _draw_warned(pool: int, count: int, seed: int, stream: int, what: str) -> np.ndarray:
    if count > pool:
        warnings.warn(
            f"{count} training {what} requested but only {pool} are not held out: images repeat",
            RepeatedImagesWarning,
            stacklevel=3,
        )
    return draw(pool, count, np.random.default_rng([seed, stream, 1]))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
