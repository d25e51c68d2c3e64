"""Sampling of the twin's planes for each fidelity level.

``"full"`` is the reference: the diffuser plane sampled at 4 µm (its angular band, ±66 mrad, holds
every ray from the iris that can reach the region of interest), and the camera field evaluated at
the native 3.45 µm pixels by a matrix Fresnel transform (no periodicity: light that misses the
region of interest is lost, as on the bench), then 4×4 area binning.

``"dataset"`` samples the diffuser plane at λv/L (L: the region of interest, 15 µm) on an FFT grid
as many points wide as the camera samples, so one FFT is the Fresnel propagation onto the region of
interest at twice the native pitch (6.9 µm, finer than the field's Nyquist pitch λv/D = 10.6 µm),
followed by 2×2 binning. Its camera plane is periodic over the region of interest: the diffuser's
angular spectrum is band-limited to the directions that land on it. The statistics after binning
match the full model's (tests compare contrast, histogram, grain and memory effect), at about 1/60
of the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from specklenet.daemon.twin.config import TwinConfig
from specklenet.daemon.twin.optics import centred_coordinates

FULL_PITCH_M = 4.0e-6


@dataclass(frozen=True)
class SamplingPlan:
    """Grids of one fidelity level.

    Attributes:
        pitch_m: sample pitch in the diffuser plane.
        grid: samples per axis of the (periodic) diffuser-plane grid used by FFT steps.
        box: slice of the grid that holds the iris (the field is zero outside it at the iris).
        exit_box: slice of the grid whose field can reach the camera after the diffuser's gaps.
        camera_samples: camera-plane samples per axis before binning.
        camera_pitch_m: their pitch.
        binning: area-binning factor to the delivered frame (``camera_samples // binning`` pixels).
        periodic_camera: True when the camera plane is computed by FFT (``"dataset"``).
    """

    pitch_m: float
    grid: int
    box: slice
    exit_box: slice
    camera_samples: int
    camera_pitch_m: float
    binning: int
    periodic_camera: bool

    @property
    def x_m(self) -> np.ndarray:
        """Diffuser-plane sample positions of the whole grid."""
        return centred_coordinates(self.grid, self.pitch_m)


def plan_for(config: TwinConfig, spread_m: float) -> SamplingPlan:
    """The sampling plan for ``config``; ``spread_m`` is how far light can walk sideways inside the
    diffuser (between its first and last screens), which the full grid must leave room for."""
    if config.fidelity == "dataset":
        return _dataset_plan(config)
    return _full_plan(config, spread_m)


def _dataset_plan(config: TwinConfig) -> SamplingPlan:
    samples = config.roi_px // 2
    camera_pitch = 2 * config.pixel_pitch_um * 1e-6
    pitch = config.wavelength_m * config.v_m / (samples * camera_pitch)
    if samples * pitch < config.iris_m + 2 * pitch:
        raise ValueError("dataset fidelity: the diffuser grid is narrower than the iris")
    box = _centred_slice(samples, _samples_across(config.iris_m, pitch))
    return SamplingPlan(
        pitch_m=pitch,
        grid=samples,
        box=box,
        exit_box=slice(0, samples),
        camera_samples=samples,
        camera_pitch_m=camera_pitch,
        binning=samples // config.frame_px,
        periodic_camera=True,
    )


def _full_plan(config: TwinConfig, spread_m: float) -> SamplingPlan:
    pitch = FULL_PITCH_M
    across = _samples_across(config.iris_m, pitch)
    exit_across = _samples_across(config.iris_m + 2 * spread_m, pitch)
    # Guard band: the FFT steps are periodic, so leave the spread again on each side empty.
    grid = scipy.fft.next_fast_len(_samples_across(config.iris_m + 4 * spread_m, pitch) + 16)
    grid += grid % 2
    return SamplingPlan(
        pitch_m=pitch,
        grid=grid,
        box=_centred_slice(grid, across),
        exit_box=_centred_slice(grid, exit_across),
        camera_samples=config.roi_px,
        camera_pitch_m=config.pixel_pitch_um * 1e-6,
        binning=config.roi_px // config.frame_px,
        periodic_camera=False,
    )


def _samples_across(width_m: float, pitch_m: float) -> int:
    """An even number of samples covering ``width_m`` with one sample to spare on each side."""
    n = math.ceil(width_m / pitch_m) + 2
    return n + n % 2


def _centred_slice(grid: int, width: int) -> slice:
    start = grid // 2 - width // 2
    return slice(start, start + width)
