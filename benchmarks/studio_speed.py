#!/usr/bin/env python3
"""How fast the labelling studio is on long videos: start, one-frame steps, random jumps, label edits.

Generates its videos (kept under ``--out``, reused when present):

- ``long_1080p_*.mp4``: 1920x1080 H.264 (libx264, yuv420p, keyframe every ``--gop`` frames, default 250 = x264's
  default, the worst common case for random access), ``--minutes`` long at 25 fps (default 3 min = 4,500 frames;
  encoding is bounded on purpose: an hour takes about 20 minutes to encode here), then played ``--repeat`` times
  over in one file by remuxing its packets (default 20: an hour, 90,000 frames, made in seconds). Random access
  cost depends on the keyframe interval; opening cost (the frame-exact timestamp index) grows with the length.
- ``long_200k.mp4``: 200,000 frames of 64x36 (2 h 13 min at 25 fps) for label edits on a 200,000-frame video.

Prints (in a window offscreen, real key events through QTest, each followed by the repaint):

- window start: ``deg-train studio VIDEO`` in a fresh process until the first frame is drawn;
- one-frame step latency (Right arrow, one press every 40 ms like a held key), median and p99, forward and back;
- random jump latency (to frames anywhere in the file, not cached), median, p99 and max;
- label edits on the 200,000-frame video: a toggle-and-step key press, a 10,000-frame drag, undo, redo, save.

Usage::

    python benchmarks/studio_speed.py [--out runs/studio_speed] [--minutes 3] [--repeat 20] [--gop 250] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_video(path: Path, n: int, width: int, height: int, gop: int, preset: str) -> Path:
    """A moving test picture (gradient, a moving square, a frame counter bar) as H.264, streamed to disk."""
    if path.exists():
        return path
    tmp = path.with_suffix(".partial.mp4")
    y, x = np.mgrid[0:height, 0:width]
    base = ((x * 255 // max(1, width - 1) + y * 128 // max(1, height - 1)) % 256).astype(np.uint8)
    side = max(4, height // 8)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": preset, "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0"}
        stream.thread_count = 2
        rgb = np.empty((height, width, 3), np.uint8)
        for i in range(n):
            rgb[..., 0] = base
            rgb[..., 1] = np.roll(base, i * 3, axis=1)
            rgb[..., 2] = 80
            cx = (i * 7) % max(1, width - side)
            cy = (i * 3) % max(1, height - side)
            rgb[cy : cy + side, cx : cx + side] = 255
            bits = (i >> np.arange(17)) & 1  # the frame number as a bar code along the top
            cell = max(1, width // 17)
            for b in range(17):
                rgb[: max(2, height // 30), b * cell : (b + 1) * cell] = 255 * bits[b]
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)
    return path


def repeat_video(src: Path, times: int) -> Path:
    """``src`` played ``times`` over, as one file: its packets remuxed with shifted timestamps (no re-encoding)."""
    dst = src.with_name(f"{src.stem}_x{times}.mp4")
    if times <= 1 or dst.exists():
        return src if times <= 1 else dst
    tmp = dst.with_suffix(".partial.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), mode="w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        packets = [p for p in inp.demux(s_in) if p.size]
        pts = [p.pts for p in packets]
        dts = [p.dts for p in packets]
        period = max(pts) - min(pts) + (dts[1] - dts[0])
        for r in range(times):
            for packet, a, b in zip(packets, pts, dts, strict=True):
                packet.pts, packet.dts, packet.stream = a + r * period, b + r * period, s_out
                out.mux(packet)
    tmp.rename(dst)
    return dst


def stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p99_ms": float(np.percentile(a, 99)), "max_ms": float(a.max())}


def start_time(video: Path) -> tuple[float, float]:
    """Seconds from launching a fresh ``deg-train studio`` process to the window shown, and to the first frame drawn.

    A large file opens in a background thread (its timestamp index is a whole demux), so the two differ there.
    """
    code = (
        "import sys, time\n"
        "from deg_train.cli import build_parser\n"
        "from deg_train.studio.workspace import Workspace\n"
        "from deg_live.viewer.app import qt_application\n"
        "app = qt_application()\n"
        "from deg_train.studio.window import StudioWindow\n"
        f"w = StudioWindow(Workspace.open(None, {str(video)!r}), confirm=lambda q: False)\n"
        "w.show(); app.processEvents()\n"
        "shown = time.time()\n"
        "while w.doc is None:\n"
        "    app.processEvents(); time.sleep(0.005)\n"
        "app.processEvents()\n"
        "print(shown, time.time(), 'torch' in sys.modules)\n"
        "w.close()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    launched = time.time()
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    shown, drawn, torch = out.stdout.split()
    assert torch == "False", "the studio imported torch"
    return float(shown) - launched, float(drawn) - launched


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/studio_speed", help="folder for the generated videos")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of the 1080p video (default 3)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=20,
        help="play the generated 1080p video this many times over in one file, remuxed without re-encoding "
        "(default 20: 3 min -> one hour)",
    )
    parser.add_argument("--gop", type=int, default=250, help="keyframe interval of the 1080p video (default 250)")
    parser.add_argument("--steps", type=int, default=200, help="one-frame steps measured each way")
    parser.add_argument("--jumps", type=int, default=40, help="random jumps measured")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"}

    n_long = int(args.minutes * 60 * 25)
    t = time.perf_counter()
    big = make_video(out / f"long_1080p_{n_long}_g{args.gop}.mp4", n_long, 1920, 1080, args.gop, "ultrafast")
    print(
        f"1080p video: {big} ({n_long} frames, GOP {args.gop}, {big.stat().st_size / 1e6:.0f} MB; "
        f"{time.perf_counter() - t:.0f} s to make or find)",
        flush=True,
    )
    if args.repeat > 1:
        t = time.perf_counter()
        big = repeat_video(big, args.repeat)
        n_long *= args.repeat
        print(
            f"  played {args.repeat} times over: {big} ({n_long} frames = {n_long / 25 / 60:.0f} min, "
            f"{big.stat().st_size / 1e6:.0f} MB; {time.perf_counter() - t:.0f} s to make or find)",
            flush=True,
        )
    t = time.perf_counter()
    small = make_video(out / "long_200k.mp4", 200_000, 64, 36, 250, "ultrafast")
    print(f"200,000-frame video: {small} ({time.perf_counter() - t:.0f} s to make or find)", flush=True)

    shown, drawn = start_time(big)
    results["start_s"] = {"window_shown": shown, "first_frame": drawn}
    print(
        f"window start (fresh process, 1080p file of {n_long} frames): shown after {shown:.2f} s, "
        f"first frame after {drawn:.2f} s",
        flush=True,
    )

    from camera_adapters.video import VideoReader

    results["load_average_1min"] = os.getloadavg()[0]
    print(f"load average now: {results['load_average_1min']:.1f} on {os.cpu_count()} CPUs", flush=True)

    from pyqtgraph.Qt import QtCore, QtTest

    from deg_live.viewer.app import qt_application
    from deg_train.studio.window import StudioWindow
    from deg_train.studio.workspace import Workspace

    app = qt_application()
    keys = QtCore.Qt.Key
    ctrl = QtCore.Qt.KeyboardModifier.ControlModifier

    def key(w, k, mods=QtCore.Qt.KeyboardModifier.NoModifier) -> float:
        t0 = time.perf_counter()
        QtTest.QTest.keyClick(w, k, mods)
        app.processEvents()  # the repaint
        return (time.perf_counter() - t0) * 1e3

    def idle(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            app.processEvents()
            time.sleep(0.002)

    t = time.perf_counter()
    w = StudioWindow(Workspace.open(None, big), confirm=lambda q: False, autosave_s=3600)
    w.show()
    while w.doc is None:  # a large file opens in the background
        app.processEvents()
        time.sleep(0.005)
    app.processEvents()
    results["open_1080p_s"] = time.perf_counter() - t
    print(
        f"open the 1080p file in a window: {results['open_1080p_s']:.2f} s "
        f"(timestamp index of {n_long} frames; scales with length)",
        flush=True,
    )
    w.set_cursor(n_long // 3)
    idle(1.0)
    fwd = []
    for _ in range(args.steps):
        fwd.append(key(w, keys.Key_Right))
        idle(0.04)
    back = []
    for _ in range(args.steps):
        back.append(key(w, keys.Key_Left))
        idle(0.04)
    results["step_forward"] = stats(fwd)
    results["step_back"] = stats(back)
    results["cache"] = {"hits": w.frames.hits, "misses": w.frames.misses}
    print(
        "one-frame step, 1080p (Right, every 40 ms): median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms, "
        "max {max_ms:.1f} ms".format(**results["step_forward"]),
        flush=True,
    )
    print(
        "one-frame step back, 1080p (Left):          median {median_ms:.1f} ms, p99 {p99_ms:.1f} ms, "
        "max {max_ms:.1f} ms".format(**results["step_back"]),
        flush=True,
    )
    rng = np.random.default_rng(0)
    jumps, raw = [], []
    with VideoReader(big) as reader:  # the decoder alone, interleaved with the window's jumps (same load)
        for target, other in zip(rng.integers(0, n_long, args.jumps), rng.integers(0, n_long, args.jumps), strict=True):
            t0 = time.perf_counter()
            w.set_cursor(int(target))
            app.processEvents()
            jumps.append((time.perf_counter() - t0) * 1e3)
            idle(0.05)
            t0 = time.perf_counter()
            reader.read(int(other))
            raw.append((time.perf_counter() - t0) * 1e3)
            idle(0.05)
    results["decoder_random_read"] = stats(raw)
    results["random_jump"] = stats(jumps)
    print(
        "decoder alone (VideoReader.read of random frames, interleaved): median {median_ms:.0f} ms, "
        "p99 {p99_ms:.0f} ms".format(**results["decoder_random_read"]),
        flush=True,
    )
    print(
        "random jump, 1080p GOP {}: median {median_ms:.0f} ms, p99 {p99_ms:.0f} ms, max {max_ms:.0f} ms".format(
            args.gop, **results["random_jump"]
        ),
        flush=True,
    )
    w.close()

    # Label edits on a 200,000-frame video (its labels CSV is written on save, 200,000 rows).
    t = time.perf_counter()
    ws = Workspace.open(None, small)
    ws.add_behaviour("grooming")
    ws.add_behaviour("rearing")
    w = StudioWindow(ws, confirm=lambda q: False, autosave_s=3600)
    w.show()
    app.processEvents()
    results["open_200k_s"] = time.perf_counter() - t
    w.set_cursor(100_000)
    idle(0.5)
    w.toggle(1)
    paint = []
    for _ in range(100):
        paint.append(key(w, keys.Key_Right))
    w.untoggle_all()
    results["toggle_step_200k"] = stats(paint)
    t0 = time.perf_counter()
    w.doc.end_merge()
    w.doc.paint([2], 20_000, 30_000)
    w._edited()
    w._draw()
    app.processEvents()
    results["drag_10000_frames_ms"] = (time.perf_counter() - t0) * 1e3
    results["undo_ms"] = key(w, keys.Key_Z, ctrl)
    results["redo_ms"] = key(w, keys.Key_Y, ctrl)
    t0 = time.perf_counter()
    w._draw_overview()
    results["overview_redraw_ms"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    w.save()
    results["save_200k_rows_ms"] = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    w.doc.revision += 1
    w.autosave()  # as the timer does it: the GUI thread copies, a thread writes
    results["autosave_gui_thread_ms"] = (time.perf_counter() - t0) * 1e3
    w._autosave_thread.join()
    results["autosave_200k_rows_ms"] = (time.perf_counter() - t0) * 1e3
    w.confirm = lambda q: False
    w.close()
    (out / "long_200k_labels.csv").unlink(missing_ok=True)
    print(
        f"200,000-frame video: open {results['open_200k_s']:.2f} s; toggle-and-step key press median "
        f"{results['toggle_step_200k']['median_ms']:.1f} ms, p99 {results['toggle_step_200k']['p99_ms']:.1f} ms; "
        f"10,000-frame paint {results['drag_10000_frames_ms']:.1f} ms; undo {results['undo_ms']:.1f} ms; "
        f"redo {results['redo_ms']:.1f} ms; overview redraw {results['overview_redraw_ms']:.1f} ms "
        f"(debounced 250 ms after edits); save {results['save_200k_rows_ms']:.0f} ms; autosave "
        f"{results['autosave_200k_rows_ms']:.0f} ms in a thread ({results['autosave_gui_thread_ms']:.1f} ms on the "
        "GUI thread)",
        flush=True,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
