"""``video``: replays a video file as if it were a camera (how a lab rehearses a closed loop on a recording).

Frames are decoded with :class:`camera_adapters.video.VideoReader`, so indices match the file exactly (the same
indices the offline tools use). Pacing uses the monotonic clock: ``rate: null`` plays at the file's frame rate,
``rate: 100`` at 100 fps, ``rate: 0`` as fast as decoding allows (with the publisher's ``--lossless-block``,
"as fast as the consumer takes it").

Looping (``loop: true``): ``Frame.index`` keeps counting across loops (a stream never jumps back) and
``Frame.source_frame`` is the index in the file; ``camera_timestamp_ns`` is the frame's presentation time plus
the duration of the loops before it. A file that ends before its indexed frame count (truncated or corrupt)
stops the source with a :class:`SourceError` naming the file and the frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from camera_adapters.settings import ConfigError
from camera_adapters.sources.base import Capabilities, EndOfStream, FrameSource, SourceError, register_source
from camera_adapters.video import VideoError, VideoReader
from camera_adapters.wire import Frame


@dataclass
class VideoSettings:
    """Settings of the ``video`` source."""

    path: str = ""
    rate: float | None = None
    loop: bool = False
    start: int = 0
    max_frames: int | None = None
    size: tuple[int, int] | None = None

    def __post_init__(self):
        if not self.path:
            raise ConfigError("path is required: the video file to replay (path=session.mp4)")
        if self.rate is not None and self.rate < 0:
            raise ConfigError("rate must be >= 0 (null: the file's rate, 0: as fast as possible)")
        if self.start < 0:
            raise ConfigError("start must be >= 0")


@register_source
class VideoFileSource(FrameSource):
    """A video file replayed as a camera; see the module docstring."""

    name = "video"
    Settings = VideoSettings
    description = "replays a video file (PyAV) at its rate, a given rate, or as fast as possible; loops on request"

    def _open(self) -> Capabilities:
        s = self.settings
        path = Path(s.path).expanduser()
        if not path.is_file():
            raise SourceError(f"video source: file {path} not found")
        try:
            self._reader = VideoReader(path, size=s.size)
        except VideoError as err:
            raise SourceError(f"video source: {err}") from None
        n = len(self._reader)
        if s.start >= n:
            self._reader.close()
            raise SourceError(f"video source: start={s.start} is past the end of {path} ({n} frames)")
        self._path = path
        self._rate = self._reader.fps if s.rate is None else s.rate
        self._duration_ns = round(n / self._reader.fps * 1e9) if self._reader.fps else 0
        self._frames = self._reader.iter_frames(s.start)
        self._loop = 0
        self._index = 0
        self._t0: int | None = None
        return Capabilities(
            width=self._reader.width,
            height=self._reader.height,
            fps=self._rate or None,
            pixel_format="rgb24",
            has_hardware_timestamps=False,
            has_frame_counter=True,
            is_finite=not s.loop or s.max_frames is not None,
        )

    def _next_decoded(self) -> tuple[int, object]:
        try:
            return next(self._frames)
        except StopIteration:
            if not self.settings.loop:
                raise EndOfStream(
                    f"video source: end of {self._path} after {self._index} frames",
                    camera_id=self.camera_id,
                    frame_count=self._index,
                ) from None
            self._loop += 1
            self._frames = self._reader.iter_frames(0)
            return next(self._frames)
        except VideoError as err:
            raise SourceError(f"video source: {err}") from None

    def _read(self, timeout: float | None) -> Frame:
        s = self.settings
        if s.max_frames is not None and self._index >= s.max_frames:
            raise EndOfStream(
                f"video source: max_frames={s.max_frames} reached", camera_id=self.camera_id, frame_count=self._index
            )
        source_frame, pixels = self._next_decoded()
        if self._rate:
            now = time.monotonic_ns()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + int(self._index * 1e9 / self._rate)
            if now - due > 2e9 / self._rate:  # the reader fell behind: restart the schedule, no burst
                self._t0 = now - int(self._index * 1e9 / self._rate)
            elif due > now:
                time.sleep((due - now) / 1e9)
        frame = Frame(
            index=self._index,
            pixels=pixels,
            camera_id=self.camera_id,
            capture_time_ns=time.time_ns(),
            camera_timestamp_ns=int(self._reader.timestamp(source_frame) * 1e9) + self._loop * self._duration_ns,
            pixel_format="rgb24",
            fps=self._rate or None,
            source_frame=source_frame,
        )
        self._index += 1
        return frame

    def _close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.close()
