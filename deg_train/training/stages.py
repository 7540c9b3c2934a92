"""The three training stages: flow generator, hidden two-stream feature extractor, causal sequence model.

Each ``train_*`` function builds its datasets from the project's split, its model from the config (and the
previous stage's run), a small :class:`~deg_train.training.trainer.Task`, and hands them to
:func:`deg_train.training.trainer.fit`.
Each returns its run directory ``<project>/models/<YYYYmmdd_HHMMSS>_<stage>_<arch>/`` holding ``config.yaml`` (the
resolved config, with the previous stage's run filled in), ``checkpoint_last.pt``, ``checkpoint_best.pt``,
``metrics.csv``, ``train.log`` and ``done.json``. Passing an existing ``run_dir`` resumes that run.

- Stage 1 (:func:`train_flow`): self-supervised on every frame of the training videos (labels are not needed);
  loss = DeepEthogram's MotionNet loss (photometric + SSIM + smoothness [+ sparsity]) across three scales;
  monitor ``val_loss``.
- Stage 2 (:func:`train_features`): the flow generator of a stage-1 run, frozen, feeds the flow stream; focal
  binary cross-entropy with positive weights ``(neg/pos)^beta`` and label smoothing on labelled frames only
  (-1 masked), final-layer biases initialised to ``log(pos/neg)``; monitor ``val_f1`` (macro F1 over the
  behaviours other than background, each at its best validation threshold).
- Stage 3 (:func:`train_sequence`): on the features stage 2 saved in ``<video>_outputs.h5`` (extracted first if
  missing, by :func:`deg_train.inference.extract.extract_features`); windows at random offsets every epoch with
  the model's receptive field of real past before the frames that carry the loss (no fixed chunk boundaries); monitor
  ``val_f1`` on whole validation videos.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from camera_adapters.errors import UserFacingError
from deg_live.outputs import read_features
from deg_train.evaluation.metrics import threshold_search
from deg_train.inference.extract import extract_features, latent_name_for
from deg_train.models.checkpoints import (
    CheckpointError,
    build_model_from_checkpoint,
    checkpoint_path,
    load_checkpoint,
    new_run_dir,
    resolve_run,
    run_stage,
)
from deg_train.models.registry import create_model
from deg_train.models.weights import WeightsError, load_weights
from deg_train.training.augment import ClipAugment, model_normalisation, prepare_clips
from deg_train.training.config import TrainConfig, save_config
from deg_train.training.data import ClipDataset
from deg_train.training.losses import (
    MaskedFocalBCE,
    MaskedSoftmaxCE,
    MotionNetLoss,
    class_weight_from_counts,
    init_bias_from_counts,
    init_softmax_bias_from_counts,
    pos_weight_from_counts,
)
from deg_train.training.project_settings import warn_not_honoured
from deg_train.training.sequence_data import SequenceDataset, collate_sequences
from deg_train.training.trainer import (
    CheckpointInfo,
    Task,
    fit,
    init_distributed,
    resolve_device,
    seed_everything,
)

log = logging.getLogger(__name__)

BACKGROUND = "background"


class StageError(UserFacingError, ValueError):
    """A stage cannot train with this project or config (no split, no labelled videos, mismatched runs...)."""


# ---------------------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------------------


def project_split(project: Any) -> Any:
    """The project's train/val/test split (``DATA/split.yaml``), made from the project settings if missing."""
    split = project.load_split()
    if split is None:
        split = project.make_split()
        log.info(
            "made a split of %d videos: train %s, val %s, test %s (saved to %s)",
            len(project.videos),
            split.train,
            split.val,
            split.test,
            project.split_path,
        )
    known = set(project.video_names)
    missing = [n for n in split.train + split.val + split.test if n not in known]
    if missing:
        raise StageError(
            f"{project.split_path}: lists videos not in the project: {missing}; remake it with `deg-train split --make`"
        )
    unsplit = sorted(known - set(split.train + split.val + split.test))
    if unsplit:
        log.warning(
            "videos not in the split are not used for training: %s (deg-train split --assign train VIDEO... "
            "puts them in training)",
            unsplit,
        )
    return split


def _labelled(project: Any, names: list[str]) -> list[str]:
    records = {r.name: r for r in project.videos}
    return [n for n in names if records[n].labels_path is not None]


def _distributed(config: TrainConfig) -> Any:
    """Join the torch.distributed job now (under torchrun); a no-op context when not distributed.

    Early, so ranks can agree on the run directory and let rank 0 alone write shared files.
    """
    device = resolve_device(config.train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return init_distributed(device)


def _prepare_run(project: Any, config: TrainConfig, stage: str, arch: str, run_dir: str | os.PathLike | None) -> Path:
    """A new run directory (or the given one, to resume) with ``config.yaml`` written.

    Under torch.distributed rank 0 names it and every rank gets the same path.
    """
    ctx = _distributed(config)
    if run_dir is not None:
        run = Path(run_dir)
    elif not ctx.distributed:
        run = new_run_dir(project.models_dir, stage, arch)
    else:
        import torch.distributed as dist

        name = [str(new_run_dir(project.models_dir, stage, arch)) if ctx.is_main else None]
        dist.broadcast_object_list(name, src=0)
        run = Path(name[0])
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        save_config(config, run / "config.yaml")
    return run


def _normalisation_kwargs(config: TrainConfig) -> dict[str, list[float]]:
    """``mean=`` / ``std=`` for the models when ``data.mean`` / ``data.std`` are set (else the models' default)."""
    d = config.data
    return {k: [float(x) for x in v] for k, v in (("mean", d.mean), ("std", d.std)) if v is not None}


def _check_resume(run_dir: str | os.PathLike | None, stage: str) -> None:
    if run_dir is None:
        return

    found = run_stage(run_dir)
    if found is not None and found != stage:
        raise StageError(f"{run_dir}: this is a {found} run; it cannot resume as a {stage} run")


def _seed_for_model(config: TrainConfig) -> None:
    # The model's initial weights come from the seed too (fit re-seeds each epoch).
    seed_everything(config.train.seed)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: flow generator
# ---------------------------------------------------------------------------------------------------------------


class FlowTask(Task):
    """Self-supervised flow: frames -> flows at 3 scales -> MotionNet loss (lower is better)."""

    monitor = "val_loss"
    mode = "min"

    def __init__(self, loss: nn.Module, augment: ClipAugment | None, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.loss = loss
        self.augment = augment
        self.mean, self.std = mean, std

    def setup(self, model, device):
        """Move the loss's buffers (positive weights, normalisation) to the training device."""
        self.loss.to(device)

    def _loss(self, model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device, augment: Any):
        frames = prepare_clips(batch["clip"], device, mean=self.mean, std=self.std, augment=augment)
        flows = model(frames)  # finest first, (B, 2(T-1), h_s, w_s)
        # The loss un-normalises with the same mean/std and compares images in [0, 1], in float32 even under
        # mixed precision (SSIM's small differences vanish in bfloat16).
        with torch.autocast(device.type, enabled=False):
            total, parts = self.loss(frames.float(), [f.float() for f in flows])
        return total, {k: float(v) for k, v in parts.items() if k != "total"}

    def train_step(self, model, batch, device):
        """One training batch -> loss (see :class:`~deg_train.training.trainer.Task`)."""
        return self._loss(model, batch, device, self.augment)

    def val_step(self, model, batch, device):
        """One validation batch -> summed loss and, for classifiers, probabilities and labels."""
        total, parts = self._loss(model, batch, device, None)
        n = len(batch["clip"])
        return {"n": n, "loss": float(total) * n, **{k: v * n for k, v in parts.items()}}

    def val_epoch(self, outputs):
        """All validation batches -> ``val_loss`` (and ``val_f1`` per behaviour and macro)."""
        n = sum(o["n"] for o in outputs)
        keys = [k for k in outputs[0] if k != "n"]
        return {f"val_{k}": sum(o[k] for o in outputs) / max(n, 1) for k in keys}


def flow_model_and_loss(config: TrainConfig) -> tuple[torch.nn.Module, MotionNetLoss, dict[str, Any]]:
    """Stage 1's flow generator (with ``flow.weights`` loaded if set), its MotionNet loss and the model's kwargs.

    What :func:`train_flow` trains, built one way for it and for ``benchmarks/train_throughput.py``.
    """
    model_kwargs = {"num_frames": config.data.frames_per_window, **_normalisation_kwargs(config), **config.flow.params}
    model = create_model("flow", config.flow.arch, **model_kwargs)
    if config.flow.weights:
        _load_initial_weights(model, config.flow.weights)
    mean, std = model_normalisation(model)
    loss = MotionNetLoss(
        smooth_weight_multiplier=config.flow.smooth_weight_multiplier,
        flow_sparsity=config.flow.flow_sparsity,
        sparsity_weight=config.flow.sparsity_weight,
        mean=mean,
        std=std,
    )
    return model, loss, model_kwargs


def train_flow(project: Any, config: TrainConfig, run_dir: str | os.PathLike | None = None) -> Path:
    """Train (or resume) a stage-1 flow generator; returns its run directory.

    Args:
        project: an open :class:`deg_train.project.layout.Project`.
        config: the resolved training config (``data``, ``augment``, ``flow``, ``train`` sections are used).
        run_dir: an existing flow run to resume; None starts a new run.
    """
    _check_resume(run_dir, "flow")
    split = project_split(project)
    size, T = tuple(config.data.size), config.data.frames_per_window
    # Labels are not needed: every frame of the training videos teaches motion.
    train_data = ClipDataset(project, split.train, size, T, labels=False)
    val_data = ClipDataset(project, split.val, size, T, labels=False) if split.val else None

    _seed_for_model(config)
    model, loss, model_kwargs = flow_model_and_loss(config)
    mean, std = model_normalisation(model)
    augment = ClipAugment(config.augment, size)
    task = FlowTask(loss, augment if augment.enabled else None, mean, std)

    run = _prepare_run(project, config, "flow", config.flow.arch, run_dir)
    warn_not_honoured(project, config, run)
    info = CheckpointInfo(
        stage="flow",
        arch=config.flow.arch,
        model_kwargs=model_kwargs,
        behaviours=[],
        config=config,
        extra={"train_videos": split.train, "val_videos": split.val, "size": list(size)},
    )
    fit(model, task, train_data, val_data, run, config.flow, config.train, info)
    return run


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: hidden two-stream feature extractor
# ---------------------------------------------------------------------------------------------------------------


def _behaviour_columns(behaviours: list[str]) -> list[int]:
    """Columns that count in the macro F1: every behaviour but background (all of them if that is all there is)."""
    cols = [i for i, b in enumerate(behaviours) if b != BACKGROUND]
    return cols or list(range(len(behaviours)))


def f1_summary(probs: np.ndarray, labels: np.ndarray, behaviours: list[str], prefix: str = "val_") -> dict[str, float]:
    """Per-behaviour F1 at each behaviour's best threshold, and their macro mean over non-background behaviours.

    Args:
        probs: (N, K) probabilities.
        labels: (N, K) int, -1 = unlabelled.
        behaviours: K names.
        prefix: put before every key.

    Returns:
        ``{prefix + "f1": macro, prefix + "f1_<name>": ...}``; behaviours without positives are NaN and left out
        of the macro mean.
    """
    search = threshold_search(probs, labels)
    cols = _behaviour_columns(behaviours)
    f1 = search.f1[cols]
    out = {f"{prefix}f1": float(np.nanmean(f1)) if np.isfinite(f1).any() else math.nan}
    for i, name in enumerate(behaviours):
        out[f"{prefix}f1_{name}"] = float(search.f1[i])
    return out


class FeatureTask(Task):
    """Clips -> fused logits -> masked focal BCE; validation reports loss and macro F1 (higher is better)."""

    monitor = "val_f1"
    mode = "max"

    def __init__(
        self,
        loss: nn.Module,
        augment: ClipAugment | None,
        mean: torch.Tensor,
        std: torch.Tensor,
        behaviours: list[str],
        exclusive: bool = False,
    ) -> None:
        self.loss = loss
        self.augment = augment
        self.mean, self.std = mean, std
        self.behaviours = behaviours
        self.exclusive = exclusive

    def setup(self, model, device):
        """Move the loss's buffers (positive weights, normalisation) to the training device."""
        self.loss.to(device)

    def _forward(self, model, batch, device, augment):
        x = prepare_clips(batch["clip"], device, mean=self.mean, std=self.std, augment=augment)
        logits = model(x)["logits"].float()  # (B, K)
        labels = batch["labels"].to(device)  # (B, K) int8, -1 masked
        return logits, labels

    def train_step(self, model, batch, device):
        """One training batch -> loss (see :class:`~deg_train.training.trainer.Task`)."""
        logits, labels = self._forward(model, batch, device, self.augment)
        return self.loss(logits, labels), {}

    def val_step(self, model, batch, device):
        """One validation batch -> summed loss and, for classifiers, probabilities and labels."""
        logits, labels = self._forward(model, batch, device, None)
        n = len(labels)
        return {
            "n": n,
            "loss": float(self.loss(logits, labels)) * n,
            "probs": activate(logits, self.exclusive).cpu().numpy(),
            "labels": labels.cpu().numpy(),
        }

    def val_epoch(self, outputs):
        """All validation batches -> ``val_loss`` (and ``val_f1`` per behaviour and macro)."""
        n = sum(o["n"] for o in outputs)
        probs = np.concatenate([o["probs"] for o in outputs])
        labels = np.concatenate([o["labels"] for o in outputs])
        return {"val_loss": sum(o["loss"] for o in outputs) / max(n, 1), **f1_summary(probs, labels, self.behaviours)}


def activate(logits: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """Probabilities from logits ``(..., K)``: softmax over the classes (exclusive) or one sigmoid per behaviour."""
    return torch.softmax(logits, dim=-1) if exclusive else torch.sigmoid(logits)


def resolve_exclusive(project: Any, config: TrainConfig, names: list[str]) -> bool:
    """``data.exclusive`` if set, else the project's setting or what its labels show; logged with the reason."""
    if config.data.exclusive is not None:
        exclusive, why = bool(config.data.exclusive), f"config data.exclusive={str(config.data.exclusive).lower()}"
    else:
        exclusive, why = project.exclusive_behaviours(names)
    log.info(
        "behaviours: %s (%s)",
        "mutually exclusive: softmax over the classes, exclusive decisions" if exclusive else "multi-label: sigmoids",
        why,
    )
    return exclusive


def _with_exclusive(config: TrainConfig, exclusive: bool) -> TrainConfig:
    """The config with ``data.exclusive`` resolved (what the run's config.yaml records)."""
    return dataclasses.replace(config, data=dataclasses.replace(config.data, exclusive=exclusive))


def _class_loss(section: Any, pos: np.ndarray, neg: np.ndarray, exclusive: bool = False) -> nn.Module:
    if exclusive:
        return MaskedSoftmaxCE(
            class_weight=class_weight_from_counts(pos, beta=section.pos_weight_beta),
            gamma=section.focal_gamma,
            label_smoothing=section.label_smoothing,
        )

    pos_weight = pos_weight_from_counts(pos, neg, beta=section.pos_weight_beta)
    return MaskedFocalBCE(
        pos_weight=torch.as_tensor(pos_weight, dtype=torch.float32),
        gamma=section.focal_gamma,
        label_smoothing=section.label_smoothing,
    )


def _load_initial_weights(model: nn.Module, path: str) -> None:
    load_weights(model, path, source="auto")
    log.info("initial weights from %s", path)


def train_features(
    project: Any,
    config: TrainConfig,
    flow_run: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
) -> Path:
    """Train (or resume) a stage-2 hidden two-stream feature extractor; returns its run directory.

    Args:
        project: an open project.
        config: the resolved config (``data``, ``augment``, ``feature``, ``train`` are used).
        flow_run: the stage-1 run whose flow generator is used (frozen); None = ``config.feature.flow_run``, or
            the newest finished flow run.
        run_dir: an existing feature run to resume; None starts a new run.
    """
    _check_resume(run_dir, "feature")
    flow_dir = resolve_run(project, "flow", flow_run if flow_run is not None else config.feature.flow_run)
    flow_model, flow_meta = build_model_from_checkpoint(flow_dir, expect_stage="flow")
    T = config.data.frames_per_window
    if flow_model.num_frames != T:
        raise StageError(
            f"{flow_dir}: its flow generator takes {flow_model.num_frames} frames but "
            f"data.frames_per_window={T}; train a flow run with the same setting"
        )
    flow_size = (flow_meta.get("config") or {}).get("data", {}).get("size")
    if flow_size and tuple(flow_size) != tuple(config.data.size):
        log.warning(
            "flow run %s was trained at %s, features train at %s",
            flow_dir.name,
            tuple(flow_size),
            tuple(config.data.size),
        )
    flow_mean, flow_std = (t.tolist() for t in model_normalisation(flow_model))
    for name, wanted, trained in (("mean", config.data.mean, flow_mean), ("std", config.data.std, flow_std)):
        if wanted is not None and max(abs(a - b) for a, b in zip(wanted, trained)) > 1e-6:
            log.warning(
                "flow run %s was trained with input %s %s, features train with data.%s %s; retrain the flow run",
                flow_dir.name,
                name,
                [round(v, 6) for v in trained],
                name,
                list(wanted),
            )
    config = dataclasses.replace(config, feature=dataclasses.replace(config.feature, flow_run=str(flow_dir)))

    split = project_split(project)
    train_names, val_names = _labelled(project, split.train), _labelled(project, split.val)
    if not train_names:
        raise StageError(f"no labelled training videos in the split (train: {split.train}); label some videos")
    size = tuple(config.data.size)
    train_data = ClipDataset(project, train_names, size, T, labels=True)
    val_data = ClipDataset(project, val_names, size, T, labels=True) if val_names else None
    behaviours = train_data.behaviours
    pos, neg = train_data.label_counts()
    log.info(
        "training frames per behaviour (positive/negative): %s",
        ", ".join(f"{b} {p}/{n}" for b, p, n in zip(behaviours, pos, neg)),
    )
    sample_weights, seen_pos, seen_neg = None, pos, neg
    if config.feature.class_balance > 0:
        # Rare behaviours are drawn more often; the loss weights and the initial biases then follow the counts an
        # epoch actually sees, so the rare classes are not up-weighted twice.
        sample_weights = train_data.class_balanced_weights(config.feature.class_balance)
        seen_pos, seen_neg = train_data.label_counts(sample_weights)
        log.info(
            "class-balanced sampling (feature.class_balance=%g): expected frames per behaviour per pass %s",
            config.feature.class_balance,
            ", ".join(f"{b} {p:.0f}" for b, p in zip(behaviours, seen_pos)),
        )
    exclusive = resolve_exclusive(project, config, train_names + val_names)
    config = _with_exclusive(config, exclusive)

    _seed_for_model(config)
    f = config.feature
    flow_kwargs = {k: v for k, v in flow_meta["model_kwargs"].items() if k != "num_frames"}
    model_kwargs = {
        "num_classes": len(behaviours),
        "flow_generator": flow_meta["arch"],
        "flow_generator_kwargs": flow_kwargs,
        "backbone": f.arch,
        "num_frames": T,
        "fusion": f.fusion,
        "flow_fusion_weight": f.flow_fusion_weight,
        "dropout": f.dropout,
        "width": f.width,
        **_normalisation_kwargs(config),
        **f.params,
    }
    model = create_model("two_stream", "hidden_two_stream", **model_kwargs)
    if f.weights:
        _load_initial_weights(model, f.weights)
    model.flow_generator.load_state_dict(flow_model.state_dict())  # the trained stage-1 weights, frozen
    for head in model.heads():
        if exclusive:
            init_softmax_bias_from_counts(head, seen_pos)
        else:
            init_bias_from_counts(head, seen_pos, seen_neg)
    mean, std = model_normalisation(model)
    augment = ClipAugment(config.augment, size)
    task = FeatureTask(
        _class_loss(f, seen_pos, seen_neg, exclusive),
        augment if augment.enabled else None,
        mean,
        std,
        behaviours,
        exclusive,
    )

    run = _prepare_run(project, config, "feature", f.arch, run_dir)
    warn_not_honoured(project, config, run)
    info = CheckpointInfo(
        stage="feature",
        arch="hidden_two_stream",
        model_kwargs=model_kwargs,
        behaviours=behaviours,
        config=config,
        extra={
            "flow_run": str(flow_dir),
            "train_videos": train_names,
            "val_videos": val_names,
            "label_counts": {"pos": pos.tolist(), "neg": neg.tolist()},
            "feature_size": model.num_features,
            "spatial_size": model.spatial_dim,
            "size": list(size),
            "exclusive": exclusive,
        },
    )
    fit(model, task, train_data, val_data, run, config.feature, config.train, info, sample_weights=sample_weights)
    return run


# ---------------------------------------------------------------------------------------------------------------
# Stage 3: sequence model
# ---------------------------------------------------------------------------------------------------------------


class SequenceTask(Task):
    """Feature windows -> per-frame logits -> masked focal BCE (padding and context frames are -1)."""

    monitor = "val_f1"
    mode = "max"

    def __init__(self, loss: nn.Module, behaviours: list[str], exclusive: bool = False) -> None:
        self.loss = loss
        self.behaviours = behaviours
        self.exclusive = exclusive

    def collate(self, items):
        """Pad windows of different lengths (:func:`deg_train.training.sequence_data.collate_sequences`)."""
        return collate_sequences(items)

    def setup(self, model, device):
        """Move the loss's buffers (positive weights, normalisation) to the training device."""
        self.loss.to(device)

    def _forward(self, model, batch, device):
        logits = model(batch["features"].to(device)).float()  # (B, L, K)
        labels = batch["labels"].to(device)  # (B, L, K), -1 = no loss
        return logits, labels

    def train_step(self, model, batch, device):
        """One training batch -> loss (see :class:`~deg_train.training.trainer.Task`)."""
        logits, labels = self._forward(model, batch, device)
        k = logits.shape[-1]
        return self.loss(logits.reshape(-1, k), labels.reshape(-1, k)), {}

    def val_step(self, model, batch, device):
        """One validation batch -> summed loss and, for classifiers, probabilities and labels."""
        logits, labels = self._forward(model, batch, device)
        k = logits.shape[-1]
        probs, labs = [], []
        for i, n in enumerate(batch["lengths"].tolist()):  # drop the right padding
            probs.append(activate(logits[i, :n], self.exclusive).cpu().numpy())
            labs.append(labels[i, :n].cpu().numpy())
        loss = float(self.loss(logits.reshape(-1, k), labels.reshape(-1, k)))
        n = int((labels >= 0).any(-1).sum())
        return {"n": n, "loss": loss * n, "probs": np.concatenate(probs), "labels": np.concatenate(labs)}

    def val_epoch(self, outputs):
        """All validation batches -> ``val_loss`` (and ``val_f1`` per behaviour and macro)."""
        n = sum(o["n"] for o in outputs)
        probs = np.concatenate([o["probs"] for o in outputs])
        labels = np.concatenate([o["labels"] for o in outputs])
        return {"val_loss": sum(o["loss"] for o in outputs) / max(n, 1), **f1_summary(probs, labels, self.behaviours)}


def _fine_tune_sequence_from(model: nn.Module, weights: str, behaviours: list[str], feature_dir: Path) -> None:
    """Start a sequence run from one of our finished sequence runs (``sequence.weights``), checked for fit."""
    try:
        start = load_checkpoint(weights)
    except CheckpointError as err:
        raise StageError(f"sequence.weights: {err}") from None
    if start["stage"] != "sequence":
        raise StageError(f"sequence.weights: {weights} is a {start['stage']} checkpoint, not a sequence run's")
    if list(start.get("behaviours") or []) != list(behaviours):
        raise StageError(
            f"sequence.weights: {weights} was trained for behaviours {start.get('behaviours')}, this run's are "
            f"{behaviours}; train without sequence.weights"
        )
    path = checkpoint_path(weights)  # the file load_checkpoint read
    try:
        report = load_weights(model, path, source="ours", allow_head_mismatch=False)
    except WeightsError as err:
        raise StageError(f"sequence.weights: {err}") from None
    trained_on = (start.get("extra") or {}).get("feature_run")
    if trained_on and Path(trained_on).name != Path(feature_dir).name:
        log.warning(
            "sequence.weights: %s was trained on the features of %s, this run uses %s's",
            weights,
            Path(trained_on).name,
            Path(feature_dir).name,
        )
    log.info("fine-tuning from %s (%d tensors)", path, len(report.loaded))


def train_sequence(
    project: Any,
    config: TrainConfig,
    feature_run: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
) -> Path:
    """Train (or resume) a stage-3 sequence model on saved features; returns its run directory.

    Features of the training and validation videos are extracted first where ``<video>_outputs.h5`` lacks them
    (:func:`deg_train.inference.extract.extract_features`).

    Args:
        project: an open project.
        config: the resolved config (``sequence``, ``train`` are used).
        feature_run: the stage-2 run whose features to use; None = ``config.sequence.feature_run``, or the newest
            finished feature run.
        run_dir: an existing sequence run to resume; None starts a new run.
    """
    _check_resume(run_dir, "sequence")
    s = config.sequence
    feature_dir = resolve_run(project, "feature", feature_run if feature_run is not None else s.feature_run)
    feature_meta = {k: v for k, v in load_checkpoint(feature_dir).items() if k not in ("state_dict", "optimizer")}
    feature_meta["config"] = {**(feature_meta.get("config") or {}), "sequence": {"latent_name": s.latent_name}}
    latent_name = latent_name_for(feature_meta)
    config = dataclasses.replace(config, sequence=dataclasses.replace(s, feature_run=str(feature_dir)))

    split = project_split(project)
    train_names, val_names = _labelled(project, split.train), _labelled(project, split.val)
    if not train_names:
        raise StageError(f"no labelled training videos in the split (train: {split.train}); label some videos")
    device = str(resolve_device(config.train.device))
    # Rank 0 extracts (writing the outputs files); the other ranks then find them done and only collect paths.
    ctx = _distributed(config)
    if ctx.is_main:
        paths = extract_features(project, feature_dir, videos=train_names + val_names, device=device)
    if ctx.distributed:
        import torch.distributed as dist

        dist.barrier()
    if not ctx.is_main:
        paths = extract_features(project, feature_dir, videos=train_names + val_names, device=device, progress=False)
    by_name = dict(zip(train_names + val_names, paths))
    behaviours = list(feature_meta["behaviours"])

    def labels_of(names: list[str]) -> list[np.ndarray]:
        out = []
        for name in names:
            table = project.load_labels(name)
            if list(table.behaviours) != behaviours:
                raise StageError(
                    f"{name}: behaviours {list(table.behaviours)} differ from the feature run's "
                    f"{behaviours}; retrain the feature extractor"
                )
            out.append(np.asarray(table.values, np.int8))
        return out

    train_labels = labels_of(train_names)
    pos = sum((y == 1).sum(0) for y in train_labels)
    neg = sum((y == 0).sum(0) for y in train_labels)
    # The feature run's mode unless the config says otherwise: stage 3 refines stage 2's classes.
    if config.data.exclusive is None and "exclusive" in (feature_meta.get("extra") or {}):
        exclusive = bool(feature_meta["extra"]["exclusive"])
        log.info("behaviours: %s (as the feature run)", "mutually exclusive" if exclusive else "multi-label")
    else:
        exclusive = resolve_exclusive(project, config, train_names + val_names)
    config = _with_exclusive(config, exclusive)

    _seed_for_model(config)

    feature_size = int(read_features(by_name[train_names[0]], latent_name)[0].shape[1])
    model_kwargs = {"input_dim": feature_size, "num_classes": len(behaviours), "causal": s.causal, **s.model_params()}
    model = create_model("sequence", s.arch, **model_kwargs)
    if s.weights:
        _fine_tune_sequence_from(model, s.weights, behaviours, feature_dir)
    rf = getattr(model, "receptive_field", None)
    # Real past before the loss frames: the receptive field (a recurrent model gets one chunk of warm-up).
    reach = (int(rf) - 1) if rf else s.chunk_length
    left, right = (reach, 0) if s.causal else (reach // 2 + 1, reach // 2 + 1)
    windows = None if s.steps_per_epoch is None else s.steps_per_epoch * s.batch_size
    train_data = SequenceDataset.from_outputs(
        [by_name[n] for n in train_names],
        train_labels,
        latent_name,
        chunk_length=s.chunk_length,
        left_context=left,
        right_context=right,
        windows_per_epoch=windows,
        seed=config.train.seed,
    )
    val_data = None
    if val_names:
        val_data = SequenceDataset.from_outputs(
            [by_name[n] for n in val_names], labels_of(val_names), latent_name, whole=True
        )
    task = SequenceTask(_class_loss(s, pos, neg, exclusive), behaviours, exclusive)

    run = _prepare_run(project, config, "sequence", s.arch if s.causal else f"{s.arch}-centred", run_dir)
    warn_not_honoured(project, config, run, stage="sequence")
    info = CheckpointInfo(
        stage="sequence",
        arch=s.arch,
        model_kwargs=model_kwargs,
        behaviours=behaviours,
        config=config,
        extra={
            "feature_run": str(feature_dir),
            "latent_name": latent_name,
            "train_videos": train_names,
            "val_videos": val_names,
            "receptive_field": rf,
            "left_context": left,
            "right_context": right,
            "label_counts": {"pos": np.asarray(pos).tolist(), "neg": np.asarray(neg).tolist()},
            "exclusive": exclusive,
        },
    )
    # Validation runs on whole videos, one at a time.
    fit(model, task, train_data, val_data, run, config.sequence, config.train, info, val_batch_size=1)
    return run
