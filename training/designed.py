"""Targets from neither dataset: the designed training set, the third test kind, the mapping probe.

**The designed training set** (case ``designed``) follows the paper's conclusion — "if the effective
pixels of the training dataset images fill the entire training area and the grey values of each pixel
vary randomly, M_N will increasingly approximate T⁻¹" — and builds its targets from what the forward
model needs to be exercised, not from faces or digits:

* **grey levels uniform over 0..255** on the lit pixels of every target (a rank transform of a random
  field onto the 255 levels 1..255). The DMD shows grey as binary bit-planes shown for 2^k time units,
  and the camera integrates Σ_k 2^k/255 |T(B_k)|² (:mod:`specklenet.daemon.twin`): uniform levels put
  each of the 8 planes on for half of the lit pixels, independently, so every plane's propagation and
  every plane's cross-terms between pixels are trained in every target. Binary digits train only the
  top plane; faces train the planes but not uniformly.
* **support filling the window, with random density**: a lit area of ρ ∈ [0.1, 1] of the window (a
  thresholded random field), so the network sees sparse targets (digit-like: it must also learn dark)
  and full ones (face-like), and every pixel of the window is lit in about half of the targets —
  uniform coverage (Fig. 1b III flat), with none of MNIST's never-lit border.
* **every spatial scale**: each field is a sum of white noise at block sizes 1, 2, 4, 8 and 16 target
  pixels with weights b^β, β uniform in [−0.5, 2] — from nearly white (single-pixel detail, well inside
  the twin's resolution of ~1 target pixel) to 1/f²-like smooth images, as natural scenes are.

Every target is centred on the canvas (the output window is the centre 64×64). The draws are stored in
the ``designed_*`` columns.

**The third test kind** (``scenes``): random square crops (64 px up to the whole picture) of
scikit-image's bundled sample photographs and micrographs, converted to 8-bit grey luma and area-resampled
to 64×64: natural grey images that are neither faces nor digits, deterministic by seed.

**The mapping probe** (:func:`probe_targets`): one lit square per cell of an 8×8 grid over a window,
the ``point response`` targets of :mod:`.probe`.

Pure functions (thread-safe); scikit-image's bundled images are read once per process.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from specklenet.training.datasets import TARGET_PX, ImageSet, resample, to_uint8

DESIGNED_SCALES_PX = (1, 2, 4, 8, 16)
DESIGNED_SLOPE = (-0.5, 2.0)
DESIGNED_DENSITY = (0.1, 1.0)
PROBE_GRID = 8
_BLOCK = 1000  # targets drawn at a time
# scikit-image's sample images that ship with the package (no download), grey or colour.
SCENE_SOURCES = (
    "camera",
    "coins",
    "moon",
    "page",
    "text",
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "brick",
    "grass",
    "gravel",
    "clock",
    "hubble_deep_field",
    "immunohistochemistry",
    "shepp_logan_phantom",
)


def designed_targets(count: int, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """uint8 ``(count, 64, 64)`` designed targets and their ``designed_*`` columns (slope, density)."""
    slopes = rng.uniform(*DESIGNED_SLOPE, count)
    densities = rng.uniform(*DESIGNED_DENSITY, count)
    images = np.empty((count, TARGET_PX, TARGET_PX), np.uint8)
    for start in range(0, count, _BLOCK):  # bounds the float64 temporaries to ~100 MB
        part = slice(start, start + _BLOCK)
        grey = _ranks(_multiscale(slopes[part], rng))  # uniform in [0, 1), the field's order kept
        support = _ranks(_multiscale(rng.uniform(*DESIGNED_SLOPE, len(grey)), rng))
        lit = support >= 1.0 - densities[part, None]  # the brightest fraction ρ of a second field
        levels = 1 + np.floor(grey * 255.0)  # 1..255 on lit pixels: every bit-plane on half the time
        images[part] = np.where(lit, levels, 0).reshape(-1, TARGET_PX, TARGET_PX)
    columns = {
        "designed_slope": slopes.astype(np.float32),
        "designed_density": densities.astype(np.float32),
    }
    return images, columns


def _multiscale(slopes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float64 ``(N, 4096)``: Σ_b b^β · (white noise in b×b blocks, bilinear-enlarged), flattened."""
    total = np.zeros((len(slopes), TARGET_PX, TARGET_PX))
    for block in DESIGNED_SCALES_PX:
        size = TARGET_PX // block
        noise = rng.standard_normal((len(slopes), size, size))
        field = noise if block == 1 else resample(noise, (TARGET_PX, TARGET_PX))
        field /= field.std(axis=(1, 2), keepdims=True)  # equal power per scale before weighting
        total += (float(block) ** slopes)[:, None, None] * field
    return total.reshape(len(slopes), -1)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Each row's values replaced by their rank / row length: uniform on [0, 1), order kept."""
    ranks = np.empty_like(values)
    order = np.argsort(values, axis=1, kind="stable")
    np.put_along_axis(ranks, order, np.arange(values.shape[1], dtype=np.float64)[None], axis=1)
    return ranks / values.shape[1]


# --- scenes: the third test kind ----------------------------------------------------------------------


def load_scenes(count: int, seed: int) -> ImageSet:
    """``count`` 64×64 grey crops of scikit-image's sample images (see the module docstring)."""
    rng = np.random.default_rng([seed, 4])
    pictures = _pictures()
    images = np.empty((count, TARGET_PX, TARGET_PX), np.uint8)
    labels = []
    sources = rng.integers(0, len(SCENE_SOURCES), count)
    for index, source in enumerate(sources):
        picture = pictures[SCENE_SOURCES[source]]
        rows, cols = picture.shape
        size = int(rng.integers(TARGET_PX, min(rows, cols) + 1))
        row, col = int(rng.integers(0, rows - size + 1)), int(rng.integers(0, cols - size + 1))
        crop = picture[row : row + size, col : col + size]
        images[index] = to_uint8(resample(crop, (TARGET_PX, TARGET_PX)))
        labels.append(f"{SCENE_SOURCES[source]}@{row},{col}+{size}")
    return ImageSet(
        "scenes",  # type: ignore[arg-type]  (a test kind beyond the paper's two)
        images,
        np.array(labels),
        np.full(count, "skimage-data"),
        sources.astype(np.int64),
        {"skimage-data": hashlib.sha256(images.tobytes()).hexdigest()},
    )


@functools.cache
def _pictures() -> dict[str, np.ndarray]:
    """Every sample picture as float64 grey levels 0..255 (ITU-R 601 luma for colour)."""
    from skimage import data

    pictures = {}
    for name in SCENE_SOURCES:
        picture = np.asarray(getattr(data, name)(), dtype=np.float64)
        if picture.ndim == 3:
            picture = picture[..., :3] @ np.array([0.299, 0.587, 0.114])
        if picture.max() <= 1.0:  # the phantom is in [0, 1]
            picture = picture * 255.0
        pictures[name] = picture
    return pictures


# --- the mapping probe's targets ----------------------------------------------------------------------


def probe_targets(window: tuple[int, int, int, int], canvas_px: int, grid: int = PROBE_GRID) -> np.ndarray:
    """uint8 ``(grid², canvas_px, canvas_px)``: one lit square (255) centred in each cell of a grid×grid
    partition of ``window`` (row0, col0, rows, columns), row-major; the square's side is half a cell."""
    row0, col0, rows, cols = window
    cell_r, cell_c = rows // grid, cols // grid
    side_r, side_c = max(1, cell_r // 2), max(1, cell_c // 2)
    canvases = np.zeros((grid * grid, canvas_px, canvas_px), np.uint8)
    for index in range(grid * grid):
        r = row0 + (index // grid) * cell_r + (cell_r - side_r) // 2
        c = col0 + (index % grid) * cell_c + (cell_c - side_c) // 2
        canvases[index, r : r + side_r, c : c + side_c] = 255
    return canvases
