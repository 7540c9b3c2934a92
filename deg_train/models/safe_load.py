"""Load a PyTorch file from a user without running any code from it.

``torch.load`` unpickles, and a pickle can call any function: a crafted ``checkpoint.pt`` runs code the moment it
is loaded. Every user file (our checkpoints, ``weights=`` files, DeepEthogram's ``checkpoint.pt`` and Lightning
``.ckpt``) is read here, with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds
tensors, containers and numbers and refuses every other Python object.

DeepEthogram's files also hold its configuration as pickled OmegaConf objects (``DictConfig``, ``ListConfig``,
their nodes and metadata, which name ``typing.Any`` and builtin types), sometimes with ``collections.defaultdict``
and ``pathlib`` paths (the names a real OmegaConf 2.x DictConfig pickles were checked with OmegaConf installed). Those
few known names are mapped to harmless stand-ins, so the file loads whether or not OmegaConf is installed and
without running OmegaConf's code; :func:`load_untrusted` then turns the stand-ins into plain dicts, lists and
values. Anything else (``os.system``, ``subprocess``, ``builtins.exec``, a whole pickled ``nn.Module``...) is
refused with an error naming the file and the object it asked for.
"""

from __future__ import annotations

import os
import pickle
import typing
from pathlib import Path, PurePosixPath
from typing import Any

import torch

# OmegaConf classes found in DeepEthogram's checkpoints (its configs are OmegaConf DictConfigs).
_OMEGACONF_CLASSES = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.base.Node",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.ValueNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.PathNode",
    "omegaconf.nodes.BytesNode",
)
_PATH_CLASSES = tuple(
    f"{module}.{name}"
    for module in ("pathlib", "pathlib._local")
    for name in ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")
)
_BUILTIN_TYPES = (dict, list, tuple, set, frozenset, int, float, str, bytes, bool)
_MAX_DEPTH = 64  # how deep :func:`_plain` follows nested configs


class ForeignObject:
    """Stand-in for an object of another library inside a file (an OmegaConf node): keeps its pickled state.

    Created by the restricted unpickler instead of the real class; runs none of that class's code.
    """

    state: Any

    def __new__(cls, *args: Any) -> ForeignObject:
        """An empty stand-in (the unpickler passes the real class's constructor arguments; they are ignored)."""
        obj = super().__new__(cls)
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"ForeignObject({self.state!r})"


def _plain_dict(*_args: Any) -> dict:
    """Stand-in for ``collections.defaultdict(factory)``: a plain dict (the factory is not kept)."""
    return {}


def _path_text(*parts: Any) -> str:
    """Stand-in for a pickled ``pathlib`` path: its text."""
    return str(PurePosixPath(*(str(p) for p in parts))) if parts else "."


def _stand_ins() -> list[tuple[Any, str]]:
    return [
        *((ForeignObject, name) for name in _OMEGACONF_CLASSES),
        *((_path_text, name) for name in _PATH_CLASSES),
        (_plain_dict, "collections.defaultdict"),
        (typing.Any, "typing.Any"),
        # OmegaConf's metadata names value types (object_type=dict, element_type=int...): harmless builtins.
        *((t, f"builtins.{t.__name__}") for t in _BUILTIN_TYPES),
    ]


def _plain(value: Any, depth: int = 0) -> Any:
    """Replace stand-ins by plain values: a DictConfig by a dict, a ListConfig by a list, a node by its value."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, ForeignObject):
        state = value.state if isinstance(value.state, dict) else {}
        if "_content" in state:
            return _plain(state["_content"], depth + 1)
        if "_val" in state:
            return _plain(state["_val"], depth + 1)
        return None  # metadata: nothing a reader needs
    if isinstance(value, dict):
        return {_plain(k, depth + 1): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    return value


def _refused_object(err: BaseException) -> str | None:
    """The object a refused pickle asked for, from PyTorch's message; None when the data is just not a pickle."""
    for line in str(err).splitlines():
        line = line.strip().removeprefix("WeightsUnpickler error:").strip()
        if line.startswith(("Unsupported global", "Trying to", "Can only")):
            return line.split(". Please use", 1)[0]
    return None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def load_untrusted(path: str | os.PathLike, *, map_location: str = "cpu", error: type[Exception] = ValueError) -> Any:
    """``torch.load`` a user's file without running code from it (see the module docstring).

    Args:
        path: the file.
        map_location: where tensors go.
        error: the exception class to raise (the caller's named error, e.g. ``CheckpointError``).

    Returns:
        What the file holds: tensors, containers and plain values; OmegaConf configs as plain dicts and lists.

    Raises:
        error: the file is unreadable, or holds an object that is neither data nor a known configuration class
            (the message names the file and the object, and says why it is refused).
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals(_stand_ins()):
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        what = _refused_object(err)
        if what is not None:
            raise error(
                f"{path}: refused: loading it would create a Python object that is not data ({what}). deg-train "
                "loads only tensors, plain values and known configuration classes from a file, because a pickled "
                "object can run code on this machine. If the file is yours and you trust it, load it in Python and "
                "save just its weights: torch.save(obj.state_dict(), 'weights.pt')"
            ) from None
        raise error(f"{path}: not a readable PyTorch file ({_first_line(err)}); is the file complete?") from None
    except Exception as err:
        raise error(f"{path}: not a readable PyTorch file ({_first_line(err)}); is the file complete?") from None
    return _plain(data)
