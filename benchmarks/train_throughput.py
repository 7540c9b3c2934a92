"""Training throughput per stage (clips/s) for a preset (deg_f at 128x128 by default) on this machine.

Builds a throwaway project from two rat sessions (tests/data/rat_behavior), caches their frames at the preset's
size, then times real training steps of each stage — batch read from the frame cache, augmentation on the
device, forward, backward, optimiser step — and splits the time into those parts.
Stage 3 trains on random features of the right size (its inputs are saved features, not frames) and reports
windows/s and frames/s.

    .venv/bin/python benchmarks/train_throughput.py                       # deg_f, 128x128, batch 8
    .venv/bin/python benchmarks/train_throughput.py --preset demo_cpu --batch 16 --steps 10
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deg_train.models.registry import create_model
from deg_train.project.layout import Project
from deg_train.training.augment import ClipAugment, model_normalisation, prepare_clips
from deg_train.training.config import load_config
from deg_train.training.data import ClipDataset, EpochSampler, collate_clips
from deg_train.training.losses import MaskedFocalBCE
from deg_train.training.stages import flow_model_and_loss
from deg_train.training.trainer import _amp_context

RAT = Path(__file__).resolve().parents[1] / "tests" / "data" / "rat_behavior"
SESSIONS = ("cage1_6_23_17_5", "unsessioned_05")
PARTS = ("data", "augment", "forward", "backward", "optimiser")


def bench_dataset(root: Path, videos: list[tuple[Path, Path]], size: tuple[int, int], frames: int) -> ClipDataset:
    """A throwaway project in ``root`` holding ``videos`` (video, labels CSV) and its frame cache at ``size``."""
    project = Project.init(Path(root) / "bench", "bench")
    names = []
    for video, labels in videos:
        names.append(project.add_video(video, labels=labels).name)
    return ClipDataset(project, names, size, frames, labels=True, progress=False)


def rat_videos(sessions=SESSIONS) -> list[tuple[Path, Path]]:
    """(video, labels CSV) of bundled rat sessions."""
    return [(RAT / s / f"{s}.mp4", RAT / s / f"{s}_labels.csv") for s in sessions]


def flow_stage(cfg):
    """Stage 1 as training builds it: ``(flow generator, step(model, x, batch) -> loss, mean, std)``."""
    flow, flow_loss, _ = flow_model_and_loss(cfg)
    mean, std = model_normalisation(flow)
    return flow, lambda m, x, b: _flow_step(flow_loss, m, x), mean, std


def feature_stage(cfg, num_classes: int):
    """Stage 2, the two-stream with the (frozen) flow generator inside, and its masked focal BCE loss."""
    two = create_model(
        "two_stream",
        "hidden_two_stream",
        num_classes=num_classes,
        flow_generator=cfg.flow.arch,
        flow_generator_kwargs=cfg.flow.params,
        backbone=cfg.feature.arch,
        num_frames=cfg.data.frames_per_window,
        fusion=cfg.feature.fusion,
        flow_fusion_weight=cfg.feature.flow_fusion_weight,
        dropout=cfg.feature.dropout,
        width=cfg.feature.width,
    )
    mean, std = model_normalisation(two)
    bce = MaskedFocalBCE(pos_weight=np.ones(num_classes), gamma=cfg.feature.focal_gamma)
    return two, lambda m, x, b: bce(m(x)["logits"].float(), b["labels"]), mean, std


class StepTimer:
    """One training step at a time, as training does it, timed per part (seconds): see :data:`PARTS`.

    ``data``: a batch of clips read from the frame cache; ``augment``: augmentation and normalisation on the
    device; ``forward``: the model and its loss (under ``autocast``); ``backward``; ``optimiser``: Adam's step.
    """

    def __init__(self, model, dataset, step, batch, augment, mean, std, autocast, seed: int = 0):
        self.model, self.dataset, self.loss_of, self.batch = model.train(), dataset, step, batch
        self.augment, self.mean, self.std, self.autocast = augment, mean, std, autocast
        self.opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        self.seed = seed
        self._order = iter(())

    def _next_index(self) -> int:
        try:
            return next(self._order)
        except StopIteration:  # a fresh permutation each pass over the data
            self.seed += 1
            self._order = iter(EpochSampler(len(self.dataset), seed=self.seed))
            return next(self._order)

    def step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        b = collate_clips(self.dataset.__getitems__([self._next_index() for _ in range(self.batch)]))
        t1 = time.perf_counter()
        x = prepare_clips(b["clip"], "cpu", mean=self.mean, std=self.std, augment=self.augment)
        t2 = time.perf_counter()
        with self.autocast():
            loss = self.loss_of(self.model, x, b)
        t3 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        self.opt.step()
        t5 = time.perf_counter()
        return dict(zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)))


def _time_stage(name, timer: StepTimer, steps, warmup):
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    totals, cpu_t = [], []
    for i in range(steps + warmup):
        c0 = time.process_time()
        t = timer.step()
        if i >= warmup:
            for p in PARTS:
                parts[p].append(t[p])
            totals.append(sum(t.values()))
            cpu_t.append(time.process_time() - c0)
    med = statistics.median(totals)
    cpu = statistics.median(cpu_t)
    split = "  ".join(f"{p} {statistics.median(parts[p]) * 1e3:5.0f} ms" for p in PARTS)
    print(f"{name:<20} {timer.batch / med:6.2f} clips/s ({cpu / timer.batch:5.2f} CPU-s/clip)  per batch: {split}")
    return timer.batch / med


def _flow_step(loss, model, x):
    flows = model(x)
    with torch.autocast("cpu", enabled=False):  # the loss in float32, as in training
        return loss(x.float(), [f.float() for f in flows])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="deg_f")
    parser.add_argument("--batch", type=int, default=8, help="clips per batch (default 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per stage (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. data.size=[96,96]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.preset, args.overrides)
    size, T = tuple(cfg.data.size), cfg.data.frames_per_window
    print(
        f"preset {cfg.preset}: {cfg.flow.arch} + {cfg.feature.arch} (width {cfg.feature.width}) + "
        f"{cfg.sequence.arch}, {size[0]}x{size[1]}, T={T}, torch threads {torch.get_num_threads()}, "
        f"augmentation {cfg.augment.backend if cfg.augment.enabled else 'off'}"
    )
    autocast, _ = _amp_context(torch.device("cpu"), cfg.train.amp)
    print(
        f"mixed precision: {'bfloat16' if autocast().__class__.__name__ == 'autocast' else 'off (float32)'}; "
        f"load average before: {' '.join(f'{v:.1f}' for v in __import__('os').getloadavg())}"
    )
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        data = bench_dataset(Path(tmp), rat_videos(), size, T)
        augment = ClipAugment(cfg.augment, size)
        augment = augment if augment.enabled else None
        K = data.num_behaviours
        flow, flow_step, mean, std = flow_stage(cfg)
        timer = StepTimer(flow, data, flow_step, args.batch, augment, mean, std, autocast)
        _time_stage("stage 1 flow", timer, args.steps, args.warmup)
        two, two_step, mean, std = feature_stage(cfg, K)
        timer = StepTimer(two, data, two_step, args.batch, augment, mean, std, autocast)
        _time_stage("stage 2 two-stream", timer, args.steps, args.warmup)

        # Stage 3: sequence model on random features of the two-stream's size.
        seq = create_model(
            "sequence",
            cfg.sequence.arch,
            input_dim=two.num_features,
            num_classes=K,
            causal=cfg.sequence.causal,
            **cfg.sequence.model_params(),
        )
        bce = MaskedFocalBCE(pos_weight=np.ones(K), gamma=cfg.feature.focal_gamma)
        rf = getattr(seq, "receptive_field", None) or cfg.sequence.chunk_length
        L = cfg.sequence.chunk_length + rf - 1
        B = cfg.sequence.batch_size
        opt = torch.optim.Adam(seq.parameters(), lr=1e-4)
        x = torch.randn(B, L, two.num_features)
        y = torch.randint(0, 2, (B, L, K), dtype=torch.int8)
        times = []
        for i in range(args.steps + args.warmup):
            t0 = time.perf_counter()
            with autocast():
                loss = bce(seq(x).float().reshape(-1, K), y.reshape(-1, K))
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i >= args.warmup:
                times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(
            f"{'stage 3 ' + cfg.sequence.arch:<22} {B / med:8.1f} windows/s ({B * cfg.sequence.chunk_length / med:.0f} "
            f"loss frames/s; {B} windows of {L} frames, D={two.num_features})"
        )


if __name__ == "__main__":
    main()
