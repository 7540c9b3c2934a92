"""``deg-train train-all``: the whole recipe in one resumable command.

Stages, in order (each is skipped when it already finished, and a crashed one resumes from its last checkpoint):

1. ``flow``: the self-supervised flow generator (:func:`deg_train.training.stages.train_flow`);
2. ``feature``: the hidden two-stream feature extractor on the frozen flow generator;
3. ``extract``: features of every project video into ``<video>_outputs.h5`` (:func:`deg_train.inference.extract.
   extract_features`);
4. ``sequence``: the causal sequence model on the saved features;
5. ``sequence_centred``: the same model with ``sequence.causal=false`` (DeepEthogram-like, looks ahead), only to
   report what causality costs (skip with ``compare=False``);
6. ``thresholds``: per-behaviour thresholds maximising F1 on validation, saved in each sequence run;
7. ``evaluate``: the held-out report (:func:`deg_train.evaluation.evaluate.evaluate_run`).

The state lives in ``<project>/models/train_all.json``: the preset and overrides it was started with, each
stage's run directory, whether it finished, and how long it took. Starting again with other settings is an error
unless ``fresh=True`` (a new pipeline; earlier runs stay on disk).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text
from deg_train.evaluation.evaluate import evaluate_run, pick_run_thresholds
from deg_train.inference.extract import extract_features
from deg_train.models.checkpoints import is_done, new_run_dir
from deg_train.project.layout import Project
from deg_train.training.config import load_config
from deg_train.training.project_settings import load_project_config, project_overrides
from deg_train.training.stages import project_split, train_features, train_flow, train_sequence

log = logging.getLogger(__name__)

STATE_FILE = "train_all.json"
STATE_SCHEMA_VERSION = 1
STAGES = ("flow", "feature", "extract", "sequence", "sequence_centred", "thresholds", "evaluate")


class TrainAllError(UserFacingError, ValueError):
    """``train-all`` cannot resume with these settings, or its state file is unreadable."""


def _read_state(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise TrainAllError(f"{path}: unreadable ({err}); start again with --fresh") from None
    if int(state.get("schema_version", 0)) > STATE_SCHEMA_VERSION:
        raise TrainAllError(f"{path}: written by a newer deg-train; upgrade, or start again with --fresh")
    return state


def _write_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(state, indent=2, default=str) + "\n")


def _banner(i: int, name: str, what: str) -> None:
    print(f"\n[{i}/{len(STAGES)}] {name}: {what}", flush=True)


def train_all(
    project: str | os.PathLike | Any,
    *,
    preset: str = "deg_f",
    overrides: list[str] | None = None,
    fresh: bool = False,
    compare: bool = True,
    batch_size: int = 32,
    device: str = "cpu",
    precision: str = "fp32",
):
    """Run (or resume) every stage; returns the :class:`deg_train.evaluation.evaluate.EvaluationReport`.

    Args:
        project: a project folder or an open project.
        preset: training preset name or YAML file.
        overrides: ``key=value`` config overrides.
        fresh: start a new pipeline rather than resume the recorded one.
        compare: also train the centred sequence model and report the causal-vs-centred comparison.
        batch_size: encoder batch for feature extraction.
        device: torch device for extraction and evaluation (training uses the config's ``train.device``).
        precision: encoder arithmetic for extraction, ``fp32`` or ``bf16``.

    Raises:
        TrainAllError: the recorded pipeline used other settings (use ``fresh``).
    """
    if not hasattr(project, "videos"):
        project = Project.open(project)
    overrides = list(overrides or [])
    config = load_project_config(project, preset, overrides)  # a DeepEthogram project's settings honoured
    centred_config = load_config(preset, [*project_overrides(project).overrides, *overrides, "sequence.causal=false"])
    state_path = Path(project.models_dir) / STATE_FILE
    state = None if fresh else _read_state(state_path)
    if state is not None and (state.get("preset") != str(preset) or state.get("overrides") != overrides):
        raise TrainAllError(
            f"{state_path}: the recorded pipeline used --preset {state.get('preset')} with overrides "
            f"{state.get('overrides')}; run it with those to resume, or add --fresh to start a new one"
        )
    if state is None:
        state = {
            "schema_version": STATE_SCHEMA_VERSION,
            "preset": str(preset),
            "overrides": overrides,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "stages": {},
        }
    stages: dict[str, dict[str, Any]] = state["stages"]
    split = project_split(project)
    print(
        f"train-all on {project.root}: {len(project.videos)} videos; split train {split.train}, val {split.val}, "
        f"test {split.test}",
        flush=True,
    )

    def train_stage(i: int, name: str, stage: str, arch: str, fn, *args) -> Path:
        entry = stages.setdefault(name, {})
        run = Path(entry["run"]) if entry.get("run") else None
        if run is not None and is_done(run):
            _banner(i, name, f"done ({run.name}), skipped")
            return run
        if run is None:
            run = new_run_dir(project.models_dir, stage, arch)
            entry["run"] = str(run)
            _write_state(state_path, state)
            _banner(i, name, f"training {run.name}")
        else:
            _banner(i, name, f"resuming {run.name}")
        t0 = time.perf_counter()
        result = Path(fn(project, *args, run_dir=run))
        entry.update(run=str(result), done=True, seconds=entry.get("seconds", 0.0) + time.perf_counter() - t0)
        _write_state(state_path, state)
        return result

    flow_run = train_stage(1, "flow", "flow", config.flow.arch, train_flow, config)
    feature_run = train_stage(2, "feature", "feature", config.feature.arch, train_features, config, flow_run)

    entry = stages.setdefault("extract", {})
    _banner(3, "extract", "features of every video (videos already done are skipped)")
    t0 = time.perf_counter()
    extract_features(project, feature_run, None, batch_size=batch_size, device=device, precision=precision)
    entry.update(done=True, feature_run=str(feature_run), seconds=entry.get("seconds", 0.0) + time.perf_counter() - t0)
    _write_state(state_path, state)

    s = config.sequence
    sequence_run = train_stage(4, "sequence", "sequence", s.arch, train_sequence, config, feature_run)
    centred_run = None
    if compare:
        centred_run = train_stage(
            5, "sequence_centred", "sequence", f"{s.arch}-centred", train_sequence, centred_config, feature_run
        )
    else:
        _banner(5, "sequence_centred", "skipped (no comparison asked for)")

    entry = stages.setdefault("thresholds", {})
    _banner(6, "thresholds", "per behaviour, maximising F1 on the validation videos")
    t0 = time.perf_counter()
    for run in (sequence_run, centred_run):
        if run is not None:
            thresholds = pick_run_thresholds(project, run, device=device)
            print(f"  {run.name}: {', '.join(f'{t:.2f}' for t in thresholds)}", flush=True)
    entry.update(done=True, seconds=time.perf_counter() - t0)
    _write_state(state_path, state)

    _banner(7, "evaluate", "held-out videos")
    t0 = time.perf_counter()
    report = evaluate_run(project, sequence_run, compare_run=centred_run, device=device)
    stages.setdefault("evaluate", {}).update(done=True, seconds=time.perf_counter() - t0, report=str(report.out_dir))
    state["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write_state(state_path, state)
    total = sum(float(v.get("seconds", 0.0)) for v in stages.values())
    timing = ", ".join(f"{k} {float(v.get('seconds', 0.0)) / 60:.1f} min" for k, v in stages.items())
    report.text += f"\n\nStage times: {timing}; total {total / 60:.1f} min"
    return report


def recorded_comparison(project: Any, sequence_run: Any) -> Path | None:
    """The centred run ``train-all`` trained beside ``sequence_run`` (from ``models/train_all.json``), if any."""
    path = Path(project.models_dir) / STATE_FILE
    if not path.is_file():
        return None
    try:
        stages = json.loads(path.read_text(encoding="utf-8")).get("stages", {})
    except (OSError, json.JSONDecodeError):
        return None
    run = Path(getattr(sequence_run, "run_dir", None) or sequence_run)
    causal, centred = stages.get("sequence", {}), stages.get("sequence_centred", {})
    if causal.get("run") and Path(causal["run"]).resolve() == run.resolve() and centred.get("done"):
        return Path(centred["run"])
    return None
