"""``genicam``: any GenICam camera (FLIR, Allied Vision, Basler, Daheng, ...) through Harvesters.

Harvesters talks to the camera through the vendor's GenTL producer, a ``.cti`` file installed with the vendor's
SDK (FLIR Spinnaker, Allied Vision Vimba X, Basler pylon, MATRIX VISION mvIMPACT...). Give it with
``producer=/path/to/producer.cti``, or let the source search the folders in ``GENICAM_GENTL64_PATH`` (which the
vendors' installers set). ``nodes`` sets any GenICam feature by name (``nodes={ExposureTime: 5000}``).

``Frame.index`` is the GenTL buffer's frame id counted from the first frame (gaps = lost frames) and
``camera_timestamp_ns`` the buffer's timestamp in ns where the producer reports it.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camera_adapters.settings import ConfigError
from camera_adapters.sources.base import (
    Capabilities,
    EndOfStream,
    FrameSource,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
    register_source,
)
from camera_adapters.wire import Frame

log = logging.getLogger(__name__)

INSTALL_HINT = "install it with: pip install 'deg-live[genicam]'"
PRODUCER_ENV = "GENICAM_GENTL64_PATH"
# GenICam PFNC name -> (wire pixel format, channels)
_FORMATS = {
    "Mono8": ("gray8", 1),
    "RGB8": ("rgb24", 3),
    "RGB8Packed": ("rgb24", 3),
    "BGR8": ("bgr24", 3),
    "BGR8Packed": ("bgr24", 3),
}


@dataclass
class GenICamSettings:
    """Settings of the ``genicam`` source."""

    producer: str | None = None
    serial: str | None = None
    device_index: int = 0
    exposure_us: float | None = None
    gain_db: float | None = None
    fps: float | None = None
    nodes: dict[str, Any] = field(default_factory=dict)
    timeout_s: float = 2.0
    max_frames: int | None = None

    def __post_init__(self):
        if self.timeout_s <= 0:
            raise ConfigError("timeout_s must be > 0")


def find_producers(explicit: str | None = None) -> tuple[list[Path], list[str]]:
    """``(producer files found, places searched)``: the explicit file, else ``*.cti`` in GENICAM_GENTL64_PATH."""
    if explicit:
        return ([Path(explicit)] if Path(explicit).is_file() else []), [explicit]
    searched, found = [], []
    for folder in filter(None, os.environ.get(PRODUCER_ENV, "").split(os.pathsep)):
        searched.append(folder)
        found.extend(Path(p) for p in sorted(glob.glob(os.path.join(folder, "*.cti"))))
    return found, searched


def _where_looked(searched: list[str]) -> str:
    if not searched:
        return f"no producer= option and {PRODUCER_ENV} is not set"
    return "looked in: " + ", ".join(searched)


@register_source
class GenICamSource(FrameSource):
    """A GenICam camera through Harvesters and a GenTL producer; see the module docstring."""

    name = "genicam"
    Settings = GenICamSettings
    description = "any GenICam camera through Harvesters and the vendor's GenTL producer (.cti)"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Usable when harvesters is installed and a GenTL producer is found."""
        if importlib.util.find_spec("harvesters") is None:
            return False, f"harvesters not installed; {INSTALL_HINT}"
        found, searched = find_producers()
        if not found:
            return False, f"no GenTL producer (.cti) configured ({_where_looked(searched)}); pass producer=PATH"
        return True, "producers: " + ", ".join(str(p) for p in found)

    def _open(self) -> Capabilities:
        s = self.settings
        found, searched = find_producers(s.producer)
        if not found:
            if s.producer:
                raise SourceUnavailable(f"genicam source: producer file {s.producer} not found")
            raise SourceUnavailable(
                f"genicam source: no GenTL producer (.cti) configured ({_where_looked(searched)}). Install your "
                f"camera vendor's SDK and pass producer=/path/to/producer.cti or set {PRODUCER_ENV}"
            )
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise SourceUnavailable(f"genicam source: harvesters is not installed; {INSTALL_HINT}") from None
        self._harvester = Harvester()
        for cti in found:
            self._harvester.add_file(str(cti))
        self._harvester.update()
        devices = self._harvester.device_info_list
        if not devices:
            raise SourceUnavailable(f"genicam source: no camera found through {', '.join(map(str, found))}")
        key: Any = {"serial_number": s.serial} if s.serial else s.device_index
        try:
            self._acquirer = self._harvester.create(key)
        except Exception as err:
            listed = ", ".join(f"{d.model} {d.serial_number}" for d in devices)
            raise SourceUnavailable(f"genicam source: cannot open camera {key!r} ({err}); found: {listed}") from None
        nodes = self._acquirer.remote_device.node_map
        settings: list[tuple[tuple[str, ...], Any]] = []
        if s.exposure_us is not None:
            settings += [(("ExposureAuto",), "Off"), (("ExposureTime", "ExposureTimeAbs"), s.exposure_us)]
        if s.gain_db is not None:
            settings += [(("GainAuto",), "Off"), (("Gain", "GainAbs"), s.gain_db)]
        if s.fps is not None:
            settings += [
                (("AcquisitionFrameRateEnable",), True),
                (("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), s.fps),
            ]
        settings += [((name,), value) for name, value in s.nodes.items()]
        for names, value in settings:
            for name in names:
                if hasattr(nodes, name):
                    try:
                        getattr(nodes, name).value = value
                    except Exception as err:
                        raise SourceError(f"genicam source: cannot set {name} to {value!r}: {err}") from None
                    break
            else:
                raise SourceError(f"genicam source: the camera has no feature {' / '.join(names)}")
        pfnc = str(nodes.PixelFormat.value)
        if pfnc not in _FORMATS:
            raise SourceError(
                f"genicam source: pixel format {pfnc} not supported (use one of "
                f"{', '.join(_FORMATS)}: nodes={{PixelFormat: Mono8}})"
            )
        self._pixel_format, self._channels = _FORMATS[pfnc]
        self._first_id: int | None = None
        self._emitted = 0
        self._acquirer.start()
        fps = s.fps
        return Capabilities(
            width=int(nodes.Width.value),
            height=int(nodes.Height.value),
            fps=fps,
            pixel_format=self._pixel_format,
            has_hardware_timestamps=True,
            has_frame_counter=True,
            is_finite=s.max_frames is not None,
        )

    def _read(self, timeout: float | None) -> Frame:
        s = self.settings
        if s.max_frames is not None and self._emitted >= s.max_frames:
            raise EndOfStream(
                f"genicam: max_frames={s.max_frames} reached", camera_id=self.camera_id, frame_count=self._emitted
            )
        wait = s.timeout_s if timeout is None else timeout
        try:
            buffer = self._acquirer.fetch(timeout=wait)
        except Exception as err:
            if "timeout" in type(err).__name__.lower():
                raise SourceTimeout(f"genicam camera {self.camera_id!r}: no frame within {wait} s") from None
            raise SourceError(f"genicam camera {self.camera_id!r}: fetch failed (disconnected?): {err}") from None
        with buffer:
            capture = time.time_ns()
            component = buffer.payload.components[0]
            h, w = int(component.height), int(component.width)
            shape = (h, w) if self._channels == 1 else (h, w, self._channels)
            pixels = np.array(component.data, dtype=np.uint8, copy=True).reshape(shape)
            try:
                frame_id = int(buffer.module.frame_id)
            except Exception:
                frame_id = self._emitted
            try:
                ts = int(buffer.timestamp_ns)
            except Exception:
                ts = None
        if self._first_id is None:
            self._first_id = frame_id
        self._emitted += 1
        return Frame(
            index=frame_id - self._first_id,
            pixels=pixels,
            camera_id=self.camera_id,
            capture_time_ns=capture,
            camera_timestamp_ns=ts or None,
            pixel_format=self._pixel_format,
            fps=self._capabilities.fps if self._capabilities else None,
        )

    def _close(self) -> None:
        acquirer = getattr(self, "_acquirer", None)
        if acquirer is not None:
            self._acquirer = None
            try:
                acquirer.stop()
                acquirer.destroy()
            except Exception as err:
                log.debug("genicam close: %s", err)
        harvester = getattr(self, "_harvester", None)
        if harvester is not None:
            self._harvester = None
            harvester.reset()
