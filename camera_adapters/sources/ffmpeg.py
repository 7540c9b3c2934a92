"""``ffmpeg``: anything FFmpeg opens, through PyAV: USB webcams, IP cameras, FFmpeg's test sources.

Examples of ``url`` / ``format``:

- USB webcam on Linux: ``url=/dev/video0 format=v4l2 options={video_size: 640x480, framerate: "30"}``
- IP camera: ``url=rtsp://192.168.1.20/stream1 options={rtsp_transport: tcp}`` (or an ``http://`` MJPEG URL)
- FFmpeg's test pattern: ``url=testsrc2=size=320x240:rate=30,realtime format=lavfi`` (``realtime`` paces it;
  without it the test source runs as fast as it is read)

Frame indices count decoded frames from 0 (these devices have no frame counter we can read). The camera
timestamp is the stream's presentation time (for v4l2 the kernel's capture time). When a network stream drops
(``reconnect: true``), the source reopens it with exponential backoff, up to ``max_reconnects`` times in a row,
logging each attempt; indices keep counting, camera timestamps continue from where the dropped stream
stopped (so they stay monotonic), and ``reconnects`` says how often it happened.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from camera_adapters.settings import ConfigError
from camera_adapters.sources.base import (
    Capabilities,
    EndOfStream,
    FrameSource,
    SourceError,
    SourceUnavailable,
    register_source,
)
from camera_adapters.wire import Frame

log = logging.getLogger(__name__)


@dataclass
class FFmpegSettings:
    """Settings of the ``ffmpeg`` source."""

    url: str = ""
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    pixel_format: str = "rgb24"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 5.0
    reconnect: bool = True
    max_reconnects: int = 10
    reconnect_delay_s: float = 0.5
    reconnect_max_delay_s: float = 10.0
    max_frames: int | None = None

    def __post_init__(self):
        if not self.url:
            raise ConfigError("url is required (a device such as /dev/video0, an rtsp:// URL, or a lavfi graph)")
        if self.pixel_format not in ("rgb24", "bgr24", "gray8"):
            raise ConfigError(f"pixel_format must be rgb24, bgr24 or gray8, got {self.pixel_format!r}")
        self.options = {str(k): str(v) for k, v in self.options.items()}


def _is_network(url: str) -> bool:
    return "://" in url and not url.startswith("file:")


@register_source
class FFmpegSource(FrameSource):
    """Any stream FFmpeg opens; see the module docstring."""

    name = "ffmpeg"
    Settings = FFmpegSettings
    description = "USB webcams (v4l2), IP cameras (RTSP/HTTP), FFmpeg test sources, through PyAV"

    def _connect(self) -> None:
        import av

        s = self.settings
        if s.format == "v4l2" or s.url.startswith("/dev/"):
            if not Path(s.url).exists():
                raise SourceUnavailable(
                    f"ffmpeg source: device {s.url} does not exist (is the camera plugged in? "
                    "list devices with `ls /dev/video*`)"
                )
        try:
            self._container = av.open(
                s.url, format=s.format, options=dict(s.options), timeout=(s.open_timeout_s, s.read_timeout_s)
            )
        except (av.FFmpegError, OSError) as err:
            raise SourceError(
                f"ffmpeg source: cannot open {s.url!r}{f' (format {s.format})' if s.format else ''}: {err}"
            ) from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"ffmpeg source: {s.url!r} has no video stream")
        self._stream = self._container.streams.video[0]
        self._decoder = self._container.decode(self._stream)

    def _open(self) -> Capabilities:
        s = self.settings
        self._container = None
        self._index = 0
        self.reconnects = 0
        self._ts_offset, self._last_ts, self._rebase = 0, None, False
        try:
            self._connect()
        except SourceUnavailable:
            raise
        except SourceError as err:  # a network camera still booting: retry like a reconnection
            if not (s.reconnect and _is_network(s.url)):
                raise
            self._reconnect(err)
            self.reconnects = 0
        # Decode the first frame to learn the real size (many devices report 0 until then).
        self._pending = self._decode_one()
        rate = self._stream.average_rate or self._stream.guessed_rate
        return Capabilities(
            width=self._pending.width,
            height=self._pending.height,
            fps=float(rate) if rate else None,
            pixel_format=s.pixel_format,
            is_finite=s.max_frames is not None,
            can_reconnect=s.reconnect and _is_network(s.url),
        )

    def _decode_one(self):
        import av

        try:
            return next(self._decoder)
        except StopIteration:
            raise EndOfStream(
                f"ffmpeg source: {self.settings.url!r} ended", camera_id=self.camera_id, frame_count=self._index
            ) from None
        except (av.FFmpegError, OSError) as err:
            raise SourceError(f"ffmpeg source: reading {self.settings.url!r} failed: {err}") from None

    def _reconnect(self, why: Exception) -> None:
        s = self.settings
        delay = s.reconnect_delay_s
        for attempt in range(1, s.max_reconnects + 1):
            log.warning(
                "ffmpeg source %s: %s; reconnecting (attempt %d/%d) in %.1f s",
                self.camera_id,
                why,
                attempt,
                s.max_reconnects,
                delay,
            )
            time.sleep(delay)
            self._close()
            try:
                self._connect()
                self.reconnects += 1
                self._rebase = True
                return
            except SourceError as err:
                why = err
                delay = min(delay * 2, s.reconnect_max_delay_s)
        raise SourceError(
            f"ffmpeg source: {s.url!r} unreachable, {s.max_reconnects} reconnection attempts failed (last error: {why})"
        )

    def _read(self, timeout: float | None) -> Frame:
        s = self.settings
        if s.max_frames is not None and self._index >= s.max_frames:
            raise EndOfStream(
                f"ffmpeg source: max_frames={s.max_frames} reached", camera_id=self.camera_id, frame_count=self._index
            )
        if self._pending is not None:
            av_frame, self._pending = self._pending, None
        else:
            try:
                av_frame = self._decode_one()
            except (SourceError, EndOfStream) as err:
                if not (s.reconnect and _is_network(s.url)):
                    raise
                self._reconnect(err)
                av_frame = self._decode_one()
        capture = time.time_ns()
        pixels = av_frame.to_ndarray(format={"gray8": "gray"}.get(s.pixel_format, s.pixel_format))
        camera_ts = None
        if av_frame.pts is not None and av_frame.time_base is not None:
            raw = int(av_frame.pts * av_frame.time_base * 1_000_000_000)
            if self._rebase and self._last_ts is not None:
                # A reconnected stream restarts its clock: continue from where the old one stopped.
                period = int(1e9 / self._capabilities.fps) if self._capabilities and self._capabilities.fps else 1
                self._ts_offset = self._last_ts + period - raw
            self._rebase = False
            camera_ts = raw + self._ts_offset
            self._last_ts = camera_ts
        frame = Frame(
            index=self._index,
            pixels=pixels,
            camera_id=self.camera_id,
            capture_time_ns=capture,
            camera_timestamp_ns=camera_ts,
            pixel_format=s.pixel_format,
            fps=self._capabilities.fps if self._capabilities else None,
        )
        self._index += 1
        return frame

    def _close(self) -> None:
        if getattr(self, "_container", None) is not None:
            try:
                self._container.close()
            finally:
                self._container = None
