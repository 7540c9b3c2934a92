"""camera_adapters: frame sources (cameras, video files, synthetic) and the ZeroMQ frame wire format.

The bottom layer of the project: it never imports torch, deg_train or deg_live, so a camera PC needs only
numpy, pyzmq and PyAV. It also holds the small foundations every package shares: typed settings
(:mod:`camera_adapters.settings`), atomic file writes (:mod:`camera_adapters.files`), the user-error base
class (:mod:`camera_adapters.errors`) and video decoding (:mod:`camera_adapters.video`).

Front door (imported lazily, so ``import camera_adapters`` stays cheap):

- frames on the wire: :class:`Frame`, :func:`encode_frame`, :func:`decode_frame`, :class:`WireError`,
  :class:`EndOfStream` (:mod:`camera_adapters.wire`);
- sources: :func:`create_source`, :func:`available_sources`, :class:`FrameSource`, :class:`SourceError`
  (:mod:`camera_adapters.sources`);
- transport: :class:`FramePublisher` (:mod:`camera_adapters.publisher`), :class:`FrameSubscriber` and
  :class:`LosslessReceiver` (:mod:`camera_adapters.subscriber`), :class:`FrameLimits` (the largest frame a
  receiver accepts);
- who may connect: :class:`EndpointError`, :class:`CurveServer`, :class:`CurveClient`
  (:mod:`camera_adapters.network`: the loopback check and CURVE keys).
"""

from __future__ import annotations

import importlib
from typing import Any

from camera_adapters.errors import UserFacingError

__version__ = "0.1.0"

_LAZY = {
    "Frame": "camera_adapters.wire",
    "WireError": "camera_adapters.wire",
    "FrameTooLarge": "camera_adapters.wire",
    "FrameLimits": "camera_adapters.wire",
    "EndOfStream": "camera_adapters.wire",
    "encode_frame": "camera_adapters.wire",
    "decode_frame": "camera_adapters.wire",
    "FrameSource": "camera_adapters.sources",
    "SourceError": "camera_adapters.sources",
    "create_source": "camera_adapters.sources",
    "available_sources": "camera_adapters.sources",
    "FramePublisher": "camera_adapters.publisher",
    "FrameSubscriber": "camera_adapters.subscriber",
    "LosslessReceiver": "camera_adapters.subscriber",
    "EndpointError": "camera_adapters.network",
    "CurveServer": "camera_adapters.network",
    "CurveClient": "camera_adapters.network",
}

__all__ = ["UserFacingError", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'camera_adapters' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
