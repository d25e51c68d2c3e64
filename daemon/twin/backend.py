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

_FFT_WORKERS = max(1, len(os.sched_getaffinity(0)))


class Backend:
    """Array namespace, device and helpers for arrays like ``example``."""

    def __init__(self, example: Any) -> None:
        self.xp = array_api_compat.array_namespace(example)
        self.device = array_api_compat.device(example)
        self.is_numpy = array_api_compat.is_numpy_array(example)
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
            return scipy.fft.fft2(field, axes=(-2, -1), overwrite_x=overwrite, workers=_FFT_WORKERS)
        return self.xp.fft.fft2(field)  # torch's default: the last two axes

    def ifft2(self, field: Any, *, overwrite: bool = False) -> Any:
        if self.is_numpy:
            return scipy.fft.ifft2(field, axes=(-2, -1), overwrite_x=overwrite, workers=_FFT_WORKERS)
        return self.xp.fft.ifft2(field)

    def add_segments(self, out: Any, segment: Any, values: Any) -> None:
        """``out[segment[i]] += values[i]`` in place; ``segment`` is non-decreasing."""
        if values.shape[0] == 0:
            return
        if self.is_numpy:
            starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
            out[segment[starts]] += np.add.reduceat(values, starts, axis=0)
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
