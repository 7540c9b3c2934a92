"""``deg-live bench``: end-to-end latency and the highest camera rate a bundle sustains live, and where the time goes.

What it does: starts a real camera adapter process (``deg-camera synthetic``: a moving pattern at the given
size and rate, published on an ipc endpoint), runs the live pipeline on it exactly as ``deg-live run`` does
(receiver thread, resize, engine, causal postprocessing, event and state publishing), and measures per frame:

- end-to-end latency from the frame's *publish* by the camera adapter to deg-live's *publish* of that frame's
  state message (events of a frame are sent just before its state message, so an event's latency is at most
  this); median and p99; also from the frame's capture;
- skipped frames (the pipeline fell behind and took a newer frame) and lost frames (missing on the wire);
- the median and p99 of every stage (wire, wait, resize, upload, encoder, sequence, postprocess, publish).

The first second of each trial is not counted (caches and the subscriber connecting). With ``--find-max`` it
then tries rates from the measured unpaced throughput downwards and reports the highest rate with no skipped
and no lost frames over a whole trial.

Example::

    deg-live bench --bundle bundles/live_cpu --size 640x480 --backend onnxruntime --rate 30 --find-max
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.wire import EndOfStream
from deg_live.commands.run import add_engine_arguments, engine_options, parse_size

logger = logging.getLogger(__name__)

CANDIDATE_RATES = (
    1,
    2,
    3,
    5,
    10,
    15,
    20,
    25,
    30,
    40,
    50,
    60,
    75,
    90,
    100,
    120,
    150,
    200,
    250,
    300,
    400,
    500,
    750,
    1000,
)
SETTLE_S = 1.0
STAGE_ORDER = ("wire", "wait", "resize", "upload", "encoder", "sequence", "postprocess", "publish")


class BenchError(UserFacingError, RuntimeError):
    """The benchmark could not run (camera adapter failed to start, no frames arrived)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench``."""
    p = subparsers.add_parser(
        "bench",
        help="end-to-end live latency and highest sustained camera rate for a bundle",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bundle", required=True, help="model bundle directory")
    p.add_argument("--size", type=parse_size, default=(480, 640), metavar="WxH", help="camera frame size (640x480)")
    add_engine_arguments(p)
    p.add_argument("--rate", type=float, default=30.0, help="camera rate of the main trial, frames/s (default 30)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per trial (default 8)")
    p.add_argument("--find-max", action="store_true", help="also find the highest rate with nothing skipped")
    p.add_argument("--max-trials", type=int, default=6, help="at most this many trials for --find-max")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=run)


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values, dtype=np.float64) * 1e3
    return {
        "median_ms": round(float(np.median(a)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
    }


class _Camera:
    """``deg-camera synthetic`` in a child process."""

    def __init__(self, endpoint: str, size: tuple[int, int], rate: float, duration: float, camera_id: str):
        h, w = size
        cmd = [
            sys.executable,
            "-m",
            "camera_adapters.cli",
            "synthetic",
            f"width={w}",
            f"height={h}",
            f"fps={rate}",
            "--bind",
            endpoint,
            "--camera-id",
            camera_id,
            "--duration",
            str(duration),
            "--quiet",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def close(self) -> str:
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        return self.proc.stderr.read() if self.proc.stderr else ""


def trial(bundle, engine, size: tuple[int, int], rate: float, duration: float, workdir: Path) -> dict[str, Any]:
    """One camera run at ``rate`` through a fresh pipeline; returns latencies, counts and stage timings."""
    from deg_live.pipeline import LivePipeline
    from deg_live.telemetry import Telemetry

    frames_ep = f"ipc://{workdir}/frames"
    events_ep = f"ipc://{workdir}/events"
    camera_id = "bench"
    telemetry = Telemetry(window=100000)
    pipeline = LivePipeline(
        bundle, frames_ep, engine=engine, events_endpoint=events_ep, camera_id=camera_id, telemetry=telemetry
    )
    pub_to_pub: list[float] = []
    cap_to_pub: list[float] = []
    stages: dict[str, list[float]] = {s: [] for s in STAGE_ORDER}
    camera = _Camera(frames_ep, size, rate, duration + SETTLE_S, camera_id)
    base = None
    processed = 0
    t_start = time.monotonic()
    try:
        while True:
            if time.monotonic() - t_start > duration + SETTLE_S + 15:
                break
            try:
                result = pipeline.step(timeout=0.5)
            except EndOfStream:
                break
            if result is None:
                if camera.proc.poll() is not None and pipeline.telemetry.counters["processed"] == 0:
                    break
                continue
            frames = pipeline.frames
            if base is None:
                if time.monotonic() - pipeline.telemetry.started < SETTLE_S:
                    continue
                base = {"skipped": frames.skipped, "lost": frames.gaps, "received": frames.received}
                t_measure = time.monotonic()
                continue
            processed += 1
            pub_to_pub.append((result.published_ns - result.frame.publish_time_ns) / 1e9)
            cap_to_pub.append((result.published_ns - result.capture_time_ns) / 1e9)
            for name in STAGE_ORDER:
                if name in result.timings:
                    stages[name].append(result.timings[name])
        elapsed = time.monotonic() - t_measure if base is not None else 0.0
        frames = pipeline.frames
        counts = {
            "received": frames.received - (base or {}).get("received", 0),
            "processed": processed,
            "skipped": frames.skipped - (base or {}).get("skipped", 0),
            "lost": frames.gaps - (base or {}).get("lost", 0),
        }
    finally:
        pipeline.close()
        log = camera.close()
    if base is None or processed == 0:
        raise BenchError(f"no frames were processed at {rate} fps; camera adapter said: {log.strip()[-500:]}")
    return {
        "rate_fps": rate,
        "processed_fps": round(processed / elapsed, 2) if elapsed > 0 else None,
        **counts,
        "sustained": counts["skipped"] == 0 and counts["lost"] == 0,
        "publish_to_publish": _stats(pub_to_pub),
        "capture_to_publish": _stats(cap_to_pub),
        "stages": {name: _stats(v) for name, v in stages.items() if v},
    }


def unpaced_rate(engine, bundle, size: tuple[int, int], n: int = 60) -> float:
    """Frames/s of resize + engine step alone on a realistic frame (an upper bound for the live rate)."""
    from camera_adapters.video import resize_rgb

    h, w = int(bundle.input.height), int(bundle.input.width)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    stream = engine.stream()
    for i in range(5):
        stream.push(resize_rgb(frame, (h, w)), index=i)
    t0 = time.perf_counter()
    for i in range(n):
        stream.push(resize_rgb(frame, (h, w)), index=i)
    return n / (time.perf_counter() - t0)


def _pair(s: dict[str, Any]) -> str:
    return f"median {s['median_ms']:.2f} p99 {s['p99_ms']:.2f}"


def format_report(report: dict[str, Any]) -> str:
    """The human-readable table."""
    lines = [
        f"bundle {report['bundle']} ({report['preset']}, {report['input']}), engine {report['engine']}",
        f"device: {report['device']}",
        f"camera frames {report['camera_size']}; unpaced resize+engine: {report['unpaced_fps']:.1f} frames/s",
        "",
        f"{'rate':>6} {'proc fps':>9} {'skipped':>8} {'lost':>5}  "
        f"{'publish->publish ms':>22}  {'capture->publish ms':>22}",
    ]
    for t in report["trials"]:
        p, c = t["publish_to_publish"], t["capture_to_publish"]
        lines.append(
            f"{t['rate_fps']:>6g} {t['processed_fps'] or 0:>9.1f} {t['skipped']:>8} {t['lost']:>5}  "
            f"{_pair(p):>22}  {_pair(c):>22}"
        )
    main = report["trials"][0]
    lines += ["", f"where the time goes at {main['rate_fps']:g} fps (ms):", f"{'stage':>12} {'median':>8} {'p99':>8}"]
    for name, s in main["stages"].items():
        lines.append(f"{name:>12} {s['median_ms']:>8.3f} {s['p99_ms']:>8.3f}")
    if report.get("max_sustained_fps") is not None:
        lines.append(f"\nhighest rate sustained with nothing skipped or lost: {report['max_sustained_fps']:g} fps")
    elif "max_sustained_fps" in report:
        lines.append("\nno tried rate was sustained without skipped frames")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Execute ``deg-live bench``."""
    from deg_live.bundle import read_bundle
    from deg_live.engines import create_engine

    bundle = read_bundle(args.bundle)
    engine = create_engine(bundle, args.backend, **engine_options(args))
    try:
        described = engine.describe()
        engine.warmup(10)
        unpaced = unpaced_rate(engine, bundle, args.size)
        report: dict[str, Any] = {
            "schema_version": 1,
            "bundle": str(bundle.directory),
            "preset": bundle.manifest.preset,
            "input": f"{bundle.input.width}x{bundle.input.height}, T={bundle.input.frames_per_window}",
            "engine": f"{described.get('backend', engine.name)} {described.get('precision', '')}".strip(),
            "device": described.get("device", "?"),
            "camera_size": f"{args.size[1]}x{args.size[0]}",
            "unpaced_fps": round(unpaced, 2),
            "cpu_count": os.cpu_count(),
            "trials": [],
        }
        with tempfile.TemporaryDirectory(prefix="deg-live-bench-") as tmp:
            workdir = Path(tmp)
            print(f"trial at {args.rate:g} fps for {args.duration:g} s ...", file=sys.stderr)
            report["trials"].append(trial(bundle, engine, args.size, args.rate, args.duration, workdir))
            if args.find_max:
                best = args.rate if report["trials"][0]["sustained"] else None
                candidates = [r for r in CANDIDATE_RATES if r <= unpaced * 1.1]
                tried = {args.rate}
                # From the fastest plausible rate downwards; stop at the first sustained one.
                for rate in sorted(candidates, reverse=True):
                    if len(tried) > args.max_trials or (best is not None and rate <= best):
                        break
                    if rate in tried:
                        continue
                    tried.add(rate)
                    print(f"trial at {rate:g} fps for {args.duration:g} s ...", file=sys.stderr)
                    result = trial(bundle, engine, args.size, rate, args.duration, workdir)
                    report["trials"].append(result)
                    if result["sustained"]:
                        best = rate if best is None else max(best, rate)
                        break
                report["max_sustained_fps"] = best
    finally:
        engine.close()
    print(format_report(report))
    if args.json:
        from camera_adapters.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
    return 0
