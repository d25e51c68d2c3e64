"""Which ONNX Runtime execution provider runs the model: TensorRT, then CUDA, then the CPU.

``onnxruntime-gpu`` lists the TensorRT and CUDA providers as *available* on any machine, GPU or not;
creating a session with one whose libraries or device are missing prints an error and quietly falls
back to the CPU. So the choice is made in two steps:

1. :func:`rank_providers` (pure, testable with any ``available`` list and any ``probe``) orders the
   candidates and says, for each one it passes over, why: not available in this ONNX Runtime build, not
   requested, or the probe found no usable GPU (:func:`probe_gpu`: an NVIDIA driver with a CUDA
   device, and for TensorRT its runtime library).
2. :func:`open_session` tries the candidates in that order and keeps the first session whose
   ``get_providers()[0]`` really is the candidate (a silent fallback counts as a failure, with reason).

Public names: :data:`PREFERENCE`, :class:`ProviderChoice`, :func:`rank_providers`, :func:`probe_gpu`,
:func:`open_session`, :func:`device_of`. Pure functions apart from the session and the probe's
``dlopen``s; thread-safe.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specklenet.daemon.errors import ModelError

TENSORRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
"""Fastest first: TensorRT (fp16 engine) > CUDA (cuDNN) > CPU (a degraded mode: see README)."""

Probe = Callable[[str], str | None]
"""provider -> None when it can run here, else the reason it cannot."""


@dataclass(frozen=True)
class ProviderChoice:
    """The candidates in the order to try, and why the others were passed over.

    Attributes:
        candidates: providers to try, best first (the CPU provider last when it is allowed).
        passed_over: ``(provider, reason)`` for each preferred provider not among the candidates.
    """

    candidates: tuple[str, ...]
    passed_over: tuple[tuple[str, str], ...]


def rank_providers(
    available: Sequence[str], *, requested: Sequence[str] | None = None, probe: Probe | None = None
) -> ProviderChoice:
    """Order ``available`` providers by :data:`PREFERENCE`, keeping those ``requested`` (default: all)
    that ``probe`` (default :func:`probe_gpu`) finds usable. Raises :class:`ModelError` when a
    requested provider is unknown or nothing is left to try."""
    probe = probe or probe_gpu
    unknown = [name for name in requested or () if name not in PREFERENCE]
    if unknown:
        raise ModelError(f"unknown execution provider(s) {unknown}; known: {', '.join(PREFERENCE)}")
    candidates: list[str] = []
    passed_over: list[tuple[str, str]] = []
    for provider in PREFERENCE:
        if requested is not None and provider not in requested:
            passed_over.append((provider, "not requested"))
        elif provider not in available:
            passed_over.append((provider, "not in this ONNX Runtime build"))
        elif (reason := probe(provider)) is not None:
            passed_over.append((provider, reason))
        else:
            candidates.append(provider)
    if not candidates:
        reasons = "; ".join(f"{name}: {why}" for name, why in passed_over)
        raise ModelError(f"no usable execution provider ({reasons})")
    return ProviderChoice(tuple(candidates), tuple(passed_over))


def probe_gpu(provider: str) -> str | None:
    """Why ``provider`` cannot run on this machine, or None. The CPU always can; CUDA needs the NVIDIA
    driver and a CUDA device; TensorRT also needs its runtime library (libnvinfer)."""
    if provider == CPU:
        return None
    reason = _cuda_device_missing()
    if reason is None and provider == TENSORRT:
        reason = _tensorrt_missing()
    return reason


@functools.cache
def _cuda_device_missing() -> str | None:
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 not found)"
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "the NVIDIA driver reports no CUDA device"
    return None


@functools.cache
def _tensorrt_missing() -> str | None:
    for name in ("libnvinfer.so.10", "libnvinfer.so"):
        try:
            ctypes.CDLL(name)
            return None
        except OSError:
            continue
    return "TensorRT runtime (libnvinfer.so.10) not found"


def provider_options(provider: str, *, input_name: str, frame_px: int, cache_dir: Path | None) -> dict:
    """Per-provider settings. TensorRT: an fp16 engine for batch 1, cached (engine and timing) in
    ``cache_dir`` since building one takes minutes; CUDA: cuDNN's exhaustive algorithm search (slow
    first run, which the warm-up absorbs)."""
    if provider == TENSORRT:
        shape = f"{input_name}:1x1x{frame_px}x{frame_px}"
        options: dict[str, Any] = {
            "trt_fp16_enable": True,
            "trt_profile_min_shapes": shape,
            "trt_profile_opt_shapes": shape,
            "trt_profile_max_shapes": shape,
        }
        if cache_dir is not None:
            options.update(
                trt_engine_cache_enable=True,
                trt_engine_cache_path=str(cache_dir),
                trt_timing_cache_enable=True,
                trt_timing_cache_path=str(cache_dir),
            )
        return options
    if provider == CUDA:
        return {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": True}
    return {}


def device_of(provider: str) -> str:
    """The ``OrtValue`` device type of a provider's memory: ``"cuda"`` (TensorRT, CUDA) or ``"cpu"``."""
    return "cuda" if provider in (TENSORRT, CUDA) else "cpu"


def open_session(
    path: Path,
    choice: ProviderChoice,
    *,
    input_name: str,
    frame_px: int,
    intra_op_threads: int = 0,
    cache_dir: Path | None = None,
) -> tuple[Any, str, str]:
    """The first session of ``choice.candidates`` that really runs on its provider: ``(session,
    provider, reason)``, the reason being one sentence for the log. Raises :class:`ModelError` when
    the file is unreadable or no candidate works."""
    import onnxruntime

    failures = list(choice.passed_over)
    for index, provider in enumerate(choice.candidates):
        # Lower-ranked GPU providers stay behind the chosen one for the nodes it cannot run.
        providers = [
            (name, provider_options(name, input_name=input_name, frame_px=frame_px, cache_dir=cache_dir))
            for name in choice.candidates[index:]
        ]
        try:
            session = onnxruntime.InferenceSession(
                str(path), _session_options(intra_op_threads), providers=providers
            )
        except Exception as error:  # ORT's own untyped errors: corrupt file, or a provider failed hard
            if provider == CPU or _is_model_error(error):
                raise ModelError(f"{path}: not a usable ONNX model: {error}") from error
            failures.append((provider, f"failed to start: {error}"))
            continue
        if session.get_providers()[0] == provider:
            return session, provider, _reason(provider, failures)
        failures.append((provider, "ONNX Runtime fell back from it (its libraries did not load)"))
    raise ModelError(f"{path}: no execution provider could run it ({_describe(failures)})")


def _session_options(intra_op_threads: int) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads  # 0: one per physical core
    # Idle worker threads must not spin: the camera retrieval and the publisher share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; provider fallbacks are reported by open_session
    return options


def _is_model_error(error: Exception) -> bool:
    markers = ("Load model", "INVALID_PROTOBUF", "NO_SUCHFILE", "INVALID_GRAPH")
    return any(marker in str(error) for marker in markers)


def _reason(provider: str, failures: list[tuple[str, str]]) -> str:
    if not failures:
        return "the fastest provider, and available"
    return f"best usable; passed over {_describe(failures)}"


def _describe(failures: list[tuple[str, str]]) -> str:
    return "; ".join(f"{name}: {why}" for name, why in failures) or "none tried"
