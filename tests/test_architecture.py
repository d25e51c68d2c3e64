"""Packaging states the architecture: the daemon runs without torch, clients see only the protocol.

Two checks of each contract: a static one that reads every ``import`` in the source (function bodies
included, where lazy imports hide), and a dynamic one that imports every module in a fresh interpreter
with torch made unimportable. (import-linter cannot see the packages through the editable install's
path finder, so these tests are the contract.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE_ROOTS = {
    "daemon": "specklenet.daemon",
    "training": "specklenet.training",
    "clients": "specklenet.clients",
}


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
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )


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


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module ``path`` imports anywhere (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _sources(folder: str) -> list[tuple[Path, set[str]]]:
    prefix = PACKAGE_ROOTS[folder]
    found = []
    for path in sorted((REPO / folder).rglob("*.py")):
        package = ".".join((prefix, *path.parent.relative_to(REPO / folder).parts))
        found.append((path, _imports(path, package)))
    return found


def _offending(names: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize(("path", "names"), _sources("daemon"), ids=lambda v: getattr(v, "name", ""))
def test_daemon_source_never_imports_torch_or_training(path: Path, names: set[str]) -> None:
    assert not _offending(names, ("torch", "specklenet.training")), path


@pytest.mark.parametrize(("path", "names"), _sources("clients"), ids=lambda v: getattr(v, "name", ""))
def test_clients_source_imports_only_the_protocol_of_the_daemon(path: Path, names: set[str]) -> None:
    daemon = [n for n in _offending(names, ("specklenet.daemon",)) if n not in DAEMON_FOR_CLIENTS]
    assert not daemon, path
    assert not _offending(names, ("torch", "specklenet.training")), path


def test_the_static_check_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text(
        "def f():\n    import torch.nn\n    from .twin import Twin\n    from . import protocol\n"
    )
    names = _imports(source, "specklenet.daemon")
    assert _offending(names, ("torch",)) == ["torch.nn"]
    assert "specklenet.daemon.twin.Twin" in names
    assert "specklenet.daemon.protocol" in names


DAEMON_FOR_CLIENTS = {"specklenet.daemon", "specklenet.daemon.protocol"}
