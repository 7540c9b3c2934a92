"""A per-video frame cache at training resolution: decode once, then read random causal clips fast.

Training reads millions of random 11-frame clips; decoding H.264 for each is far too slow. The cache decodes the
whole video once with :class:`camera_adapters.video.VideoReader` at the training size (so the resize is the
project's one resize, bit-identical to offline and live inference), stores the frames as one uncompressed ``.npy``
file, and memory-maps it read-only. A clip is then one fancy-indexed copy out of the page cache.

Files, in ``cache_dir``:

- ``<video>_<H>x<W>.npy``: the frames, ``(N, H, W, 3) uint8``, NumPy's ``.npy`` format.
- ``<video>_<H>x<W>.json``: a sidecar with ``schema_version``, the source video's path, size in bytes,
  ``mtime_ns`` and a SHA-256 of its first and last MiB, the frame count, the size and when it was built.

The cache is rebuilt when the video's size or first/last MiB change (touching a file does not invalidate it;
re-encoding or replacing it does), when the sidecar is missing or from another schema, or when the data file is
damaged. Building writes to a temporary file and renames it, so an interrupted build never leaves a cache that
looks valid. Concurrent openers (e.g. two torchrun ranks) serialise on a lock file where the OS supports it.

Disk cost: ``H * W * 3`` bytes per frame — at 128x128 and 30 fps, 5.3 GB per hour of video
(:func:`cache_bytes_per_hour`).

Example:
    >>> with FrameCache.open("DATA/mouse1/mouse1.mp4", "cache", size=(128, 128)) as cache:
    ...     clip = cache.clip(500, 11)             # (11, 128, 128, 3): frames 490..500
    ...     batch = cache.clips([0, 7, 900], 11)   # (3, 11, 128, 128, 3); frame 0 repeats before the start
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from camera_adapters.files import atomic_write_text
from camera_adapters.progress import progress_bar
from camera_adapters.video import VideoReader, probe
from deg_live.windows import causal_window

log = logging.getLogger(__name__)

CACHE_SCHEMA_VERSION = 1
_HASH_BYTES = 1 << 20  # hash the first and last MiB of the source


def cache_bytes_per_hour(size: tuple[int, int], fps: float) -> int:
    """Bytes of cache per hour of video at ``size = (height, width)`` and ``fps`` frames per second."""
    height, width = size
    return round(height * width * 3 * fps * 3600)


def video_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Size, mtime_ns and a SHA-256 of the first and last MiB of a file: cheap, and changes with its content."""
    path = Path(path)
    stat = path.stat()
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        digest.update(f.read(_HASH_BYTES))
        if stat.st_size > _HASH_BYTES:
            f.seek(max(_HASH_BYTES, stat.st_size - _HASH_BYTES))
            digest.update(f.read(_HASH_BYTES))
    return {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_head_tail": digest.hexdigest()}


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX flock; no-op where unavailable)."""
    try:
        import fcntl
    except ImportError:  # Windows: builds are still atomic, only possibly duplicated
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


class FrameCache:
    """Read-only, memory-mapped frames of one video at one size; build or reuse with :meth:`open`.

    Attributes:
        video_path: the source video.
        path: the ``.npy`` data file.
        size: ``(height, width)`` of the cached frames.
        meta: the sidecar's contents.

    Pickling sends only the paths (a DataLoader worker re-maps the file), never the frames.
    """

    def __init__(self, path: str | os.PathLike, meta: dict[str, Any]):
        self.path = Path(path)
        self.meta = dict(meta)
        self.video_path = Path(self.meta["source"]["path"])
        self.size = (int(self.meta["size"][0]), int(self.meta["size"][1]))
        self._frames: np.ndarray | None = np.load(self.path, mmap_mode="r")

    # -- building / reusing ------------------------------------------------------------------------------------

    @staticmethod
    def paths_for(
        video_path: str | os.PathLike, cache_dir: str | os.PathLike, size: tuple[int, int]
    ) -> tuple[Path, Path]:
        """The ``(data, sidecar)`` paths a cache of ``video_path`` at ``size`` lives at."""
        stem = Path(video_path).stem
        base = Path(cache_dir) / f"{stem}_{int(size[0])}x{int(size[1])}"
        return base.with_suffix(".npy"), base.with_suffix(".json")

    @classmethod
    def open(
        cls,
        video_path: str | os.PathLike,
        cache_dir: str | os.PathLike,
        size: tuple[int, int] = (128, 128),
        *,
        progress: bool = True,
    ) -> FrameCache:
        """Open the cache of ``video_path`` at ``size = (height, width)``, building it first if missing or stale.

        Raises:
            VideoError: the video is missing, does not decode, or is truncated (nothing is left behind).
        """
        video_path = Path(video_path).resolve()
        size = (int(size[0]), int(size[1]))
        data_path, meta_path = cls.paths_for(video_path, cache_dir, size)
        lock = data_path.with_suffix(".lock")
        with _locked(lock):
            fingerprint = video_fingerprint(video_path) if video_path.is_file() else None
            meta = cls._valid_meta(data_path, meta_path, fingerprint, size)
            if meta is None:
                if fingerprint is None:
                    probe(video_path)  # raises the project's VideoError naming the file
                meta = cls._build(video_path, data_path, meta_path, size, fingerprint, progress)
        return cls(data_path, meta)

    @staticmethod
    def _valid_meta(
        data_path: Path, meta_path: Path, fingerprint: dict[str, Any] | None, size: tuple[int, int]
    ) -> dict[str, Any] | None:
        """The sidecar if the cache on disk is complete and matches the video, else None."""
        if fingerprint is None or not data_path.is_file() or not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            source = meta["source"]
            n = int(meta["n_frames"])
            ok = (
                meta.get("schema_version") == CACHE_SCHEMA_VERSION
                and tuple(meta["size"]) == size
                and source["size_bytes"] == fingerprint["size_bytes"]
                and source["sha256_head_tail"] == fingerprint["sha256_head_tail"]
            )
            if ok:
                frames = np.load(data_path, mmap_mode="r")
                ok = frames.shape == (n, size[0], size[1], 3) and frames.dtype == np.uint8
                del frames
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta if ok else None

    @staticmethod
    def _build(
        video_path: Path,
        data_path: Path,
        meta_path: Path,
        size: tuple[int, int],
        fingerprint: dict[str, Any],
        progress: bool,
    ) -> dict[str, Any]:
        data_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.unlink(missing_ok=True)  # a crash mid-build must not leave an old sidecar beside new data
        tmp = data_path.with_name(f".{data_path.stem}.{os.getpid()}.tmp.npy")
        start = time.perf_counter()
        try:
            with VideoReader(video_path, size=size) as reader:
                n = len(reader)
                frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size[0], size[1], 3))
                bar = progress_bar(
                    total=n,
                    desc=f"caching {video_path.name} at {size[0]}x{size[1]}",
                    unit="frame",
                    disable=not progress,
                    leave=False,
                )
                with bar:
                    for i, frame in reader.iter_frames():
                        frames[i] = frame
                        bar.update(1)
                frames.flush()
                del frames
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, data_path)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {
            "schema_version": CACHE_SCHEMA_VERSION,
            "source": {"path": str(video_path), **fingerprint},
            "n_frames": n,
            "size": [size[0], size[1]],
            "dtype": "uint8",
            "layout": "(N, H, W, 3) RGB",
            "resize": "camera_adapters.video.resize_rgb (FFmpeg area)",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - start, 3),
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=2) + "\n")
        log.info("cached %s: %d frames at %dx%d in %.1f s", video_path.name, n, size[0], size[1], meta["build_seconds"])
        return meta

    # -- reading -----------------------------------------------------------------------------------------------

    @property
    def frames(self) -> np.ndarray:
        """All frames, a read-only memory map ``(N, H, W, 3) uint8``."""
        if self._frames is None:
            raise ValueError(f"{self.path}: the frame cache is closed")
        return self._frames

    def __len__(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def n_frames(self) -> int:
        """N, the number of frames."""
        return len(self)

    def clip(self, t: int, n: int) -> np.ndarray:
        """The causal clip ending at frame ``t``: frames ``t-n+1 .. t`` as ``(n, H, W, 3) uint8`` (a copy).

        Indices before 0 repeat frame 0, so every frame has a full clip and none looks into the future (the rule of
        :mod:`deg_live.windows`).

        Raises:
            IndexError: ``t`` is outside ``0 .. N-1``.
        """
        t = int(t)
        if not 0 <= t < len(self):
            raise IndexError(f"{self.path.name}: frame {t} out of range (the video has {len(self)} frames)")
        return np.array(self.frames[causal_window(t, n)])

    def clips(self, ts: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
        """Causal clips ending at each frame of ``ts``: ``(B, n, H, W, 3) uint8`` (see :meth:`clip`).

        Raises:
            IndexError: any ``t`` is outside ``0 .. N-1``.
        """
        ts = np.asarray(ts, dtype=np.int64).reshape(-1)
        if ts.size and (ts.min() < 0 or ts.max() >= len(self)):
            bad = ts[(ts < 0) | (ts >= len(self))][0]
            raise IndexError(f"{self.path.name}: frame {bad} out of range (the video has {len(self)} frames)")
        frames = self.frames
        out = np.empty((len(ts), n, *frames.shape[1:]), dtype=frames.dtype)
        for b, t in enumerate(ts.tolist()):
            out[b] = frames[causal_window(t, n)]  # mostly a slice: one contiguous copy, faster than fancy indexing
        return out

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Unmap the file; safe to call twice."""
        frames, self._frames = self._frames, None
        if frames is not None:
            mm = getattr(frames, "_mmap", None)
            del frames
            if mm is not None:
                with contextlib.suppress(BufferError, ValueError):
                    mm.close()  # fails harmlessly if a caller still holds a view; the GC unmaps it later

    def __enter__(self) -> FrameCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["meta"])

    def __repr__(self) -> str:
        return f"FrameCache({self.video_path.name!r}, n_frames={len(self)}, size={self.size})"
