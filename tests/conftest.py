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
