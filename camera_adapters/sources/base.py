"""The frame-source contract: open / read / close, capabilities, a registry by name.

A source is one class per kind of camera. Its lifecycle::

    with create_source("synthetic", ["width=640", "fps=200"]) as source:   # __enter__ opens
        caps = source.capabilities       # size, rate, pixel format, what timestamps it has
        while True:
            frame = source.read(timeout=1.0)   # a wire.Frame; EndOfStream at the end of a file
    # close() is idempotent

Every source fills ``Frame.index`` (monotonic; from the camera's own counter where it has one, so a gap means
frames lost at the camera, counted in ``source.lost_frames``), ``capture_time_ns`` (host ``time.time_ns()`` at
grab) and ``camera_timestamp_ns`` where the camera has a clock. Settings are a dataclass per source, built with
:mod:`camera_adapters.settings` from YAML and ``key=value`` options (unknown keys fail listing the known ones).
"""

from __future__ import annotations

import dataclasses
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from camera_adapters.errors import UserFacingError
from camera_adapters.plugins import Registry
from camera_adapters.settings import ConfigError, load_settings, read_yaml
from camera_adapters.wire import EndOfStream, Frame

__all__ = [
    "SOURCES",
    "Capabilities",
    "EndOfStream",
    "FrameSource",
    "SourceError",
    "SourceTimeout",
    "SourceUnavailable",
    "available_sources",
    "create_source",
    "get_source_class",
    "register_source",
]


class SourceError(UserFacingError, RuntimeError):
    """A frame source failed: cannot open the device, the camera disconnected, a read failed."""


class SourceUnavailable(SourceError):
    """The source cannot run here: its SDK is not installed, no producer file, or no such device."""


class SourceTimeout(SourceError, TimeoutError):
    """No frame arrived within the read timeout (the camera may be waiting for a trigger)."""


@dataclass(frozen=True)
class Capabilities:
    """What an open source delivers.

    Attributes:
        width: frame width in pixels.
        height: frame height in pixels.
        fps: nominal frame rate (None when unknown or unpaced).
        pixel_format: the wire pixel format of its frames (``rgb24``, ``gray8``, ...).
        has_hardware_timestamps: ``camera_timestamp_ns`` comes from the camera's own clock.
        has_frame_counter: ``Frame.index`` comes from the camera's own counter (gaps = lost frames).
        has_ground_truth: frames carry ``truth`` (scripted sources).
        is_finite: the source ends (a file without looping, ``max_frames``).
        can_reconnect: the source reconnects by itself when the camera drops.
    """

    width: int
    height: int
    fps: float | None
    pixel_format: str = "rgb24"
    has_hardware_timestamps: bool = False
    has_frame_counter: bool = False
    has_ground_truth: bool = False
    is_finite: bool = False
    can_reconnect: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        """The pixel array shape its frames have."""
        return (self.height, self.width) if self.pixel_format.startswith("gray") else (self.height, self.width, 3)


class FrameSource(ABC):
    """Base class of every frame source.

    Subclasses set ``name`` and ``Settings`` (a dataclass), implement :meth:`_open`, :meth:`_read` and
    :meth:`_close`, and may override :meth:`availability`.

    Args:
        settings: the source's settings dataclass (defaults when None).
        camera_id: the name published in every frame's topic and header.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type] = object
    description: ClassVar[str] = ""

    def __init__(self, settings: Any = None, *, camera_id: str = "cam0"):
        self.settings = settings if settings is not None else self.Settings()
        self.camera_id = camera_id
        self.lost_frames = 0  # frames the camera's counter says were lost before reaching us
        self._capabilities: Capabilities | None = None
        self._opened = False
        self._closed = False
        self._last_index: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """``(usable, why)``: whether this source can run here (SDK installed, producer configured...)."""
        return True, "built in"

    def open(self) -> FrameSource:
        """Open the device or file; returns self.

        Raises:
            SourceUnavailable: the SDK, producer or device is missing.
            SourceError: the device refused the settings.
        """
        if self._closed:
            raise SourceError(f"{self.name} source {self.camera_id!r} is closed; create a new one")
        if not self._opened:
            self._capabilities = self._open()
            self._opened = True
        return self

    def read(self, timeout: float | None = None) -> Frame:
        """The next frame.

        Args:
            timeout: seconds to wait for it (None: the source's own default).

        Raises:
            EndOfStream: a finite source has no more frames.
            SourceTimeout: nothing arrived in time.
            SourceError: the camera disconnected or failed.
        """
        if not self._opened or self._closed:
            raise SourceError(f"{self.name} source {self.camera_id!r} is not open")
        frame = self._read(timeout)
        if self._last_index is not None and frame.index > self._last_index + 1:
            self.lost_frames += frame.index - self._last_index - 1
        self._last_index = frame.index
        return frame

    def close(self) -> None:
        """Release the device or file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._opened:
            self._close()

    @property
    def capabilities(self) -> Capabilities:
        """What the open source delivers (open it first)."""
        if self._capabilities is None:
            raise SourceError(f"{self.name} source {self.camera_id!r}: open it before asking its capabilities")
        return self._capabilities

    def __enter__(self) -> FrameSource:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Frames until the end of a finite source."""
        while True:
            try:
                yield self.read()
            except EndOfStream:
                return

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- for subclasses -----------------------------------------------------------------------------------------

    @abstractmethod
    def _open(self) -> Capabilities: ...

    @abstractmethod
    def _read(self, timeout: float | None) -> Frame: ...

    @abstractmethod
    def _close(self) -> None: ...


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def _check_source(cls: type[FrameSource]) -> None:
    if not dataclasses.is_dataclass(cls.Settings):
        raise TypeError(f"{cls.__name__}.Settings must be a dataclass")


#: Every frame source by name (the plug-in pattern of :mod:`camera_adapters.plugins`).
SOURCES: Registry[type[FrameSource]] = Registry("source", ConfigError, check=_check_source)


def register_source(cls: type[FrameSource]) -> type[FrameSource]:
    """Class decorator: register a source under ``cls.name``."""
    SOURCES.add(cls)
    return cls


def source_names() -> list[str]:
    """Names of the registered sources, sorted."""
    return SOURCES.names()


def get_source_class(name: str) -> type[FrameSource]:
    """The source class registered as ``name``.

    Raises:
        ConfigError: no such source; the message lists the known ones.
    """
    return SOURCES.get(name)


def available_sources() -> list[tuple[str, bool, str]]:
    """``(name, usable here, why)`` for every registered source."""
    return [(a.name, a.available, a.reason) for a in SOURCES.available()]


def create_source(
    name: str,
    options: Iterable[str] | Mapping[str, Any] = (),
    *,
    config: str | os.PathLike | None = None,
    camera_id: str = "cam0",
) -> FrameSource:
    """Build (not open) a source from its name, an optional YAML file and ``key=value`` options.

    Raises:
        ConfigError: unknown source, unknown option or wrong type (naming the file/key and the known keys).
    """
    cls = get_source_class(name)
    data = read_yaml(config) if config is not None else {}
    source_label = str(config) if config is not None else f"{name} options"
    if isinstance(options, Mapping):
        data = {**data, **options}
        options = ()
    settings = load_settings(cls.Settings, data, overrides=list(options), source=source_label)
    return cls(settings, camera_id=camera_id)
