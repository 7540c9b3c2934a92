"""Plug-ins by name: the one registry pattern of frame sources, inference engines, processors and models.

A plug-in is a class (for models also a constructor function) with

- a **name**: its ``name`` class attribute (or the name given when registering a constructor);
- an **availability check**: a classmethod ``availability()`` returning ``(usable here, why)`` or an
  :class:`Availability`; it must be cheap, must not import heavy frameworks it does not need, and should not
  raise (the registry reports an exception as "not usable: probing failed");
- **typed settings**: a ``Settings`` dataclass (sources, processors: built from YAML and ``key=value`` options by
  :mod:`camera_adapters.settings`, unknown keys refused), or the annotated keyword arguments of its constructor
  (engines, models, whose options arrive typed from the config dataclasses). :func:`settings_of` lists either
  the same way.

Each family keeps one :class:`Registry`::

    SOURCES = Registry("source", ConfigError)

    @SOURCES.register
    class Synthetic(FrameSource):
        name = "synthetic"

    SOURCES.get("nope")   # ConfigError: unknown source 'nope'; known sources: basler, ffmpeg, ...

An unknown name raises the family's own error class (a :class:`~camera_adapters.errors.UserFacingError`) with
the list of known names. The module lives in ``camera_adapters``, the bottom layer every package may import, and
imports no framework (standard library and :mod:`camera_adapters.settings` only).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from camera_adapters.settings import ConfigError

__all__ = ["REQUIRED", "Availability", "Registry", "SettingField", "settings_of"]

P = TypeVar("P")


@dataclass(frozen=True)
class Availability:
    """Whether a plug-in can run here, and why (or why not).

    Attributes:
        name: the plug-in's registry name.
        available: usable on this machine (its framework, SDK or device is there).
        reason: a human-readable explanation: what was found, or what is missing and how to install it.
        devices: what it could run on, where that means something (``("cpu", "cuda:0")`` for engines).
    """

    name: str
    available: bool
    reason: str
    devices: tuple[str, ...] = ()


class _Required:
    def __repr__(self) -> str:
        return "(required)"


#: The default of a setting that has none.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class SettingField:
    """One typed setting of a plug-in: its name, its type as written in the source, and its default."""

    name: str
    type: str
    default: Any = REQUIRED


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    if tp is inspect.Parameter.empty:
        return "any"
    return getattr(tp, "__name__", str(tp))


def settings_of(plugin: Any) -> list[SettingField]:
    """The typed settings of a plug-in: the fields of its ``Settings`` dataclass, else its constructor's keywords.

    Positional-only parameters, ``*args``/``**kwargs`` and the leading argument engines take (the bundle) are
    not settings and are left out.
    """
    settings_cls = getattr(plugin, "Settings", None)
    if isinstance(settings_cls, type) and dataclasses.is_dataclass(settings_cls):
        out = []
        for f in dataclasses.fields(settings_cls):
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = REQUIRED
            out.append(SettingField(f.name, _type_name(f.type), default))
        return out
    try:
        signature = inspect.signature(plugin)
    except (TypeError, ValueError):
        return []
    out = []
    for p in signature.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
            continue
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty and p.name in ("bundle",):
            continue
        default = REQUIRED if p.default is p.empty else p.default
        out.append(SettingField(p.name, _type_name(p.annotation), default))
    return out


class Registry(Generic[P]):
    """Plug-ins of one family by name.

    Args:
        kind: what one plug-in is called in messages (``"source"``, ``"flow model"``).
        error: the exception class an unknown name raises (called with the message).
        plural: the plural of ``kind`` (default ``kind + "s"``).
        also: names accepted besides the registered ones, listed first in errors (``("auto",)`` for engines).
        hint: appended to the unknown-name message (``"or package.module:ClassName"``).
        case_insensitive: names are stored and looked up lower-case.
        check: called with each plug-in at registration; raises ``TypeError`` for a malformed one.
        loader: called (once) before the first lookup, to import the modules whose decorators register.
    """

    def __init__(
        self,
        kind: str,
        error: Callable[[str], Exception] = ConfigError,
        *,
        plural: str | None = None,
        also: Iterable[str] = (),
        hint: str = "",
        case_insensitive: bool = False,
        check: Callable[[P], None] | None = None,
        loader: Callable[[], None] | None = None,
    ):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self.error = error
        self.also = tuple(also)
        self.hint = hint
        self.case_insensitive = case_insensitive
        self._check = check
        self._loader = loader
        self._loaded = loader is None
        self._entries: dict[str, P | str] = {}

    # -------------------------------------------------------------------------------------------- registering
    def _key(self, name: str) -> str:
        return name.lower() if self.case_insensitive else name

    def add(self, plugin: P | str, name: str | None = None) -> None:
        """Register ``plugin`` under ``name`` (default: its ``name`` attribute).

        ``plugin`` may be a ``"package.module:Class"`` string: the module is imported when the plug-in is
        first used, so registering costs nothing.

        Raises:
            TypeError: no name, a malformed plug-in (``check``), or another plug-in holds the name already.
        """
        if name is None:
            name = getattr(plugin, "name", "")
        if not name or not isinstance(name, str):
            raise TypeError(f"{getattr(plugin, '__name__', plugin)!r} has no {self.kind} name")
        if not isinstance(plugin, str) and self._check is not None:
            self._check(plugin)
        key = self._key(name)
        existing = self._entries.get(key)
        if existing is not None and existing is not plugin and existing != plugin:
            same_class = (
                not isinstance(existing, str)
                and not isinstance(plugin, str)
                and getattr(existing, "__qualname__", None) == getattr(plugin, "__qualname__", 0)
                and getattr(existing, "__module__", None) == getattr(plugin, "__module__", 0)
            )
            if not same_class:  # re-running a module (importlib.reload) re-registers the same class: fine
                raise TypeError(f"{self.kind} {key!r} is registered twice")
        self._entries[key] = plugin

    def register(self, plugin: P | None = None, *, name: str | None = None) -> Any:
        """Class decorator: ``@registry.register`` (name from the class) or ``@registry.register(name="x")``."""
        if plugin is None:

            def decorator(cls: P) -> P:
                self.add(cls, name)
                return cls

            return decorator
        self.add(plugin, name)
        return plugin

    # ---------------------------------------------------------------------------------------------- looking up
    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            assert self._loader is not None
            self._loader()

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return isinstance(name, str) and self._key(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def unknown(self, name: str) -> Exception:
        """The error for an unknown ``name``: the family's error class, listing the known names."""
        known = ", ".join([*self.also, *self.names()])
        hint = f", {self.hint}" if self.hint else ""
        return self.error(f"unknown {self.kind} {name!r}; known {self.plural}: {known}{hint}")

    def get(self, name: str) -> P:
        """The plug-in registered as ``name`` (importing its module if it was registered lazily).

        Raises:
            the family's error: unknown name, listing the known ones.
            ImportError: a lazily registered module or class cannot be imported.
        """
        self._ensure_loaded()
        key = self._key(name) if isinstance(name, str) else name
        if key not in self._entries:
            raise self.unknown(str(name))
        entry = self._entries[key]
        if isinstance(entry, str):
            module_name, _, attr = entry.partition(":")
            plugin = getattr(importlib.import_module(module_name), attr)
            if self._check is not None:
                self._check(plugin)
            self._entries[key] = entry = plugin
        return entry

    # ------------------------------------------------------------------------------------------- availability
    def availability(self, name: str) -> Availability:
        """Whether ``name`` can run here; never raises (an unknown name or a failing check is "not usable")."""
        try:
            plugin = self.get(name)
        except Exception as err:  # unknown, or its module cannot be imported
            return Availability(name, False, str(err))
        check = getattr(plugin, "availability", None)
        if check is None:
            return Availability(name, True, "built in")
        try:
            result = check()
        except Exception as err:  # an availability check must never take the process down
            return Availability(name, False, f"probing failed: {err}")
        if isinstance(result, Availability):
            return result
        usable, why = result
        return Availability(name, bool(usable), str(why))

    def available(self) -> list[Availability]:
        """:meth:`availability` of every registered plug-in, by name."""
        return [self.availability(name) for name in self.names()]
