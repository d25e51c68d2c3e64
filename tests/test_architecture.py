"""Packaging states the architecture: the daemon runs without torch, clients see only the protocol."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib

from conftest import REPO

PACKAGE_ROOTS = {"daemon": "specklenet.daemon", "training": "specklenet.training", "clients": "specklenet.clients"}


def _module_names(folder: str) -> list[str]:
    prefix = PACKAGE_ROOTS[folder]
    names = []
    for path in sorted((REPO / folder).rglob("*.py")):
        parts = path.relative_to(REPO / folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join((prefix, *parts)))
    return names


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False)


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = set()
    for folder, prefix in PACKAGE_ROOTS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            on_disk.add(".".join((prefix, *parts)))
    assert on_disk == listed


def test_daemon_imports_without_torch_or_training() -> None:
    modules = _module_names("daemon")
    result = _run(
        f"""
        import importlib, sys
        sys.modules["torch"] = None  # any import of torch now raises ImportError
        for name in {modules!r}:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.startswith("specklenet.training"))
        assert not leaked, leaked
        """
    )
    assert result.returncode == 0, result.stderr


def test_clients_import_only_the_wire_protocol_of_the_daemon() -> None:
    modules = _module_names("clients")
    result = _run(
        f"""
        import importlib, sys
        for name in {modules!r}:
            importlib.import_module(name)
        seen = sorted(m for m in sys.modules if m.startswith("specklenet.daemon."))
        assert seen in ([], ["specklenet.daemon.protocol"]), seen
        assert "torch" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
