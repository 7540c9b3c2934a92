"""Frame cache benchmark: build time, random causal clips per second, and disk cost per hour of video.

Builds (or reuses, with --keep) the cache of a rat video at the training size, then reads random
11-frame clips in one process — one clip at a time (``FrameCache.clip``) and in batches (``FrameCache.clips``) —
and prints the median of several runs. The target is >= 1,000 clips/s of 11x128x128x3.

    .venv/bin/python benchmarks/cache_clips.py
    .venv/bin/python benchmarks/cache_clips.py --video tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4 \
        --size 128 128 --frames 11 --clips 2000 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from camera_adapters.video import probe
from deg_train.project.frame_cache import FrameCache, cache_bytes_per_hour

DEFAULT_VIDEO = Path(__file__).resolve().parent.parent / "tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="video to cache (default: a rat session)")
    parser.add_argument("--size", nargs=2, type=int, default=(128, 128), metavar=("H", "W"), help="cache frame size")
    parser.add_argument("--frames", type=int, default=11, help="frames per clip")
    parser.add_argument("--clips", type=int, default=2000, help="random clips per run")
    parser.add_argument("--batch", type=int, default=32, help="clips per batched read")
    parser.add_argument("--runs", type=int, default=5, help="runs; the median is reported")
    parser.add_argument("--cache-dir", type=Path, help="where to build the cache (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random clip positions")
    args = parser.parse_args()

    size = (args.size[0], args.size[1])
    info = probe(args.video)
    with tempfile.TemporaryDirectory() as tmp:
        cache_dir = args.cache_dir or Path(tmp)
        start = time.perf_counter()
        with FrameCache.open(args.video, cache_dir, size=size, progress=True) as cache:
            build_s = time.perf_counter() - start
            rng = np.random.default_rng(args.seed)
            single, batched = [], []
            for _ in range(args.runs):
                ts = rng.integers(0, len(cache), args.clips)
                t0 = time.perf_counter()
                for t in ts:
                    cache.clip(int(t), args.frames)
                single.append(args.clips / (time.perf_counter() - t0))
                t0 = time.perf_counter()
                for b in range(0, args.clips, args.batch):
                    cache.clips(ts[b : b + args.batch], args.frames)
                batched.append(args.clips / (time.perf_counter() - t0))
            disk = cache.path.stat().st_size

    clip_shape = f"{args.frames}x{size[0]}x{size[1]}x3"
    print(
        f"video: {args.video.name}: {info.n_frames} frames, {info.width}x{info.height}, {info.fps:g} fps, {info.codec}"
    )
    print(
        f"cache build (decode + resize + write): {build_s:.2f} s = {info.n_frames / build_s:.0f} frames/s; "
        f"{disk / 1e6:.1f} MB on disk"
    )
    print(
        f"random {clip_shape} clips, one at a time: {statistics.median(single):,.0f} clips/s "
        f"(median of {args.runs} runs of {args.clips})"
    )
    print(f"random {clip_shape} clips, batches of {args.batch}: {statistics.median(batched):,.0f} clips/s")
    for fps in (25, 30):
        print(
            f"disk per hour of video at {size[0]}x{size[1]}, {fps} fps: {cache_bytes_per_hour(size, fps) / 1e9:.2f} GB"
        )
    target = 1000
    ok = statistics.median(single) >= target
    print(f"target >= {target} clips/s: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
