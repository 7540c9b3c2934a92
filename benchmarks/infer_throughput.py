"""Offline inference throughput, end to end from the video file, and where the time goes.

Runs the deg_f architecture (TinyMotionNet + ResNet18 two-stream, 11-frame causal windows, TGM sequence model;
random weights: speed does not depend on them) at 128x128 over a rat video, the way `deg-train infer` does, and
prints frames/s with the time split into decode, resize, encoder and sequence:

- ``decode``: PyAV decoding to RGB at the native size, alone;
- ``resize``: decode + resize to 128x128 (FFmpeg area, the project's resize) minus decode alone;
- ``encoder``: the frame encoder (flow generator + both ResNet18 streams) on ready batches of windows, alone;
- ``sequence``: the TGM over the whole video's features;
- ``end to end``: decode and resize in their own thread, overlapped with the encoder (what `extract` does).

Usage:
    .venv/bin/python benchmarks/infer_throughput.py [--video V] [--frames 256] [--batch-size 32] [--threads 2]
        [--precision fp32|bf16] [--size 128]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import torch

from camera_adapters.video import VideoReader
from deg_live.windows import iter_causal_windows
from deg_train.inference.extract import encode_frames, encoder_from_model, iter_frame_chunks
from deg_train.inference.predict import run_sequence
from deg_train.models.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = ROOT / "tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4"


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads) so far."""
    t = os.times()
    return t.user + t.system


def limited(chunks, n):
    """The first ``n`` frames of a chunk iterator."""
    left = n
    for chunk in chunks:
        if left <= 0:
            break
        yield chunk[:left]
        left -= len(chunk[:left])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", default=str(DEFAULT_VIDEO), help="video file (default: a 1,008-frame rat video)")
    parser.add_argument("--frames", type=int, default=256, help="frames to process (default 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per encoder call (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="encoder arithmetic")
    parser.add_argument("--size", type=int, default=128, help="input height = width (default 128)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = (args.size, args.size)
    behaviours = ["background", "a", "b", "c", "d", "e", "f"]
    model = create_model(
        "two_stream",
        "hidden_two_stream",
        num_classes=len(behaviours),
        flow_generator="tinymotionnet",
        backbone="resnet18",
        num_frames=11,
    )
    enc = encoder_from_model(model, behaviours, size, latent_name="resnet18")
    seq = create_model("sequence", "tgm", input_dim=enc.feature_size, num_classes=len(behaviours)).eval()
    with VideoReader(args.video) as reader:
        n = min(args.frames, len(reader))
        native = (reader.native_height, reader.native_width)

    # decode alone (native size), then decode + resize: no model running
    cpu: dict[str, float] = {}
    c0, t0 = cpu_seconds(), time.perf_counter()
    with VideoReader(args.video) as reader:
        for _ in itertools.islice(reader.iter_frames(), n):
            pass
    t_decode, cpu["decode"] = time.perf_counter() - t0, cpu_seconds() - c0
    c0, t0 = cpu_seconds(), time.perf_counter()
    frames = np.concatenate(list(limited(iter_frame_chunks(args.video, size, 64), n)))
    t_decode_resize, cpu["decode_resize"] = time.perf_counter() - t0, cpu_seconds() - c0

    # encoder alone on ready windows, after a warm-up pass (oneDNN builds its kernels on first use per shape)
    warm = np.concatenate([frames[: args.batch_size + 8]])
    encode_frames(
        enc.encoder,
        iter_causal_windows(iter([warm]), 11),
        len(warm),
        batch_size=args.batch_size,
        precision=args.precision,
    )
    timings: dict[str, float] = {}
    c0, t0 = cpu_seconds(), time.perf_counter()
    chunks = (frames[i : i + 64] for i in range(0, n, 64))
    features, _ = encode_frames(
        enc.encoder,
        iter_causal_windows(chunks, 11),
        n,
        batch_size=args.batch_size,
        timings=timings,
        precision=args.precision,
    )
    t_encoder, cpu["encoder"] = time.perf_counter() - t0, cpu_seconds() - c0

    # the sequence model over the whole sequence
    c0, t0 = cpu_seconds(), time.perf_counter()
    run_sequence(seq, features)
    t_sequence, cpu["sequence"] = time.perf_counter() - t0, cpu_seconds() - c0

    # end to end: decode + resize in a thread, overlapped with the encoder, then the sequence model
    timings = {}
    c0, t0 = cpu_seconds(), time.perf_counter()
    chunks = limited(iter_frame_chunks(args.video, size, 64, timings), n)
    features, _ = encode_frames(
        enc.encoder,
        iter_causal_windows(chunks, 11),
        n,
        batch_size=args.batch_size,
        timings=timings,
        precision=args.precision,
    )
    run_sequence(seq, features)
    t_total, cpu["total"] = time.perf_counter() - t0, cpu_seconds() - c0
    cores = os.cpu_count() or 1

    def row(name: str, seconds: float, cpu_s: float) -> str:
        # CPU seconds / cores = the wall time this work needs on an otherwise idle machine (if it scales to
        # every core): the fair number on a machine shared with other jobs, where wall time is inflated.
        idle = max(cpu_s / cores, 1e-9)
        if seconds < 1e-3:  # decode + resize measured faster than decode alone: within the noise
            return f"  {name:<28s}   (within measurement noise) | {cpu_s:8.2f} CPU-s -> {n / idle:8.1f} frames/s"
        return (
            f"  {name:<28s} {seconds:8.2f} s wall {n / seconds:8.1f} frames/s | {cpu_s:8.2f} CPU-s "
            f"-> {n / idle:8.1f} frames/s on {cores} idle cores"
        )

    print(
        f"deg_f at {size[0]}x{size[1]}, {n} frames of {Path(args.video).name} ({native[1]}x{native[0]}), "
        f"batch {args.batch_size}, {torch.get_num_threads()} torch threads, {args.precision}"
    )
    print(row("decode (native RGB)", t_decode, cpu["decode"]))
    print(row("resize (area)", max(t_decode_resize - t_decode, 0.0), max(cpu["decode_resize"] - cpu["decode"], 1e-9)))
    print(row("encoder (flow gen + 2 CNNs)", t_encoder, cpu["encoder"]))
    print(row("sequence (TGM, whole video)", t_sequence, cpu["sequence"]))
    print(row("end to end (overlapped)", t_total, cpu["total"]))
    print(f"  load average while running: {os.getloadavg()[0]:.1f} on {cores} cores")
    print(
        f"  in the end-to-end run: encoder {timings.get('encoder', 0):.2f} s, decode+resize thread "
        f"{timings.get('decode', 0):.2f} s (overlapped)"
    )


if __name__ == "__main__":
    main()
