"""The few operations the twin needs beyond the array API, for numpy and for torch.

The twin's code is written once against the array API (``array_api_compat``); this module adds
multithreaded FFTs (scipy.fft for numpy; torch.fft for tensors), segment sums, device-resident copies
of the precomputed operators, and the camera's random numbers. It never imports torch: a tensor's
own namespace (``array_api_compat.torch``, imported only when the caller hands the twin a tensor)
provides torch's functions.

Not thread-safe: one backend per thread (the operator cache is a plain dict).
"""

from __future__ import annotations

import os
from typing import Any

import array_api_compat
import numpy as np
import scipy.fft

CPU_CORES = max(1, len(os.sched_getaffinity(0)))


class Backend:
    """Array namespace, device and helpers for arrays like ``example``."""

    def __init__(self, example: Any, *, fft_workers: int = CPU_CORES) -> None:
        self.fft_workers = fft_workers
        self.xp = array_api_compat.array_namespace(example)
        self.device = array_api_compat.device(example)
        self.is_numpy = array_api_compat.is_numpy_array(example)
        self.kind = "cpu" if self.is_numpy or str(self.device) == "cpu" else "gpu"
        self._cache: dict[Any, Any] = {}

    def constant(self, array: np.ndarray) -> Any:
        """``array`` (precomputed numpy) on this backend's device, converted once and cached."""
        key = id(array)
        if key not in self._cache:
            self._cache[key] = array if self.is_numpy else self.xp.asarray(array, device=self.device)
        return self._cache[key]

    def zeros_scratch(self, shape: tuple[int, ...]) -> Any:
        """A complex64 array of zeros, reused between calls: callers write only the region they
        later read, and must not let an in-place FFT overwrite it."""
        key = ("zeros", *shape)
        if key not in self._cache:
            self._cache[key] = self.xp.zeros(shape, dtype=self.xp.complex64, device=self.device)
        return self._cache[key]

    def fft2(self, field: Any, *, overwrite: bool = False) -> Any:
        """2-D FFT over the last two axes; ``overwrite`` lets numpy reuse ``field``'s memory."""
        if self.is_numpy:
            return scipy.fft.fft2(field, axes=(-2, -1), overwrite_x=overwrite, workers=self.fft_workers)
        return self.xp.fft.fft2(field)  # torch's default: the last two axes

    def ifft2(self, field: Any, *, overwrite: bool = False) -> Any:
        if self.is_numpy:
            return scipy.fft.ifft2(field, axes=(-2, -1), overwrite_x=overwrite, workers=self.fft_workers)
        return self.xp.fft.ifft2(field)

    def fft2_padded(self, field: Any, size: int) -> Any:
        """2-D FFT of ``field`` zero-padded at the end to ``size`` × ``size``; numpy reuses ``field``.

        numpy transforms the rows that hold data first, so the padding rows cost only the second
        pass (a pruned FFT).
        """
        if not self.is_numpy:
            return self.xp.fft.fft2(field, s=(size, size))
        rows = scipy.fft.fft(field, n=size, axis=-1, overwrite_x=True, workers=self.fft_workers)
        return scipy.fft.fft(rows, n=size, axis=-2, overwrite_x=True, workers=self.fft_workers)

    def lit_span(self, planes: Any) -> tuple[slice, slice]:
        """The smallest row and column ranges holding every non-zero value of ``planes[p, row, col]``."""
        xp = self.xp
        lit = planes != 0
        rows = xp.nonzero(xp.any(lit, axis=(0, 2)))[0]
        columns = xp.nonzero(xp.any(lit, axis=(0, 1)))[0]
        if rows.shape[0] == 0:
            return slice(0, 1), slice(0, 1)
        return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)

    def complex(self, real: Any, imag: Any) -> Any:
        """``real + 1j·imag`` as complex64."""
        if self.is_numpy:
            out = np.empty(real.shape, np.complex64)
            out.real, out.imag = real, imag
            return out
        return self.xp.complex(real, imag)

    def bin(self, frames: Any, factor: int) -> Any:
        """Area binning ``factor``×``factor`` (mean) of real ``frames[index, row, column]``."""
        if factor == 1:
            return frames
        # Strided sums: several times faster than reshape-and-mean on numpy.
        total = sum(frames[:, i::factor, j::factor] for i in range(factor) for j in range(factor))
        return total / (factor * factor)

    def binned_power(self, field: Any, factor: int) -> Any:
        """``bin(|field|², factor)`` as float32, for complex64 ``field[index, row, column]``.

        numpy: the field's memory is reused (squared in place as interleaved float32 pairs), so
        the caller must not need ``field`` afterwards. Rows are summed first, through contiguous
        slices, then each run of ``2 × factor`` floats (real and imaginary parts of ``factor``
        columns): twice as fast as strided sums over the whole array.
        """
        if not self.is_numpy:
            return self.bin(field.real**2 + field.imag**2, factor)
        n, rows, columns = field.shape
        pairs = field.view(np.float32)  # (n, rows, 2 * columns): re, im interleaved
        np.square(pairs, out=pairs)
        by_rows = pairs.reshape(n, rows // factor, factor, 2 * columns)
        summed = by_rows[:, :, 0].copy()
        for i in range(1, factor):
            summed += by_rows[:, :, i]
        runs = summed.reshape(n, rows // factor, columns // factor, 2 * factor)
        total = runs[..., 0] + runs[..., 1]
        for j in range(2, 2 * factor):
            total += runs[..., j]
        total /= factor * factor
        return total

    def add_segments(self, out: Any, segment: Any, values: Any) -> None:
        """``out[segment[i]] += values[i]`` in place, one ``i`` after another; ``segment`` is
        non-decreasing.

        numpy adds the planes of a canvas to it in their order, never summed among themselves first,
        so a grey canvas's frame is bit-identical however its planes fall into batches (a frame alone
        or in a recording's batch: the simulated camera equals ``simulate``).
        """
        if values.shape[0] == 0:
            return
        if self.is_numpy:
            for index, value in zip(segment.tolist(), values, strict=True):
                out[index] += value
        else:
            out.index_add_(0, segment, values)

    def poisson(self, mean: Any, generator: Any) -> Any:
        """Poisson samples of ``mean`` (torch only: numpy draws per frame, see camera.py)."""
        return self.xp.poisson(mean, generator=generator)

    def normal(self, shape: tuple[int, ...], generator: Any) -> Any:
        return self.xp.randn(shape, generator=generator, device=self.device, dtype=self.xp.float32)

    def torch_generator(self, seed: int) -> Any:
        """A torch generator on this device seeded with ``seed`` (torch backends only)."""
        generator = self.xp.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator
