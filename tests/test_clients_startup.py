"""The clients start fast: no torch, and the heavy modules (h5py, aiohttp, rich) only in the commands
that use them. Import time itself is measured with ``python -X importtime`` (see the README), not here."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

HEAVY = ("torch", "h5py", "aiohttp", "rich", "onnxruntime", "scipy", "specklenet.training")
DEAD = "tcp://127.0.0.1:9"  # nothing listens on the discard port


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has imported after ``code`` (torch made unimportable)."""
    script = "import sys\nsys.modules['torch'] = None\n" + textwrap.dedent(code)
    script += "\ndel sys.modules['torch']\nprint(' '.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def heavy(modules: set[str]) -> list[str]:
    return sorted(name for name in modules if any(name == h or name.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--control", DEAD, "--timeout", "0.05"],
        ["stop", "--control", DEAD, "--timeout", "0.05"],
        ["watch", "--json", "--count", "0", "--stream", DEAD],
    ],
)
def test_commands_import_nothing_heavy(argv: list[str]) -> None:
    loaded = modules_after(f"from specklenet.clients import cli\ncli.main({argv!r})")
    assert not heavy(loaded)
    assert sorted(name for name in loaded if name.startswith("specklenet.daemon.")) == [
        "specklenet.daemon.protocol"
    ]


def test_building_the_parser_imports_nothing_heavy() -> None:
    assert not heavy(modules_after("from specklenet.clients import cli\ncli.build_parser()"))


def test_the_check_sees_a_heavy_import() -> None:
    """The probe can fail: the recorder's file module does import h5py."""
    assert "h5py" in heavy(modules_after("import specklenet.clients.stream_file"))
