"""Live reconstruction: an exported model in ONNX Runtime, camera counts in, the target's image out.

(Slightly over 300 lines: loading with its refusals, the bound buffers and the truth image belong to
one object that the live consumer swaps whole; the provider choice already lives in :mod:`.providers`.)

``Reconstructor.load(path, frame_shape=(256, 256), canvas_shape=(128, 128))`` reads the model's
:class:`~specklenet.daemon.modelinfo.ModelInfo` and refuses (:class:`ModelError`, naming the mismatch) a
file that is missing, corrupt, without specklenet metadata, or made for other frames or another canvas.
It runs the model on the best provider that works here (TensorRT > CUDA > CPU, :mod:`.providers`),
says in one log line which and why, warms it up (cuDNN's algorithm search, TensorRT's engine, the CPU's
first-run allocations) so the first live frame is not slow, and binds preallocated buffers (I/O
binding): the normalised frame is written in place into the bound input (on a GPU it is then copied
into a device ``OrtValue``), the output lands in a bound host buffer, so a frame allocates nothing but
the copy of the output it hands back.

``target_image(canvas)`` and ``pcc(reconstruction, canvas)`` compute the ground truth and the PCC
exactly as ``specklenet-train evaluate`` does (``training/pairdata.resize_truth``,
``training/metrics.pcc``): the canvas inside the output window, grey / 255, resized to the output
resolution with torch's antialiased bilinear filter (reimplemented here in numpy as two weight matrices:
the daemon never imports torch), then Pearson's r in float64.

Thread-safety: ``reconstruct`` serialises its callers with a lock (the bound buffers are shared), so one
frame at a time is processed whatever the number of threads; ``target_image`` and ``pcc`` are pure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from specklenet.daemon.errors import ConfigError, ModelError
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation
from specklenet.daemon.providers import CPU, Probe, device_of, open_session, rank_providers

log = structlog.get_logger(__name__)

Window = tuple[int, int, int, int]


class Reconstructor:
    """One loaded model with its bound buffers (build it with :meth:`load`).

    Attributes:
        path: the ONNX file. info: its metadata. provider: the execution provider running it.
        frame_shape: (rows, columns) of the camera frames it takes.
        canvas_shape: (rows, columns) of the DMD canvas its output window lies on.
        output_shape: (rows, columns) of its reconstructions.
    """

    def __init__(
        self, path: Path, info: ModelInfo, session: Any, provider: str, canvas_shape: tuple[int, int]
    ) -> None:
        import onnxruntime

        self.path, self.info, self.provider = path, info, provider
        self.frame_shape = (info.frame_px, info.frame_px)
        self.canvas_shape = canvas_shape
        self.output_shape = (info.output_px, info.output_px)
        self._session = session
        self._lock = threading.Lock()
        # Kept referenced for the binding's lifetime: ORT holds raw pointers into them.
        self._input = np.zeros((1, 1, *self.frame_shape), np.float32)
        self._output = np.zeros((1, 1, *self.output_shape), np.float32)
        self._binding = session.io_binding()
        self._device_input = None
        if device_of(provider) == "cpu":
            self._binding.bind_input(
                info.input_name, "cpu", 0, np.float32, self._input.shape, self._input.ctypes.data
            )
        else:
            self._device_input = onnxruntime.OrtValue.ortvalue_from_shape_and_type(
                self._input.shape, np.float32, "cuda", 0
            )
            self._binding.bind_ortvalue_input(info.input_name, self._device_input)
        # The output comes back to the host in any case (it is published); ORT copies it into this buffer.
        self._binding.bind_output(
            info.output_name, "cpu", 0, np.float32, self._output.shape, self._output.ctypes.data
        )
        self._row_taps = resize_taps(info.window[2], info.output_px)
        self._col_taps = resize_taps(info.window[3], info.output_px)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        frame_shape: tuple[int, int],
        canvas_shape: tuple[int, int],
        providers: Sequence[str] | None = None,
        warmup_runs: int = 3,
        available_providers: Sequence[str] | None = None,
        probe: Probe | None = None,
        intra_op_threads: int = 0,
        cache_dir: Path | None = None,
    ) -> Reconstructor:
        """Load, check, warm up (see the module docstring).

        Args:
            frame_shape: (rows, columns) of the camera's binned frames.
            canvas_shape: (rows, columns) of the DMD canvas in target pixels.
            providers: restrict the choice to these ONNX Runtime providers (default: any).
            warmup_runs: inferences run before returning.
            available_providers: what ONNX Runtime offers (default: ``get_available_providers()``).
            probe: provider -> reason it cannot run here, or None (default: look for a GPU).
            intra_op_threads: CPU threads per inference (0: one per core).
            cache_dir: where TensorRT keeps its engines and timing cache.
        """
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: model file not found")
        available = available_providers
        if available is None:
            available = onnxruntime.get_available_providers()
        choice = rank_providers(available, requested=providers, probe=probe)
        info = None
        if choice.candidates[0] != CPU:  # check the fit before a GPU engine is built (minutes for TensorRT)
            info = _checked_info(path, _metadata_session(path), frame_shape, canvas_shape)
        session, provider, reason = open_session(
            path,
            choice,
            input_name=info.input_name if info else "",
            frame_px=info.frame_px if info else 0,
            intra_op_threads=intra_op_threads,
            cache_dir=cache_dir,
        )
        info = _checked_info(path, session, frame_shape, canvas_shape)
        reconstructor = cls(path, info, session, provider, (int(canvas_shape[0]), int(canvas_shape[1])))
        warmup_ms = reconstructor.warm_up(warmup_runs)
        log.info(
            "model_loaded",
            model=str(path),
            case=info.case,
            profile=info.profile,
            provider=provider,
            why=reason,
            warmup_runs=warmup_runs,
            warmup_ms=round(warmup_ms, 1),
        )
        return reconstructor

    def warm_up(self, runs: int) -> float:
        """Run ``runs`` inferences on speckle-like input; returns their total time in ms."""
        frame = np.random.default_rng(0).exponential(100.0, self.frame_shape).astype(np.float32)
        start = time.perf_counter()
        for _ in range(runs):
            self.reconstruct(frame)
        return (time.perf_counter() - start) * 1e3

    def reconstruct(self, counts: np.ndarray) -> np.ndarray:
        """float32 ``counts[row, column]`` (binned mean counts, ``frame_shape``) → float32
        ``image[row, column]`` (``output_shape``, in [0, 1]), a new array the caller may keep.
        Normalised with the model's own :class:`Normalisation`. Serialised by a lock."""
        counts = np.asarray(counts)
        if counts.shape != self.frame_shape:
            raise ValueError(f"{self.path.name}: expects a {self.frame_shape} frame, got {counts.shape}")
        with self._lock:
            if self._session is None:
                raise ModelError(f"{self.path}: closed")
            normalise_into(counts, self.info.normalisation, self._input[0, 0])
            if self._device_input is not None:
                self._device_input.update_inplace(self._input)  # host → device, into the bound buffer
            self._session.run_with_iobinding(self._binding)
            return self._output[0, 0].copy()  # a copy: the publisher sends it zero-copy, later

    def target_image(self, canvas: np.ndarray, window: Window | None = None) -> np.ndarray:
        """uint8 ``canvas[row, column]`` → float32 ``output_shape`` image in [0, 1]: the canvas inside
        ``window`` (default: the model's output window; another of the same size for targets displayed
        elsewhere, e.g. case 5's shifted tests), grey / 255, resized as training resized it."""
        canvas = np.asarray(canvas)
        if canvas.shape != self.canvas_shape:
            raise ValueError(f"{self.path.name}: expects a {self.canvas_shape} canvas, got {canvas.shape}")
        row0, col0, rows, cols = window or self.info.window
        if (rows, cols) != self.info.window[2:]:
            raise ValueError(f"window {window} is not the size of the model's window {self.info.window}")
        image = canvas[row0 : row0 + rows, col0 : col0 + cols].astype(np.float32) / np.float32(255.0)
        if image.shape == self.output_shape:
            return image
        return np.clip(resize(image, self._row_taps, self._col_taps), 0.0, 1.0)

    def pcc(self, reconstruction: np.ndarray, canvas: np.ndarray, window: Window | None = None) -> float:
        """Pearson's r of ``reconstruction`` against :meth:`target_image` (0 when either is constant)."""
        return pearson(reconstruction, self.target_image(canvas, window))

    def close(self) -> None:
        """Release the session (idempotent); waits for a frame in progress."""
        with self._lock:
            self._session = self._binding = self._device_input = None


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r of two images, float64, as ``training/metrics.pcc`` (0 when either is constant)."""
    a = np.asarray(x, np.float64).ravel()
    b = np.asarray(y, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"images of different sizes: {np.shape(x)} and {np.shape(y)}")
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    return float(np.sum(a * b)) / denominator if denominator > 1e-12 else 0.0


def normalise_into(counts: np.ndarray, normalisation: Normalisation, out: np.ndarray) -> None:
    """``normalisation.apply(counts)`` written into ``out`` (float32, same shape), bit-identical to
    :meth:`Normalisation.apply` on one frame, for every method; without temporaries of frame size
    except for ``"equalised"`` (an ablation's method: it ranks the frame)."""
    method = normalisation.method
    if method == "equalised":
        np.copyto(out, normalisation.apply(counts))
        return
    np.subtract(counts, np.float32(normalisation.dark_offset_counts), out=out, dtype=np.float32)
    np.maximum(out, np.float32(0.0), out=out)
    if method == "fixed":
        scale = normalisation.full_scale_counts - normalisation.dark_offset_counts
        np.divide(out, np.float32(scale), out=out)
        return
    mean = np.mean(out, axis=(-2, -1), keepdims=True)
    if method == "zscore":
        np.subtract(out, mean, out=out)
        spread = np.std(out, axis=(-2, -1), keepdims=True)
        np.divide(out, np.clip(spread, np.float32(1e-6), None), out=out)
    else:  # frame_mean
        np.divide(out, np.clip(mean, np.float32(1e-6), None), out=out)


Taps = tuple[np.ndarray, np.ndarray]
"""``(index, weight)``, both ``(out_px, taps)``: output pixel i = Σ_k weight[i, k] · input[index[i, k]]."""


def resize_taps(in_px: int, out_px: int) -> Taps:
    """The taps of torch's antialiased bilinear resize along one axis (``interpolate(mode="bilinear",
    antialias=True, align_corners=False)``, PIL's filter): a triangle kernel widened by the scale when
    shrinking, weights normalised per output pixel. A few taps per pixel: applied by gathering, not by
    a matrix product (BLAS threads stall for milliseconds on a busy machine)."""
    scale = in_px / out_px
    support, stretch = (scale, 1.0 / scale) if scale >= 1.0 else (1.0, 1.0)
    rows = []
    for pixel in range(out_px):
        centre = scale * (pixel + 0.5)
        first = max(int(centre - support + 0.5), 0)
        last = min(int(centre + support + 0.5), in_px)
        taps = np.arange(first, last)
        kernel = np.clip(1.0 - np.abs((taps - centre + 0.5) * stretch), 0.0, None)
        rows.append((taps, kernel / kernel.sum()))
    width = max(len(taps) for taps, _ in rows)
    index = np.zeros((out_px, width), np.intp)
    weight = np.zeros((out_px, width), np.float32)
    for pixel, (taps, kernel) in enumerate(rows):
        index[pixel] = taps[0]  # padding taps point at a real pixel with weight 0
        index[pixel, : len(taps)], weight[pixel, : len(taps)] = taps, kernel
    return index, weight


def resize(image: np.ndarray, row_taps: Taps, col_taps: Taps) -> np.ndarray:
    """float32 ``image[row, column]`` resized with the taps of each axis (:func:`resize_taps`)."""
    (row_index, row_weight), (col_index, col_weight) = row_taps, col_taps
    rows = np.einsum("rk,rkc->rc", row_weight, image[row_index], optimize=False)
    return np.einsum("ck,rck->rc", col_weight, rows[:, col_index], optimize=False)


def _metadata_session(path: Path) -> Any:
    """A quick CPU session (no graph optimisation) to read the metadata and the graph's signature."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=[CPU])
    except Exception as error:  # ORT's own untyped errors for corrupt files
        raise ModelError(f"{path}: not a usable ONNX model: {error}") from error


def _checked_info(
    path: Path, session: Any, frame_shape: tuple[int, int], canvas_shape: tuple[int, int]
) -> ModelInfo:
    """The model's metadata, refused (ModelError naming the mismatch) when it or the graph does not fit."""
    try:
        info = ModelInfo.from_metadata(session.get_modelmeta().custom_metadata_map)
    except ConfigError as error:
        raise ModelError(f"{path}: {error}") from error
    frame, canvas = tuple(frame_shape), tuple(canvas_shape)
    if frame != (info.frame_px, info.frame_px):
        raise ModelError(
            f"{path}: the model takes {info.frame_px}×{info.frame_px} frames but the camera gives "
            f"{frame[0]}×{frame[1]}"
        )
    if canvas != (info.canvas_px, info.canvas_px):
        raise ModelError(
            f"{path}: the model reconstructs a window {info.window} of a {info.canvas_px}×{info.canvas_px} "
            f"canvas but the DMD shows {canvas[0]}×{canvas[1]}"
        )
    _check_signature(path, "input", session.get_inputs(), info.input_name, info.frame_px)
    _check_signature(path, "output", session.get_outputs(), info.output_name, info.output_px)
    return info


def _check_signature(path: Path, kind: str, nodes: Sequence[Any], name: str, side_px: int) -> None:
    """The graph's one ``kind`` must be ``name``, float32 (batch, 1, side_px, side_px), as promised."""
    expected = f"float32 (batch, 1, {side_px}, {side_px}) named {name!r}"
    if len(nodes) != 1:
        raise ModelError(f"{path}: the graph has {len(nodes)} {kind}s; expected one, {expected}")
    node = nodes[0]
    shape = list(node.shape or [])
    fits = (
        node.name == name
        and node.type == "tensor(float)"
        and len(shape) == 4
        and (isinstance(shape[0], str) or shape[0] in (None, 1))  # a dynamic batch axis, or batch 1
        and shape[1:] == [1, side_px, side_px]
    )
    if not fits:
        raise ModelError(
            f"{path}: the graph's {kind} is {node.type} {node.shape} named {node.name!r}; "
            f"its metadata promises {expected}"
        )
