"""Configuration of the optical twin: the paper's bench as defaults, every parameter adjustable.

Geometry (Zhang et al., Methods): λ = 532 nm; ViALUX V-7001 DMD, 1024×768 mirrors of 13.7 µm; a target
pixel is a b×b block of mirrors (b = 6 makes the 128-pixel canvas the DMD's full height); object-to-
diffuser distance u = 16 cm, diffuser-to-camera v = 10 cm, iris 5 mm at the diffuser; Basler
acA2440-75um, 2448×2048 pixels of 3.45 µm, a 1024×1024 region of interest area-binned to 256×256.

Axis order everywhere: ``canvases[index, row, column]``, ``frames[index, row, column]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from specklenet.daemon.errors import ConfigError

Diffuser = Literal["multislice", "thin", "matrix"]
Fidelity = Literal["full", "dataset"]
GreyModel = Literal["pwm", "amplitude", "incoherent"]


@dataclass(frozen=True)
class CameraConfig:
    """The camera's signal chain (Sony IMX250 in a Basler acA2440-75um; EMVA-1288 order of magnitude).

    Attributes:
        exposure_us: exposure time; on the bench it spans whole DMD picture times.
        signal_e_per_us: mean photo-electrons per native pixel per µs of exposure for the reference
            canvas (the centre 64×64 target pixels fully lit), over the region of interest.
        full_well_e: electrons at which a native pixel saturates.
        read_noise_e: Gaussian read noise per native pixel, electrons rms.
        adc_bits: ADC depth; counts saturate at 2**adc_bits − 1.
        gain_counts_per_e: ADC counts per electron; by default the ADC range spans the full well.
        dark_offset_counts: black level added to every native pixel (Basler BlackLevel).
        noise: False renders the expected counts (no shot or read noise, no quantisation).
    """

    exposure_us: float = 10_000.0
    signal_e_per_us: float = 0.2
    full_well_e: float = 10_500.0
    read_noise_e: float = 2.4
    adc_bits: int = 12
    gain_counts_per_e: float | None = None
    dark_offset_counts: float = 16.0
    noise: bool = True

    def __post_init__(self) -> None:
        for name in ("exposure_us", "signal_e_per_us", "full_well_e"):
            _positive(f"camera.{name}", getattr(self, name))
        if self.read_noise_e < 0 or self.dark_offset_counts < 0:
            raise ConfigError("camera.read_noise_e and camera.dark_offset_counts must be >= 0")
        if not 8 <= self.adc_bits <= 16:
            raise ConfigError(f"camera.adc_bits: expected 8..16, got {self.adc_bits}")
        if self.gain_counts_per_e is not None:
            _positive("camera.gain_counts_per_e", self.gain_counts_per_e)

    @property
    def saturation_counts(self) -> float:
        """The largest count the ADC delivers."""
        return float(2**self.adc_bits - 1)

    @property
    def gain(self) -> float:
        """ADC counts per electron (explicit, or the ADC range over the full well)."""
        if self.gain_counts_per_e is not None:
            return self.gain_counts_per_e
        return (self.saturation_counts - self.dark_offset_counts) / self.full_well_e


@dataclass(frozen=True)
class TwinConfig:
    """Everything the twin needs to render what the camera records for a DMD canvas.

    Attributes:
        fidelity: ``"full"`` samples the camera at its native 3.45 µm pitch and bins 4×4 (the
            reference); ``"dataset"`` samples the camera field on two interleaved grids of twice that
            pitch, periodic over the region of interest (see :mod:`.plan`). Its statistics after
            binning match the full model's (tests check it) at 1/25 to 1/50 of the cost
            (``benchmarks/twin.py``).
        diffuser: ``"multislice"`` (phase screens with free-space gaps: finite memory effect, the
            default), ``"thin"`` (one screen: infinite memory effect) or ``"matrix"`` (a structured
            random transmission matrix: no memory effect).
        grey_model: ``"pwm"`` integrates the DMD's binary bit-planes, Σ_k 2^k/255 |T B_k|² (what
            the camera records); ``"amplitude"`` (coherent grey field) and ``"incoherent"`` (no
            interference between pixels) exist for ablations only.
        memory_effect_px: object-plane shift, in target pixels, at which the speckle correlation of
            a single lit target pixel falls to about half what a thin screen keeps (multislice only;
            sets the slice gap).
        illumination_focus_mm: distance from the DMD at which the illuminating beam converges;
            ``"fill-iris"`` chooses it so that the whole canvas's geometric shadow fills the iris
            (every canvas pixel sends light to the camera, as the SI random-placement experiment
            needs); ``"collimated"`` for a plane wave.
    """

    fidelity: Fidelity = "dataset"
    diffuser: Diffuser = "multislice"
    grey_model: GreyModel = "pwm"
    wavelength_nm: float = 532.0
    # DMD and canvas
    dmd_mirror_pitch_um: float = 13.7
    dmd_mirrors: tuple[int, int] = (768, 1024)  # (rows, columns)
    block_mirrors: int = 6
    canvas_px: int = 128
    illumination_diameter_px: float = 128.0  # 1/e² intensity diameter of the Gaussian spot
    illumination_focus_mm: float | Literal["fill-iris", "collimated"] = "fill-iris"
    # free space and diffuser
    object_distance_mm: float = 160.0
    image_distance_mm: float = 100.0
    iris_mm: float = 5.0
    slices: int = 2
    slice_phase_rad: float = 4.0  # rms phase of the first screen(s)
    slice_correlation_um: float = 80.0  # correlation length of the first screen(s)
    memory_effect_px: float = 8.0
    incoherent_realisations: int = 32
    # camera geometry
    sensor_px: tuple[int, int] = (2048, 2448)  # (rows, columns)
    pixel_pitch_um: float = 3.45
    roi_px: int = 1024
    frame_px: int = 256
    camera: CameraConfig = field(default_factory=CameraConfig)

    def __post_init__(self) -> None:
        for name in (
            "wavelength_nm",
            "dmd_mirror_pitch_um",
            "illumination_diameter_px",
            "object_distance_mm",
            "image_distance_mm",
            "iris_mm",
            "slice_phase_rad",
            "slice_correlation_um",
            "memory_effect_px",
            "pixel_pitch_um",
        ):
            _positive(name, getattr(self, name))
        if self.block_mirrors < 1 or self.canvas_px < 2:
            raise ConfigError("block_mirrors must be >= 1 and canvas_px >= 2")
        if self.canvas_px * self.block_mirrors > min(self.dmd_mirrors):
            raise ConfigError(
                f"canvas_px × block_mirrors = {self.canvas_px * self.block_mirrors} mirrors does not fit "
                f"the DMD ({self.dmd_mirrors[0]}×{self.dmd_mirrors[1]})"
            )
        if self.roi_px % self.frame_px or self.roi_px > min(self.sensor_px):
            raise ConfigError(
                f"roi_px ({self.roi_px}) must fit the sensor and be a multiple of frame_px ({self.frame_px})"
            )
        if self.fidelity == "dataset" and (self.roi_px // self.frame_px) % 2:
            raise ConfigError(
                "fidelity 'dataset' samples at half the native pitch: roi_px / frame_px must be even"
            )
        if self.slices < 2 and self.diffuser == "multislice":
            raise ConfigError(f"slices: a multislice diffuser needs at least 2 screens, got {self.slices}")
        if isinstance(self.illumination_focus_mm, float) and self.illumination_focus_mm <= 0:
            raise ConfigError("illumination_focus_mm must be > 0, 'fill-iris' or 'collimated'")
        if self.incoherent_realisations < 1:
            raise ConfigError("incoherent_realisations must be >= 1")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], *, where: str = "twin", source: str = "") -> TwinConfig:
        """Strictly build a config from a TOML table (unknown keys and wrong types name themselves)."""
        from specklenet.daemon.toml_loader import build  # local: config.py imports nothing of the twin

        return build(cls, mapping, where=where, source=source)

    # Derived geometry, SI units (metres) for the propagation code.

    @property
    def wavelength_m(self) -> float:
        return self.wavelength_nm * 1e-9

    @property
    def target_pixel_m(self) -> float:
        """Side of one target pixel on the DMD (b mirrors)."""
        return self.block_mirrors * self.dmd_mirror_pitch_um * 1e-6

    @property
    def canvas_m(self) -> float:
        return self.canvas_px * self.target_pixel_m

    @property
    def u_m(self) -> float:
        return self.object_distance_mm * 1e-3

    @property
    def v_m(self) -> float:
        return self.image_distance_mm * 1e-3

    @property
    def iris_m(self) -> float:
        return self.iris_mm * 1e-3

    @property
    def roi_m(self) -> float:
        return self.roi_px * self.pixel_pitch_um * 1e-6

    @property
    def focus_m(self) -> float:
        """Convergence distance of the illumination from the DMD (``math.inf`` when collimated)."""
        if self.illumination_focus_mm == "collimated":
            return math.inf
        if self.illumination_focus_mm == "fill-iris":
            shrink = self.iris_m / self.canvas_m
            if shrink >= 1:
                return math.inf  # the iris already takes the whole collimated canvas
            return self.u_m / (1 - shrink)
        return self.illumination_focus_mm * 1e-3

    @property
    def speckle_grain_m(self) -> float:
        """λv/D: the speckle grain on the camera for an iris filled with scattered light."""
        return self.wavelength_m * self.v_m / self.iris_m


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name}: must be > 0, got {value!r}")
