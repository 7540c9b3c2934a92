"""``deg-live bench-engine``: latency and throughput of a bundle on each inference backend, with the device named.

For every backend variant (``onnxruntime``, ``torch``, ``torch:bf16``, ``tensorrt``, ``tensorrt:fp32``...):

- per-call latency at batch 1 (median and p99) of the encoder, of the sequence step, and of a whole streamed
  frame (``FrameStream.push``: upload + encoder + sequence step);
- offline encoder throughput (frames/s) at each batch size tried, and the best;
- accuracy: the largest difference of the streamed probabilities from the first variant's (the reference,
  fp32), so a reduced precision is only kept when it stays within tolerance.

Example::

    deg-live bench-engine bundle/ --backend onnxruntime --backend torch --backend torch:bf16
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_BATCHES = (1, 4, 16, 64)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench-engine`` to ``deg-live``."""
    parser = subparsers.add_parser(
        "bench-engine",
        help="time a bundle's encoder and sequence step on each inference backend",
        description="Per-call latency (median, p99) at batch 1 and offline throughput at the best batch, for "
        "each stage and backend, with the device named; and each variant's largest probability difference from "
        "the first (reference) variant.",
    )
    parser.add_argument("bundle", metavar="BUNDLE", help="the model bundle directory")
    parser.add_argument(
        "--backend",
        action="append",
        metavar="NAME[:PRECISION][:compile]",
        help="a backend to time, optionally with a precision and ':compile' (onnxruntime, torch, torch:bf16, "
        "torch:bf16:compile, torch-cuda, torch-cuda:fp16, tensorrt, tensorrt:fp32); repeat for several. Default: "
        "every backend usable here (plus torch:bf16 where the CPU has native bf16)",
    )
    parser.add_argument("--iterations", type=int, default=100, help="timed calls per measurement (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    parser.add_argument(
        "--batches",
        default=",".join(map(str, DEFAULT_BATCHES)),
        help="offline encoder batch sizes to try, comma-separated (default %(default)s)",
    )
    parser.add_argument("--frames", type=int, default=64, help="frames streamed for the accuracy check (default 64)")
    parser.add_argument("--video", help="stream this video's frames (resized to the bundle) instead of random ones")
    parser.add_argument("--threads", type=int, help="CPU threads for onnxruntime/torch (default: physical cores)")
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="torch on CUDA: replay the per-frame step as a graph"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.set_defaults(func=run)


def default_variants() -> list[str]:
    """Every backend usable here, reference (fp32) first."""
    from deg_live.engines.registry import probe
    from deg_live.engines.torch_engine import cpu_has_bf16

    variants = []
    if probe("onnxruntime").available:
        variants.append("onnxruntime")
    torch_av = probe("torch")
    if torch_av.available:
        variants.append("torch")
        if cpu_has_bf16():
            variants.append("torch:bf16")
        if any(d.startswith("cuda") for d in torch_av.devices):
            variants += ["torch-cuda", "torch-cuda:fp16"]
    if probe("tensorrt").available:
        variants += ["tensorrt", "tensorrt:fp32"]
    return variants


def parse_variant(text: str, threads: int | None, cuda_graphs: bool) -> tuple[str, dict[str, Any]]:
    """``"torch-cuda:fp16"`` -> ``("torch", {"device": "cuda", "precision": "fp16"})``.

    The form is ``NAME[:PRECISION][:compile]``; ``compile`` asks the torch engine to ``torch.compile`` its graphs.
    """
    name, *rest = text.split(":")
    options: dict[str, Any] = {}
    if name == "torch-cuda":
        name = "torch"
        options["device"] = "cuda"
        options["cuda_graphs"] = cuda_graphs
    elif name == "onnxruntime-cuda":
        name = "onnxruntime"
        options["device"] = "cuda"
    for part in rest:
        if part == "compile":
            options["compile"] = True
        elif part:
            options["precision"] = part
    if threads and name in ("onnxruntime", "torch") and options.get("device", "cpu") == "cpu":
        options["threads"] = threads
    return name, options


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(ms.mean())}


def _time(fn, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_engine(engine, frames: np.ndarray, *, iterations: int, warmup: int, batches: list[int]) -> dict[str, Any]:
    """Time one engine: batch-1 latency per stage and per streamed frame, and offline encoder throughput.

    Args:
        engine: an open :class:`~deg_live.engines.base.Engine`.
        frames: ``(N, H, W, 3) uint8`` at the bundle's size, streamed for the per-frame timing.
        iterations: timed calls per measurement.
        warmup: untimed calls before each measurement.
        batches: offline encoder batch sizes.

    Returns:
        a JSON-serialisable dict: ``describe()``, ``encoder``/``sequence``/``frame`` latency stats,
        ``throughput`` (frames/s per batch), ``best_batch``, ``best_fps``, and ``probs`` / ``features``
        (the streamed outputs, for the accuracy columns; removed before printing).
    """
    from deg_live.windows import causal_windows

    t = engine.frames_per_window
    window = causal_windows(frames, len(frames) - 1, len(frames), t)
    features, _ = engine.encode(window)
    state = engine.initial_state(1)
    result: dict[str, Any] = {"engine": engine.describe()}
    result["encoder"] = _stats(_time(lambda: engine.encode(window), iterations, warmup))

    def seq():
        engine.sequence_step(features, state)

    result["sequence"] = _stats(_time(seq, iterations, warmup))

    stream = engine.stream()
    for i in range(min(warmup, len(frames))):
        stream.push(frames[i])
    stream.reset()
    probs, feats, per_frame, parts = [], [], [], {"upload": [], "encoder": [], "sequence": []}
    n = max(iterations, len(frames))
    for i in range(n):
        t0 = time.perf_counter()
        r = stream.push(frames[i % len(frames)])
        per_frame.append(time.perf_counter() - t0)
        if i < len(frames):
            probs.append(r.probs)
            feats.append(r.features)
        for key in parts:
            parts[key].append(r.timings.get(key, 0.0))
    result["frame"] = _stats(per_frame)
    result["frame_parts_median_ms"] = {k: float(np.median(v) * 1e3) for k, v in parts.items()}
    result["probs"] = np.stack(probs)
    result["features"] = np.stack(feats)

    throughput = {}
    for b in batches:
        windows = causal_windows(frames, 0, min(b, len(frames)), t)
        if len(windows) < b:
            windows = np.concatenate([windows] * (b // len(windows) + 1))[:b]
        reps = max(3, min(iterations, int(200 / b)))
        secs = _time(lambda w=windows: engine.encode(w), reps, max(1, warmup // 4))
        throughput[b] = float(b / np.median(secs))
    result["throughput_fps"] = throughput
    best = max(throughput, key=throughput.get)
    result["best_batch"], result["best_fps"] = best, throughput[best]
    return result


def _frames(bundle, args) -> np.ndarray:
    h, w = bundle.input.height, bundle.input.width
    if args.video:
        from camera_adapters.video import VideoReader

        with VideoReader(args.video, size=(h, w)) as video:
            return video.read_range(0, min(len(video), args.frames))
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)


def run(args: argparse.Namespace) -> int:
    """Benchmark every requested backend and print one table."""
    from deg_live.bundle import read_bundle
    from deg_live.engines import EngineError, create_engine

    bundle = read_bundle(args.bundle)
    frames = _frames(bundle, args)
    batches = [int(b) for b in str(args.batches).split(",") if b.strip()]
    variants = args.backend or default_variants()
    results: dict[str, Any] = {}
    reference = None
    for variant in variants:
        name, options = parse_variant(variant, args.threads, args.cuda_graphs)
        try:
            with create_engine(bundle, name, **options) as engine:
                engine.warmup(args.warmup)
                res = bench_engine(engine, frames, iterations=args.iterations, warmup=args.warmup, batches=batches)
        except EngineError as err:
            print(f"{variant}: skipped ({err})")
            continue
        probs, feats = res.pop("probs"), res.pop("features")
        if reference is None:
            reference = (variant, probs, feats)
        res["max_abs_diff_vs_reference"] = float(np.abs(probs - reference[1]).max())
        scale = float(np.abs(reference[2]).max()) or 1.0
        res["max_rel_feature_diff_vs_reference"] = float(np.abs(feats - reference[2]).max() / scale)
        res["reference"] = reference[0]
        results[variant] = res
    if not results:
        raise EngineError("no backend could run here; see the messages above")
    print(format_table(bundle, results))
    if args.json:
        from camera_adapters.files import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(results, indent=2, default=str) + "\n")
    return 0


def format_table(bundle, results: dict[str, Any]) -> str:
    """A plain-text table: one row per backend variant."""
    m = bundle.manifest
    lines = [
        f"bundle {bundle.directory.name}: {m.preset or '?'} {m.input.height}x{m.input.width}, "
        f"T={m.input.frames_per_window}, D={m.sequence.feature_size}, K={m.num_behaviours}",
        f"{'backend':18s} {'device':28s} {'encoder b1 ms':>15s} {'sequence ms':>13s} {'frame ms':>15s} "
        f"{'offline fps (batch)':>20s} {'max|dp|':>9s} {'max|df|/|f|':>11s}",
        f"{'':18s} {'':28s} {'median / p99':>15s} {'median':>13s} {'median / p99':>15s}",
    ]
    for variant, r in results.items():
        enc, seq, frame = r["encoder"], r["sequence"], r["frame"]
        lines.append(
            f"{variant:18s} {str(r['engine'].get('device'))[:28]:28s} "
            f"{enc['median_ms']:7.2f} /{enc['p99_ms']:6.2f} {seq['median_ms']:13.3f} "
            f"{frame['median_ms']:7.2f} /{frame['p99_ms']:6.2f} "
            f"{r['best_fps']:12.1f} ({r['best_batch']:>3d}) {r['max_abs_diff_vs_reference']:9.2g} "
            f"{r['max_rel_feature_diff_vs_reference']:11.2g}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m deg_live.commands.bench_engine BUNDLE ...`` (the same as ``deg-live bench-engine``)."""
    import sys

    from camera_adapters.errors import UserFacingError

    parser = argparse.ArgumentParser(prog="bench-engine")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["bench-engine", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except UserFacingError as err:
        print(f"bench-engine: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
