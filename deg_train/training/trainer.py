"""The one training loop shared by the three stages.

:func:`fit` reads top to bottom: set up (threads, seed, device, torch.distributed under torchrun, mixed precision
on CUDA), resume from ``checkpoint_last.pt`` when the run directory has one, then epochs of training with a
progress bar, validation, a plateau learning-rate schedule, early stopping, and an atomic checkpoint plus a
``metrics.csv`` row after every epoch.

What differs between stages is a small :class:`Task` object: how a batch becomes a loss (``train_step``), what
validation computes (``val_step`` per batch, ``val_epoch`` over all of them) and which number decides "better"
(``monitor``, ``mode``). The stage modules (:mod:`deg_train.training.stages`) build the model, the datasets and the
task, and call :func:`fit`.

Reproducibility: epoch ``e`` seeds every random generator with ``seed + 1000 * e + rank`` before it starts, and
:class:`~deg_train.training.data.EpochSampler` orders the data from ``seed + e``; so a run resumed after a crash at
epoch ``e`` continues exactly as the uninterrupted run would have (same batches, same augmentation, same
dropout), and two runs with the same seed give the same weights on the CPU. On CUDA, a few kernels
(``grid_sample``'s backward, used by the flow loss; some cuDNN convolutions) have no deterministic version; we
ask for deterministic algorithms in warn-only mode, so results there match closely but not bit for bit.

Mixed precision (``train.amp``): bfloat16 autocast on GPUs that support it (float16 with a gradient scaler on
older ones) and on CPUs with native bfloat16 (AVX512-BF16 or AMX: about 2x faster training here); weights,
optimiser state and losses stay float32.

Multi-GPU / multi-node: launch the same command with ``torchrun --nproc_per_node N ...`` (or a scheduler that
sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``). Each rank trains on its shard of every epoch's batches inside
``DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs), validation results are gathered from all ranks, and
only rank 0 writes files. ``batch_size`` is per process.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_bytes, atomic_write_text
from deg_train.models.checkpoints import BEST, LAST, is_done, load_checkpoint, mark_done, save_checkpoint
from deg_train.training.config import FeatureConfig, FlowConfig, LoopConfig, SequenceConfig
from deg_train.training.data import EpochSampler, collate_clips

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------
# What a stage plugs in
# ---------------------------------------------------------------------------------------------------------------


class Task:
    """The stage-specific part of training: batch -> loss, and what validation reports.

    Attributes:
        monitor: the validation number that decides the best checkpoint, the plateau schedule and early stopping
            (a key of what :meth:`val_epoch` returns), e.g. ``"val_loss"`` or ``"val_f1"``.
        mode: ``"min"`` if smaller is better, ``"max"`` if larger is.
    """

    monitor: str = "val_loss"
    mode: str = "min"

    def collate(self, items: list[Any]) -> Any:
        """Turn dataset items into a batch (default: :func:`~deg_train.training.data.collate_clips`)."""
        return collate_clips(items)

    def setup(self, model: nn.Module, device: torch.device) -> None:
        """Called once before training, with the model already on ``device`` (move buffers, cache constants)."""

    def train_mode(self, model: nn.Module) -> None:
        """Put the model into training mode (a stage with frozen parts keeps those in eval mode)."""
        model.train()

    def parameters(self, model: nn.Module) -> Iterable[nn.Parameter]:
        """The parameters the optimiser updates (default: those with ``requires_grad``)."""
        return [p for p in model.parameters() if p.requires_grad]

    def train_step(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, dict[str, float]]:
        """One training batch: returns the scalar loss to back-propagate and numbers to log (averaged per epoch)."""
        raise NotImplementedError

    def val_step(self, model: nn.Module, batch: Any, device: torch.device) -> dict[str, Any]:
        """One validation batch (under ``torch.no_grad``): whatever :meth:`val_epoch` needs, as CPU values."""
        raise NotImplementedError

    def val_epoch(self, outputs: list[dict[str, Any]]) -> dict[str, float]:
        """Combine every validation batch (from all ranks) into the epoch's numbers; must include ``monitor``."""
        raise NotImplementedError


#: A stage's section of the config: its own schedule (epochs, lr, weight_decay, batch_size, steps_per_epoch,
#: val_steps); the loop's settings come from ``config.train`` (:class:`~deg_train.training.config.LoopConfig`).
StageSection = FlowConfig | FeatureConfig | SequenceConfig


def _cap(a: int | None, b: int | None) -> int | None:
    values = [v for v in (a, b) if v is not None]
    return min(values) if values else None


@dataclass
class CheckpointInfo:
    """What every checkpoint of a run records besides the weights."""

    stage: str
    arch: str
    model_kwargs: dict[str, Any]
    behaviours: list[str]
    config: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    """How a run ended."""

    run_dir: Path
    epochs_run: int
    best_epoch: int
    best_value: float
    stop_reason: str
    history: list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------------------------
# Set-up helpers
# ---------------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - libraries that draw from the legacy global generator
    torch.manual_seed(seed)


@dataclass
class DistributedContext:
    """This process's place in a torch.distributed job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the torch.distributed job torchrun (or a scheduler) set up in the environment, if any.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``; uses NCCL on CUDA devices and gloo otherwise.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    here = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        here = True
    return DistributedContext(rank=rank, world_size=world, local_rank=local, initialised_here=here)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> this process's CUDA device (``LOCAL_RANK``) if there is one, else the CPU."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{local}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserFacingError(f"train.device={name}: no CUDA device is available here; use train.device=cpu")
    return device


def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX512-BF16 or AMX), where bf16 autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _amp_context(device: torch.device, enabled: bool) -> tuple[Callable[[], Any], torch.amp.GradScaler | None]:
    """The autocast context and gradient scaler for ``device``.

    CUDA: bfloat16 where supported (no scaler needed), else float16 with a gradient scaler; a CPU with native
    bfloat16 (AVX512-BF16/AMX): bfloat16; otherwise none. Weights and optimiser state stay float32.
    """
    import contextlib

    if not enabled:
        return contextlib.nullcontext, None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return lambda: torch.autocast("cuda", dtype=torch.bfloat16), None
        return lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    if device.type == "cpu" and cpu_supports_bf16():
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16), None
    return contextlib.nullcontext, None


def _progress_enabled(ctx: DistributedContext) -> bool:
    return ctx.is_main and sys.stderr.isatty()


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class ProgressLog:
    """A progress line in the log every ``every_s`` seconds: step, clips/s, loss, time left in the epoch and stage.

    The terminal bar (tqdm) is only drawn on a terminal; these lines reach ``train.log`` and any redirected log, so
    a cluster job never goes silent. Time left in the stage assumes the remaining epochs run as many steps at the
    rate measured so far (early stopping can only make it shorter).
    """

    def __init__(self, stage: str, epochs: int, steps_per_epoch: int, every_s: float, enabled: bool) -> None:
        self.stage, self.epochs, self.steps = stage, int(epochs), max(int(steps_per_epoch), 1)
        self.every_s, self.enabled = float(every_s), enabled
        self._last = time.perf_counter()
        self._started = self._last
        self._clips = 0
        self._done_steps = 0

    def start_epoch(self, epoch: int) -> None:
        """Start counting the steps of ``epoch`` (0-based)."""
        self.epoch, self.step = int(epoch), 0

    def update(self, clips: int, loss: float) -> None:
        """Count one training step of ``clips`` clips; log a line if ``every_s`` has passed since the last one."""
        self.step += 1
        self._done_steps += 1
        self._clips += int(clips)
        now = time.perf_counter()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self._started
        per_step = elapsed / self._done_steps
        epoch_left = (self.steps - self.step) * per_step
        stage_left = epoch_left + (self.epochs - self.epoch - 1) * self.steps * per_step
        log.info(
            "%s epoch %d/%d: step %d/%d, %.1f clips/s, loss %.4f, epoch left %s, stage left at most ~%s",
            self.stage,
            self.epoch + 1,
            self.epochs,
            self.step,
            self.steps,
            self._clips / max(elapsed, 1e-9),
            loss,
            _clock(epoch_left),
            _clock(stage_left),
        )


def _finite(loss: torch.Tensor, params: list[torch.Tensor]) -> bool:
    """Whether the loss and every gradient are finite (one device sync).

    Without a gradient scaler (CPU, bf16) nothing else stops one bad step from writing NaN into the weights: a
    NaN that a padded convolution never multiplies with data stays invisible in training and validation, and
    surfaces only in another engine (ONNX Runtime computes the padding) at export.
    """
    checks = [torch.isfinite(loss.detach()).all()]
    checks += [torch.isfinite(p.grad).all() for p in params if p.grad is not None]
    return bool(torch.stack(checks).all())


def _non_finite_grads(model: nn.Module) -> list[str]:
    """Names of the parameters whose gradient holds an inf or NaN."""
    return [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]


def _batch_clips(batch: Any) -> int:
    """How many clips a batch holds (the leading dimension of its first tensor; 1 if it has none)."""
    first = batch
    while isinstance(first, (list, tuple)) and first:
        first = first[0]
    if isinstance(first, dict) and first:
        return _batch_clips(next(iter(first.values())))
    return int(first.shape[0]) if isinstance(first, torch.Tensor) and first.ndim else 1


# ---------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------


def fit(
    model: nn.Module,
    task: Task,
    train_data: Dataset,
    val_data: Dataset | None,
    run_dir: str | os.PathLike,
    stage: StageSection,
    loop: LoopConfig,
    info: CheckpointInfo,
    *,
    val_batch_size: int | None = None,
    sample_weights: Any = None,
) -> FitResult:
    """Train ``model`` on ``train_data`` with ``task``, validating on ``val_data``, checkpointing into ``run_dir``.

    How long and how fast come from the config itself: ``stage`` is the stage's section (``config.flow``,
    ``config.feature`` or ``config.sequence``: epochs, lr, batch size, steps), ``loop`` is ``config.train`` (seed,
    device, mixed precision, schedule, early stopping, caps on steps). ``val_batch_size`` defaults to the batch size.
    ``sample_weights`` (one per training item) draws training items with those probabilities (class-balanced
    sampling) instead of permuting them.

    If ``run_dir`` already holds ``checkpoint_last.pt`` the run resumes after that epoch (weights, optimiser,
    schedule, best value and early-stopping count restored); if it holds ``done.json`` it is already finished and
    is returned as is. Files written (rank 0 only): ``checkpoint_last.pt`` every epoch, ``checkpoint_best.pt``
    when ``task.monitor`` improves, ``metrics.csv`` (one row per epoch), ``train.log``, ``done.json`` at the end.

    Returns:
        A :class:`FitResult` (the same on every rank).
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    # -- Set up: threads, device, torch.distributed, determinism. ------------------------------------------------
    if loop.threads:
        torch.set_num_threads(loop.threads)
    device = resolve_device(loop.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    ctx = init_distributed(device)
    if loop.deterministic:
        # cuBLAS needs this to be deterministic; it must be set before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    handler = _attach_log_file(run_dir / "train.log") if ctx.is_main else None
    try:
        return _fit(
            model, task, train_data, val_data, run_dir, stage, loop, val_batch_size, info, device, ctx, sample_weights
        )
    finally:
        if handler is not None:
            logging.getLogger("deg_train").removeHandler(handler)
            handler.close()
        if ctx.initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()


def _fit(
    model: nn.Module,
    task: Task,
    train_data: Dataset,
    val_data: Dataset | None,
    run_dir: Path,
    stage: StageSection,
    loop: LoopConfig,
    val_batch_size: int | None,
    info: CheckpointInfo,
    device: torch.device,
    ctx: DistributedContext,
    sample_weights: Any = None,
) -> FitResult:
    # The loop's caps on steps apply to every stage (smoke runs, tests).
    steps_per_epoch = _cap(stage.steps_per_epoch, loop.max_steps_per_epoch)
    val_steps = _cap(stage.val_steps, loop.max_val_steps)
    if is_done(run_dir) and (run_dir / LAST).is_file():
        # A finished run is trained further only when asked for more epochs than it ran and it stopped because
        # it had run them all (not on a plateau or early stop).
        import json

        summary = json.loads((run_dir / "done.json").read_text())
        if summary.get("stop_reason") != "epochs" or int(summary.get("epochs_run", 0)) >= stage.epochs:
            log.info("%s: already finished; nothing to do", run_dir)
            return _finished_result(run_dir, task)
        log.info("%s: extending a finished run to %d epochs", run_dir, stage.epochs)
        if ctx.is_main:
            (run_dir / "done.json").unlink()

    # -- What decides "better": the task's validation number; without validation data, the training loss. ------
    has_val = val_data is not None and len(val_data) > 0
    monitor, mode = (task.monitor, task.mode) if has_val else ("train_loss", "min")
    if not has_val:
        log.warning("no validation data: the training loss decides the best checkpoint and early stopping")

    # -- Model, optimiser, schedule. DDP broadcasts rank 0's weights, so every rank starts the same. -----------
    model.to(device)
    task.setup(model, device)
    params = list(task.parameters(model))
    optimizer = torch.optim.Adam(params, lr=stage.lr, weight_decay=stage.weight_decay)
    cosine = loop.lr_schedule == "cosine"
    if cosine:  # from lr to lr/100 over the stage's epochs, one step per epoch
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(int(stage.epochs), 1), eta_min=stage.lr * 0.01
        )
    else:  # min_lr=0: the scheduler keeps reducing and *we* stop once the rate falls below loop.min_lr.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=loop.reduce_factor, patience=loop.patience, min_lr=0.0
        )
    autocast, scaler = _amp_context(device, loop.amp)

    # -- Resume from the last checkpoint, if a crash (or Ctrl-C) left one. ------------------------------------
    start_epoch, best_value, best_epoch, bad_epochs = 0, math.nan, -1, 0
    history: list[dict[str, Any]] = []
    if (run_dir / LAST).is_file():
        ckpt = load_checkpoint(run_dir / LAST)
        model.load_state_dict(ckpt["state_dict"])
        if ckpt.get("optimizer"):
            optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            scheduler.load_state_dict(ckpt["scheduler"])
        state = ckpt["extra"].get("trainer", {})
        start_epoch = ckpt["epoch"] + 1
        best_value = state.get("best_value", math.nan)
        best_epoch = state.get("best_epoch", -1)
        bad_epochs = state.get("bad_epochs", 0)
        history = _read_metrics(run_dir / "metrics.csv", upto_epoch=ckpt["epoch"])
        log.info("%s: resuming after epoch %d", run_dir, ckpt["epoch"])
    train_model: nn.Module = model
    if ctx.distributed:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    # -- Data: each epoch's order comes from (seed, epoch); validation always sees the same items. -----------
    world = ctx.world_size
    steps = steps_per_epoch
    train_sampler = EpochSampler(
        len(train_data),
        samples_per_epoch=None if steps is None else steps * stage.batch_size * world,
        seed=loop.seed,
        rank=ctx.rank,
        world_size=world,
        weights=sample_weights,
    )
    drop_last = len(train_sampler) >= stage.batch_size  # no 1-item remainder batches (BatchNorm)
    train_loader = DataLoader(
        train_data,
        batch_size=stage.batch_size,
        sampler=train_sampler,
        collate_fn=task.collate,
        num_workers=loop.num_workers,
        drop_last=drop_last,
        pin_memory=device.type == "cuda",
        persistent_workers=loop.num_workers > 0,
    )
    val_loader = None
    if has_val:
        vbs = val_batch_size or stage.batch_size
        n_val = None if val_steps is None else min(len(val_data), val_steps * vbs * world)
        val_sampler = EpochSampler(
            len(val_data),
            samples_per_epoch=n_val,
            shuffle=n_val is not None,
            seed=loop.seed + 7919,
            rank=ctx.rank,
            world_size=world,
        )
        val_loader = DataLoader(
            val_data,
            batch_size=vbs,
            sampler=val_sampler,
            collate_fn=task.collate,
            num_workers=loop.num_workers,
            pin_memory=device.type == "cuda",
        )

    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    stop_reason = "epochs"
    epoch = start_epoch - 1
    progress = ProgressLog(info.stage, stage.epochs, len(train_loader), loop.progress_every_s, ctx.is_main)
    for epoch in range(start_epoch, stage.epochs):
        t0 = time.perf_counter()
        progress.start_epoch(epoch)
        # -- Train one epoch. ----------------------------------------------------------------------------------
        seed_everything(loop.seed + 1000 * epoch + ctx.rank)
        train_sampler.set_epoch(epoch)
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        task.train_mode(train_model)
        sums: dict[str, float] = {}
        n_batches = skipped = 0
        bar = tqdm(
            train_loader,
            desc=f"{info.stage} epoch {epoch + 1}/{stage.epochs}",
            leave=False,
            disable=not _progress_enabled(ctx),
            dynamic_ncols=True,
        )
        for batch in bar:
            with autocast():
                loss, logs = task.train_step(train_model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if loop.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, loop.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)  # skips a step with inf/NaN gradients itself
                scaler.update()
            elif _finite(loss, params):
                optimizer.step()
            else:
                skipped += 1
                if skipped <= 3:
                    log.warning(
                        "%s epoch %d: step %d skipped: the loss or these gradients are not finite: %s",
                        info.stage,
                        epoch + 1,
                        n_batches + 1,
                        ", ".join(_non_finite_grads(train_model)[:5]) or "loss",
                    )
            logs = {"loss": float(loss.detach()), **logs}
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            n_batches += 1
            bar.set_postfix(loss=f"{logs['loss']:.4f}")
            progress.update(_batch_clips(batch), logs["loss"])
        bar.close()
        if skipped:
            log.warning(
                "%s epoch %d: %d of %d steps skipped (non-finite gradients)", info.stage, epoch + 1, skipped, n_batches
            )
            if skipped == n_batches:
                raise UserFacingError(
                    f"{run_dir}: every training step of epoch {epoch + 1} had non-finite gradients (the run diverged); "
                    "try a lower learning rate (lr=...) or train.amp=false"
                )
        train_logs = _mean_across_ranks(sums, n_batches, ctx)

        # -- Validate: every rank its shard, results gathered so all ranks take the same decisions. ------------
        val_logs: dict[str, float] = {}
        if val_loader is not None:
            model.eval()
            outputs: list[dict[str, Any]] = []
            with torch.no_grad(), autocast():
                for batch in tqdm(
                    val_loader, desc="validation", leave=False, disable=not _progress_enabled(ctx), dynamic_ncols=True
                ):
                    outputs.append(task.val_step(model, batch, device))
            if ctx.distributed:
                import torch.distributed as dist

                gathered: list[Any] = [None] * ctx.world_size
                dist.all_gather_object(gathered, outputs)
                outputs = [o for part in gathered for o in part]
            val_logs = task.val_epoch(outputs)

        # -- Schedule, best checkpoint, early stopping. ---------------------------------------------------------
        value = float(val_logs[monitor] if has_val else train_logs.get("loss", math.nan))
        improved = not math.isnan(value) and (math.isnan(best_value) or better(value, best_value))
        if improved:
            best_value, best_epoch, bad_epochs = value, epoch, 0
        else:
            bad_epochs += 1
        lr = optimizer.param_groups[0]["lr"]
        if cosine:
            scheduler.step()
        elif not math.isnan(value):
            scheduler.step(value)
        row = {
            "epoch": epoch,
            "lr": lr,
            **{f"train_{k}": v for k, v in train_logs.items()},
            **val_logs,
            "time_s": round(time.perf_counter() - t0, 3),
        }
        history.append(row)
        new_lr = optimizer.param_groups[0]["lr"]
        if not cosine and new_lr < loop.min_lr:
            stop_reason = f"learning rate {new_lr:.2e} fell below train.min_lr={loop.min_lr:g}"
        elif loop.early_stop_patience is not None and bad_epochs >= loop.early_stop_patience:
            stop_reason = f"no improvement of {monitor} for {bad_epochs} epochs (train.early_stop_patience)"
        elif epoch + 1 >= stage.epochs:
            stop_reason = "epochs"
        else:
            stop_reason = ""

        # -- Checkpoint (atomic) and metrics row, rank 0 only; the others wait so nobody races ahead. ----------
        if ctx.is_main:
            extra = {
                **info.extra,
                "trainer": {"best_value": best_value, "best_epoch": best_epoch, "bad_epochs": bad_epochs},
            }
            save_checkpoint(
                run_dir / LAST,
                model=model,
                stage=info.stage,
                arch=info.arch,
                model_kwargs=info.model_kwargs,
                behaviours=info.behaviours,
                config=info.config,
                epoch=epoch,
                optimizer=optimizer,
                scheduler=scheduler,
                metrics=row,
                extra=extra,
            )
            if improved:
                atomic_write_bytes(run_dir / BEST, (run_dir / LAST).read_bytes())
            _write_metrics(run_dir / "metrics.csv", history)
            log.info("%s", _format_row(row, monitor, improved))
        if ctx.distributed:
            import torch.distributed as dist

            dist.barrier()
        if stop_reason:
            break

    # -- Done: mark the run finished so train-all and latest_run() can trust it. ----------------------------------
    stop_reason = stop_reason or "epochs"
    if ctx.is_main:
        mark_done(
            run_dir,
            {
                "stage": info.stage,
                "arch": info.arch,
                "epochs_run": epoch + 1,
                "best_epoch": best_epoch,
                "best_value": best_value,
                "monitor": monitor,
                "stop_reason": stop_reason,
            },
        )
        log.info("%s: finished (%s); best %s %.4f at epoch %d", run_dir, stop_reason, monitor, best_value, best_epoch)
    return FitResult(run_dir, epoch + 1, best_epoch, best_value, stop_reason, history)


# ---------------------------------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------------------------------


def _mean_across_ranks(sums: dict[str, float], n: int, ctx: DistributedContext) -> dict[str, float]:
    keys = sorted(sums)
    values = torch.tensor([sums[k] for k in keys] + [float(n)], dtype=torch.float64)
    if ctx.distributed:
        import torch.distributed as dist

        dist.all_reduce(values)
    count = max(values[-1].item(), 1.0)
    return {k: values[i].item() / count for i, k in enumerate(keys)}


def _attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("deg_train")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _format_row(row: dict[str, Any], monitor: str, improved: bool) -> str:
    parts = [f"epoch {row['epoch']}"]
    for k, v in row.items():
        if k == "epoch":
            continue
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts) + (f"  (best {monitor})" if improved else "")


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite metrics.csv atomically with every epoch so far (columns: the union of all rows' keys)."""
    columns: list[str] = []
    for row in history:
        for k in row:
            if k not in columns:
                columns.append(k)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: row.get(k, "") for k in columns})
    atomic_write_text(path, buffer.getvalue())


def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """Rows of metrics.csv up to and including ``upto_epoch`` (later rows belong to a crashed epoch)."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            parsed = {k: _number(v) for k, v in row.items()}
            if int(parsed["epoch"]) <= upto_epoch:
                rows.append(parsed)
    return rows


def _number(text: str) -> Any:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _finished_result(run_dir: Path, task: Task) -> FitResult:
    import json

    summary = json.loads((run_dir / "done.json").read_text())
    history = _read_metrics(run_dir / "metrics.csv", upto_epoch=10**9)
    return FitResult(
        run_dir,
        int(summary.get("epochs_run", len(history))),
        int(summary.get("best_epoch", -1)),
        float(summary.get("best_value", math.nan)),
        "already finished",
        history,
    )


def read_metrics(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.csv`` as dicts (numbers parsed), oldest epoch first."""
    return _read_metrics(Path(run_dir) / "metrics.csv", upto_epoch=10**9)
