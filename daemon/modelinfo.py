"""What a trained model needs its user to know, stored in the ONNX file's ``metadata_props``.

The training package writes it on export; the daemon reads it back from
``onnxruntime.InferenceSession(path).get_modelmeta().custom_metadata_map`` instead of being told
separately how to feed the model and where its output belongs. This module is the schema's single
definition, and imports neither torch nor onnx.

Contract of a model with this metadata:
    input  ``input_name``: float32 ``(batch, 1, frame_px, frame_px)``, camera frames normalised with
           ``normalisation`` (:class:`~specklenet.daemon.normalisation.Normalisation`); batch is dynamic.
    output ``output_name``: float32 ``(batch, 1, output_px, output_px)`` in [0, 1], the reconstruction of
           the canvas region ``window`` = (row0, col0, rows, columns) in target pixels on the
           ``canvas_px``² DMD canvas, resized (bilinear) from rows×columns to output_px².

Keys are ``specklenet.<field>`` plus the normalisation's own ``normalisation.*`` keys; provenance entries
(free-form strings: model shape, profile settings, twin description, ...) are ``specklenet.provenance.<key>``.
Immutable: thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.normalisation import Normalisation

SCHEMA_VERSION = "1"
_PREFIX = "specklenet."
_PROVENANCE = "specklenet.provenance."


@dataclass(frozen=True)
class ModelInfo:
    """The metadata of an exported reconstruction model (see the module docstring for the contract).

    Attributes:
        case: the experimental case the model was trained on (``"1"``, ``"4b"``, ``"SI"``, ...).
        profile: the training profile's name (``"paper"``, ``"quick"``, ``"ci"`` or a file's stem).
        frame_px: side of the input frames (256: the camera's binned region of interest).
        output_px: side of the output image.
        window: (row0, col0, rows, columns) of the canvas region the output reconstructs.
        normalisation: how camera counts were turned into the network's input.
        training_data_sha256: checksum of the training pairs used (targets and frames, in order).
        package_version: the specklenet version that trained and exported the model.
        canvas_px: side of the DMD canvas in target pixels.
        training_source: where the training speckle came from, ``"twin"`` or ``"hardware"``.
        input_name, output_name: the ONNX graph's input and output names.
        provenance: further free-form facts, string to string.
    """

    case: str
    profile: str
    frame_px: int
    output_px: int
    window: tuple[int, int, int, int]
    normalisation: Normalisation
    training_data_sha256: str
    package_version: str
    canvas_px: int = 128
    training_source: str = "twin"
    input_name: str = "speckle"
    output_name: str = "reconstruction"
    provenance: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        row0, col0, rows, cols = self.window
        if min(self.frame_px, self.output_px, rows, cols) < 1 or min(row0, col0) < 0:
            raise ConfigError(f"model metadata: sizes must be positive, got window {self.window}")
        if row0 + rows > self.canvas_px or col0 + cols > self.canvas_px:
            raise ConfigError(f"model metadata: window {self.window} exceeds the {self.canvas_px}² canvas")

    @property
    def window_slices(self) -> tuple[slice, slice]:
        """``canvas[rows, columns]`` slices of the output window."""
        row0, col0, rows, cols = self.window
        return slice(row0, row0 + rows), slice(col0, col0 + cols)

    def to_metadata(self) -> dict[str, str]:
        """String key/values for ONNX ``metadata_props``."""
        fields = {
            "schema_version": SCHEMA_VERSION,
            "case": self.case,
            "profile": self.profile,
            "frame_px": str(self.frame_px),
            "output_px": str(self.output_px),
            "window": ",".join(str(value) for value in self.window),
            "canvas_px": str(self.canvas_px),
            "training_data_sha256": self.training_data_sha256,
            "package_version": self.package_version,
            "training_source": self.training_source,
            "input_name": self.input_name,
            "output_name": self.output_name,
        }
        metadata = {_PREFIX + key: value for key, value in fields.items()}
        metadata.update(self.normalisation.to_metadata())
        metadata.update({_PROVENANCE + key: str(value) for key, value in self.provenance.items()})
        return metadata

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ModelInfo:
        """Inverse of :meth:`to_metadata`; a missing or malformed key raises :class:`ConfigError`
        naming it (a model exported by something else has none of these keys)."""
        version = metadata.get(_PREFIX + "schema_version")
        if version is None:
            raise ConfigError(
                "model metadata lacks specklenet.schema_version: not exported by specklenet-train"
            )
        if version != SCHEMA_VERSION:
            raise ConfigError(
                f"model metadata schema {version!r} is not supported (expected {SCHEMA_VERSION!r})"
            )

        def get(key: str) -> str:
            try:
                return metadata[_PREFIX + key]
            except KeyError:
                raise ConfigError(f"model metadata lacks {_PREFIX + key}") from None

        def integer(key: str) -> int:
            try:
                return int(get(key))
            except ValueError:
                raise ConfigError(f"model metadata {_PREFIX + key}: not an integer: {get(key)!r}") from None

        try:
            window = tuple(int(value) for value in get("window").split(","))
        except ValueError:
            window = ()
        if len(window) != 4:
            raise ConfigError(f"model metadata {_PREFIX}window: expected 4 integers, got {get('window')!r}")
        return cls(
            case=get("case"),
            profile=get("profile"),
            frame_px=integer("frame_px"),
            output_px=integer("output_px"),
            window=window,  # type: ignore[arg-type]
            normalisation=Normalisation.from_metadata(dict(metadata)),
            training_data_sha256=get("training_data_sha256"),
            package_version=get("package_version"),
            canvas_px=integer("canvas_px"),
            training_source=get("training_source"),
            input_name=get("input_name"),
            output_name=get("output_name"),
            provenance={
                key.removeprefix(_PROVENANCE): value
                for key, value in metadata.items()
                if key.startswith(_PROVENANCE)
            },
        )
