"""Per-frame forward time of the stage-2 frame encoder and the stage-3 sequence step, batch 1, on this machine.

Live inference runs, per new frame, ``FrameEncoder`` on the last T frames (uint8 in, preprocessing and flow
generation inside) and one ``SequenceStep``. This measures both in eager PyTorch with random weights (speed
does not depend on the weights) and prints a markdown table.

Usage:
    .venv/bin/python benchmarks/model_forward.py                       # deg_f at 128x128 vs deg_live_cpu
    .venv/bin/python benchmarks/model_forward.py --presets deg_f deg_m --size 224 --threads 2 --repeats 20
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from tqdm import tqdm

from deg_train.models import FrameEncoder, SequenceStep, TwoStream, create_model
from deg_train.training.presets import get_preset, sequence_kwargs, two_stream_kwargs

NUM_CLASSES = 5


def _time(fn, repeats: int, warmup: int, desc: str) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in tqdm(range(repeats), desc=desc, leave=False):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def benchmark(preset_name: str, size: int | None, repeats: int, warmup: int) -> dict[str, object]:
    """Median/p90 milliseconds per frame of one preset's encoder and sequence step (batch 1)."""
    preset = get_preset(preset_name)
    h, w = (size, size) if size else preset["input_size"]
    model = TwoStream(**two_stream_kwargs(preset, NUM_CLASSES)).eval()
    encoder = FrameEncoder(model).eval()
    arch, kwargs = sequence_kwargs(preset, NUM_CLASSES, model.num_features)
    step = SequenceStep(create_model("sequence", arch, **kwargs)).eval()
    frames = torch.randint(0, 256, (1, preset["frames_per_window"], h, w, 3), dtype=torch.uint8)
    feature = torch.randn(1, model.num_features)
    state = step.initial_state(1)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    with torch.inference_mode():
        enc_times = _time(lambda: encoder(frames), repeats, warmup, f"{preset_name} encoder")
        seq_times = _time(lambda: step(feature, *state), repeats, warmup, f"{preset_name} sequence")
    ms = [t * 1000 for t in enc_times]
    return {
        "preset": preset_name,
        "input": f"{preset['frames_per_window']}x{h}x{w}",
        "params_M": f"{params:.1f}",
        "encoder_median_ms": f"{statistics.median(ms):.1f}",
        "encoder_p90_ms": f"{sorted(ms)[int(0.9 * (len(ms) - 1))]:.1f}",
        "sequence_median_ms": f"{statistics.median(seq_times) * 1000:.2f}",
        "max_fps": f"{1000 / (statistics.median(ms) + statistics.median(seq_times) * 1000):.1f}",
    }


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else the platform's machine string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    """Command-line entry: run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["deg_f", "deg_live_cpu"])
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="square input size for deg_f/deg_m/deg_s "
        "(default: 128 for DeepEthogram presets, the preset's own size for others)",
    )
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.presets:
        size = args.size if args.size else (128 if name in ("deg_f", "deg_m", "deg_s") else None)
        rows.append(benchmark(name, size, args.repeats, args.warmup))
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores), torch {torch.__version__}, threads {args.threads}")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row[k]) for k in keys) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
