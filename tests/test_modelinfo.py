"""The model metadata schema the daemon reads from ONNX files (no torch or onnx needed here)."""

from __future__ import annotations

import pytest

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.modelinfo import ModelInfo
from specklenet.daemon.normalisation import Normalisation


def _info(**changes) -> ModelInfo:
    values = {
        "case": "4b",
        "profile": "quick",
        "frame_px": 256,
        "output_px": 64,
        "window": (32, 32, 64, 64),
        "normalisation": Normalisation(dark_offset_counts=12.0),
        "training_data_sha256": "ab" * 32,
        "package_version": "0.1.0",
        "training_source": "hardware",
        "provenance": {"best_epoch": "7", "model": '{"depth": 4}'},
    }
    return ModelInfo(**{**values, **changes})


def test_round_trip_through_string_metadata() -> None:
    info = _info()
    metadata = info.to_metadata()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    assert metadata["specklenet.window"] == "32,32,64,64"
    assert metadata["normalisation.dark_offset_counts"] == "12.0"
    assert ModelInfo.from_metadata(metadata) == info


def test_window_slices_select_the_output_region() -> None:
    rows, cols = _info(window=(10, 20, 30, 40)).window_slices
    assert (rows.start, rows.stop, cols.start, cols.stop) == (10, 40, 20, 60)


@pytest.mark.parametrize("key", ["specklenet.case", "specklenet.output_px", "normalisation.method"])
def test_a_missing_key_is_named(key: str) -> None:
    metadata = _info().to_metadata()
    del metadata[key]
    with pytest.raises(ConfigError, match=key.split(".")[-1] if key.startswith("norm") else key):
        ModelInfo.from_metadata(metadata)


def test_malformed_values_are_named() -> None:
    metadata = _info().to_metadata()
    with pytest.raises(ConfigError, match=r"specklenet\.window"):
        ModelInfo.from_metadata({**metadata, "specklenet.window": "32,32,64"})
    with pytest.raises(ConfigError, match=r"specklenet\.frame_px"):
        ModelInfo.from_metadata({**metadata, "specklenet.frame_px": "many"})


def test_foreign_models_and_other_schema_versions_are_refused() -> None:
    with pytest.raises(ConfigError, match="not exported by specklenet"):
        ModelInfo.from_metadata({"producer": "someone"})
    with pytest.raises(ConfigError, match="schema"):
        ModelInfo.from_metadata({**_info().to_metadata(), "specklenet.schema_version": "99"})


def test_window_must_lie_on_the_canvas() -> None:
    with pytest.raises(ConfigError, match="exceeds"):
        _info(window=(100, 32, 64, 64))
