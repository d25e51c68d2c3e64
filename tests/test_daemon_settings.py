"""The daemon's settings file: strict, typed, and the timing rules between DMD and camera."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from specklenet.daemon.errors import ConfigError
from specklenet.daemon.settings import DaemonSettings, load_settings
from specklenet.daemon.toml_loader import build


def test_the_example_file_loads_and_documents_the_defaults() -> None:
    assert load_settings(REPO / "systemd" / "daemon.toml") == DaemonSettings()
    assert load_settings(None) == DaemonSettings()


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        ("[dmd]\npicture_time = 5000\n", "dmd.picture_time"),
        ("[camera]\npixel_format = 'Mono16'\n", "camera.pixel_format"),
        ("[camera]\nroi_offset_px = [1, 2, 3]\n", "camera.roi_offset_px"),
        ("[acquisition]\nsequence_pictures = 'many'\n", "acquisition.sequence_pictures"),
        ("[sim.faults]\ndrop_evry = 3\n", "sim.faults.drop_evry"),
        ("[twin]\niris = 5\n", "twin.iris"),
        ("[camra]\n", "camra"),
    ],
)
def test_unknown_keys_and_wrong_types_name_the_key_and_file(tmp_path: Path, toml: str, named: str) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match="daemon.toml: " + re.escape(named)):
        load_settings(path)


def test_values_are_typed_and_nested() -> None:
    settings = build(
        DaemonSettings,
        {
            "dmd": {"picture_time_us": 6_700, "illuminate_time_us": 6_000, "synch_delay_us": 100},
            "camera": {"exposure_us": 6_300, "roi_offset_px": [512, 712]},
            "sim": {"faults": {"drop_every": 7}},
        },
    )
    assert settings.camera.exposure_us == 6_300.0 and settings.camera.roi_offset_px == (512, 712)
    assert settings.sim.faults.drop_every == 7
    assert settings.dmd.timing.picture_time_us == 6_700
    assert settings.timestamp_tolerance_us == 100.0  # min(100 µs early, 6300 - 6100 = 200 µs late)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({"camera": {"exposure_us": 9_000}}, r"does not contain the DMD's illumination \[100, 9900\]"),
        ({"camera": {"trigger_delay_us": 200}}, "does not contain"),
        ({"camera": {"exposure_us": 11_000}}, "after the next picture starts"),
        ({"dmd": {"illuminate_time_us": 10_500}}, "exceeds picture_time_us"),
        ({"dmd": {"illuminate_time_us": 0}}, "set it explicitly"),
        ({"camera": {"roi_px": 1000, "binning": 3}}, "multiple of binning"),
        ({"acquisition": {"flush_interval_s": 2.0}}, "flush_interval_s"),
        ({"sim": {"faults": {"drop_every": -1}}}, "drop_every"),
    ],
)
def test_inconsistent_values_are_refused(tables: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(DaemonSettings, tables)


def test_the_simulated_camera_must_expose_like_the_twin() -> None:
    tables = {
        "dmd": {"picture_time_us": 6_700, "illuminate_time_us": 6_000},
        "camera": {"exposure_us": 6_200},
    }
    hardware = build(DaemonSettings, tables)
    with pytest.raises(ConfigError, match=r"differs from twin\.camera\.exposure_us"):
        hardware.simulated()
    tables["twin"] = {"camera": {"exposure_us": 6_200}}
    assert build(DaemonSettings, tables).simulated().camera.backend == "sim"


def test_loading_a_hardware_config_does_not_import_the_twins_optics() -> None:
    code = (
        "import sys\n"
        "from specklenet.daemon.settings import load_settings\n"
        f"settings = load_settings({str(REPO / 'systemd' / 'daemon.toml')!r})\n"
        "assert settings.dmd.backend == 'alp4'\n"
        "print(sorted(m for m in sys.modules if m == 'scipy' or m.startswith('specklenet.daemon.twin.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['specklenet.daemon.twin.config']"
