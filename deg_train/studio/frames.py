"""Video frames for the studio: a decode-ahead cache, so stepping shows the next frame without waiting (no Qt).

One :class:`camera_adapters.video.VideoReader` (frame-exact, PyAV) is shared by the GUI thread and a prefetch
thread under a lock that is held for one frame's decode at a time. The prefetch thread keeps the frames around the
cursor decoded: ``ahead`` frames after it first (stepping forward and playing decode straight through, which is
cheap), then ``behind`` frames before it (stepping back in H.264 otherwise means a seek to the previous keyframe
and a decode forward for every step). The cache is bounded by bytes; the frames farthest from the cursor go first.

A frame not in the cache is decoded on the spot (a random jump: one seek and a decode to the frame).

Example:
    >>> with FrameCache("rat.mp4") as frames:
    ...     rgb = frames.get(120)        # (H, W, 3) uint8
    ...     frames.set_cursor(120)       # decode around here in the background
"""

from __future__ import annotations

import collections
import os
import threading
import time

import numpy as np

from camera_adapters.video import VideoError, VideoReader


class FrameCache:
    """Random access to a video's frames with decoding ahead of (and behind) the cursor.

    Args:
        path: the video file.
        ahead: frames after the cursor to keep decoded.
        behind: frames before the cursor to keep decoded.
        max_bytes: memory the cache may hold (at least ``ahead + behind + 1`` frames fit regardless).

    Raises:
        VideoError: the video cannot be opened.
    """

    def __init__(self, path: str | os.PathLike, *, ahead: int = 48, behind: int = 32, max_bytes: int = 768 << 20):
        self.reader = VideoReader(path)
        self.path = self.reader.path
        self.n_frames = len(self.reader)
        self.fps = float(self.reader.fps or 30.0)
        self.height, self.width = self.reader.height, self.reader.width
        frame_bytes = self.height * self.width * 3
        self.capacity = max(ahead + behind + 1, max_bytes // max(1, frame_bytes))
        self.ahead, self.behind = int(ahead), int(behind)
        self._frames: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()  # the reader and the dict
        self._wake = threading.Condition()
        self._cursor = 0
        self._stop = False
        self.hits = 0
        self.misses = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._prefetch, name="studio-frames", daemon=True)
        self._thread.start()

    def get(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``(H, W, 3) uint8`` (from the cache, or decoded now)."""
        index = int(index)
        with self._lock:
            frame = self._frames.get(index)
            if frame is not None:
                self.hits += 1
                return frame
            self.misses += 1
            if self.reader is None:
                raise VideoError(f"{self.path}: the frame cache is closed")
            frame = self.reader.read(index)
            self._put(index, frame)
            return frame

    def cached(self, index: int) -> bool:
        """Whether frame ``index`` is decoded already."""
        return int(index) in self._frames

    def set_cursor(self, index: int) -> None:
        """Tell the prefetch thread where the person is; it decodes around there."""
        with self._wake:
            self._cursor = int(index)
            self._wake.notify()

    def wait_ready(self, index: int, count: int, timeout: float = 5.0) -> bool:
        """Wait until frames ``index .. index+count-1`` are cached (for benchmarks and tests)."""
        deadline = time.monotonic() + timeout
        wanted = range(max(0, index), min(self.n_frames, index + count))
        while time.monotonic() < deadline:
            if all(i in self._frames for i in wanted):
                return True
            time.sleep(0.002)
        return False

    # -- the prefetch thread ------------------------------------------------------------------------------------------

    def _next_wanted(self, cursor: int) -> int | None:
        for i in range(cursor, min(self.n_frames, cursor + self.ahead + 1)):
            if i not in self._frames:
                return i
        first = max(0, cursor - self.behind)
        for i in range(first, cursor):
            if i not in self._frames:
                return first if first not in self._frames else i  # decode forward from the earliest gap
        return None

    def _prefetch(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stop and self._next_wanted(self._cursor) is None:
                        self._wake.wait(0.5)
                    if self._stop:
                        return
                    cursor = self._cursor
                index = self._next_wanted(cursor)
                if index is None:
                    continue
                with self._lock:
                    if self.reader is None:
                        return
                    if index not in self._frames:
                        self._put(index, self.reader.read(index))
        except VideoError as err:  # a damaged file: the GUI reads on demand and shows the error there
            self.error = err

    def _put(self, index: int, frame: np.ndarray) -> None:
        self._frames[index] = frame
        if len(self._frames) > self.capacity:
            cursor = self._cursor
            far = sorted(self._frames, key=lambda i: abs(i - cursor) + (0.5 if i < cursor else 0.0))
            for i in far[int(self.capacity * 0.9) :]:  # evict a batch: the sort is not paid per frame
                del self._frames[i]

    # -- lifecycle ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the thread and release the file (idempotent)."""
        with self._wake:
            if self._stop:
                return
            self._stop = True
            self._wake.notify()
        self._thread.join(2.0)
        with self._lock:
            if self.reader is not None:
                self.reader.close()
                self.reader = None
            self._frames.clear()

    def __enter__(self) -> FrameCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
