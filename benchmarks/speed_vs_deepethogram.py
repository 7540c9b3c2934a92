#!/usr/bin/env python3
"""Speed side by side with DeepEthogram 0.5 on this machine: offline inference, forward, training steps.

Two persistent worker processes, one per system, each in its own environment: DeepEthogram's
(``benchmarks/deepethogram_speed_worker.py``, run by its venv's python; it imports only deepethogram, torch and
numpy) and ours (this script with ``--worker``, run by this python). The parent drives both over stdin/stdout
with one JSON line per request, and alternates them — a DeepEthogram round, then ours, then DeepEthogram's... —
so they never run at once and see the same machine state. Warm-up iterations are run first and discarded.

Measurements (the same input for both: a real rat video, deg_f at ``--size`` (128), random weights):

- ``infer``: offline feature-extractor inference end to end from the video file (decode, resize, windows,
  encoder), frames/s. DeepEthogram: ``feature_extractor.inference.predict_single_video`` (its ``VideoIterable``,
  OpenCV resize, batch 16 as its ``extract`` caps it, ``--deg-workers`` reader processes); ours:
  ``deg_train.inference.extract.encode_video``, the path ``deg-train extract`` takes, with its defaults.
  The first ``--infer-frames`` frames of the video are written once to ``OUT/infer_clip.mp4`` (H.264), and both
  read that file.
- ``forward``: the feature extractor's forward alone (preprocessing included) on one fixed random batch of
  ``--forward-batch`` (16) 11-frame windows, frames/s.
- ``train_flow`` / ``train_feature``: steady-state training steps of the flow generator and of the two-stream
  feature extractor at batch ``--batch`` (8), clips/s, each with its own data path (batch read, augmentation),
  forward, loss, backward and Adam step, split into those parts; the "model only" ratio leaves the data out.

``--isa avx2`` sets ``ATEN_CPU_CAPABILITY=avx2`` and ``ONEDNN_MAX_CPU_ISA=AVX2`` in both workers and turns our
bfloat16 autocast off (``train.amp=false``, fp32 inference): a CPU without AVX-512, emulated on one that has it.

Usage (from the repository root)::

    .venv/bin/python benchmarks/speed_vs_deepethogram.py --peer-venv /path/to/deg_venv
    .venv/bin/python benchmarks/speed_vs_deepethogram.py --isa avx2 --rounds 5 --iters 3 --only infer forward
    .venv/bin/python benchmarks/speed_vs_deepethogram.py --install-peer --peer-venv ~/deg05   # make the venv first

Writes ``OUT/results.md`` (the tables, naming the machine), ``OUT/results.json`` (every iteration's time),
``OUT/speed.log`` (the progress lines) and ``OUT/worker_<side>.log`` (each worker's own output).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import peer_env  # noqa: E402  (the venv helpers both DeepEthogram comparisons share)
from benchmarks.deepethogram_speed_worker import PARTS, MeasurementWorker, serve  # noqa: E402  (one protocol)

DEFAULT_VIDEO = REPO / "tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4"
DEG_WORKER = Path(__file__).with_name("deepethogram_speed_worker.py")
MEASUREMENTS = ("infer", "forward", "train_flow", "train_feature")
UNITS = {"infer": "frames/s", "forward": "frames/s", "train_flow": "clips/s", "train_feature": "clips/s"}
SIDES = ("deepethogram", "ours")
ISA_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
DEG_INFER_BATCH = 16  # DeepEthogram's extract(): batch "auto" -> 16, and never more than 16


# ---------------------------------------------------------------------------------------------------------------
# Our worker (this script with --worker, in our venv)
# ---------------------------------------------------------------------------------------------------------------


class OurWorker(MeasurementWorker):
    """Our side of each measurement; built from the setup request (sizes, threads, arithmetic)."""

    def __init__(self, req: dict):
        import inspect
        import tempfile

        import torch

        from deg_train.inference.extract import encode_video
        from deg_train.training.config import load_config
        from deg_train.training.trainer import _amp_context

        torch.set_num_threads(int(req["threads"]))
        torch.manual_seed(0)
        self.req, self.torch = req, torch
        size = int(req["size"])
        overrides = [f"data.size=[{size},{size}]"] + ([] if req["amp"] else ["train.amp=false"])
        self.cfg = load_config("deg_f", overrides)
        self.autocast, _ = _amp_context(torch.device("cpu"), self.cfg.train.amp)
        self.bf16 = self.autocast().__class__.__name__ == "autocast"
        # inference as `deg-train extract` runs it: encode_video's own defaults, unless --isa avx2 says fp32
        defaults = inspect.signature(encode_video).parameters
        self.precision = "fp32" if not req["amp"] else defaults["precision"].default
        self.infer_batch = defaults["batch_size"].default
        self.tmp = tempfile.TemporaryDirectory(prefix="ours_speed_")
        self._encoder = None
        self._data = None
        self._timers: dict = {}

    def info(self) -> dict:
        torch = self.torch
        return {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "arithmetic": f"training {'bfloat16 autocast' if self.bf16 else 'float32'}, inference {self.precision}",
            "inference": f"encode_video (deg-train extract's path), batch {self.infer_batch}, decode in a thread",
        }

    def behaviours(self) -> list[str]:
        with open(self.req["labels"]) as f:
            return [h for h in f.readline().strip().split(",") if h]

    def encoder(self):
        if self._encoder is None:
            from benchmarks.train_throughput import feature_stage
            from deg_train.inference.extract import encoder_from_model

            behaviours = self.behaviours()
            model, *_ = feature_stage(self.cfg, len(behaviours))
            size = tuple(self.cfg.data.size)
            self._encoder = encoder_from_model(model, behaviours, size, latent_name=self.cfg.feature.arch)
        return self._encoder

    def run_infer(self, iters: int) -> dict:
        from deg_train.inference.extract import encode_video

        enc, times, n = self.encoder(), [], 0
        for _ in range(iters):
            t0 = time.perf_counter()
            out = encode_video(self.req["infer_video"], enc, precision=self.precision)
            times.append(time.perf_counter() - t0)
            n = len(out.features)
        return {"times": times, "items": n}

    def run_forward(self, iters: int) -> dict:
        from deg_train.inference.extract import encode_frames

        enc = self.encoder()
        size, b = int(self.req["size"]), int(self.req["forward_batch"])
        frames = np.random.default_rng(0).integers(0, 256, (b, 11, size, size, 3), dtype=np.uint8)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            encode_frames(enc.encoder, iter([frames]), b, batch_size=b, precision=self.precision)
            times.append(time.perf_counter() - t0)
        return {"times": times, "items": b}

    def train_step(self, stage: str):
        from benchmarks.train_throughput import StepTimer, bench_dataset, feature_stage, flow_stage
        from deg_train.training.augment import ClipAugment

        if self._data is None:
            videos = [(Path(self.req["video"]), Path(self.req["labels"]))]
            self._data = bench_dataset(Path(self.tmp.name), videos, tuple(self.cfg.data.size), 11)
        if stage not in self._timers:
            augment = ClipAugment(self.cfg.augment, tuple(self.cfg.data.size))
            if stage == "train_flow":
                model, step, mean, std = flow_stage(self.cfg)
            else:
                model, step, mean, std = feature_stage(self.cfg, self._data.num_behaviours)
            batch = int(self.req["batch"])
            augment = augment if augment.enabled else None
            self._timers[stage] = StepTimer(model, self._data, step, batch, augment, mean, std, self.autocast)
        return self._timers[stage].step, self._timers[stage].batch


# ---------------------------------------------------------------------------------------------------------------
# The parent: two workers, alternating
# ---------------------------------------------------------------------------------------------------------------


class WorkerProcess:
    """A worker process driven by JSON lines; its stderr goes to ``logfile``. Idempotent ``close()``."""

    def __init__(self, name: str, cmd: list[str], env: dict, logfile: Path):
        self.name, self.logfile = name, logfile
        self._log = open(logfile, "a")
        self._log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} $ {' '.join(cmd)}\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env, text=True, cwd=REPO
        )

    def request(self, **req) -> dict:
        try:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        reply = json.loads(line) if line.strip() else {"ok": False, "error": "the worker exited"}
        if not reply.get("ok"):
            self._log.flush()
            tail = "".join(self.logfile.read_text(errors="replace").splitlines(keepends=True)[-25:])
            raise SystemExit(f"{self.name} worker failed on {req}: {reply.get('error')}\n--- {self.logfile}:\n{tail}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def worker_env(threads: int, isa: str) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    for var in ISA_ENV:
        env.pop(var, None)
    if isa == "avx2":
        env.update(ISA_ENV)
    env.update(PYTHONUNBUFFERED="1", MPLBACKEND="Agg", PYTHONWARNINGS="ignore")
    return env


def labels_for(video: Path) -> Path:
    return video.with_name(f"{video.stem}_labels.csv")


def make_infer_clip(video: Path, frames: int, out: Path) -> Path:
    """The first ``frames`` frames of ``video`` as an H.264 file both sides read (``frames`` <= 0: the video)."""
    from camera_adapters.video import VideoReader, write_video

    with VideoReader(video) as reader:
        n, fps = len(reader), float(reader.fps or 25.0)
        if frames <= 0 or frames >= n:
            return video
        clip = np.stack([frame for (_, frame), _ in zip(reader.iter_frames(0), range(frames))])
    return write_video(out / "infer_clip.mp4", clip, fps)


def summarise(times: list[float], items: int, parts: list[dict] | None) -> dict:
    t = np.asarray(times, dtype=np.float64)
    med = float(np.median(t))
    res = {
        "iterations": len(times),
        "items_per_iteration": items,
        "median_s": med,
        "p99_s": float(np.percentile(t, 99)),
        "throughput": items / med,
    }
    if parts:
        res["parts_median_s"] = {p: float(np.median([x[p] for x in parts])) for p in PARTS}
        model = [x["forward"] + x["backward"] + x["optimiser"] for x in parts]
        res["model_only_throughput"] = items / float(np.median(model))
    return res


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}x"


def render(results: dict) -> str:
    m, info = results["machine"], results["workers"]
    load = [
        (m.get("load_average_at_start") or [float("nan")])[0],
        (results.get("load_average_at_end") or [float("nan")])[0],
    ]
    isa = f"`--isa {results['isa']}`"
    if results["isa"] == "avx2":
        isa += " (a CPU without AVX-512 emulated: ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, our bf16 off)"
    lines = [
        f"# Speed: ours vs DeepEthogram 0.5 on {m['cpu']} ({m['cores']} logical cores)",
        "",
        f"- CPU flags found: {', '.join(m['isa_flags']) or 'none of avx2, avx512f, avx512_bf16, amx'}; {isa}",
        f"- {results['threads']} threads each, one side at a time, alternating; {results['rounds']} rounds x "
        f"{results['iters']} iterations after {results['warmup']} warm-up; load average "
        f"{load[0]:.2f} at start, {load[1]:.2f} at end",
        f"- input: {results['video']} at {results['size']}x{results['size']}, deg_f (TinyMotionNet + 2 ResNet18, "
        "11 frames), random weights"
        + (f"; infer on {results['infer_video']}" if "infer" in results["measurements"] else ""),
    ]
    for side in SIDES:
        i = info.get(side, {})
        lines.append(
            f"- {side}: torch {i.get('torch')}, {i.get('torch_threads')} threads, CPU capability "
            f"{i.get('cpu_capability')}, {i.get('arithmetic')}; inference: {i.get('inference')}"
        )
    lines += [
        "",
        "| measurement | unit | DeepEthogram median / p99 per iteration | DeepEthogram | ours median / p99 | ours "
        "| ours / DeepEthogram |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = results["measurements"]
    for name, r in rows.items():
        d, o = r["deepethogram"], r["ours"]
        lines.append(
            f"| {name} | {UNITS[name]} | {d['median_s']:.3f} s / {d['p99_s']:.3f} s | {d['throughput']:.2f} "
            f"| {o['median_s']:.3f} s / {o['p99_s']:.3f} s | {o['throughput']:.2f} "
            f"| **{_ratio(o['throughput'], d['throughput'])}** |"
        )
    train = [n for n in rows if n.startswith("train")]
    if train:
        lines += [
            "",
            "Training steps, median ms per step by part (data: the batch read; augment: augmentation and "
            "normalisation; forward includes the loss), and the ratio without the data:",
            "",
            "| measurement | side | " + " | ".join(PARTS) + " | model only (clips/s) | ours / DeepEthogram |",
            "|---|---|" + "---|" * len(PARTS) + "---|---|",
        ]
        for name in train:
            d, o = rows[name]["deepethogram"], rows[name]["ours"]
            for side, r in (("DeepEthogram", d), ("ours", o)):
                ratio = _ratio(o["model_only_throughput"], d["model_only_throughput"]) if side == "ours" else ""
                lines.append(
                    f"| {name} | {side} | "
                    + " | ".join(f"{r['parts_median_s'][p] * 1e3:.0f}" for p in PARTS)
                    + f" | {r['model_only_throughput']:.2f} | {ratio} |"
                )
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "speed_benchmark", help="output folder")
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO, help="input video (labels: <stem>_labels.csv)")
    ap.add_argument("--only", nargs="+", choices=MEASUREMENTS, default=list(MEASUREMENTS), help="measurements")
    ap.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads, the same for both (default 2)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per side per round (default 3)")
    ap.add_argument("--warmup", type=int, default=1, help="discarded iterations per side first (default 1)")
    ap.add_argument(
        "--isa",
        choices=("native", "avx2"),
        default="native",
        help="native (default) or avx2: emulate a CPU without AVX-512 (both sides) and turn our bf16 off",
    )
    ap.add_argument("--size", type=int, default=128, help="input height = width (default 128)")
    ap.add_argument("--batch", type=int, default=8, help="clips per training step, both sides (default 8)")
    ap.add_argument("--forward-batch", type=int, default=16, help="windows per forward (default 16)")
    ap.add_argument(
        "--infer-frames", type=int, default=256, help="frames of the video inference runs over (0: all; default 256)"
    )
    ap.add_argument(
        "--deg-workers", type=int, default=1, help="DeepEthogram's video reader processes in inference (default 1)"
    )
    ap.add_argument("--peer-venv", type=Path, default=peer_env.default_peer_venv(), help="DeepEthogram 0.5's own venv")
    ap.add_argument("--install-peer", action="store_true", help="create --peer-venv with uv first")
    ap.add_argument("--peer-patch", type=Path, default=peer_env.DEFAULT_PEER_PATCH, help="DeepEthogram's CPU patch")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # our side's worker process
    args = ap.parse_args(argv)
    for name in ("threads", "rounds", "iters", "batch", "forward_batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.deg_workers < 0:
        ap.error("--warmup and --deg-workers must be 0 or more")
    if args.size < 32 or args.size % 32:
        ap.error("--size must be a multiple of 32 (DeepEthogram's ResNets need it)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return serve(OurWorker)
    video = args.video.resolve()
    if not video.is_file():
        raise SystemExit(f"no video file at {video} (give --video PATH)")
    labels = labels_for(video)
    if not labels.is_file():
        raise SystemExit(f"no labels next to the video: {labels} (the training steps and the class count need it)")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    logfile = out / "speed.log"

    def say(msg: str) -> None:
        peer_env.log(msg)
        with open(logfile, "a") as f:
            f.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] {msg}\n")

    if args.install_peer:
        if args.peer_venv is None:
            raise SystemExit("--install-peer needs --peer-venv PATH")
        peer_env.install_peer(args.peer_venv, args.peer_patch, out)
    peer_py = peer_env.check_peer(args.peer_venv)
    machine = peer_env.machine_description()
    say(
        f"machine: {machine['cpu']}, {machine['cores']} logical cores, flags: {' '.join(machine['isa_flags'])}; "
        f"--isa {args.isa}, {args.threads} threads"
    )
    measurements = [m for m in MEASUREMENTS if m in args.only]
    infer_video = make_infer_clip(video, args.infer_frames, out) if "infer" in measurements else video
    env = worker_env(args.threads, args.isa)
    setup = {
        "cmd": "setup",
        "threads": args.threads,
        "size": args.size,
        "batch": args.batch,
        "forward_batch": args.forward_batch,
        "video": str(video),
        "labels": str(labels),
        "infer_video": str(infer_video),
        "infer_batch": DEG_INFER_BATCH,
        "workers": args.deg_workers,
        "amp": args.isa == "native",
    }
    results: dict = {
        "machine": machine,
        "isa": args.isa,
        "threads": args.threads,
        "rounds": args.rounds,
        "iters": args.iters,
        "warmup": args.warmup,
        "size": args.size,
        "video": str(video),
        "infer_video": str(infer_video),
        "workers": {},
    }
    raw = {m: {s: {"times": [], "parts": [], "items": 0} for s in SIDES} for m in measurements}
    deg_cmd = [str(peer_py), str(DEG_WORKER)]
    ours_cmd = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    with (
        WorkerProcess("DeepEthogram", deg_cmd, env, out / "worker_deepethogram.log") as deg,
        WorkerProcess("ours", ours_cmd, env, out / "worker_ours.log") as ours,
    ):
        workers = {"deepethogram": deg, "ours": ours}
        for side in SIDES:
            results["workers"][side] = workers[side].request(**setup)["info"]
            say(f"{side}: {results['workers'][side]}")
        if args.warmup:
            for m in measurements:
                for side in SIDES:
                    workers[side].request(cmd="run", measurement=m, iters=args.warmup)
                say(f"warm-up done: {m}")
        for r in range(1, args.rounds + 1):
            for m in measurements:
                text = []
                for side in SIDES:
                    rep = workers[side].request(cmd="run", measurement=m, iters=args.iters)
                    raw[m][side]["times"] += rep["times"]
                    raw[m][side]["parts"] += rep.get("parts") or []
                    raw[m][side]["items"] = rep["items"]
                    med = float(np.median(rep["times"]))
                    text.append(f"{side} {med:.3f} s/iter ({rep['items'] / med:.2f} {UNITS[m]})")
                say(f"round {r}/{args.rounds} {m}: " + " | ".join(text))
    results["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    results["measurements"] = {
        m: {s: summarise(raw[m][s]["times"], raw[m][s]["items"], raw[m][s]["parts"]) for s in SIDES}
        for m in measurements
    }
    results["raw"] = raw
    table = render(results)
    print("\n" + table, flush=True)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    say(f"wrote {out / 'results.md'}, {out / 'results.json'} and {logfile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
