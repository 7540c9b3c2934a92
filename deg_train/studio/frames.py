"""Video frames for the studio: a decode-ahead cache, so stepping shows the next frame without waiting (no Qt).

Two :class:`camera_adapters.video.VideoReader` (frame-exact, PyAV) on the same file. The *forward* reader serves
the GUI thread (a frame not cached is decoded on the spot: a random jump costs one seek and a decode to the frame)
and the prefetch thread's frames after the cursor, which continue from where the GUI's last read left it (no
second seek after a jump); it is locked for one frame at a time. The *behind* reader is the prefetch thread's
alone, so its long seeks never make the GUI wait. While the GUI decodes a frame the prefetch thread pauses.

The prefetch thread decodes ``ahead`` frames after the cursor first (stepping forward and playing decode straight
through, which is cheap), then the frames before it. Stepping back in H.264 means a seek to the keyframe before
the frame and a decode forward, so the frames behind are decoded in blocks: when one of the ``behind`` frames is
missing, every frame from ``2 * behind`` before the cursor up to it is decoded in one pass, and the next seek is
needed only ``behind`` steps later. Behind blocks start when the person steps back or has stayed put for
``behind_after_s``; right after a jump they would only compete with the next jump's decode. The cache is bounded
by bytes; the frames farthest from the cursor go first.

Example:
    >>> with FrameCache("rat.mp4") as frames:
    ...     rgb = frames.get(120)        # (H, W, 3) uint8
    ...     frames.set_cursor(120)       # decode around here in the background
"""

from __future__ import annotations

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
        self._behind_reader: VideoReader | None = None  # opened by the prefetch thread (its index costs a demux)
        self.path = self.reader.path
        self.n_frames = len(self.reader)
        self.fps = float(self.reader.fps or 30.0)
        self.height, self.width = self.reader.height, self.reader.width
        frame_bytes = self.height * self.width * 3
        self.ahead, self.behind = int(ahead), int(behind)
        self.capacity = max(self.ahead + 2 * self.behind + 1, max_bytes // max(1, frame_bytes))
        self._frames: dict[int, np.ndarray] = {}
        self.behind_after_s = 0.5  # frames behind are prefetched when stepping back, or after this long still
        self._lock = threading.Lock()  # the dictionary only
        self._read_lock = threading.Lock()  # the forward reader, one frame at a time
        self._wake = threading.Condition()
        self._cursor = 0
        self._backwards = False
        self._moved = 0.0
        self._stop = False
        self._gui_reading = threading.Event()
        self.hits = 0
        self.misses = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._prefetch, name="studio-frames", daemon=True)
        self._thread.start()

    def get(self, index: int) -> np.ndarray:
        """Frame ``index`` as ``(H, W, 3) uint8`` (from the cache, or decoded now)."""
        index = int(index)
        frame = self._frames.get(index)  # one dictionary lookup: atomic, no lock to wait for
        if frame is not None:
            self.hits += 1
            return frame
        self.misses += 1
        self._gui_reading.set()  # before the lock: the prefetch thread must not start a decode now
        try:
            with self._read_lock:
                frame = self._frames.get(index)  # the prefetch thread may have just decoded it
                if frame is None:
                    if self.reader is None:
                        raise VideoError(f"{self.path}: the frame cache is closed")
                    frame = self.reader.read(index)
                    self._put(index, frame)
        finally:
            self._gui_reading.clear()
        return frame

    def cached(self, index: int) -> bool:
        """Whether frame ``index`` is decoded already."""
        return int(index) in self._frames

    def set_cursor(self, index: int) -> None:
        """Tell the prefetch thread where the person is; it decodes around there."""
        with self._wake:
            index = int(index)
            self._backwards = index < self._cursor
            self._moved = time.monotonic()
            self._cursor = index
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

    def _next_wanted(self, cursor: int) -> tuple[int, int] | None:
        """``(first, stop, behind)`` of the next frames to decode, or None when the window around ``cursor`` is full."""
        for i in range(cursor, min(self.n_frames, cursor + self.ahead + 1)):
            if i not in self._frames:
                return i, i + 1, False
        if not self._backwards and time.monotonic() - self._moved < self.behind_after_s:
            return None  # after a jump or forward steps a behind block's seek would only slow the next jump
        missing = [i for i in range(max(0, cursor - self.behind), cursor) if i not in self._frames]
        if missing:
            return max(0, min(missing[0], cursor - 2 * self.behind)), missing[-1] + 1, True
        return None

    def _prefetch(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stop and self._next_wanted(self._cursor) is None:
                        self._wake.wait(0.1)
                    if self._stop:
                        return
                    cursor = self._cursor
                wanted = self._next_wanted(cursor)
                if wanted is None:
                    continue
                first, stop, behind = wanted
                for i in range(first, stop):  # sequential after the first read: one seek per block at most
                    if self._stop or abs(self._cursor - cursor) > self.ahead:
                        break  # the person jumped: start over around the new cursor
                    while self._gui_reading.is_set() and not self._stop:
                        time.sleep(0.001)
                    if i in self._frames:
                        continue
                    if behind:
                        if self._behind_reader is None:
                            self._behind_reader = VideoReader(self.path)
                        self._put(i, self._behind_reader.read(i))
                        continue
                    with self._read_lock:
                        if self.reader is None:
                            return
                        if self._gui_reading.is_set():
                            break  # the GUI wants a frame: let it have the reader, then look again
                        self._put(i, self.reader.read(i))
        except VideoError as err:  # a damaged file: the GUI reads on demand and shows the error there
            self.error = err
        finally:
            if self._behind_reader is not None:
                self._behind_reader.close()

    def _put(self, index: int, frame: np.ndarray) -> None:
        with self._lock:
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
        self._thread.join(10.0)
        with self._read_lock:
            if self.reader is not None:
                self.reader.close()
                self.reader = None
        with self._lock:
            self._frames.clear()

    def __enter__(self) -> FrameCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
