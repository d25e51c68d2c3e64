"""`specklenet-train demo` (what `make demo` runs) writes its figure from the embedded stand-ins."""

from __future__ import annotations

import pytest

from specklenet.training.cli import main
from specklenet.training.datasets import StandInWarning


def test_demo_writes_the_twin_figure(tmp_path, capsys) -> None:
    with pytest.warns(StandInWarning):
        assert main(["demo", "--output", str(tmp_path)]) == 0
    figure = tmp_path / "twin-demo.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figure.stat().st_size > 50_000  # six panels of speckle, not an empty canvas
    out = capsys.readouterr().out
    assert "digit" in out and "face" in out and "speckle contrast" in out
