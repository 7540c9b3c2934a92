"""Typed settings from YAML: dataclasses in, clear errors out.

Every configurable part of the project (camera sources, training stages, the live pipeline) declares its settings as
a dataclass with defaults. This module turns a YAML mapping plus ``key=value`` command-line overrides into such an
object, and refuses anything it does not understand: an unknown key, a wrong type or a malformed override is a
:class:`ConfigError` that names the file and the dotted key, and says what was expected.

It lives in ``camera_adapters`` because that is the one package every other package may import (see
ARCHITECTURE.md); it needs only PyYAML.

Example:
    >>> @dataclass
    ... class Train:
    ...     lr: float = 1e-4
    ...     epochs: int = 10
    >>> load_settings(Train, {"lr": 0.01}, overrides=["epochs=3"])
    Train(lr=0.01, epochs=3)
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text

T = TypeVar("T")

SETTINGS_SCHEMA_VERSION = 1


class ConfigError(UserFacingError, ValueError):
    """A configuration value, key or file is wrong; the message names where and what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping from ``path``; an empty file is an empty mapping.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror or err})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """Turn ``["train.lr=0.001", "flow.arch=MotionNet"]`` into a nested mapping.

    Values are parsed as YAML scalars or flow collections (``3``, ``1e-3``, ``true``, ``[128, 128]``, ``null``).

    Raises:
        ConfigError: an override is not of the form ``dotted.key=value``.
    """
    nested: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r}: expected dotted.key=value, for example train.lr=0.001")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        except RecursionError:
            raise ConfigError(f"override {key!r}: the value is nested too deeply") from None
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} was already given a value, it cannot have keys")
            node = child
        node[parts[-1]] = value
    return nested


def merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    cls: type[T],
    data: Mapping[str, Any] | None = None,
    *,
    overrides: Iterable[str] = (),
    source: str = "config",
) -> T:
    """Build a settings dataclass from a mapping and ``key=value`` overrides.

    Args:
        cls: the dataclass type; its field defaults fill what ``data`` leaves out.
        data: the mapping read from YAML (or None for all defaults).
        overrides: ``dotted.key=value`` strings applied on top of ``data``.
        source: where ``data`` came from, used in error messages (usually the file name).

    Raises:
        ConfigError: naming ``source`` and the dotted key, for unknown keys and wrong types.
    """
    merged = merge(data or {}, parse_overrides(overrides))
    return _build(cls, merged, source, "")


def load_settings_file(cls: type[T], path: str | os.PathLike | None, *, overrides: Iterable[str] = ()) -> T:
    """Like :func:`load_settings`, reading the mapping from a YAML file (None for defaults only)."""
    if path is None:
        return load_settings(cls, {}, overrides=overrides, source="defaults")
    return load_settings(cls, read_yaml(path), overrides=overrides, source=str(path))


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """Turn a settings dataclass (or nested values) into plain YAML/JSON-ready Python values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_settings(obj: Any, path: str | os.PathLike, *, header: str | None = None) -> Path:
    """Write settings (a dataclass or mapping) as YAML, atomically, and return the path."""
    text = yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    return atomic_write_text(path, text)


# ---------------------------------------------------------------------------------------------------------------
# Type checking and conversion
# ---------------------------------------------------------------------------------------------------------------


def _where(source: str, key: str) -> str:
    return f"{source}: {key}" if key else source


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """``get_type_hints`` once per class (it compiles every string annotation on each call)."""
    return get_type_hints(cls)


def _build(cls: type[T], data: Any, source: str, prefix: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{_where(source, prefix or '(top level)')}: expected a mapping, got {data!r}")
    hints = _type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        known = ", ".join(sorted(fields))
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(f"{_where(source, key)}: unknown key (known keys here: {known})")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints[name], source, f"{prefix}{name}")
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{_where(source, prefix.rstrip('.') or '(top level)')}: {err}") from None
    return obj


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number", "bool": "true or false"}.get(
            tp.__name__, tp.__name__
        )
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, source: str, key: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        # None first, so Optional[int] accepts null without trying int(None).
        for arg in sorted(args, key=lambda a: a is not type(None)):
            try:
                return _convert(value, arg, source, key)
            except ConfigError as err:
                errors.append(err)
        expected = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{_where(source, key)}: expected {expected}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{_where(source, key)}: expected null, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        choices = ", ".join(repr(a) for a in args)
        raise ConfigError(f"{_where(source, key)}: expected one of {choices}, got {value!r}")
    if dataclasses.is_dataclass(tp):
        return _build(tp, value if value is not None else {}, source, f"{key}.")
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{_where(source, key)}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{_where(source, key)}: expected a list of {len(args)} values, got {value!r}")
            return tuple(_convert(v, a, source, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_convert(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{_where(source, key)}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_convert(k, kt, source, f"{key}.{k}"): _convert(v, vt, source, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{_where(source, key)}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{_where(source, key)}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML reads 1e-4 (no dot) as a string
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{_where(source, key)}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{_where(source, key)}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise ConfigError(f"{_where(source, key)}: expected a path, got {value!r}")
    raise TypeError(f"settings field {key} has an unsupported type {tp!r}")  # a bug in our dataclass, not user input
