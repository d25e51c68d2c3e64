"""The optical twin: what the bench's camera records for what its DMD shows.

Pipeline for each canvas: bit-planes (PWM) → field at the iris (separable Fresnel propagation of
Gaussian-lit, converging b×b-mirror pixels) → iris and diffuser screens (angular-spectrum gaps) →
Fresnel propagation to the camera → intensity, summed over bit-planes with their PWM weights →
4×4 area binning → camera signal chain (shot and read noise, full well, 12-bit ADC, dark offset).
See the sibling modules for each step's physics and the tests for their validation. (Over 300 lines:
the batching and threading here serve both the generic array-API path and the fused numpy one.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from typing import Any

import array_api_compat
import numpy as np
from threadpoolctl import ThreadpoolController

from specklenet.daemon.twin import camera as camera_chain
from specklenet.daemon.twin.backend import CPU_CORES, Backend
from specklenet.daemon.twin.config import TwinConfig
from specklenet.daemon.twin.diffuser import Operators, build_operators
from specklenet.daemon.twin.fused import FusedDataset
from specklenet.daemon.twin.pwm import Planes, amplitude_planes, bit_planes, incoherent_planes

MIN_CANVASES_PER_THREAD = 4
# Work sizes: a CPU wants batches that stay in cache; a GPU wants thousands of planes in flight.
PLANES_PER_BATCH = {("cpu", "dataset"): 16, ("cpu", "full"): 2, ("gpu", "dataset"): 512, ("gpu", "full"): 8}
# The fused numpy path's buffers (≈ 3.5 MB a plane) stay in a core's cache at a few planes per batch:
# 4 renders ~15 % faster than 16 on this machine's EPYC.
FUSED_PLANES_PER_BATCH = 4


class Twin:
    """A simulated bench with fixed diffuser screens.

    Args:
        config: the bench's geometry, diffuser and camera (paper defaults).
        seed: draws the diffuser screens (same seed, bit-identical speckle) and seeds the camera
            noise together with each frame id.

    Arrays: ``canvases[index, row, column]`` uint8 grey levels on the DMD's canvas of target pixels;
    ``frames[index, row, column]`` float32. numpy in gives numpy out (FFTs on all CPU cores); a torch
    tensor in gives a tensor out on its device. Not thread-safe: use one twin per thread.
    """

    def __init__(self, config: TwinConfig | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else TwinConfig()
        self.seed = int(seed)
        self._ops: Operators = build_operators(self.config, self.seed)
        self._backends: dict[tuple[str, str], Backend] = {}
        self._thread_backends: dict[int, Backend] = {}
        self.planes_per_batch: int | None = None  # None: by device and fidelity (PLANES_PER_BATCH)
        # numpy at "dataset" fidelity: in-place buffers per thread (fused.py) and the camera chain in
        # the worker threads. False runs the generic array-API path, as before, for the benchmark's
        # side-by-side and the tests' comparison.
        self.fused = True
        self._fused: dict[int, FusedDataset] = {}
        reference = np.zeros((1, *self.canvas_shape), np.uint8)
        c, h = self.config.canvas_px // 2, self.config.canvas_px // 4
        reference[0, c - h : c + h, c - h : c + h] = 255
        self._reference_mean = 1.0
        self._reference_mean = float(self.intensity(reference).mean())

    @property
    def canvas_shape(self) -> tuple[int, int]:
        return (self.config.canvas_px, self.config.canvas_px)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return (self.config.frame_px, self.config.frame_px)

    @property
    def slice_gap_mm(self) -> float:
        """Free space between consecutive diffuser screens (0 unless multislice)."""
        return self._ops.slice_gap_m * 1e3

    def intensity(self, canvases: Any) -> Any:
        """Noise-free intensity at the frame resolution, relative to the mean of the reference canvas
        (the centre quarter of the canvas fully lit), float32 ``(N, frame_px, frame_px)``."""
        backend = self._backend(canvases)
        return self._render(backend, self._check(canvases)) / self._reference_mean

    def expose(self, canvases: Any, frame_ids: Any = None) -> Any:
        """Camera frames (counts, float32 ``(N, frame_px, frame_px)``) for uint8 ``canvases``.

        ``frame_ids`` (default ``0..N-1``) seed each frame's camera noise with the twin's seed.
        """
        canvases = self._check(canvases)
        ids = np.arange(canvases.shape[0]) if frame_ids is None else np.asarray(frame_ids, dtype=np.int64)
        if ids.shape != (canvases.shape[0],):
            raise ValueError(f"frame_ids: expected {canvases.shape[0]} ids, got shape {ids.shape}")
        backend = self._backend(canvases)
        binned = self.config.fidelity == "dataset"  # full fidelity adds noise per native pixel, then bins
        cam = self.config.camera
        scale = cam.signal_e_per_us * cam.exposure_us / self._reference_mean  # to expected electrons
        native = (self.config.roi_px // self.config.frame_px) ** 2 if binned else 1

        def to_counts(worker: Backend, rendered: Any, share: slice) -> Any:
            rendered *= scale
            return camera_chain.expose(
                worker, rendered, cam, native_per_sample=native, seed=self.seed, frame_ids=ids[share]
            )

        if self._fuses(backend, native=False):
            return self._render(backend, canvases, finish=to_counts)  # counts in place, per thread
        counts = to_counts(backend, self._render(backend, canvases, native=not binned), slice(None))
        return counts if binned else backend.bin(counts, self._ops.plan.binning)

    def expose_one(self, canvas: Any, frame_id: int) -> Any:
        """One frame ``(frame_px, frame_px)`` for one canvas ``(canvas_px, canvas_px)``: the per-frame
        API of the simulated camera, equal to ``expose(canvas[None], [frame_id])[0]``."""
        return self.expose(canvas[None, ...], [frame_id])[0]

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable provenance: configuration, seed, derived geometry, package version."""
        return {
            "twin_config": dataclasses.asdict(self.config),
            "seed": self.seed,
            "slice_gap_mm": self.slice_gap_mm,
            "illumination_focus_mm": self.config.focus_m * 1e3,
            "package_version": version("specklenet"),
        }

    # -- internals ---------------------------------------------------------------------------------

    def _backend(self, array: Any) -> Backend:
        key = (array_api_compat.array_namespace(array).__name__, str(array_api_compat.device(array)))
        if key not in self._backends:
            self._backends[key] = Backend(array)
        return self._backends[key]

    def _check(self, canvases: Any) -> Any:
        shape = tuple(canvases.shape)
        if len(shape) != 3 or shape[1:] != self.canvas_shape:
            rows, columns = self.canvas_shape
            raise ValueError(f"canvases: expected shape (N, {rows}, {columns}), got {shape}")
        xp = array_api_compat.array_namespace(canvases)
        if canvases.dtype != xp.uint8:
            raise ValueError(f"canvases: expected uint8 grey levels, got {canvases.dtype}")
        return canvases

    def _render(self, backend: Backend, canvases: Any, *, native: bool = False, finish: Any = None) -> Any:
        """Σ over planes of weight × intensity, per canvas: at the frame resolution, or at the native
        camera pixels when ``native`` (full fidelity only). ``finish(worker, rendered, share)``, when
        given, transforms each contiguous share of the result in place in the thread that rendered it
        (numpy only: it must act frame by frame)."""
        xp = backend.xp
        size = self._ops.plan.camera_samples if native else self.config.frame_px
        out = xp.zeros((canvases.shape[0], size, size), dtype=xp.float32, device=backend.device)
        # The fused path holds BLAS to one thread: BLAS's own threads spin while they wait and so
        # steal the cores from our workers (~1.5× on 2 cores, benchmarks/twin.py), and a product's
        # rounding then never depends on how many threads BLAS split it over (a frame alone equals
        # its frame in a batch, bit for bit).
        fused = self._fuses(backend, native)
        with _blas().limit(limits=1, user_api="blas") if fused else contextlib.nullcontext():
            self._render_shares(backend, canvases, out, native, finish)
        return out

    def _render_shares(self, backend: Backend, canvases: Any, out: Any, native: bool, finish: Any) -> None:
        n = canvases.shape[0]
        if not backend.is_numpy or CPU_CORES == 1 or n < 2 * MIN_CANVASES_PER_THREAD:
            self._render_share(backend, canvases, out, native, slice(0, n), finish)
            return
        # numpy's element-wise steps use one core: contiguous shares of the canvases rendered in
        # threads (FFTs and matrix products release the GIL) use them all, ~20 % faster on 2 cores
        # than one batch with multithreaded FFTs. Each thread has its own backend (scratch arrays).
        bounds = np.linspace(0, n, CPU_CORES + 1).astype(int)
        workers = [self._thread_backend(i) for i in range(CPU_CORES)]
        with ThreadPoolExecutor(CPU_CORES) as pool:
            jobs = [
                pool.submit(self._render_share, worker, canvases, out, native, slice(lo, hi), finish)
                for worker, lo, hi in zip(workers, bounds[:-1], bounds[1:], strict=True)
            ]
            for job in jobs:
                job.result()

    def _render_share(
        self, backend: Backend, canvases: Any, out: Any, native: bool, share: slice, finish: Any
    ) -> None:
        self._render_into(backend, canvases[share], out[share], native)
        if finish is not None:
            finish(backend, out[share], share)

    def _thread_backend(self, index: int) -> Backend:
        if index not in self._thread_backends:
            self._thread_backends[index] = Backend(np.zeros(1), fft_workers=1)
        return self._thread_backends[index]

    def _render_into(self, backend: Backend, canvases: Any, out: Any, native: bool) -> None:
        """Add every plane's weighted intensity into its canvas's slot of ``out``."""
        xp = backend.xp
        per_batch = self.planes_per_batch or PLANES_PER_BATCH[backend.kind, self.config.fidelity]
        fused = None
        if self._fuses(backend, native):
            per_batch = self.planes_per_batch or FUSED_PLANES_PER_BATCH
            fused = self._fused_path(backend, per_batch)
        per_chunk = max(1, 4 * per_batch)  # canvases decomposed at a time (≤ 8 planes each)
        for start in range(0, canvases.shape[0], per_chunk):
            planes = self._planes(xp, canvases[start : start + per_chunk])
            for first in range(0, planes.weight.shape[0], per_batch):
                part = slice(first, first + per_batch)
                if fused is None:
                    intensity = self._propagate(backend, planes.coefficients[part], native=native)
                    weighted = intensity * planes.weight[part][:, None, None]
                else:
                    coefficients = planes.coefficients[part]
                    weighted = fused.intensity(
                        lambda into, c=coefficients: self._iris_field_into(backend, c, into),
                        coefficients.shape[0],
                    )
                    weighted *= planes.weight[part][:, None, None]
                backend.add_segments(out, planes.canvas[part] + start, weighted)

    def _fuses(self, backend: Backend, native: bool) -> bool:
        """Whether the fused numpy path (fused.py) renders for ``backend``."""
        plan = self._ops.plan
        return self.fused and backend.is_numpy and plan.periodic_camera and plan.binning > 1 and not native

    def _fused_path(self, backend: Backend, planes: int) -> FusedDataset:
        """The buffers of ``backend``'s thread for batches of up to ``planes`` planes."""
        key = id(backend)
        if key not in self._fused or self._fused[key].planes < planes:
            self._fused[key] = FusedDataset(self._ops, planes, backend.fft_workers)
        return self._fused[key]

    def _planes(self, xp: Any, canvases: Any) -> Planes:
        model = self.config.grey_model
        if model == "pwm":
            return bit_planes(xp, canvases)
        if model == "amplitude":
            return amplitude_planes(xp, canvases)
        return incoherent_planes(xp, canvases, self.config.incoherent_realisations, self.seed)

    def _propagate(self, backend: Backend, coefficients: Any, *, native: bool) -> Any:
        """Intensity ``(P, size, size)`` float32 for target-pixel amplitudes ``coefficients[plane, row,
        column]``: binned to the frame, or at the native pixels when ``native`` (full fidelity)."""
        xp, ops, plan = backend.xp, self._ops, self._ops.plan
        field = self._iris_field(backend, coefficients)
        if ops.stages:
            field = _embed(backend, field, plan.stage, plan.box_at)
            for transfer, screen in ops.stages:
                field = backend.ifft2(backend.fft2(field) * backend.constant(transfer), overwrite=True)
                if screen is not None:
                    field = field * backend.constant(screen)
        if plan.periodic_camera:
            total = None
            for factor in ops.exit_factors:
                camera = backend.fft2_padded(field * backend.constant(factor), plan.camera_grid)
                binned = backend.binned_power(camera, plan.binning)
                total = binned if total is None else total + binned
            return total / len(ops.exit_factors)
        if ops.stages:
            exit_ = slice(plan.exit_at, plan.exit_at + plan.exit)
            field = field[:, exit_, exit_]
        a = backend.constant(ops.camera_matrix)
        field = a @ field @ xp.matrix_transpose(a)
        return backend.binned_power(field, 1 if native else plan.binning)

    def _iris_field(self, backend: Backend, coefficients: Any) -> Any:
        """``K @ C @ K.T`` times the iris and first screen, ``(P, box, box)`` complex64.

        Only the rows and columns of the canvas that are lit somewhere in the batch take part (the
        others contribute nothing): half the work for targets in the canvas's centre.
        """
        xp, ops = backend.xp, self._ops
        rows, columns = backend.lit_span(coefficients)
        c = coefficients[:, rows, columns]
        k_rows = backend.constant(ops.object_matrix)[:, rows]
        if xp.isdtype(c.dtype, "real floating"):
            # Real amplitudes (bit-planes): two real products beat one complex product with zeros.
            real, imag = (backend.constant(part)[columns, :] for part in ops.object_matrix_t_parts)
            right = backend.complex(c @ real, c @ imag)
        else:
            right = xp.astype(c, xp.complex64) @ xp.matrix_transpose(
                backend.constant(ops.object_matrix)[:, columns]
            )
        return (k_rows @ right) * backend.constant(ops.entrance)

    def _iris_field_into(self, backend: Backend, coefficients: np.ndarray, out: np.ndarray) -> None:
        """:meth:`_iris_field` written into ``out`` (numpy), each plane over its own lit span.

        A plane's own span makes its field independent of the batch it is in: BLAS sums over the
        span, and a wider span (another plane's lit pixels) changes the rounding.
        """
        ops = self._ops
        k = ops.object_matrix
        real, imag = ops.object_matrix_t_parts
        for plane, into in zip(coefficients, out, strict=True):
            rows, columns = backend.lit_span(plane[None])
            c = plane[rows, columns]
            if np.isrealobj(c):
                right = backend.complex(c @ real[columns], c @ imag[columns])
            else:
                right = c.astype(np.complex64) @ k[:, columns].T
            np.matmul(k[:, rows], right, out=into)
            into *= ops.entrance  # while the plane is still in cache


@functools.cache
def _blas() -> ThreadpoolController:
    """The process's thread pools (scanned once: a scan costs milliseconds)."""
    return ThreadpoolController()


def _embed(backend: Backend, field: Any, size: int, at: int) -> Any:
    """``field`` ``(P, n, n)`` at ``[at:at + n]`` of a zero ``(P, size, size)`` grid (reused scratch)."""
    if field.shape[-1] == size:
        return field
    grid = backend.zeros_scratch((field.shape[0], size, size))
    inner = slice(at, at + field.shape[-1])
    grid[:, inner, inner] = field
    return grid
