"""Training profiles: the paper's settings, and strict TOML overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from specklenet.daemon.errors import ConfigError
from specklenet.training.profiles import PROFILES, Profile, load_profile


def test_paper_profile_has_the_papers_settings() -> None:
    paper = load_profile("paper")
    assert paper.learning_rate == 1e-4
    assert paper.max_epochs == 50
    assert paper.model.kernel_size == 7
    assert paper.model.depth == 4
    assert paper.model.resolution_px == 256
    assert paper.model.frame_px == 256
    assert paper.n_train == 9950


def test_smaller_profiles_are_smaller() -> None:
    paper, quick, ci = PROFILES["paper"], PROFILES["quick"], PROFILES["ci"]
    assert ci.model.resolution_px < quick.model.resolution_px < paper.model.resolution_px
    assert ci.model.base_width < quick.model.base_width < paper.model.base_width
    assert ci.n_train < quick.n_train < paper.n_train


def test_demo_profile_is_the_quick_network_trained_briefly() -> None:
    demo, quick = PROFILES["demo"], PROFILES["quick"]
    assert demo.model == quick.model and demo.n_train == quick.n_train  # what reached PCC 0.78 in 6 epochs
    assert demo.max_epochs == 6 < quick.max_epochs


def test_profiles_round_trip_through_plain_dicts() -> None:
    for profile in PROFILES.values():
        assert Profile.from_dict(profile.to_dict()) == profile


def test_toml_file_overrides_a_base_profile(tmp_path: Path) -> None:
    path = tmp_path / "wide.toml"
    path.write_text('base = "quick"\nmax_epochs = 3\n[model]\nbase_width = 12\n')
    profile = load_profile(path)
    assert profile.name == "wide"
    assert profile.max_epochs == 3
    assert profile.model.base_width == 12
    quick = PROFILES["quick"].model
    assert profile.model == type(quick)(**{**quick.to_dict(), "base_width": 12})  # the rest from the base


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("max_epoch = 3\n", "profile.max_epoch"),
        ("[model]\nwidth = 3\n", "profile.model.width"),
        ('precision = "fp16"\n', "profile.precision"),
        ('base = "huge"\n', "base"),
        ("batch_size = 1\n", "batch_size"),
    ],
)
def test_bad_profile_files_name_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_profile(path)


def test_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="ci"):
        load_profile("fast")
