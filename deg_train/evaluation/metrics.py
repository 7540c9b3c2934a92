"""Evaluation metrics per behaviour and macro: frame-level F1, precision, recall, AUROC, AP, and bout-level figures.

Conventions (the same everywhere in deg_train):

- ``labels``: (T, K) int, 1 = behaviour present, 0 = absent, -1 = not labelled (that frame is left out for that
  behaviour; DeepEthogram marks unlabelled frames this way). ``probs``: (T, K) float in [0, 1].
  ``decisions``: (T, K) bool.
- a probability is a positive decision when it is strictly above its threshold, ``p > threshold``, which is
  what :class:`deg_live.postprocess.CausalPostprocessor` does with no hysteresis and no minimum durations.
- undefined values are NaN (precision with no positive decision, recall with no positive label, AUROC with one
  class only) and are left out of macro averages; macro averages skip ``background`` by default.
- a *bout* is a run of consecutive positive frames ``(start, stop)``, ``stop`` exclusive. A labelled bout is
  *detected* by the first predicted bout overlapping it; its *onset delay* is predicted start - labelled start,
  in frames (positive = late). The *bout count error* is predicted bouts - labelled bouts (relative: divided by
  the labelled bouts). Several videos can be passed as lists, so no bout spans two videos.

Example:
    >>> thresholds = pick_thresholds(val_probs, val_labels)
    >>> report = compute_metrics(test_labels, test_probs, thresholds=thresholds, behaviours=names)
    >>> print(report.format_table())
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deg_live.postprocess import bouts

__all__ = [
    "MetricsReport",
    "ThresholdSearch",
    "average_precision",
    "bout_stats",
    "bouts",
    "compute_metrics",
    "frame_metrics",
    "match_onsets",
    "onset_delays",
    "onset_metrics",
    "pick_thresholds",
    "roc_auc",
    "threshold_search",
]

log = logging.getLogger(__name__)

METRICS_SCHEMA_VERSION = 1
DEFAULT_GRID = np.round(np.arange(0.01, 1.0, 0.01), 2)

ArrayOrList = np.ndarray | Sequence[np.ndarray]


def _stack(values: ArrayOrList, name: str, dtype: Any = None) -> tuple[np.ndarray, list[int]]:
    """Concatenate one (T, K) array or a list of per-video (T_i, K) arrays; return the array and video lengths."""
    parts = [np.asarray(values)] if isinstance(values, np.ndarray) else [np.asarray(v) for v in values]
    if not parts:
        raise ValueError(f"{name}: no data")
    for p in parts:
        if p.ndim != 2:
            raise ValueError(f"{name}: expected (T, K) arrays, got shape {p.shape}")
    out = np.concatenate(parts, axis=0)
    return (out.astype(dtype) if dtype is not None else out), [len(p) for p in parts]


# ---------------------------------------------------------------------------------------------------------------
# Threshold picking
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ThresholdSearch:
    """The result of :func:`threshold_search`.

    Attributes:
        thresholds: (K,) the F1-maximising threshold per behaviour (0.5 where there are no positives).
        f1: (K,) the F1 reached at that threshold (NaN where there are no positives).
        no_positives: (K,) True where validation has no positive frame (threshold left at 0.5).
        grid: (G,) the thresholds tried.
        f1_curve: (G, K) F1 at every grid threshold.
    """

    thresholds: np.ndarray
    f1: np.ndarray
    no_positives: np.ndarray
    grid: np.ndarray
    f1_curve: np.ndarray


def threshold_search(probs: ArrayOrList, labels: ArrayOrList, grid: Sequence[float] | None = None) -> ThresholdSearch:
    """F1 of ``probs > t`` for every ``t`` in ``grid`` and every behaviour, and the best ``t`` per behaviour.

    Vectorised with sorting and binary search: O(T log T) per behaviour, whatever the grid size. Ties go to
    the lowest threshold.

    Args:
        probs: (T, K) float, or a list of per-video arrays.
        labels: (T, K) int with -1 for unlabelled, or a list matching ``probs``.
        grid: thresholds to try (default 0.01, 0.02, ..., 0.99).
    """
    p, _ = _stack(probs, "probs", np.float64)
    y, _ = _stack(labels, "labels")
    if p.shape != y.shape:
        raise ValueError(f"probs {p.shape} and labels {y.shape} differ in shape")
    g = np.asarray(DEFAULT_GRID if grid is None else grid, dtype=np.float64)
    k = p.shape[1]
    curve = np.zeros((g.size, k))
    best_t = np.full(k, 0.5)
    best_f1 = np.full(k, np.nan)
    no_pos = np.zeros(k, dtype=bool)
    for i in range(k):
        valid = y[:, i] >= 0
        pi, yi = p[valid, i], y[valid, i] == 1
        pos, neg = np.sort(pi[yi]), np.sort(pi[~yi])
        if pos.size == 0:
            no_pos[i] = True
            curve[:, i] = np.nan
            continue
        tp = pos.size - np.searchsorted(pos, g, side="right")  # positives with p > t
        fp = neg.size - np.searchsorted(neg, g, side="right")
        fn = pos.size - tp
        curve[:, i] = 2 * tp / (2 * tp + fp + fn)
        j = int(np.argmax(curve[:, i]))
        best_t[i], best_f1[i] = g[j], curve[j, i]
    return ThresholdSearch(best_t, best_f1, no_pos, g, curve)


def pick_thresholds(
    probs: ArrayOrList,
    labels: ArrayOrList,
    grid: Sequence[float] | None = None,
    behaviours: Sequence[str] | None = None,
) -> np.ndarray:
    """Per-behaviour thresholds maximising validation F1 of ``probs > threshold`` (see :func:`threshold_search`).

    Behaviours with no positive validation frame get 0.5, with a warning naming them.

    Returns:
        (K,) float thresholds.
    """
    search = threshold_search(probs, labels, grid)
    if search.no_positives.any():
        idx = np.flatnonzero(search.no_positives)
        names = [behaviours[i] if behaviours is not None else str(i) for i in idx]
        msg = f"no positive validation frames for {', '.join(names)}: threshold left at 0.5"
        log.warning(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return search.thresholds


# ---------------------------------------------------------------------------------------------------------------
# Frame-level metrics
# ---------------------------------------------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), as scikit-learn's ``roc_auc_score``; NaN with one class.

    Computed from the Mann-Whitney U statistic with average ranks, O(T log T).
    """
    y = np.asarray(positive).astype(bool)
    npos, nneg = int(y.sum()), int((~y).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    _, inverse, counts = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of the first of each group of equal scores
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((ranks[y].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def average_precision(positive: np.ndarray, scores: np.ndarray) -> float:
    """Average precision (the step-wise area under precision-recall), as scikit-learn's; NaN with no positive."""
    y = np.asarray(positive).astype(bool)
    if not y.any():
        return float("nan")
    p = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-p, kind="mergesort")
    p, y = p[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p)), p.size - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def frame_metrics(decisions: np.ndarray, labels: np.ndarray, probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Frame-level metrics per behaviour, frames labelled -1 left out.

    Args:
        decisions: (T, K) bool.
        labels: (T, K) int, -1 = unlabelled.
        probs: (T, K) float, needed for AUROC and AP (NaN without).

    Returns:
        ``{"f1", "precision", "recall", "auroc", "ap", "positives", "predicted", "frames"}``, each (K,).
    """
    d = np.asarray(decisions).astype(bool)
    y = np.asarray(labels)
    valid = y >= 0
    pos = (y == 1) & valid
    pred = d & valid
    tp = (pred & pos).sum(0)
    fp = (pred & ~pos).sum(0)
    fn = (~pred & pos).sum(0)
    k = y.shape[1]
    auroc = np.full(k, np.nan)
    ap = np.full(k, np.nan)
    if probs is not None:
        p = np.asarray(probs, dtype=np.float64)
        for i in range(k):
            v = valid[:, i]
            yi = pos[v, i]
            if 0 < yi.sum() < yi.size and np.all(np.isfinite(p[v, i])):
                auroc[i] = roc_auc(yi, p[v, i])
                ap[i] = average_precision(yi, p[v, i])
    return {
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "auroc": auroc,
        "ap": ap,
        "positives": pos.sum(0),
        "predicted": pred.sum(0),
        "frames": valid.sum(0),
    }


# ---------------------------------------------------------------------------------------------------------------
# Bout-level metrics
# ---------------------------------------------------------------------------------------------------------------


def onset_delays(predicted: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """Onset delay, in frames, of every labelled bout detected by an overlapping predicted bout.

    Args:
        predicted: (T,) binary decisions.
        labelled: (T,) binary labels.

    Returns:
        (M,) int, predicted start - labelled start for each detected labelled bout (M <= labelled bouts).
    """
    pb = np.asarray(bouts(predicted), dtype=np.int64).reshape(-1, 2)
    lb = np.asarray(bouts(labelled), dtype=np.int64).reshape(-1, 2)
    if len(pb) == 0 or len(lb) == 0:
        return np.zeros(0, dtype=np.int64)
    # The first predicted bout that ends after the labelled start overlaps it if it starts before its stop.
    i = np.searchsorted(pb[:, 1], lb[:, 0], side="right")
    found = i < len(pb)
    i = np.minimum(i, len(pb) - 1)
    hit = found & (pb[i, 0] < lb[:, 1])
    return pb[i[hit], 0] - lb[hit, 0]


def bout_stats(predicted: ArrayOrList, labelled: ArrayOrList) -> dict[str, np.ndarray]:
    """Bout-level figures per behaviour, videos kept apart.

    Args:
        predicted: (T, K) decisions, or a list of per-video arrays.
        labelled: (T, K) labels (-1 counts as absent here), or a matching list.

    Returns:
        ``{"bouts_labelled", "bouts_predicted", "bouts_detected", "bout_count_error", "bout_count_error_rel",
        "onset_delay_median", "onset_delay_mean"}``, each (K,).
    """
    preds = [np.asarray(predicted)] if isinstance(predicted, np.ndarray) else [np.asarray(x) for x in predicted]
    labs = [np.asarray(labelled)] if isinstance(labelled, np.ndarray) else [np.asarray(x) for x in labelled]
    if len(preds) != len(labs):
        raise ValueError(f"{len(preds)} predicted videos but {len(labs)} labelled ones")
    k = labs[0].shape[1]
    n_lab = np.zeros(k, dtype=np.int64)
    n_pred = np.zeros(k, dtype=np.int64)
    delays: list[list[np.ndarray]] = [[] for _ in range(k)]
    for pv, lv in zip(preds, labs):
        if pv.shape != lv.shape:
            raise ValueError(f"predictions {pv.shape} and labels {lv.shape} differ in shape")
        for i in range(k):
            p_i, l_i = pv[:, i].astype(bool), lv[:, i] == 1
            n_lab[i] += len(bouts(l_i))
            n_pred[i] += len(bouts(p_i))
            delays[i].append(onset_delays(p_i, l_i))
    all_delays = [np.concatenate(d) for d in delays]
    err = n_pred - n_lab
    return {
        "bouts_labelled": n_lab,
        "bouts_predicted": n_pred,
        "bouts_detected": np.array([d.size for d in all_delays]),
        "bout_count_error": err,
        "bout_count_error_rel": _ratio(err.astype(np.float64), n_lab.astype(np.float64)),
        "onset_delay_median": np.array([np.median(d) if d.size else np.nan for d in all_delays]),
        "onset_delay_mean": np.array([np.mean(d) if d.size else np.nan for d in all_delays]),
    }


#: Per-behaviour columns :func:`onset_metrics` returns.
ONSET_COLUMNS = (
    "onsets_labelled",
    "onsets_predicted",
    "onsets_matched",
    "onset_precision",
    "onset_recall",
    "onset_f1",
    "false_onsets_per_min",
    "onset_delay_p50",
    "onset_delay_p90",
)


def _as_list(values: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(values)] if isinstance(values, np.ndarray) else [np.asarray(v) for v in values]


def match_onsets(predicted: np.ndarray, labelled: np.ndarray, tolerance: int) -> int:
    """How many predicted onsets match a labelled onset within ``tolerance`` frames (one-to-one, in time order).

    Args:
        predicted: (P,) sorted predicted onset frames.
        labelled: (L,) sorted labelled onset frames.
        tolerance: the largest ``|predicted - labelled|`` that still matches.
    """
    matched, j = 0, 0
    for p in predicted:
        while j < len(labelled) and labelled[j] < p - tolerance:
            j += 1  # too early for this and every later predicted onset
        if j < len(labelled) and labelled[j] <= p + tolerance:
            matched += 1
            j += 1
    return matched


def _scalar_ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def onset_metrics(
    decisions: np.ndarray | Sequence[np.ndarray],
    labels: np.ndarray | Sequence[np.ndarray],
    *,
    fps: float,
    tolerance: int = 5,
) -> dict[str, np.ndarray]:
    """Onset precision, recall and F1 within ``tolerance`` frames, false onsets per minute, onset delays.

    Args:
        decisions: (T, K) bool, or a list of per-video arrays.
        labels: (T, K) int (1 present, 0 absent, -1 unlabelled = absent here), or a matching list.
        fps: frames per second (for false onsets per minute).
        tolerance: frames an onset may be off and still match.

    Returns:
        ``{column: (K,) array}`` for every name in :data:`ONSET_COLUMNS`; undefined values are NaN.
    """
    ds, ys = _as_list(decisions), _as_list(labels)
    if len(ds) != len(ys):
        raise ValueError(f"{len(ds)} predicted videos but {len(ys)} labelled ones")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    k = ys[0].shape[1]
    n_lab = np.zeros(k, np.int64)
    n_pred = np.zeros(k, np.int64)
    n_match = np.zeros(k, np.int64)
    delays: list[list[np.ndarray]] = [[] for _ in range(k)]
    frames = 0
    for d, y in zip(ds, ys):
        if d.shape != y.shape:
            raise ValueError(f"decisions {d.shape} and labels {y.shape} differ in shape")
        frames += len(y)
        for i in range(k):
            pred, lab = d[:, i].astype(bool), y[:, i] == 1
            p_on = np.array([a for a, _ in bouts(pred)], np.int64)
            l_on = np.array([a for a, _ in bouts(lab)], np.int64)
            n_pred[i] += p_on.size
            n_lab[i] += l_on.size
            n_match[i] += match_onsets(p_on, l_on, tolerance)
            delays[i].append(onset_delays(pred, lab))
    minutes = frames / fps / 60.0
    out: dict[str, np.ndarray] = {
        "onsets_labelled": n_lab,
        "onsets_predicted": n_pred,
        "onsets_matched": n_match,
        "onset_precision": np.array([_scalar_ratio(m, p) for m, p in zip(n_match, n_pred)]),
        "onset_recall": np.array([_scalar_ratio(m, n) for m, n in zip(n_match, n_lab)]),
        "false_onsets_per_min": (n_pred - n_match) / minutes if minutes else np.full(k, np.nan),
    }
    p, r = out["onset_precision"], out["onset_recall"]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
    # No labelled onsets: F1 undefined (NaN) unless nothing was predicted either; predicted ones are all false.
    out["onset_f1"] = np.where(n_lab == 0, np.nan, np.where(n_pred == 0, 0.0, f1))
    all_delays = [np.concatenate(x) if x else np.zeros(0) for x in delays]
    out["onset_delay_p50"] = np.array([np.median(x) if x.size else np.nan for x in all_delays])
    out["onset_delay_p90"] = np.array([np.percentile(x, 90) if x.size else np.nan for x in all_delays])
    return out


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------

# Column order of the report; the first group is averaged for the macro row, the counts are summed.
_MEAN_COLUMNS = (
    "f1",
    "precision",
    "recall",
    "auroc",
    "ap",
    "threshold",
    "onset_delay_median",
    "onset_delay_mean",
    "bout_count_error_rel",
)
_SUM_COLUMNS = (
    "positives",
    "predicted",
    "frames",
    "bouts_labelled",
    "bouts_predicted",
    "bouts_detected",
    "bout_count_error",
    "onsets_labelled",
    "onsets_predicted",
    "onsets_matched",
    # Summed: the false onsets per minute a rig acting on every behaviour would see.
    "false_onsets_per_min",
)
_ONSET_MEAN_COLUMNS = ("onset_precision", "onset_recall", "onset_f1", "onset_delay_p50", "onset_delay_p90")
COLUMNS = (
    "f1",
    "precision",
    "recall",
    "auroc",
    "ap",
    "threshold",
    "onset_delay_median",
    "onset_delay_mean",
    "bouts_labelled",
    "bouts_predicted",
    "bouts_detected",
    "bout_count_error",
    "bout_count_error_rel",
    "positives",
    "predicted",
    "frames",
    "onsets_labelled",
    "onsets_predicted",
    "onsets_matched",
    "onset_precision",
    "onset_recall",
    "onset_f1",
    "false_onsets_per_min",
    "onset_delay_p50",
    "onset_delay_p90",
)


# The columns of a per-behaviour table that people compare (terminal and markdown reports).
TABLE_COLUMNS = (
    "f1",
    "precision",
    "recall",
    "auroc",
    "ap",
    "threshold",
    "onset_delay_median",
    "bouts_labelled",
    "bouts_predicted",
    "bout_count_error",
    "onset_f1",
    "false_onsets_per_min",
    "onset_delay_p90",
)


@dataclass
class MetricsReport:
    """Per-behaviour metrics and their macro average.

    Attributes:
        behaviours: K names.
        values: column name -> (K,) array (see ``COLUMNS``).
        macro_behaviours: the names averaged in the macro row (background and undefined values left out).
        macro: column name -> macro value (mean for rates and delays, sum for counts).
        meta: free-form context (split, postprocessing) carried into ``to_dict``.
    """

    behaviours: list[str]
    values: dict[str, np.ndarray]
    macro_behaviours: list[str]
    macro: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def macro_f1(self) -> float:
        """Macro-averaged F1 (behaviours with an undefined F1 left out; see ``f1_present`` and ``f1_all``)."""
        return self.macro["f1"]

    @property
    def macro_f1_present(self) -> float:
        """Macro F1 over the behaviours present in the labels (how DeepEthogram's users compare)."""
        return self.macro["f1_present"]

    @property
    def macro_f1_all(self) -> float:
        """Macro F1 over every behaviour, an absent one counting as 0."""
        return self.macro["f1_all"]

    def to_frame(self) -> pd.DataFrame:
        """A table, one row per behaviour plus a final ``macro`` row, one column per metric."""
        frame = pd.DataFrame({c: self.values[c] for c in COLUMNS if c in self.values}, index=list(self.behaviours))
        frame.loc["macro"] = [self.macro.get(c, np.nan) for c in frame.columns]
        frame.index.name = "behaviour"
        return frame

    def format_table(self, columns: Sequence[str] | None = None, digits: int = 3) -> str:
        """The table as text for a terminal, with the main columns by default."""
        frame = self.to_frame()
        columns = list(columns or TABLE_COLUMNS)
        frame = frame[[c for c in columns if c in frame.columns]]
        return frame.to_string(float_format=lambda v: f"{v:.{digits}f}", na_rep="-")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (NaN as None), e.g. for a bundle's training summary."""

        def plain(v: Any) -> Any:
            v = v.item() if isinstance(v, np.generic) else v
            return None if isinstance(v, float) and not np.isfinite(v) else v

        return {
            "schema_version": METRICS_SCHEMA_VERSION,
            "behaviours": list(self.behaviours),
            "per_behaviour": {
                name: {c: plain(self.values[c][i]) for c in COLUMNS if c in self.values}
                for i, name in enumerate(self.behaviours)
            },
            "macro": {c: plain(v) for c, v in self.macro.items()},
            "macro_behaviours": list(self.macro_behaviours),
            "meta": self.meta,
        }


def compute_metrics(
    labels: ArrayOrList,
    probs: ArrayOrList | None = None,
    *,
    decisions: ArrayOrList | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
    behaviours: Sequence[str] | None = None,
    macro_exclude: Sequence[str] = ("background",),
    meta: dict[str, Any] | None = None,
    fps: float | None = None,
    onset_tolerance: int = 5,
) -> MetricsReport:
    """All metrics per behaviour and macro.

    Decisions are ``decisions`` if given (e.g. the causal postprocessor's output), else ``probs > thresholds``.
    The macro row has three F1s: ``f1`` (behaviours with a defined F1), ``f1_present`` (behaviours present in
    the labels) and ``f1_all`` (every behaviour, absent ones counting 0). With ``fps``, onsets are scored too
    (:func:`onset_metrics`, matching within ``onset_tolerance`` frames).

    Args:
        labels: (T, K) int with -1 for unlabelled, or a list of per-video arrays.
        probs: (T, K) float (needed for AUROC/AP, and for decisions without ``decisions``), or a list.
        decisions: (T, K) bool, or a list.
        thresholds: (K,) used when ``decisions`` is None (default 0.5) and shown in the table.
        behaviours: K names (default "0", "1", ...).
        macro_exclude: names left out of the macro averages.
        meta: free-form context stored in the report.
        fps: the videos' frame rate; given, onsets are scored too (false onsets per minute need it).
        onset_tolerance: frames a predicted onset may be from a labelled one and still match.
    """
    y, lengths = _stack(labels, "labels")
    k = y.shape[1]
    p = None
    if probs is not None:
        p, p_lengths = _stack(probs, "probs", np.float64)
        if p.shape != y.shape or p_lengths != lengths:
            raise ValueError(f"probs {p.shape} and labels {y.shape} differ in shape")
    thr = np.full(k, np.nan) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if thr.shape != (k,):
        raise ValueError(f"thresholds: expected {k} values, got shape {thr.shape}")
    if decisions is not None:
        d, d_lengths = _stack(decisions, "decisions", bool)
        if d.shape != y.shape or d_lengths != lengths:
            raise ValueError(f"decisions {d.shape} and labels {y.shape} differ in shape")
    elif p is not None:
        d = p > (np.where(np.isnan(thr), 0.5, thr))
    else:
        raise ValueError("compute_metrics needs probs or decisions")
    names = list(behaviours) if behaviours is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} behaviour names for {k} columns")

    values = frame_metrics(d, y, p)
    values["threshold"] = thr
    splits = np.cumsum(lengths)[:-1]
    values.update(bout_stats(np.split(d, splits), np.split(y, splits)))

    keep = np.array([n not in set(macro_exclude) for n in names])
    if not keep.any():
        keep[:] = True
    if fps is not None:
        values.update(onset_metrics(np.split(d, splits), np.split(y, splits), fps=fps, tolerance=onset_tolerance))
    macro: dict[str, float] = {}
    for c in (*_MEAN_COLUMNS, *_ONSET_MEAN_COLUMNS):
        if c not in values:
            continue
        col = values[c][keep].astype(np.float64)
        macro[c] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
    for c in _SUM_COLUMNS:
        if c in values:
            macro[c] = float(values[c][keep].sum())
    f1 = values["f1"][keep].astype(np.float64)
    present = values["positives"][keep] > 0
    macro["f1_present"] = float(np.nanmean(f1[present])) if present.any() else float("nan")
    macro["f1_all"] = float(np.nan_to_num(f1, nan=0.0).mean()) if f1.size else float("nan")
    return MetricsReport(
        behaviours=names,
        values=values,
        macro_behaviours=[n for n, kept in zip(names, keep) if kept],
        macro=macro,
        meta=dict(meta or {}),
    )
