import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from camera_adapters.video import VideoError, VideoReader, write_video
from deg_train.project.frame_cache import FrameCache, cache_bytes_per_hour

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
VIDEO = RAT / "cage1_6_23_17_5" / "cage1_6_23_17_5.mp4"  # 144 frames, 320x180
SIZE = (64, 96)


@pytest.fixture(scope="module")
def cached(tmp_path_factory):
    cache_dir = tmp_path_factory.mktemp("cache")
    with FrameCache.open(VIDEO, cache_dir, size=SIZE, progress=False) as cache:
        yield cache, cache_dir


def test_frames_are_the_project_resize_bit_for_bit(cached):
    cache, _ = cached
    assert len(cache) == 144 and cache.n_frames == 144
    assert cache.frames.shape == (144, 64, 96, 3) and cache.frames.dtype == np.uint8
    with VideoReader(VIDEO, size=SIZE) as reader:
        for i, frame in reader.iter_frames():
            np.testing.assert_array_equal(cache.frames[i], frame)


def test_frames_are_read_only(cached):
    cache, _ = cached
    with pytest.raises(ValueError):
        cache.frames[0, 0, 0, 0] = 1


def test_clip_is_causal_and_repeats_frame_zero(cached):
    cache, _ = cached
    frames = np.asarray(cache.frames)
    np.testing.assert_array_equal(cache.clip(50, 11), frames[40:51])
    np.testing.assert_array_equal(cache.clip(10, 11), frames[0:11])
    early = cache.clip(2, 11)
    assert early.shape == (11, 64, 96, 3)
    np.testing.assert_array_equal(early[:8], np.repeat(frames[:1], 8, axis=0))
    np.testing.assert_array_equal(early[8:], frames[0:3])
    ts = [0, 2, 50, 143]
    batch = cache.clips(ts, 11)
    assert batch.shape == (4, 11, 64, 96, 3)
    for b, t in enumerate(ts):
        np.testing.assert_array_equal(batch[b], cache.clip(t, 11))
    with pytest.raises(IndexError):
        cache.clip(144, 11)
    with pytest.raises(IndexError):
        cache.clips([0, -1], 11)


def test_reused_not_rebuilt(cached):
    cache, cache_dir = cached
    before = cache.path.stat().st_mtime_ns
    with FrameCache.open(VIDEO, cache_dir, size=SIZE, progress=False) as again:
        assert again.meta["created"] == cache.meta["created"]
        assert again.path.stat().st_mtime_ns == before
    sidecar = json.loads(cache.path.with_suffix(".json").read_text())
    assert sidecar["schema_version"] == 1 and sidecar["n_frames"] == 144 and sidecar["size"] == list(SIZE)
    assert {"size_bytes", "mtime_ns", "sha256_head_tail"} <= set(sidecar["source"])


def test_rebuilt_when_the_video_changes(tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(VIDEO, video)
    with FrameCache.open(video, tmp_path / "cache", size=SIZE, progress=False) as first:
        assert len(first) == 144
    # Touching the file is not a change...
    os.utime(video, ns=(1, 1))
    with FrameCache.open(video, tmp_path / "cache", size=SIZE, progress=False) as same:
        assert same.meta["created"] == first.meta["created"]
    # ...replacing its content is.
    rng = np.random.default_rng(0)
    write_video(video, rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8), fps=25)
    with FrameCache.open(video, tmp_path / "cache", size=SIZE, progress=False) as second:
        assert len(second) == 20
        with VideoReader(video, size=SIZE) as reader:
            np.testing.assert_array_equal(second.frames[7], reader[7])


def test_rebuilt_when_the_cache_is_damaged(tmp_path):
    cache_dir = tmp_path / "cache"
    with FrameCache.open(VIDEO, cache_dir, size=SIZE, progress=False) as cache:
        data, sidecar = cache.path, cache.path.with_suffix(".json")
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)  # an interrupted copy, a full disk...
    with FrameCache.open(VIDEO, cache_dir, size=SIZE, progress=False) as cache:
        assert cache.frames.shape == (144, 64, 96, 3)
    sidecar.write_text("{not json")
    with FrameCache.open(VIDEO, cache_dir, size=SIZE, progress=False) as cache:
        assert len(cache) == 144


def test_truncated_video_fails_cleanly(tmp_path):
    broken = tmp_path / "broken.mp4"
    data = VIDEO.read_bytes()
    broken.write_bytes(data[: len(data) // 3])
    with pytest.raises(VideoError, match=r"broken.mp4"):
        FrameCache.open(broken, tmp_path / "cache", size=SIZE, progress=False)
    left = [p.name for p in (tmp_path / "cache").glob("*") if not p.name.endswith(".lock")]
    assert left == []
    with pytest.raises(VideoError, match=r"not found"):
        FrameCache.open(tmp_path / "missing.mp4", tmp_path / "cache", size=SIZE, progress=False)


def test_pickles_without_the_frames(cached):
    cache, _ = cached
    blob = pickle.dumps(cache)
    assert len(blob) < 10_000
    copy = pickle.loads(blob)
    np.testing.assert_array_equal(copy.clip(100, 5), cache.clip(100, 5))
    copy.close()


def test_close_is_idempotent(tmp_path):
    cache = FrameCache.open(VIDEO, tmp_path, size=(32, 32), progress=False)
    clip = cache.clip(5, 3)
    cache.close()
    cache.close()
    assert clip.shape == (3, 32, 32, 3)  # copies outlive the cache
    with pytest.raises(ValueError, match=r"closed"):
        cache.clip(5, 3)


def test_cache_bytes_per_hour():
    assert cache_bytes_per_hour((128, 128), 30) == 128 * 128 * 3 * 30 * 3600
    assert cache_bytes_per_hour((128, 128), 25) == 4_423_680_000
