"""Frame transport benchmark: latency and rate of the live path, and the age of frames a slow consumer gets.

For 640x480 and 1280x1024 RGB frames, over TCP (loopback) and IPC, paced at 200 fps and unpaced, a publisher
process (FramePublisher) sends pre-rendered frames and this process receives them with FrameSubscriber:

- one-way latency: publish -> decoded in the subscriber (``receive_time_ns - publish_time_ns``, both
  ``time.time_ns()`` on one machine), median and p99; and capture -> decoded;
- rate: frames decoded per second, and how many the live path skipped (``gaps``: dropped at the high-water mark
  because the subscriber was behind). Unpaced runs use the lossless path (ROUTER/DEALER, the publisher blocks on
  the receiver), so every frame arrives and the rate is the most the transport carries; their latency includes
  the frames queued in ZeroMQ's pipes under saturation, so it is not the number that matters for live use.

Then a consumer 4x slower than a 200 fps synthetic camera takes ``latest()`` frames: the age of each frame when
taken (``now - capture_time_ns``) must stay about one frame period, not grow.

Usage:
    .venv/bin/python benchmarks/transport.py [--seconds 2] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time

import numpy as np

SIZES = [(480, 640), (1024, 1280)]


def _publisher(endpoint: str, size: tuple[int, int], fps: float, seconds: float, go, ready, bound) -> None:
    from camera_adapters.publisher import FramePublisher
    from camera_adapters.wire import Frame

    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for _ in range(4)]
    if fps:  # paced: the live path
        pub = FramePublisher(endpoint, camera_id="bench")
    else:  # unpaced: the lossless path, flow-controlled, so the offered rate is the rate the transport takes
        pub = FramePublisher(
            "tcp://127.0.0.1:*", lossless=endpoint, lossless_block=True, lossless_buffer=1, camera_id="bench"
        )
    with pub:
        bound.put(pub.endpoint if fps else pub.lossless_endpoint)
        ready.set()
        go.wait(10)
        t0 = time.monotonic()
        i = 0
        while time.monotonic() - t0 < seconds:
            if fps:
                due = t0 + i / fps
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            pub.publish(Frame(index=i, pixels=pool[i % 4], capture_time_ns=time.time_ns()))
            i += 1
        pub.end("benchmark done")
        time.sleep(0.2)


def run_transport(kind: str, size: tuple[int, int], fps: float, seconds: float) -> dict:
    from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver
    from camera_adapters.wire import EndOfStream

    if kind == "tcp":
        endpoint = "tcp://127.0.0.1:*"
    else:
        endpoint = f"ipc://{tempfile.gettempdir()}/deg-bench-{os.getpid()}.sock"
    ctx = mp.get_context("spawn")
    go, ready, bound = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_publisher, args=(endpoint, size, fps, seconds, go, ready, bound), daemon=True)
    proc.start()
    try:
        ready.wait(30)
        endpoint = bound.get(timeout=10)
        lat, cap_lat = [], []
        receiver = (
            FrameSubscriber(endpoint, camera_id="bench", queue_size=100_000)
            if fps
            else LosslessReceiver(endpoint, camera_id="bench")
        )
        with receiver as sub:
            time.sleep(0.5)  # PUB/SUB join
            go.set()
            first = last = None
            try:
                while True:
                    frame = sub.recv(timeout=10)
                    if frame is None:
                        break
                    last = time.monotonic()
                    first = first or last
                    lat.append(frame.receive_time_ns - frame.publish_time_ns)
                    cap_lat.append(frame.receive_time_ns - frame.capture_time_ns)
            except EndOfStream:
                pass
            stats = sub.stats()
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
    lat_ms, cap_ms = np.array(lat) / 1e6, np.array(cap_lat) / 1e6
    elapsed = (last - first) if (first and last and last > first) else float("nan")
    return {
        "transport": kind,
        "size": f"{size[1]}x{size[0]}",
        "paced_fps": fps or "unpaced (lossless path)",
        "frames": stats["received"],
        "rate_fps": round((stats["received"] - 1) / elapsed, 1),
        "skipped_by_live_path": stats["gaps"],
        "latency_ms_median": round(float(np.median(lat_ms)), 3),
        "latency_ms_p99": round(float(np.percentile(lat_ms, 99)), 3),
        "capture_to_receive_ms_median": round(float(np.median(cap_ms)), 3),
        "capture_to_receive_ms_p99": round(float(np.percentile(cap_ms, 99)), 3),
    }


def run_slow_consumer(seconds: float, fps: float = 200.0, slowdown: float = 4.0) -> dict:
    import threading

    from camera_adapters.publisher import FramePublisher, stream
    from camera_adapters.sources import create_source
    from camera_adapters.subscriber import FrameSubscriber
    from camera_adapters.wire import EndOfStream

    period = 1.0 / fps
    source = create_source("synthetic", ["width=640", "height=480", f"fps={fps}", f"max_frames={int(seconds * fps)}"])
    ages = []
    with FramePublisher("tcp://127.0.0.1:*") as pub, FrameSubscriber(pub.endpoint) as sub:
        time.sleep(0.5)
        thread = threading.Thread(target=stream, args=(source, pub), daemon=True)
        thread.start()
        try:
            while True:
                frame = sub.latest(timeout=5)
                if frame is None:
                    break
                ages.append((time.time_ns() - frame.capture_time_ns) / 1e6)
                time.sleep(slowdown * period)  # the consumer's "work"
        except EndOfStream:
            pass
        thread.join(5)
        stats = sub.stats()
    ages = np.array(ages[5:])
    half = len(ages) // 2
    return {
        "camera_fps": fps,
        "consumer_period_ms": slowdown * period * 1000,
        "frames_taken": len(ages),
        "age_ms_median": round(float(np.median(ages)), 2),
        "age_ms_p99": round(float(np.percentile(ages, 99)), 2),
        "age_ms_median_first_half": round(float(np.median(ages[:half])), 2),
        "age_ms_median_second_half": round(float(np.median(ages[half:])), 2),
        "frame_period_ms": period * 1000,
        "skipped": stats["skipped"] + stats["gaps"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of frames per configuration")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    rows = []
    for size in SIZES:
        for kind in ("tcp", "ipc"):
            for fps in (200.0, 0.0):
                row = run_transport(kind, size, fps, args.seconds)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    slow = run_slow_consumer(max(args.seconds, 3.0))

    print(
        "\n| frames | transport | paced | rate (fps) | skipped | publish->receive median / p99 (ms) | "
        "capture->receive median / p99 (ms) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['size']} | {r['transport']} | {r['paced_fps']} | {r['rate_fps']} | {r['skipped_by_live_path']} | "
            f"{r['latency_ms_median']} / {r['latency_ms_p99']} | "
            f"{r['capture_to_receive_ms_median']} / {r['capture_to_receive_ms_p99']} |"
        )
    print(
        f"\nSlow consumer (640x480 synthetic camera at {slow['camera_fps']:.0f} fps, consumer takes "
        f"{slow['consumer_period_ms']:.0f} ms per frame): age of the frame when taken median "
        f"{slow['age_ms_median']} ms, p99 {slow['age_ms_p99']} ms (first half {slow['age_ms_median_first_half']} "
        f"ms, second half {slow['age_ms_median_second_half']} ms; frame period {slow['frame_period_ms']:.0f} ms); "
        f"{slow['frames_taken']} frames taken, {slow['skipped']} skipped."
    )
    if args.json:
        from camera_adapters.files import atomic_write_text

        atomic_write_text(args.json, json.dumps({"transport": rows, "slow_consumer": slow}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
