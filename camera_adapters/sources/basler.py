"""``basler``: Basler cameras (GigE, USB3) through pypylon, with the camera's own frame counter and clock.

Settings cover what an experiment needs: exposure, gain, frame rate, ROI (width/height/offset), hardware
trigger (``trigger: line1`` ... or ``software``), the grab strategy (``one_by_one``: every frame in order, the
default; ``latest_only``: the newest frame, older ones skipped by the driver), and ``nodes`` for any other
GenICam feature by name (applied last, in order).

``Frame.index`` is the camera's BlockID (16-bit on GigE, unwrapped here) counted from the first frame grabbed,
so a jump means frames lost between camera and host: :attr:`FrameSource.lost_frames` counts them (with
``latest_only`` it also counts the frames the strategy skipped, see ``skipped_frames``). Failed (incomplete)
grabs are counted in ``failed_grabs``. ``camera_timestamp_ns`` is the camera's tick counter times the tick
period (``timestamp_tick_ns``: read from ``GevTimestampTickFrequency`` on GigE, 1 ns on USB3).

No camera? ``emulate: true`` (or ``PYLON_CAMEMU=1`` in the environment before pypylon is imported) gives pylon's
emulated camera; with it, ``image_folder`` feeds images from a folder and ``test_image`` picks a test pattern.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

INSTALL_HINT = "install it with: pip install 'deg-live[basler]' (pypylon bundles the pylon runtime)"
_TRIGGERS = ("off", "software", "line1", "line2", "line3", "line4")
_OUTPUT_FORMATS = {"rgb24": "RGB8packed", "bgr24": "BGR8packed", "gray8": "Mono8"}


@dataclass
class BaslerSettings:
    """Settings of the ``basler`` source (null: leave the camera's current value)."""

    serial: str | None = None
    device_index: int = 0
    pixel_format: str = "rgb24"
    camera_pixel_format: str | None = None
    exposure_us: float | None = None
    gain_db: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    offset_x: int | None = None
    offset_y: int | None = None
    trigger: str = "off"
    trigger_activation: str = "rising"
    grab_strategy: str = "one_by_one"
    buffers: int = 16
    timeout_s: float = 2.0
    timestamp_tick_ns: float | None = None
    nodes: dict[str, Any] = field(default_factory=dict)
    max_frames: int | None = None
    emulate: bool = False
    image_folder: str | None = None
    test_image: int | None = None

    def __post_init__(self):
        if self.pixel_format not in _OUTPUT_FORMATS:
            raise ConfigError(f"pixel_format must be one of {', '.join(_OUTPUT_FORMATS)}, got {self.pixel_format!r}")
        if self.trigger not in _TRIGGERS:
            raise ConfigError(f"trigger must be one of {', '.join(_TRIGGERS)}, got {self.trigger!r}")
        if self.trigger_activation not in ("rising", "falling"):
            raise ConfigError("trigger_activation must be rising or falling")
        if self.grab_strategy not in ("one_by_one", "latest_only"):
            raise ConfigError("grab_strategy must be one_by_one or latest_only")
        if self.buffers < 1 or self.timeout_s <= 0:
            raise ConfigError("buffers must be >= 1 and timeout_s > 0")


def _import_pylon(emulate: bool):
    if emulate and "pypylon" not in sys.modules:
        os.environ["PYLON_CAMEMU"] = os.environ.get("PYLON_CAMEMU") or "1"
    try:
        from pypylon import genicam, pylon
    except ImportError:
        raise SourceUnavailable(f"basler source: pypylon is not installed; {INSTALL_HINT}") from None
    return pylon, genicam


def _set_node(camera, names: tuple[str, ...], value: Any, what: str) -> None:
    """Set the first writable node among ``names`` (GigE and USB3 cameras name features differently)."""
    nodemap = camera.GetNodeMap()
    for name in names:
        try:
            node = nodemap.GetNode(name)
        except Exception:
            node = None
        if node is None:
            continue
        try:
            if not hasattr(node, "SetValue"):
                node.Execute()
            else:
                node.SetValue(value)
            return
        except Exception as err:
            raise SourceError(f"basler source: cannot set {what} ({name}) to {value!r}: {err}") from None
    raise SourceError(f"basler source: this camera has no {what} feature (tried {', '.join(names)})")


@register_source
class BaslerSource(FrameSource):
    """A Basler camera through pypylon; see the module docstring."""

    name = "basler"
    Settings = BaslerSettings
    description = "Basler GigE/USB3 cameras via pypylon (exposure, gain, rate, ROI, trigger, frame counter)"

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Usable when pypylon is installed (whether a camera is attached is known only on open)."""
        if importlib.util.find_spec("pypylon") is None:
            return False, f"pypylon not installed; {INSTALL_HINT}"
        emu = " (PYLON_CAMEMU set: emulated cameras)" if os.environ.get("PYLON_CAMEMU") else ""
        return True, f"pypylon installed{emu}; emulate=true gives an emulated camera"

    def _open(self) -> Capabilities:
        s = self.settings
        pylon, genicam = _import_pylon(s.emulate)
        self._pylon = pylon
        self._genicam = genicam
        factory = pylon.TlFactory.GetInstance()
        devices = factory.EnumerateDevices()
        if not devices:
            raise SourceUnavailable(
                "basler source: no Basler camera found (check the cable/network and "
                "pylon Viewer; emulate=true gives an emulated camera)"
            )
        if s.serial is not None:
            matches = [d for d in devices if d.GetSerialNumber() == s.serial]
            if not matches:
                found = ", ".join(d.GetSerialNumber() for d in devices)
                raise SourceUnavailable(f"basler source: no camera with serial {s.serial!r} (found: {found})")
            device = matches[0]
        else:
            if s.device_index >= len(devices):
                raise SourceUnavailable(
                    f"basler source: device_index={s.device_index} but only {len(devices)} camera(s) found"
                )
            device = devices[s.device_index]
        self._emulated = "Emulation" in device.GetModelName() or device.GetDeviceClass() == "BaslerCamEmu"
        try:
            self._camera = pylon.InstantCamera(factory.CreateDevice(device))
            self._camera.Open()
        except genicam.GenericException as err:
            raise SourceUnavailable(f"basler source: cannot open camera {device.GetFriendlyName()}: {err}") from None
        self._configure()
        cam = self._camera
        self._converter = None
        native = cam.PixelFormat.Value
        want = _OUTPUT_FORMATS[s.pixel_format]
        if native.lower() != want.lower():
            self._converter = pylon.ImageFormatConverter()
            self._converter.OutputPixelFormat = {
                "rgb24": pylon.PixelType_RGB8packed,
                "bgr24": pylon.PixelType_BGR8packed,
                "gray8": pylon.PixelType_Mono8,
            }[s.pixel_format]
        self._tick_ns = self._timestamp_tick_ns()
        cam.MaxNumBuffer.Value = s.buffers
        strategy = (
            pylon.GrabStrategy_OneByOne if s.grab_strategy == "one_by_one" else pylon.GrabStrategy_LatestImageOnly
        )
        cam.StartGrabbing(strategy)
        self._first_block: int | None = None
        self._last_block: int | None = None
        self._wraps = 0
        self.failed_grabs = 0
        self.skipped_frames = 0
        self._emitted = 0
        fps = s.fps
        if fps is None:
            try:
                fps = float(cam.ResultingFrameRateAbs.Value)
            except Exception:
                try:
                    fps = float(cam.ResultingFrameRate.Value)
                except Exception:
                    fps = None
        return Capabilities(
            width=int(cam.Width.Value),
            height=int(cam.Height.Value),
            fps=fps,
            pixel_format=s.pixel_format,
            has_hardware_timestamps=not self._emulated,
            has_frame_counter=True,
            is_finite=s.max_frames is not None,
        )

    def _configure(self) -> None:
        s, cam = self.settings, self._camera
        if s.camera_pixel_format is not None:
            _set_node(cam, ("PixelFormat",), s.camera_pixel_format, "pixel format")
        # ROI: shrink first, then offsets, so every intermediate value is valid.
        if s.offset_x is not None or s.offset_y is not None:
            _set_node(cam, ("OffsetX",), 0, "offset x")
            _set_node(cam, ("OffsetY",), 0, "offset y")
        if s.width is not None:
            _set_node(cam, ("Width",), s.width, "width")
        if s.height is not None:
            _set_node(cam, ("Height",), s.height, "height")
        if s.offset_x is not None:
            _set_node(cam, ("OffsetX",), s.offset_x, "offset x")
        if s.offset_y is not None:
            _set_node(cam, ("OffsetY",), s.offset_y, "offset y")
        if s.exposure_us is not None:
            _set_node(cam, ("ExposureAuto",), "Off", "exposure auto")
            _set_node(cam, ("ExposureTime", "ExposureTimeAbs"), float(s.exposure_us), "exposure time")
        if s.gain_db is not None:
            _set_node(cam, ("GainAuto",), "Off", "gain auto")
            _set_node(cam, ("Gain", "GainAbs"), float(s.gain_db), "gain")
        if s.fps is not None:
            _set_node(cam, ("AcquisitionFrameRateEnable",), True, "frame rate enable")
            _set_node(cam, ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), float(s.fps), "frame rate")
        _set_node(cam, ("TriggerSelector",), "FrameStart", "trigger selector")
        if s.trigger == "off":
            _set_node(cam, ("TriggerMode",), "Off", "trigger mode")
        else:
            _set_node(cam, ("TriggerMode",), "On", "trigger mode")
            source = "Software" if s.trigger == "software" else f"Line{s.trigger[-1]}"
            _set_node(cam, ("TriggerSource",), source, "trigger source")
            if s.trigger != "software":
                _set_node(
                    cam,
                    ("TriggerActivation",),
                    "RisingEdge" if s.trigger_activation == "rising" else "FallingEdge",
                    "trigger activation",
                )
        if s.image_folder is not None or s.test_image is not None:
            if not self._emulated:
                raise ConfigError("basler: image_folder and test_image work only with the emulated camera")
            if s.test_image is not None:
                _set_node(
                    cam,
                    ("TestImageSelector",),
                    "Off" if s.test_image == 0 else f"Testimage{s.test_image}",
                    "test image",
                )
            if s.image_folder is not None:
                folder = Path(s.image_folder).expanduser().resolve()
                if not folder.is_dir() or not any(folder.iterdir()):
                    raise SourceError(f"basler source: image_folder {folder} is not a folder with images")
                if s.test_image is None:  # a test pattern would hide the images
                    _set_node(cam, ("TestImageSelector",), "Off", "test image")
                _set_node(cam, ("ImageFilename",), str(folder), "image file name")
                _set_node(cam, ("ImageFileMode",), "On", "image file mode")
        for name, value in s.nodes.items():
            _set_node(cam, (name,), value, name)

    def _timestamp_tick_ns(self) -> float:
        if self.settings.timestamp_tick_ns is not None:
            return self.settings.timestamp_tick_ns
        try:
            hz = float(self._camera.GevTimestampTickFrequency.Value)
            return 1e9 / hz if hz > 0 else 1.0
        except Exception:
            return 1.0

    def _unwrap(self, block_id: int) -> int:
        """Monotonic counter from BlockID (GigE: 16-bit, 1..65535, skipping 0)."""
        if self._last_block is not None and block_id < self._last_block and self._last_block - block_id > 30000:
            self._wraps += 1
        self._last_block = block_id
        return block_id + self._wraps * 65535

    def _read(self, timeout: float | None) -> Frame:
        s, pylon = self.settings, self._pylon
        if s.max_frames is not None and self._emitted >= s.max_frames:
            raise EndOfStream(
                f"basler: max_frames={s.max_frames} reached", camera_id=self.camera_id, frame_count=self._emitted
            )
        timeout_ms = int(1000 * (s.timeout_s if timeout is None else timeout))
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            if s.trigger == "software":
                self._camera.WaitForFrameTriggerReady(timeout_ms, pylon.TimeoutHandling_ThrowException)
                self._camera.ExecuteSoftwareTrigger()
            try:
                result = self._camera.RetrieveResult(timeout_ms, pylon.TimeoutHandling_Return)
            except self._genicam.GenericException as err:
                if self._camera.IsCameraDeviceRemoved():
                    raise SourceError(f"basler camera {self.camera_id!r} disconnected") from None
                raise SourceError(f"basler camera {self.camera_id!r}: grab failed: {err}") from None
            if result is None or not result.IsValid():
                if self._camera.IsCameraDeviceRemoved():
                    raise SourceError(f"basler camera {self.camera_id!r} disconnected")
                raise SourceTimeout(
                    f"basler camera {self.camera_id!r}: no frame within {timeout_ms} ms "
                    "(waiting for a trigger? check the trigger settings)"
                )
            try:
                if not result.GrabSucceeded():
                    self.failed_grabs += 1
                    log.warning("basler %s: grab failed: %s", self.camera_id, result.GetErrorDescription())
                    if time.monotonic() > deadline:
                        raise SourceTimeout(
                            f"basler camera {self.camera_id!r}: only failed grabs within {timeout_ms} ms"
                        )
                    continue
                capture = time.time_ns()
                counter = self._unwrap(int(result.BlockID))
                if self._first_block is None:
                    self._first_block = counter
                self.skipped_frames += int(result.GetNumberOfSkippedImages())
                if self._converter is not None:
                    pixels = self._converter.Convert(result).GetArray().copy()
                else:
                    pixels = result.GetArray().copy()
                ticks = int(result.GetTimeStamp())
            finally:
                result.Release()
            self._emitted += 1
            return Frame(
                index=counter - self._first_block,
                pixels=pixels,
                camera_id=self.camera_id,
                capture_time_ns=capture,
                camera_timestamp_ns=int(ticks * self._tick_ns) if ticks else None,
                pixel_format=s.pixel_format,
                fps=self._capabilities.fps if self._capabilities else s.fps,
            )

    def _close(self) -> None:
        cam = getattr(self, "_camera", None)
        if cam is None:
            return
        self._camera = None
        try:
            if cam.IsGrabbing():
                cam.StopGrabbing()
            cam.Close()
        except Exception as err:
            log.debug("basler close: %s", err)
