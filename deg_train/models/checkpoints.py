"""Checkpoints and run directories: everything needed to resume a run, or to rebuild its model from the file alone.

A checkpoint is a ``torch.save`` dict (written atomically) with:

- ``schema_version``, ``stage`` (``"flow"``, ``"feature"`` or ``"sequence"``), ``arch`` and ``model_kwargs``: the
  model is rebuilt with ``deg_train.models.registry.create_model(kind, arch, **model_kwargs)`` (the kind is
  given by :data:`STAGE_KIND`), so export and inference need only the run directory;
- ``state_dict``: the model's weights (for a DDP-wrapped model, the inner module's);
- ``behaviours`` (names, ``background`` first; empty for the flow stage), ``config`` (the resolved
  :class:`~deg_train.training.config.TrainConfig` as a dict), ``epoch`` (the last finished epoch, 0-based);
- ``optimizer``, ``scheduler`` state (to resume), ``metrics`` (the epoch's numbers) and ``extra`` (stage-specific:
  the flow run a feature run used, the feature run a sequence run used, label counts...).

A run directory is ``<project>/models/<YYYYmmdd_HHMMSS>_<stage>_<arch>/`` holding ``config.yaml``,
``checkpoint_last.pt`` (every epoch), ``checkpoint_best.pt`` (best validation so far), ``metrics.csv`` (one row per
epoch), ``train.log`` and, when training ended normally, ``done.json``.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_bytes, atomic_write_text

CHECKPOINT_SCHEMA_VERSION = 1
STAGES = ("flow", "feature", "sequence")
#: Registry kind used to rebuild each stage's model.
STAGE_KIND = {"flow": "flow", "feature": "two_stream", "sequence": "sequence"}
LAST = "checkpoint_last.pt"
BEST = "checkpoint_best.pt"
DONE = "done.json"
_RUN_NAME = re.compile(r"^(\d{8}_\d{6})_(flow|feature|sequence)_(.+)$")


class CheckpointError(UserFacingError, ValueError):
    """A checkpoint or run directory is missing, unreadable, from a newer version, or for another stage."""


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: Any,
    stage: str,
    arch: str,
    model_kwargs: dict[str, Any],
    behaviours: list[str] | tuple[str, ...],
    config: Any,
    epoch: int,
    optimizer: Any = None,
    scheduler: Any = None,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename) and return its path.

    Args:
        path: where to write, usually ``run_dir / "checkpoint_last.pt"``.
        model: the ``nn.Module`` (a DDP wrapper is unwrapped).
        stage: ``"flow"``, ``"feature"`` or ``"sequence"``.
        arch: registry name of the architecture.
        model_kwargs: constructor keyword arguments that rebuild the model (plain values only).
        behaviours: behaviour names, ``background`` first (empty for the flow stage).
        config: the resolved TrainConfig (or its dict).
        epoch: the last finished epoch (0-based).
        optimizer: its state is saved so a crashed run resumes exactly.
        scheduler: likewise.
        metrics: the epoch's numbers.
        extra: stage-specific metadata.
    """
    import torch

    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    module = getattr(model, "module", model)
    payload = {
        "schema_version": CHECKPOINT_SCHEMA_VERSION,
        "stage": stage,
        "arch": arch,
        "model_kwargs": dict(model_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "behaviours": list(behaviours),
        "config": config.to_dict() if hasattr(config, "to_dict") else config,
        "epoch": int(epoch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
        "saved": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; a run directory means its best (else last) checkpoint.

    The file is loaded without running code from it (:func:`deg_train.models.safe_load.load_untrusted`).

    Raises:
        CheckpointError: missing or unreadable file, one holding objects that are not data, not one of ours, or
            a newer schema.
    """
    from deg_train.models.safe_load import load_untrusted

    path = checkpoint_path(path)
    data = load_untrusted(path, map_location=map_location, error=CheckpointError)  # runs no code from the file
    if not isinstance(data, dict) or "schema_version" not in data or "stage" not in data:
        raise CheckpointError(
            f"{path}: not a deg-train checkpoint (no schema_version/stage); for other weight files use the "
            "stage's `weights` setting instead"
        )
    version = data["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool) or data["stage"] not in STAGES:
        raise CheckpointError(
            f"{path}: not a deg-train checkpoint (schema_version {version!r}, stage {data['stage']!r})"
        )
    if version > CHECKPOINT_SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema {data['schema_version']} is newer than this deg-train understands "
            f"({CHECKPOINT_SCHEMA_VERSION}); upgrade deg-train"
        )
    return data


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file for ``path``: itself if a file, else a run directory's best (or last) checkpoint."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise CheckpointError(f"{path}: run directory holds no {BEST} or {LAST}; did training start?")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    return path


def build_model_from_checkpoint(
    path: str | os.PathLike, *, expect_stage: str | None = None, map_location: str = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Rebuild a stage's model from a checkpoint (or run directory) and load its weights.

    Returns:
        ``(model, meta)``: the model in eval mode on CPU, and the checkpoint dict without ``state_dict``,
        ``optimizer`` and ``scheduler`` (stage, arch, model_kwargs, behaviours, config, epoch, metrics, extra,
        plus ``path``: the checkpoint file and ``run_dir``).

    Raises:
        CheckpointError: unreadable file, wrong stage, or weights that do not fit the rebuilt model.
    """
    from deg_train.models.registry import create_model

    data = load_checkpoint(path, map_location=map_location)
    file = checkpoint_path(path)
    stage = data["stage"]
    if expect_stage is not None and stage != expect_stage:
        raise CheckpointError(f"{file}: this is a {stage} checkpoint, a {expect_stage} one is needed here")
    model = create_model(STAGE_KIND[stage], data["arch"], **data["model_kwargs"])
    try:
        model.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0:3]
        raise CheckpointError(f"{file}: weights do not fit {data['arch']}: {' '.join(first)}") from None
    model.eval()
    meta = {k: v for k, v in data.items() if k not in ("state_dict", "optimizer", "scheduler")}
    meta["path"] = file
    meta["run_dir"] = file.parent
    return model, meta


# ---------------------------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------------------------


def new_run_dir(models_dir: str | os.PathLike, stage: str, arch: str) -> Path:
    """Create ``<models_dir>/<YYYYmmdd_HHMMSS>_<stage>_<arch>/`` (a suffix ``_2``... if that second is taken)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    safe_arch = re.sub(r"[^A-Za-z0-9_.-]", "-", arch)
    base = models_dir / f"{stamp}_{stage}_{safe_arch}"
    run = base
    n = 2
    while True:
        try:
            run.mkdir()
            return run
        except FileExistsError:
            run = base.with_name(f"{base.name}_{n}")
            n += 1


def mark_done(run_dir: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Mark a run as finished (training ended normally) with a small JSON summary."""
    return atomic_write_text(Path(run_dir) / DONE, json.dumps(summary, indent=2, default=str) + "\n")


def is_done(run_dir: str | os.PathLike) -> bool:
    """Whether a run finished training (``done.json`` exists)."""
    return (Path(run_dir) / DONE).is_file()


def run_stage(run_dir: str | os.PathLike) -> str | None:
    """The stage a run directory belongs to, from its name (None if it is not named like a run)."""
    match = _RUN_NAME.match(Path(run_dir).name)
    return match.group(2) if match else None


def list_runs(models_dir: str | os.PathLike, stage: str | None = None, *, finished: bool = False) -> list[Path]:
    """Run directories under ``models_dir`` (oldest first), optionally one stage's and only finished ones."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    runs = []
    for child in sorted(models_dir.iterdir()):
        match = _RUN_NAME.match(child.name)
        if not child.is_dir() or not match:
            continue
        if stage is not None and match.group(2) != stage:
            continue
        if finished and not is_done(child):
            continue
        if not (child / BEST).is_file() and not (child / LAST).is_file():
            continue
        runs.append(child)
    return runs


def latest_run(project: Any, stage: str, *, finished: bool = True) -> Path | None:
    """The newest (finished, by default) run of ``stage`` in a project (a Project or a project path)."""
    if stage not in STAGES:
        raise ValueError(f"stage {stage!r}: expected one of {', '.join(STAGES)}")
    models_dir = getattr(project, "models_dir", None)
    if models_dir is None:
        models_dir = Path(project) / "models"
    runs = list_runs(models_dir, stage, finished=finished)
    return runs[-1] if runs else None


def resolve_run(project: Any, stage: str, run: str | os.PathLike | None) -> Path:
    """A run directory from a user's ``--*-run`` value: None means the latest finished one of ``stage``.

    A relative name is looked up in the project's models directory first.

    Raises:
        CheckpointError: no such run, or no finished run of that stage yet.
    """
    models_dir = getattr(project, "models_dir", None) or Path(project) / "models"
    if run is None:
        found = latest_run(project, stage)
        if found is None:
            raise CheckpointError(
                f"{models_dir}: no finished {stage} run yet; train one first (deg-train train-{_cmd(stage)})"
            )
        return found
    path = Path(run)
    if not path.exists() and (Path(models_dir) / path).exists():
        path = Path(models_dir) / path
    if not path.is_dir():
        raise CheckpointError(f"{run}: run directory not found (looked in {models_dir} too)")
    checkpoint_path(path)
    return path


def _cmd(stage: str) -> str:
    return {"flow": "flow", "feature": "features", "sequence": "sequence"}[stage]
