"""Strict, typed configuration: frozen dataclasses built from plain mappings (TOML) at the boundary.

Unknown keys are errors, and so are values of the wrong type; each error names the dotted key and
the source. Nested dataclass fields are built from nested tables. ``Literal`` fields accept only their
listed values; ``float`` fields accept ints; tuples accept lists of the right length.

Thread-safety: the functions are pure; the objects they build are immutable.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from specklenet.daemon.errors import ConfigError

T = TypeVar("T")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a dict; a missing or malformed file raises :class:`ConfigError`."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error


def build(cls: type[T], mapping: Mapping[str, Any], *, where: str = "", source: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``mapping``, rejecting unknown keys and wrong types.

    Args:
        cls: a dataclass type whose fields carry type annotations.
        mapping: the values, typically one TOML table; missing keys take the field defaults.
        where: dotted path of this table, used in error messages (``"twin"``).
        source: where the mapping came from (a file name), used in error messages.
    """
    if not isinstance(mapping, Mapping):
        raise ConfigError(_name(source, where) + f": expected a table, got {type(mapping).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(mapping) - set(fields))
    if unknown:
        known = ", ".join(sorted(fields))
        raise ConfigError(f"{_name(source, _join(where, unknown[0]))}: unknown key (known keys: {known})")
    values = {key: _convert(hints[key], value, _join(where, key), source) for key, value in mapping.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{_name(source, where)}: {error}") from error


def _convert(hint: Any, value: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where=where, source=source)
    if origin is typing.Literal:
        if value in typing.get_args(hint) and not isinstance(value, bool):
            return value
        raise _type_error(where, source, " or ".join(repr(a) for a in typing.get_args(hint)), value)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _convert(option, value, where, source)
            except ConfigError:
                continue
        raise _type_error(where, source, _describe(hint), value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise _type_error(where, source, f"a list of {len(args)} values", value)
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(a, v, f"{where}[{i}]", source) for i, (a, v) in pairs)
    if hint is type(None):
        if value is None:
            return None
        raise _type_error(where, source, "nothing", value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    bool_for_number = isinstance(value, bool) and hint is not bool  # True is an int in Python
    if isinstance(hint, type) and isinstance(value, hint) and not bool_for_number:
        return value
    raise _type_error(where, source, _describe(hint), value)


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def _type_error(where: str, source: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{_name(source, where)}: expected {expected}, got {value!r}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(source: str, where: str) -> str:
    return f"{source}: {where}" if source else where
