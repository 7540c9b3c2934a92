"""Video decoding with PyAV: exact frame counts, frame-exact random access, RGB uint8 out.

This is the one place the project decodes video files; deg_train's datasets and caches, the ``video`` camera
source and the recorder's checks all go through it.

- Frame counts are exact: :func:`probe` decodes every frame (container metadata is often wrong or missing).
- Random access is frame-exact: :class:`VideoReader` indexes every frame's presentation timestamp by demuxing
  (no decoding), then seeks to the keyframe before the wanted frame and decodes forward to it.
- Whatever the pixel format (yuv420p, yuv444p, grayscale, MJPEG's yuvj, 10-bit), frames come out as
  ``(H, W, 3) uint8`` RGB, optionally resized by FFmpeg's scaler on the way (area interpolation).

Example:
    >>> with VideoReader("DATA/mouse1/mouse1.mp4") as video:
    ...     n = len(video)
    ...     frame = video[n // 2]          # (H, W, 3) uint8
    ...     clip = video.read_range(0, 11)  # (11, H, W, 3) uint8
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camera_adapters.errors import UserFacingError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm", ".wmv", ".flv", ".h264")

# Reading forward is cheaper than seeking when the wanted frame is at most this many frames ahead.
_FORWARD_DECODE_LIMIT = 48


class VideoError(UserFacingError, RuntimeError):
    """A video file is missing, cannot be decoded, or is shorter than expected; the message names the file."""


class VideoTruncatedError(VideoError):
    """Fewer frames decode than the file's own header declares: the file was cut short (see :func:`check_complete`)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    Attributes:
        path: the file.
        n_frames: frames counted by decoding (exact) or, with ``exact=False``, by demuxing packets.
        width, height: size of the decoded frames, in pixels.
        fps: the stream's average frame rate (frames per second).
        codec: the codec's short name, e.g. ``h264``.
        pix_fmt: the decoded pixel format, e.g. ``yuv444p`` or ``gray``.
        duration_s: ``n_frames / fps``.
        n_frames_metadata: what the container claims (0 when it does not say); for diagnostics only.
    """

    path: Path
    n_frames: int
    width: int
    height: int
    fps: float
    codec: str
    pix_fmt: str
    duration_s: float
    n_frames_metadata: int = 0

    @property
    def missing_frames(self) -> int:
        """Frames the header declares that do not decode (0 when it declares none, or no more than decode)."""
        return max(0, self.n_frames_metadata - self.n_frames)


def check_complete(info: VideoInfo, *, accept_hint: str = "") -> None:
    """Refuse a video whose header declares more frames than decode (a copy or download cut short).

    A faststart MP4 (the index at the front) cut short still opens, and decodes up to the cut without an error:
    only the declared count gives it away. Containers that declare no count (fragmented MP4, most AVI) pass.

    Args:
        info: from :func:`probe`.
        accept_hint: how the caller lets a user accept the frames that do decode (appended to the message).

    Raises:
        VideoTruncatedError: naming the file, both counts and what to do.
    """
    if info.missing_frames:
        accept = f", or {accept_hint}" if accept_hint else ""
        raise VideoTruncatedError(
            f"{info.path}: truncated: its header declares {info.n_frames_metadata} frames but only {info.n_frames} "
            f"decode ({info.missing_frames} missing, the file was probably cut short by an interrupted copy, "
            f"download or recording); copy it again from the original{accept}"
        )


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: video file not found")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoError(f"{path}: cannot open as a video ({err}); is it a video file, and complete?") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def _fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike, *, exact: bool = True) -> VideoInfo:
    """Describe a video file; with ``exact`` (the default) the frame count comes from decoding every frame.

    Raises:
        VideoError: the file is missing, is not a video, or a frame fails to decode.
    """
    path = Path(path)
    container, stream = _open(path)
    try:
        stream.thread_type = "AUTO"
        codec = stream.codec_context.name
        meta = int(stream.frames or 0)
        fps = _fps(stream)
        width, height, pix_fmt = stream.codec_context.width, stream.codec_context.height, ""
        n = 0
        try:
            if exact:
                for frame in container.decode(stream):
                    if n == 0:
                        width, height, pix_fmt = frame.width, frame.height, frame.format.name
                    n += 1
            else:
                n = sum(1 for p in container.demux(stream) if p.size)
                pix_fmt = stream.codec_context.pix_fmt or ""
        except av.FFmpegError as err:
            raise VideoError(f"{path}: decoding failed after {n} frames ({err}); the file may be truncated") from None
    finally:
        container.close()
    if n == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    return VideoInfo(path, n, width, height, fps, codec, pix_fmt, n / fps if fps else 0.0, meta)


def resize_rgb(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB (or grayscale) uint8 frame to ``size = (height, width)`` with FFmpeg's area interpolation.

    This is the project's one resize: the frame cache, offline inference and the live pipeline all call it, so a
    frame resized for training and the same frame resized live are bit-identical.

    Args:
        frame: ``(H, W, 3)`` RGB or ``(H, W)`` / ``(H, W, 1)`` grayscale, uint8.
        size: ``(height, width)`` of the result.

    Returns:
        ``(height, width, 3)`` uint8 RGB (grayscale is replicated into three channels).
    """
    if frame.dtype != np.uint8:
        raise TypeError(f"resize_rgb expects uint8 frames, got {frame.dtype}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    fmt = "gray" if frame.ndim == 2 else "rgb24"
    height, width = size
    if fmt == "rgb24" and frame.shape[:2] == (height, width):
        return frame
    video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=fmt)
    return video_frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA").to_ndarray()


def _to_rgb(frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
    rgb = frame.to_ndarray(format="rgb24")
    return rgb if size is None else resize_rgb(rgb, size)


class VideoReader:
    """Frame-exact random and sequential access to a video file, as RGB uint8.

    Args:
        path: the video file.
        size: ``(height, width)`` to resize every frame to (FFmpeg area interpolation), or None for the native size.

    Frames are indexed ``0 .. len-1`` in presentation order. Sequential reads decode straight through; a read far
    from the last one seeks to the keyframe before it and decodes forward. Frames whose timestamps are missing
    (some AVI files) fall back to decoding from the start, which is exact but slow: build a frame cache for those.

    Raises:
        VideoError: the file is missing or undecodable, or an index is out of range.
    """

    def __init__(self, path: str | os.PathLike, *, size: tuple[int, int] | None = None):
        self.path = Path(path)
        self.size = size
        self._container, self._stream = _open(self.path)
        self._stream.thread_type = "AUTO"
        self.fps = _fps(self._stream)
        self._pts = self._index_timestamps()
        self._pts_to_index = {p: i for i, p in enumerate(self._pts)} if self._pts is not None else None
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next_index = 0  # index of the frame the running decoder yields next
        ctx = self._stream.codec_context
        self.native_height, self.native_width = ctx.height, ctx.width
        self.height, self.width = size if size is not None else (ctx.height, ctx.width)

    # -- indexing ---------------------------------------------------------------------------------------------

    def _index_timestamps(self) -> list[int] | None:
        """Presentation timestamps of every frame, sorted, from demuxing (fast); None if any is missing."""
        pts = []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    pts = None
                    break
                pts.append(packet.pts)
        except av.FFmpegError as err:
            raise VideoError(f"{self.path}: demuxing failed ({err}); the file may be truncated") from None
        if pts is None:
            self._n_frames = sum(1 for _ in self._decode_from_start())
            self._rewind()
            return None
        pts.sort()
        self._n_frames = len(pts)
        self._rewind()
        if self._n_frames == 0:
            raise VideoError(f"{self.path}: no frames in the video stream")
        return pts

    def _rewind(self) -> None:
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        self._decoder = None
        self._next_index = 0

    def _decode_from_start(self) -> Iterator[av.VideoFrame]:
        self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        return self._container.decode(self._stream)

    # -- public API ---------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._n_frames

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, H, W, 3)`` of the frames this reader returns."""
        return (self._n_frames, self.height, self.width, 3)

    def timestamp(self, index: int) -> float:
        """Presentation time of frame ``index`` in seconds (from the stream's timestamps where it has them)."""
        if self._pts is not None and self._stream.time_base is not None:
            return float((self._pts[index] - self._pts[0]) * self._stream.time_base)
        return index / self.fps if self.fps else float(index)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(index)

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``(H, W, 3) uint8``."""
        index = self._check_index(index)
        ahead = self._next_index is not None and self._next_index <= index < self._next_index + _FORWARD_DECODE_LIMIT
        if self._decoder is None or not ahead:
            self._seek(index)
        frame = self._next_frame(index)
        if self._next_index - 1 != index:
            # The seek landed after the frame (a stream whose timestamps lie): decode from the start, exact but slow.
            self._decoder, self._next_index = self._decode_from_start(), 0
            frame = self._next_frame(index)
        return _to_rgb(frame, self.size)

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Frames ``start .. stop-1`` as ``(T, H, W, 3) uint8``."""
        start, stop = self._check_index(start), self._check_index(stop - 1) + 1
        out = np.empty((stop - start, self.height, self.width, 3), dtype=np.uint8)
        for i in range(start, stop):
            out[i - start] = self.read(i)
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, frame in self.iter_frames():
            yield frame

    def iter_frames(self, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` from ``start`` to the end, decoding straight through.

        Raises:
            VideoError: a frame fails to decode, or the file ends before the indexed frame count.
        """
        start = self._check_index(start)
        self._seek(start)
        for i in range(start, self._n_frames):
            frame = self._next_frame(i)
            yield i, _to_rgb(frame, self.size)

    def close(self) -> None:
        """Release the file; safe to call twice."""
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- internals ----------------------------------------------------------------------------------------------

    def _check_index(self, index: int) -> int:
        if self._container is None:
            raise VideoError(f"{self.path}: reader is closed")
        n = self._n_frames
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"frame index must be an integer, got {type(index).__name__}")
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise VideoError(f"{self.path}: frame {index} out of range (the video has {n} frames)")
        return int(index)

    def _seek(self, index: int) -> None:
        if self._pts is None or index == 0:
            self._decoder = self._decode_from_start()
            self._next_index = 0
            return
        target = self._pts[index]
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._decoder = self._container.decode(self._stream)
        self._next_index = None  # unknown until the first decoded frame tells us by its timestamp

    def _next_frame(self, want: int) -> av.VideoFrame:
        """Decode the next frame, keeping ``_next_index`` right; skip frames before the one we were asked for."""
        while True:
            try:
                frame = next(self._decoder)
            except StopIteration:
                self._decoder = None
                raise VideoError(
                    f"{self.path}: the file ends before frame {want} (it indexes {self._n_frames} frames); "
                    "it may be truncated"
                ) from None
            except av.FFmpegError as err:
                self._decoder = None
                raise VideoError(f"{self.path}: decoding failed near frame {want} ({err})") from None
            if self._next_index is None:
                index = self._pts_index(frame)
                if index is None:
                    continue
            else:
                index = self._next_index
            self._next_index = index + 1
            if index >= want:
                return frame

    def _pts_index(self, frame: av.VideoFrame) -> int | None:
        if frame.pts is None:
            return None
        index = self._pts_to_index.get(frame.pts)
        if index is None:  # decoder reports a timestamp the demuxer did not: take the nearest earlier one
            index = max(0, bisect.bisect_right(self._pts, frame.pts) - 1)
        return index


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | list[np.ndarray],
    fps: float = 30.0,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
) -> Path:
    """Write ``frames`` ``(T, H, W, 3) uint8`` RGB (or ``(T, H, W)`` grayscale) to a video file.

    Used to make test videos in odd formats and by tools that write flow visualisations. ``fps`` may be
    fractional (29.97). For lossless output use ``codec="libx264", options={"qp": "0"}`` with ``pix_fmt="yuv444p"``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("write_video needs at least one frame")
    h, w = frames[0].shape[:2]
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if options:
            stream.options = dict(options)
        for arr in frames:
            fmt = "gray" if arr.ndim == 2 else "rgb24"
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr, dtype=np.uint8), format=fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
