"""Thresholds on validation, scores on held-out videos, reports and plots.

:func:`evaluate_run` is what ``deg-train evaluate`` runs:

1. thresholds per behaviour are picked on the validation videos to maximise F1 (:func:`deg_train.evaluation.metrics.
   pick_thresholds`) and saved as ``thresholds.json`` in the sequence run (what export and live use), unless
   already there;
2. the held-out videos' probabilities come from the sequence model run on their saved features;
3. decisions come from the causal postprocessor (exactly what live decides) and, for comparison, from
   DeepEthogram's offline minimum-bout cleanup; the stage-2 feature extractor alone is scored too;
4. :func:`deg_train.evaluation.metrics.compute_metrics` gives per-behaviour and macro F1, precision, recall, AUROC, AP,
   onset delay and bout count error; with ``compare_run`` (the centred, non-causal model) a table says how much
   F1 causality costs and how many frames of onset delay it adds;
5. files in ``<run>/evaluation/``: ``report.md`` (all tables), ``report.json``, ``metrics_<variant>.csv``,
   ``comparison.csv``, ``training_curves.png``, ``f1_per_behaviour.png``, ``ethogram_<video>.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text
from camera_adapters.progress import progress_bar
from camera_adapters.video import VideoReader, probe
from deg_live.outputs import list_groups, our_group_name, read_outputs
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings, offline_cleanup
from deg_train.evaluation.metrics import TABLE_COLUMNS, MetricsReport, compute_metrics, threshold_search
from deg_train.evaluation.onsets import EventsConfig, choose_postprocess
from deg_train.inference.extract import extract_features
from deg_train.inference.predict import (
    LoadedSequence,
    load_sequence,
    read_thresholds,
    run_sequence,
    write_thresholds_file,
)
from deg_train.inference.videos import resolve_sequence_run
from deg_train.models.checkpoints import load_checkpoint

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1


class EvaluationError(UserFacingError, ValueError):
    """Evaluation cannot run: no split, no labelled held-out videos, features missing..."""


# ---------------------------------------------------------------------------------------------------------------
# Probabilities of a sequence run on project videos
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class VideoScores:
    """One video's labels and a model's outputs. Arrays are ``(N, K)``."""

    name: str
    labels: np.ndarray
    probabilities: np.ndarray
    feature_probabilities: np.ndarray | None = None


def _present_feature_group(path: Path, seq: LoadedSequence) -> str | None:
    """The group holding the sequence run's features: the name it recorded, else that name as ours now spells it.

    Sequence runs made before our groups were named ``deg_train_<arch>`` recorded ``resnet18``; features extracted
    now by their feature run go to ``deg_train_resnet18``.
    """
    if not seq.latent_name:
        return None
    groups = list_groups(path)
    for name in (seq.latent_name, our_group_name(seq.latent_name)):
        if name in groups:
            return name
    return None


def _feature_group(path: Path, seq: LoadedSequence) -> str:
    name = _present_feature_group(path, seq)
    if name is not None:
        return name
    raise EvaluationError(
        f"{path}: no features {seq.latent_name!r} of the sequence run's feature run; run "
        f"`deg-train extract --feature-run {(seq.meta.get('extra') or {}).get('feature_run', 'RUN')}`"
    )


def _ensure_features(project: Any, seq: LoadedSequence, names: Sequence[str], device: str) -> None:
    """Extract missing features of ``names`` with the sequence run's feature run (train-all extracts all first)."""
    missing = []
    for name in names:
        path = project.video(name).outputs_path
        if _present_feature_group(path, seq) is None:
            missing.append(name)
    if missing:
        feature_run = (seq.meta.get("extra") or {}).get("feature_run")
        if not feature_run:
            raise EvaluationError(f"videos {missing} have no features and the sequence run names no feature run")

        log.info("extracting features of %s first", missing)
        extract_features(project, feature_run, missing, device=device)


def run_scores(project: Any, seq: LoadedSequence, names: Sequence[str], *, device: str = "cpu") -> list[VideoScores]:
    """Labels and the sequence run's probabilities on project videos (features extracted where missing)."""
    _ensure_features(project, seq, names, device)
    out = []
    for name in progress_bar(
        names, desc=f"scoring {seq.run_dir.name if seq.run_dir else 'model'}", unit="video", leave=False, logger=log
    ):
        record = project.video(name)
        table = project.load_labels(name)
        if list(table.behaviours) != list(seq.behaviours):
            table = table.reorder(seq.behaviours)
        group = read_outputs(record.outputs_path, _feature_group(record.outputs_path, seq))
        if group.n_frames != table.n_frames:
            raise EvaluationError(
                f"{record.outputs_path}: {group.n_frames} feature rows but {table.n_frames} label rows; re-extract"
            )
        probs = seq.probabilities(run_sequence(seq.model, group.features, device=device))
        out.append(VideoScores(name, np.asarray(table.values, np.int8), probs, group.probabilities))
    return out


# ---------------------------------------------------------------------------------------------------------------
# Thresholds
# ---------------------------------------------------------------------------------------------------------------


def pick_run_thresholds(
    project: Any,
    sequence_run: str | os.PathLike | LoadedSequence,
    *,
    videos: Sequence[str] | None = None,
    force: bool = False,
    device: str = "cpu",
) -> np.ndarray:
    """Pick per-behaviour thresholds maximising F1 on validation videos and save ``thresholds.json`` in the run.

    Args:
        project: an open project.
        sequence_run: run directory or a loaded run.
        videos: the videos to pick on (default: the split's labelled validation videos; the training videos if
            there are none, with a warning).
        force: pick again even if the run already has ``thresholds.json``.
        device: torch device.

    Returns:
        ``(K,)`` thresholds.
    """
    seq = load_sequence(sequence_run, device=device)
    if seq.run_dir is not None and not force:
        saved = read_thresholds(seq.run_dir)
        if saved is not None:
            return np.asarray(saved["thresholds"], np.float32)
    if videos is None:
        split = _split(project)
        videos = _labelled(project, split.val)
        if not videos:
            log.warning("no labelled validation videos: thresholds are picked on the training videos")
            videos = _labelled(project, split.train)
    if not videos:
        raise EvaluationError("no labelled videos to pick thresholds on")
    scores = run_scores(project, seq, videos, device=device)
    search = threshold_search([s.probabilities for s in scores], [s.labels for s in scores])
    no_pos = [seq.behaviours[i] for i in np.flatnonzero(search.no_positives)]
    if no_pos:
        log.warning("no positive validation frames for %s: threshold left at 0.5", ", ".join(no_pos))
    thresholds = search.thresholds.astype(np.float32)
    info: dict[str, Any] = {"rule": "p > threshold, max F1 on grid"}
    events = events_config(seq.meta)
    if events.choose_on_validation:
        # What a closed loop acts on: choose thresholds, hysteresis and minimum durations for onsets.
        choice = choose_postprocess(
            [s.probabilities for s in scores],
            [s.labels for s in scores],
            seq.behaviours,
            seq.postprocess,
            fps=_fps(project, videos),
            tolerance=events.tolerance_frames,
            max_delay=events.max_onset_delay_frames,
            frame_weight=events.frame_weight,
            initial_thresholds=thresholds,
        )
        thresholds = choice.thresholds.astype(np.float32)
        seq.postprocess = choice.settings
        info = {
            "rule": "causal postprocessor, event-level objective on validation (deg_train.evaluation.onsets)",
            "events": {**dataclasses.asdict(events), **choice.to_dict()},
        }
    if seq.run_dir is not None:
        write_thresholds_file(
            seq.run_dir,
            seq.behaviours,
            thresholds,
            seq.postprocess,
            picked_on=list(videos),
            val_f1=search.f1,
            no_positives=no_pos,
            **info,
        )
    seq.thresholds = thresholds
    return thresholds


def events_config(meta: dict[str, Any]) -> EventsConfig:
    """The run's ``events`` settings (its config's section; the defaults for runs made before it existed)."""
    section = (meta.get("config") or {}).get("events") or {}
    return EventsConfig(**section)


def _fps(project: Any, names: Sequence[str]) -> float:
    """The videos' frame rate (the first one that says; 30 if none does), for false onsets per minute."""
    for name in names:
        try:
            fps = probe(project.video(name).video_path, exact=False).fps
        except UserFacingError:
            continue
        if fps and np.isfinite(fps) and fps > 0:
            return float(fps)
    return 30.0


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class EvaluationReport:
    """What :func:`evaluate_run` produced.

    Attributes:
        text: the tables, as printed.
        out_dir: the report folder.
        reports: variant name (``causal``, ``offline_cleanup``, ``features_only``, ``centred``...) -> metrics.
        comparison: causal vs centred per behaviour (None without ``compare_run``).
        files: every file written.
    """

    text: str
    out_dir: Path
    reports: dict[str, MetricsReport]
    comparison: pd.DataFrame | None = None
    files: list[Path] = field(default_factory=list)


def _split(project: Any):
    split = project.load_split()
    if split is None:
        raise EvaluationError(f"{project.root}: no split yet (DATA/split.yaml); train first or `deg-train split`")
    return split


def _labelled(project: Any, names: Sequence[str]) -> list[str]:
    return [n for n in names if project.video(n).labels_path is not None]


def _held_out(project: Any, part: str) -> tuple[str, list[str]]:
    split = _split(project)
    names = _labelled(project, getattr(split, part))
    if not names and part == "test":
        log.warning("no labelled test videos: scoring the validation videos instead (optimistic)")
        part, names = "val", _labelled(project, split.val)
    if not names:
        raise EvaluationError(f"no labelled {part} videos in {project.split_path}; remake the split")
    return part, names


def plain_settings(settings: PostprocessSettings) -> PostprocessSettings:
    """The same background handling and exclusivity, without hysteresis or minimum durations."""
    return dataclasses.replace(settings, hysteresis=0.0, min_duration_frames=1, min_off_frames=1)


def score_run(
    scores: Sequence[VideoScores],
    seq: LoadedSequence,
    *,
    meta: dict[str, Any] | None = None,
    fps: float | None = None,
    onset_tolerance: int = 5,
) -> dict[str, MetricsReport]:
    """Metrics of one sequence run on scored videos: causal postprocessing, offline cleanup, plain thresholds.

    With ``fps`` the reports score onsets too (precision/recall within ``onset_tolerance`` frames, false onsets
    per minute, onset delays).
    """
    labels = [s.labels for s in scores]
    probs = [s.probabilities for s in scores]
    thr = seq.thresholds
    post = seq.postprocess
    k = len(seq.behaviours)
    causal = [CausalPostprocessor(thr, post).run(p)[0] for p in probs]
    min_bout = post.per_behaviour("min_bout_length", k)
    if post.exclusive:  # clean the exclusive decisions (thresholding each column could turn two on)
        offline = [offline_cleanup(d, None, min_bout, background_index=post.background_index) for d in causal]
    else:
        offline = [offline_cleanup(p, thr, min_bout, background_index=post.background_index) for p in probs]
    plain = [CausalPostprocessor(thr, plain_settings(post)).run(p)[0] for p in probs]
    base = {"run": str(seq.run_dir), "videos": [s.name for s in scores], **(meta or {})}
    common = {"thresholds": thr, "behaviours": seq.behaviours, "fps": fps, "onset_tolerance": onset_tolerance}
    return {
        "causal": compute_metrics(
            labels,
            probs,
            decisions=causal,
            meta={**base, "postprocess": "causal", "settings": post.to_dict()},
            **common,
        ),
        "offline_cleanup": compute_metrics(
            labels,
            probs,
            decisions=offline,
            meta={**base, "postprocess": "offline min-bout cleanup"},
            **common,
        ),
        "thresholds_only": compute_metrics(
            labels,
            probs,
            decisions=plain,
            meta={**base, "postprocess": "p > threshold" + (" (exclusive: most probable)" if post.exclusive else "")},
            **common,
        ),
    }


def compare_causal_centred(causal: MetricsReport, centred: MetricsReport) -> pd.DataFrame:
    """Per behaviour and macro: F1 and median onset delay of the causal and the centred model, and the cost."""
    a, b = causal.to_frame(), centred.to_frame()
    table = pd.DataFrame(index=a.index)
    table["f1_causal"] = a["f1"]
    table["f1_centred"] = b["f1"]
    table["f1_cost"] = b["f1"] - a["f1"]
    table["onset_delay_causal"] = a["onset_delay_median"]
    table["onset_delay_centred"] = b["onset_delay_median"]
    table["onset_delay_added"] = a["onset_delay_median"] - b["onset_delay_median"]
    return table


_COUNT_COLUMNS = (
    "bouts_labelled",
    "bouts_predicted",
    "bouts_detected",
    "bout_count_error",
    "positives",
    "predicted",
    "frames",
)


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join([frame.index.name or "", *cols]) + " |", "|" + "---|" * (len(cols) + 1)]
    for idx, row in frame.iterrows():
        cells = []
        for col, v in zip(cols, row):
            if isinstance(v, (float, np.floating)):
                if not np.isfinite(v):
                    cells.append("-")
                else:
                    cells.append(f"{v:.0f}" if col in _COUNT_COLUMNS else f"{v:.{digits}f}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def evaluate_run(
    project: Any,
    sequence_run: str | os.PathLike | None = None,
    *,
    compare_run: str | os.PathLike | None = None,
    part: str = "test",
    repick: bool = False,
    out_dir: str | os.PathLike | None = None,
    ethogram_video: str | None = None,
    device: str = "cpu",
    plots: bool = True,
) -> EvaluationReport:
    """Pick thresholds on validation (if needed), score held-out videos, write the report and plots.

    Args:
        project: an open project.
        sequence_run: the run to evaluate (default: the latest finished causal sequence run).
        compare_run: a second sequence run, typically the centred (``sequence.causal=false``) one.
        part: ``test`` (default), ``val`` or ``train``.
        repick: pick thresholds again even if the run has them.
        out_dir: report folder (default ``<run>/evaluation``).
        ethogram_video: the video drawn in the ethogram (default: the first scored).
        device: torch device.
        plots: write the PNG plots.
    """
    from deg_train.evaluation.plots import plot_ethogram, plot_f1_bars, plot_training_curves

    seq = load_sequence(resolve_sequence_run(project, sequence_run), device=device)
    pick_run_thresholds(project, seq, force=repick, device=device)
    part, names = _held_out(project, part)
    scores = run_scores(project, seq, names, device=device)
    events = events_config(seq.meta)
    timing = {"fps": _fps(project, names), "onset_tolerance": events.tolerance_frames}
    reports = score_run(scores, seq, meta={"part": part}, **timing)

    # The feature extractor alone (stage 2), thresholds picked on validation the same way.
    split = _split(project)
    val_names = _labelled(project, split.val) or _labelled(project, split.train)
    val_scores = run_scores(project, seq, val_names, device=device)
    if all(s.feature_probabilities is not None for s in scores + val_scores):
        f_thr = threshold_search([s.feature_probabilities for s in val_scores], [s.labels for s in val_scores])
        f_post = CausalPostprocessor(f_thr.thresholds, plain_settings(seq.postprocess))
        reports["features_only"] = compute_metrics(
            [s.labels for s in scores],
            [s.feature_probabilities for s in scores],
            decisions=[f_post.run(s.feature_probabilities)[0] for s in scores],
            thresholds=f_thr.thresholds,
            behaviours=seq.behaviours,
            meta={"part": part, "model": "stage-2 feature extractor alone"},
            **timing,
        )

    comparison = None
    centred = None
    if compare_run is not None:
        centred = load_sequence(resolve_sequence_run(project, compare_run), device=device)
        pick_run_thresholds(project, centred, force=repick, device=device)
        c_scores = run_scores(project, centred, names, device=device)
        c_reports = score_run(c_scores, centred, meta={"part": part}, **timing)
        reports["centred"] = c_reports["thresholds_only"]
        comparison = compare_causal_centred(reports["thresholds_only"], c_reports["thresholds_only"])

    out = Path(out_dir) if out_dir is not None else Path(seq.run_dir) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for variant, report in reports.items():
        path = out / f"metrics_{variant}.csv"
        atomic_write_text(path, report.to_frame().to_csv())
        files.append(path)
    if comparison is not None:
        files.append(atomic_write_text(out / "comparison.csv", comparison.to_csv()))

    # Text: the causal table in full, then a summary of every variant's macro figures.
    summary = pd.DataFrame(
        {
            v: {
                "macro_f1": r.macro.get("f1"),
                "f1_present": r.macro.get("f1_present"),
                "f1_all": r.macro.get("f1_all"),
                "precision": r.macro.get("precision"),
                "recall": r.macro.get("recall"),
                "auroc": r.macro.get("auroc"),
                "onset_f1": r.macro.get("onset_f1"),
                "false_onsets_per_min": r.macro.get("false_onsets_per_min"),
                "onset_delay_p50": r.macro.get("onset_delay_p50"),
                "onset_delay_p90": r.macro.get("onset_delay_p90"),
                "bouts_predicted": r.macro.get("bouts_predicted"),
                "bouts_labelled": r.macro.get("bouts_labelled"),
            }
            for v, r in reports.items()
        }
    ).T
    summary.index.name = "variant"
    header = (
        f"{seq.run_dir.name if seq.run_dir else 'model'} on {part} videos {names} "
        f"({sum(s.labels.shape[0] for s in scores)} frames)"
    )
    text = [
        header,
        "",
        "Causal postprocessing (what deg-live decides):",
        reports["causal"].format_table(),
        "",
        "Macro averages per variant (background excluded; f1_present: behaviours present in these videos, f1_all: "
        "absent ones count 0; onsets matched within "
        f"{events.tolerance_frames} frames; false onsets per minute summed over behaviours):",
        summary.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"),
    ]
    md = [
        f"# Evaluation: {header}",
        "",
        "## Causal postprocessing (live-equivalent)",
        "",
        _markdown(reports["causal"].to_frame()[[c for c in TABLE_COLUMNS if c in reports["causal"].values]]),
        "",
        "## Macro averages per variant",
        "",
        _markdown(summary),
        "",
    ]
    if comparison is not None:
        cost = comparison.loc["macro"]
        sentence = (
            f"Causality costs {cost['f1_cost']:.3f} macro F1 (centred {cost['f1_centred']:.3f} vs causal "
            f"{cost['f1_causal']:.3f}) and adds {cost['onset_delay_added']:.1f} frames of median onset "
            "delay (same features, thresholds picked on validation for each, plain thresholding)."
        )
        text += [
            "",
            "Causal vs centred (DeepEthogram-like) sequence model:",
            comparison.to_string(float_format=lambda v: f"{v:.3f}", na_rep="-"),
            sentence,
        ]
        md += ["## Causal vs centred sequence model", "", _markdown(comparison), "", sentence, ""]

    if plots:
        extra = seq.meta.get("extra") or {}
        runs = []
        feature_run = extra.get("feature_run")
        if feature_run:
            try:
                flow_run = (load_checkpoint(feature_run).get("extra") or {}).get("flow_run")
                if flow_run:
                    runs.append(Path(flow_run))
            except UserFacingError:
                pass
            runs.append(Path(feature_run))
        runs.append(Path(seq.run_dir))
        if centred is not None and centred.run_dir is not None:
            runs.append(centred.run_dir)
        files.append(plot_training_curves(runs, out / "training_curves.png"))
        bars = pd.DataFrame(
            {
                v: reports[v].to_frame()["f1"]
                for v in reports
                if v in ("causal", "offline_cleanup", "features_only", "centred")
            }
        )
        files.append(plot_f1_bars(bars, out / "f1_per_behaviour.png", title=f"F1 per behaviour ({part} videos)"))
        video = ethogram_video or names[0]
        chosen = next((s for s in scores if s.name == video), scores[0])
        decisions = CausalPostprocessor(seq.thresholds, seq.postprocess).run(chosen.probabilities)[0]
        fps = None
        try:
            with VideoReader(project.video(chosen.name).video_path) as reader:
                fps = reader.fps or None
        except UserFacingError:
            pass
        files.append(
            plot_ethogram(
                chosen.labels,
                decisions,
                seq.behaviours,
                out / f"ethogram_{chosen.name}.png",
                probabilities=chosen.probabilities,
                fps=fps,
                title=f"{chosen.name}: labels vs causal decisions (orange: probability)",
            )
        )
        md += ["## Plots", "", *[f"![{p.stem}]({p.name})" for p in files if p.suffix == ".png"], ""]

    data = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "run": str(seq.run_dir),
        "part": part,
        "videos": names,
        "thresholds": [float(t) for t in seq.thresholds],
        "reports": {v: r.to_dict() for v, r in reports.items()},
        "comparison": None if comparison is None else json.loads(comparison.to_json(orient="index")),
    }
    files.append(atomic_write_text(out / "report.json", json.dumps(data, indent=2, default=str) + "\n"))
    files.append(atomic_write_text(out / "report.md", "\n".join(md) + "\n"))
    return EvaluationReport("\n".join(text), out, reports, comparison, files)
