"""Strict configuration: unknown keys and wrong types are errors naming the key."""

from __future__ import annotations

import pytest

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.toml_loader import build, load_toml
from specklenet.daemon.twin import TwinConfig


def test_defaults_are_the_papers_bench() -> None:
    config = build(TwinConfig, {})
    assert config == TwinConfig()
    assert config.wavelength_nm == 532.0
    assert config.object_distance_mm == 160.0
    assert config.image_distance_mm == 100.0
    assert config.iris_mm == 5.0
    assert config.canvas_px * config.block_mirrors == 768  # the canvas is the DMD's full height
    assert config.diffuser == "multislice"


def test_nested_tables_and_int_for_float() -> None:
    config = build(TwinConfig, {"iris_mm": 3, "camera": {"exposure_us": 500}, "sensor_px": [2048, 2448]})
    assert config.iris_mm == 3.0
    assert config.camera.exposure_us == 500.0
    assert config.sensor_px == (2048, 2448)


@pytest.mark.parametrize(
    ("mapping", "named"),
    [
        ({"iris": 5.0}, "twin.iris"),
        ({"camera": {"exposure_ms": 1}}, "twin.camera.exposure_ms"),
        ({"diffuser": "frosted"}, "twin.diffuser"),
        ({"iris_mm": "five"}, "twin.iris_mm"),
        ({"slices": 2.5}, "twin.slices"),
        ({"camera": {"noise": 1}}, "twin.camera.noise"),
        ({"sensor_px": [2048]}, "twin.sensor_px"),
    ],
)
def test_bad_values_name_the_key(mapping: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        build(TwinConfig, mapping, where="twin", source="daemon.toml")


def test_out_of_range_is_an_error() -> None:
    with pytest.raises(ConfigError, match="iris_mm"):
        TwinConfig(iris_mm=0)
    with pytest.raises(ConfigError, match="slices"):
        TwinConfig(slices=1)


def test_toml_file_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_toml(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[twin\n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_toml(broken)
