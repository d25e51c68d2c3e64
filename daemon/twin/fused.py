"""The twin's ``"dataset"`` propagation on numpy, fused into buffers that live as long as the twin.

The generic path (``Twin._propagate``, array API) allocates every intermediate: fresh 30 MB arrays
each batch, whose page faults and copies (zero padding, ``reduceat``) cost as much as the FFTs on a
CPU. Here each worker thread owns one stage grid and one camera grid per batch, and every step writes
into them in place:

    iris field ──► stage[box]  (matmul into the view; the border stays zero)
    stage ──► FFT (rows holding the iris only) ► × transfer ► inverse FFT        (in place)
    for each quincunx factor: camera[:stage, :stage] = stage × factor; its padding is re-zeroed;
        FFT of the rows holding data, then of every column                      (in place)
        |camera|² binned into the batch's accumulator

The camera grid's rows are padded by one cache line: a 512-wide complex64 row is exactly 4 KiB, and
the column FFT's accesses at that stride would all land in the same cache sets.

The arithmetic is the generic path's, step for step, except that the stage FFT skips rows that are
zero (exact), the products are formed in place and a bin's squares are summed in another order;
intensities agree with it to float32 rounding
(tests/test_twin_fused.py). Results do not depend on how canvases are batched or threaded: every
step acts on one plane at a time. Not thread-safe: one :class:`FusedDataset` per thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft

from specklenet.daemon.twin.diffuser import Operators

_ROW_PAD = 8  # complex64 samples (one 64-byte cache line) past the end of each camera-grid row


class FusedDataset:
    """Buffers and steps of one worker thread for ``planes`` planes at a time.

    Args:
        ops: the twin's operators; ``ops.plan`` must have a periodic camera (``"dataset"`` fidelity).
        planes: the most planes propagated at once.
        workers: threads each FFT may use (1 inside the twin's own thread pool).
    """

    def __init__(self, ops: Operators, planes: int, workers: int) -> None:
        plan = ops.plan
        if not plan.periodic_camera:
            raise ValueError("FusedDataset needs the periodic camera of 'dataset' fidelity")
        self._ops, self._workers, self.planes = ops, workers, planes
        self._stage = np.zeros((planes, plan.stage, plan.stage), np.complex64)
        grid = plan.camera_grid
        # Rows padded past a power of two: the column FFT then no longer strides by exactly 4 KiB,
        # whose lines all fall into the same cache sets (30 % off the camera FFTs, same results).
        self._padded = np.zeros((planes, grid, grid + _ROW_PAD), np.complex64)
        self._camera = self._padded[:, :, :grid]
        frame = plan.camera_grid // plan.binning
        self._rows = np.empty((planes, frame, 2 * plan.camera_grid), np.float32)
        self._runs = np.empty((planes, frame, frame), np.complex64)
        self._binned = np.empty((planes, frame, frame), np.float32)
        self._sum = np.empty((planes, frame, frame), np.float32)

    def intensity(self, iris_field: Any, planes: int) -> np.ndarray:
        """Binned intensity ``(planes, frame, frame)`` float32 (a view of a reused buffer, valid
        until the next call), averaged over the quincunx factors, for the stage field written by
        ``iris_field(out)`` into ``out`` ``(planes, box, box)`` complex64."""
        ops, plan = self._ops, self._ops.plan
        stage = self._stage[:planes]
        box = slice(plan.box_at, plan.box_at + plan.box)
        _zero_border(stage, box)
        iris_field(stage[:, box, box])
        self._stage_gaps(stage, box)
        total = self._sum[:planes]
        for index, factor in enumerate(ops.exit_factors):
            camera = self._camera[:planes]
            inner = slice(0, plan.stage)
            np.multiply(stage, factor, out=camera[:, inner, inner])
            camera[:, inner, plan.stage :] = 0
            camera[:, plan.stage :, :] = 0
            self._fft(camera[:, inner, :], axis=-1)
            self._fft(camera, axis=-2)
            self._binned_power(planes, plan.binning, total if index == 0 else self._binned[:planes])
            if index:
                total += self._binned[:planes]
        total *= 1.0 / (len(ops.exit_factors) * plan.binning**2)  # the mean over factors and bins
        return total

    def _stage_gaps(self, stage: np.ndarray, box: slice) -> None:
        """The diffuser's free-space gaps and screens, in place on the stage grid."""
        for number, (transfer, screen) in enumerate(self._ops.stages):
            # Before the first gap only the iris rows hold light: the others' FFTs are zero.
            rows = stage[:, box, :] if number == 0 else stage
            self._fft(rows, axis=-1)
            self._fft(stage, axis=-2)
            stage *= transfer
            scipy.fft.ifft2(stage, axes=(-2, -1), overwrite_x=True, workers=self._workers)
            if screen is not None:
                stage *= screen

    def _fft(self, view: np.ndarray, axis: int) -> None:
        scipy.fft.fft(view, axis=axis, overwrite_x=True, workers=self._workers)

    def _binned_power(self, n: int, factor: int, out: np.ndarray) -> None:
        """``out = factor² · bin(|field|², factor)`` (the bins' sums, not their means) for ``field``,
        the first ``n`` planes of the camera grid, which it squares in place (its memory is scratch).
        """
        field = self._camera[:n]
        _, rows, columns = field.shape
        # Squared whole, row padding included: one contiguous loop is 3× faster than row by row.
        whole = self._padded[:n].view(np.float32)
        np.square(whole, out=whole)
        pairs = field.view(np.float32)  # (n, rows, 2 * columns): re², im² interleaved
        by_rows = pairs.reshape(n, rows // factor, factor, 2 * columns)
        summed = self._rows[:n]
        np.add(by_rows[:, :, 0], by_rows[:, :, 1], out=summed)
        for i in range(2, factor):
            summed += by_rows[:, :, i]
        # Each bin's `factor` columns, summed as complex64 pairs (re², im²): one read of `summed`
        # where summing 2·factor strided floats read it 2·factor − 1 times.
        runs = summed.view(np.complex64).reshape(n, rows // factor, columns // factor, factor)
        binned = self._runs[:n]
        np.add(runs[..., 0], runs[..., 1], out=binned)
        for j in range(2, factor):
            binned += runs[..., j]
        np.add(binned.real, binned.imag, out=out)


def _zero_border(stage: np.ndarray, box: slice) -> None:
    """Zero the stage grid outside ``box`` × ``box`` (left over from the previous batch)."""
    stage[:, : box.start, :] = 0
    stage[:, box.stop :, :] = 0
    stage[:, box, : box.start] = 0
    stage[:, box, box.stop :] = 0
