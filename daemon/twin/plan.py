"""Sampling of the twin's planes for each fidelity level.

``"full"`` is the reference: the diffuser plane sampled at 4 µm (its angular band, ±66 mrad, holds
every ray from the iris that can reach the region of interest), and the camera field evaluated at
the native 3.45 µm pixels by a matrix Fresnel transform (no periodicity: light that misses the
region of interest is lost, as on the bench), then 4×4 area binning.

``"dataset"`` samples the diffuser plane at λv/L (L: the region of interest, 15 µm) on an FFT grid
as many points wide as the camera samples, so one FFT is the Fresnel propagation onto the region of
interest at twice the native pitch (6.9 µm, finer than the field's Nyquist pitch λv/D = 10.6 µm);
a second FFT samples the points in between, and binning both 2×2 integrates each delivered pixel
over a checkerboard of its native 4×4 grid. Its camera plane is periodic over the region of
interest: the diffuser's angular spectrum is band-limited to the directions that land on it. The
statistics after binning match the full model's (tests compare contrast, histogram, grain and
memory effect).

Grids nest. The iris ``box`` sits at sample ``box_at`` of the diffuser's ``stage`` grid (its FFT
gaps), far enough from the edges that the light walking sideways inside the diffuser never wraps
around; at ``"dataset"`` fidelity the stage grid is the corner of the camera's FFT grid
(``camera_grid``), which is exact for intensities: padding at the end instead of around the centre
only moves the input circularly, a phase ramp the camera never sees. Physical position of stage
sample ``i``: ``(i − box_at − box // 2) · pitch`` (the iris centred on the optical axis).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft

from specklenet.daemon.twin.config import TwinConfig

FULL_PITCH_M = 4.0e-6
_GUARD_SAMPLES = 8


@dataclass(frozen=True)
class SamplingPlan:
    """Grids of one fidelity level (sample counts per axis).

    Attributes:
        pitch_m: sample pitch in the diffuser plane.
        box: samples holding the iris (the field is zero outside them at the iris); even.
        stage: the FFT grid of the diffuser's gaps and Fourier-plane screens (``box`` when none).
        box_at: index of the iris box's first sample in the stage grid.
        exit_at, exit: the stage samples whose light can reach the camera step.
        camera_grid: FFT size of the periodic camera step (``"dataset"``), else 0.
        camera_samples: camera-plane samples per axis before binning.
        camera_pitch_m: their pitch.
        binning: area-binning factor to the delivered frame.
    """

    pitch_m: float
    box: int
    stage: int
    box_at: int
    exit_at: int
    exit: int
    camera_grid: int
    camera_samples: int
    camera_pitch_m: float
    binning: int

    @property
    def periodic_camera(self) -> bool:
        return self.camera_grid > 0

    @property
    def stage_x_m(self) -> np.ndarray:
        """Physical positions of the stage grid's samples."""
        return (np.arange(self.stage) - self.box_at - self.box // 2) * self.pitch_m

    @property
    def stage_at(self) -> int:
        """Index of the stage grid's first sample in the camera grid (iris centred on its axis)."""
        return self.camera_grid // 2 - self.box // 2 - self.box_at


def plan_for(config: TwinConfig, gap_m: float) -> SamplingPlan:
    """The sampling plan for ``config`` with ``gap_m`` of free space inside the diffuser."""
    if config.fidelity == "dataset":
        samples = config.roi_px // 2
        camera_pitch = 2 * config.pixel_pitch_um * 1e-6
        pitch = config.wavelength_m * config.v_m / (samples * camera_pitch)
        camera_grid, binning = samples, samples // config.frame_px
    else:
        samples, camera_pitch = config.roi_px, config.pixel_pitch_um * 1e-6
        pitch, camera_grid, binning = FULL_PITCH_M, 0, config.roi_px // config.frame_px
    box = _even(math.ceil(config.iris_m / pitch) + 2)
    # The steepest ray the grid holds walks gap · λ / (2 pitch) sideways inside the diffuser.
    walk = math.ceil(gap_m * config.wavelength_m / (2 * pitch) / pitch) + _GUARD_SAMPLES
    if config.diffuser == "thin":
        stage, box_at, exit_at, exit_ = box, 0, 0, box
    elif config.diffuser == "matrix":  # mixes its whole periodic grid
        stage = camera_grid or _fast(box + 2 * _GUARD_SAMPLES)
        box_at, exit_at, exit_ = (stage - box) // 2, 0, stage
    else:  # the light may walk `walk` samples either side; the FFT grid leaves as much again empty
        stage = _fast(box + 4 * walk)
        box_at, exit_at, exit_ = 2 * walk, walk, box + 2 * walk
    if camera_grid and stage > camera_grid:
        raise ValueError(
            f"the diffuser ({stage} samples of {pitch * 1e6:.1f} µm) is wider than the camera grid"
        )
    return SamplingPlan(
        pitch, box, stage, box_at, exit_at, exit_, camera_grid, samples, camera_pitch, binning
    )


def _even(n: int) -> int:
    return n + n % 2


def _fast(n: int) -> int:
    """The smallest even size ≥ n whose FFT is fast (factors 2, 3, 5)."""
    n = scipy.fft.next_fast_len(n)
    while n % 2:
        n = scipy.fft.next_fast_len(n + 1)
    return n
