"""Shared fixtures. Real data (MNIST, LFW) is read from ../shared/data when it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The lab's reference data folder; tests that need it are skipped with the reason when absent."""
    if not (SHARED_DATA / "mnist").is_dir() or not (SHARED_DATA / "lfw").is_dir():
        pytest.skip(f"real MNIST/LFW data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ci_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small exported model (``ci`` profile, trained on 256 twin shape pairs), built once per session:
    takes 256×256 twin frames, reconstructs the centre 64×64 window of the 128×128 canvas at 32×32."""
    from twin_pairs import cached_ci_model

    return cached_ci_model(tmp_path_factory.getbasetemp())
