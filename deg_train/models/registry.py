"""Model registry: every architecture registers a constructor under a kind and a name.

Kinds:
- ``"flow"``: flow generators (stage 1), ``forward(frames (B, T, 3, H, W)) -> [flow_s1, flow_s2, flow_s3]``.
- ``"feature"``: single-stream CNN backbones (stage 2), ``forward(x) -> features (B, D)``.
- ``"two_stream"``: whole stage-2 models (``hidden_two_stream``), ``forward(frames (B, T, 3, H, W)) -> dict``.
- ``"sequence"``: sequence models (stage 3), ``forward(features (B, T, D)) -> logits (B, T, K)``.

Example:
    >>> model = create_model("flow", "tinymotionnet", num_frames=5)
    >>> list_models("sequence")
    ['gru', 'tcn', 'tgm']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from camera_adapters.errors import UserFacingError
from camera_adapters.plugins import Registry

KINDS = ("flow", "feature", "two_stream", "sequence")


class UnknownModelError(UserFacingError, KeyError):
    """Raised when a model kind or name is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


def _ensure_registered() -> None:
    # Importing the subpackages runs their @register_model decorators.
    from deg_train.models import feature, flow, sequence  # noqa: F401


#: One registry per kind (the plug-in pattern of :mod:`camera_adapters.plugins`). A model's typed settings are its
#: constructor's keyword arguments (``camera_adapters.plugins.settings_of``), filled from the training config's
#: typed sections; a model is available wherever deg_train runs (torch is a requirement).
MODELS: dict[str, Registry[Callable[..., Any]]] = {
    kind: Registry(f"{kind} model", UnknownModelError, case_insensitive=True, loader=_ensure_registered)
    for kind in KINDS
}


def _registry(kind: str) -> Registry[Callable[..., Any]]:
    if kind not in MODELS:
        raise UnknownModelError(f"unknown model kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return MODELS[kind]


def register_model(kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Class/function decorator registering a model constructor under ``(kind, name)``.

    Args:
        kind: one of ``"flow"``, ``"feature"``, ``"two_stream"``, ``"sequence"``.
        name: lower-case registry name (e.g. ``"tinymotionnet"``); must be unique within the kind.

    Returns:
        The decorator, which returns the constructor unchanged.
    """
    return _registry(kind).register(name=name)


def get_model_class(kind: str, name: str) -> Callable[..., Any]:
    """Return the constructor registered under ``(kind, name)`` (case-insensitive).

    Raises:
        UnknownModelError: unknown kind or name; the message lists what is known.
    """
    return _registry(kind).get(name)


def create_model(kind: str, name: str, **kwargs: Any) -> Any:
    """Build the model registered under ``(kind, name)`` with constructor keyword arguments."""
    return get_model_class(kind, name)(**kwargs)


def list_models(kind: str | None = None) -> list[str]:
    """Sorted registered names of one kind, or ``"kind/name"`` strings of all kinds when ``kind`` is None."""
    if kind is None:
        return sorted(f"{k}/{n}" for k in KINDS for n in MODELS[k].names())
    return _registry(kind).names()
