"""Choosing the postprocessing on validation for the onsets a closed loop acts on.

A closed-loop experiment acts on onsets, not frames: one false onset can fire a laser. So besides frame F1 the
evaluation scores onsets (:func:`deg_train.evaluation.metrics.onset_metrics`), and the postprocessing
(thresholds, hysteresis, minimum durations) is chosen on the validation videos for an event-level objective.

Definitions (per behaviour; several videos are kept apart, so no bout spans two videos):

- a *labelled onset* is the first frame of a labelled bout (a run of frames labelled 1; -1 counts as absent),
  a *predicted onset* the first frame of a bout of decisions;
- a predicted onset *matches* a labelled onset of the same behaviour when they are at most ``tolerance`` frames
  apart; matching is one-to-one, in time order (each predicted onset takes the earliest unmatched labelled onset
  within reach); onset precision = matched / predicted, recall = matched / labelled, F1 their harmonic mean;
- *false onsets per minute*: unmatched predicted onsets per minute of video (``fps`` frames per second);
- *onset delay* (frames, positive = late) of every labelled bout that a predicted bout overlaps: predicted start
  minus labelled start (:func:`deg_train.evaluation.metrics.onset_delays`), summarised by median and 90th
  percentile. Causal decisions are reported at the bout's start frame; the frames a minimum duration waits
  before deciding (``min_duration_frames - 1``) are added to the delay by :func:`decision_delays`.

Example:
    >>> table = onset_metrics(decisions_per_video, labels_per_video, fps=25, tolerance=5)
    >>> choice = choose_postprocess(val_probs, val_labels, behaviours, PostprocessSettings(), fps=25)
    >>> choice.thresholds, choice.settings
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from deg_live.postprocess import CausalPostprocessor, PostprocessSettings
from deg_train.evaluation.metrics import onset_metrics, threshold_search

log = logging.getLogger(__name__)

__all__ = ["EventsConfig", "PostprocessChoice", "choose_postprocess", "decision_delays"]


@dataclass
class EventsConfig:
    """How the postprocessing is chosen on validation for onsets (a training config's ``events`` section).

    Attributes:
        choose_on_validation: choose thresholds, hysteresis and minimum durations for onsets (else thresholds
            for frame F1 only).
        tolerance_frames: how far a predicted onset may be from a labelled one and still match.
        max_onset_delay_frames: cap on the median onset delay the chosen settings may cost.
        frame_weight: weight of frame F1 in the objective (0 = onsets only).
    """

    choose_on_validation: bool = True
    tolerance_frames: int = 5
    max_onset_delay_frames: float = 3.0
    frame_weight: float = 0.5

    def __post_init__(self) -> None:
        if self.tolerance_frames < 0:
            raise ValueError(f"tolerance_frames must be >= 0, got {self.tolerance_frames}")
        if self.max_onset_delay_frames < 0:
            raise ValueError(f"max_onset_delay_frames must be >= 0, got {self.max_onset_delay_frames}")
        if not 0.0 <= self.frame_weight <= 1.0:
            raise ValueError(f"frame_weight must be in [0, 1], got {self.frame_weight}")


# ---------------------------------------------------------------------------------------------------------------
# Choosing the postprocessing on validation
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class PostprocessChoice:
    """What :func:`choose_postprocess` picked and why.

    Attributes:
        thresholds: (K,) on thresholds.
        settings: the postprocess settings (hysteresis and minimum durations filled in).
        objective: the validation objective reached (see :func:`choose_postprocess`).
        onset_f1: validation macro onset F1 at the choice.
        frame_f1: validation macro frame F1 at the choice.
        delay_p50: validation median onset delay (frames) at the choice, decision wait included.
        tried: one row per candidate setting tried: settings, objective, onset and frame F1, delay.
    """

    thresholds: np.ndarray
    settings: PostprocessSettings
    objective: float
    onset_f1: float
    frame_f1: float
    delay_p50: float
    tried: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (thresholds, settings and the validation figures; not the full search)."""
        return {
            "thresholds": [float(t) for t in self.thresholds],
            "postprocess": self.settings.to_dict(),
            "objective": float(self.objective),
            "val_onset_f1": float(self.onset_f1),
            "val_frame_f1": float(self.frame_f1),
            "val_onset_delay_p50": float(self.delay_p50),
            "candidates_tried": len(self.tried),
        }


def _frame_f1(decisions: list[np.ndarray], labels: list[np.ndarray], cols: np.ndarray) -> float:
    d = np.concatenate(decisions)[:, cols]
    y = np.concatenate(labels)[:, cols]
    valid = y >= 0
    tp = ((d == 1) & (y == 1) & valid).sum(0)
    fp = ((d == 1) & (y == 0) & valid).sum(0)
    fn = ((d == 0) & (y == 1) & valid).sum(0)
    present = (y == 1).sum(0) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    f1 = f1[present]
    return float(np.nanmean(f1)) if f1.size and np.isfinite(f1).any() else 0.0


def decision_delays(settings: PostprocessSettings, num_behaviours: int) -> np.ndarray:
    """Frames a causal decision waits after a bout starts (``min_duration_frames - 1``), per behaviour."""
    return settings.per_behaviour("min_duration_frames", num_behaviours) - 1


def _evaluate(
    probs: list[np.ndarray],
    labels: list[np.ndarray],
    thresholds: np.ndarray,
    settings: PostprocessSettings,
    cols: np.ndarray,
    *,
    fps: float,
    tolerance: int,
    max_delay: float,
    frame_weight: float,
) -> dict[str, float]:
    pp = CausalPostprocessor(thresholds, settings)
    decisions = [pp.run(p)[0] for p in probs]
    onsets = onset_metrics(decisions, labels, fps=fps, tolerance=tolerance)
    f1 = onsets["onset_f1"][cols]
    onset_f1 = float(np.nanmean(f1)) if np.isfinite(f1).any() else 0.0
    frame_f1 = _frame_f1(decisions, labels, cols)
    wait = decision_delays(settings, len(thresholds))[cols]
    delay = onsets["onset_delay_p50"][cols] + wait
    delay_p50 = float(np.nanmedian(delay)) if np.isfinite(delay).any() else float("nan")
    objective = (1.0 - frame_weight) * onset_f1 + frame_weight * frame_f1
    if np.isfinite(delay_p50) and delay_p50 > max_delay:
        objective -= 1.0  # over the delay cap: only chosen if nothing meets it
    return {"objective": objective, "onset_f1": onset_f1, "frame_f1": frame_f1, "delay_p50": delay_p50}


def choose_postprocess(
    probs: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    behaviours: Sequence[str],
    base: PostprocessSettings,
    *,
    fps: float,
    tolerance: int = 5,
    max_delay: float = 3.0,
    frame_weight: float = 0.5,
    threshold_grid: Sequence[float] | None = None,
    hysteresis_grid: Sequence[float] = (0.0, 0.1, 0.2),
    min_duration_grid: Sequence[int] = (1, 2, 3),
    min_off_grid: Sequence[int] = (1, 2, 4, 8),
    initial_thresholds: np.ndarray | None = None,
    rounds: int = 2,
) -> PostprocessChoice:
    """Pick thresholds, hysteresis and minimum durations on validation videos for an event-level objective.

    The objective is ``(1 - frame_weight) * macro onset F1 + frame_weight * macro frame F1`` over the
    behaviours present in the validation labels (background excluded), with the median onset delay (decision
    wait included) capped at ``max_delay`` frames. The search is coordinate ascent, all of it on the causal
    postprocessor that runs live: the shared hysteresis and minimum durations on a grid, then each behaviour's
    threshold in turn with the others fixed, ``rounds`` times.

    Args:
        probs: per-video (T_i, K) probabilities of the validation videos.
        labels: matching (T_i, K) labels.
        behaviours: K names (``background`` is not scored).
        base: settings to start from (background handling and ``exclusive`` are kept).
        fps: the videos' frame rate.
        tolerance: onset matching tolerance in frames.
        max_delay: cap on the median onset delay, frames.
        frame_weight: weight of frame F1 in the objective (0 = onsets only).
        threshold_grid: thresholds tried per behaviour (default 0.05 .. 0.95 by 0.05).
        hysteresis_grid: hysteresis values tried (shared by every behaviour).
        min_duration_grid: minimum onset durations tried, frames.
        min_off_grid: minimum offset durations tried, frames.
        initial_thresholds: (K,) starting thresholds (default: the frame-F1-best ones from
            :func:`deg_train.evaluation.metrics.threshold_search`).
        rounds: passes of the coordinate ascent.
    """
    probs = [np.asarray(p, np.float64) for p in probs]
    labels = [np.asarray(y) for y in labels]
    k = len(behaviours)
    present = (np.concatenate(labels) == 1).any(axis=0)
    cols = np.array([i for i, b in enumerate(behaviours) if b != "background" and present[i]], np.int64)
    if cols.size == 0:
        cols = np.flatnonzero(present)
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2) if threshold_grid is None else np.asarray(threshold_grid)
    if initial_thresholds is None:
        thresholds = threshold_search(probs, labels).thresholds.astype(np.float64)
    else:
        thresholds = np.asarray(initial_thresholds, np.float64).copy()
    settings = replace(base, hysteresis=0.0, min_duration_frames=1, min_off_frames=1)
    kwargs = dict(fps=fps, tolerance=tolerance, max_delay=max_delay, frame_weight=frame_weight)
    tried: list[dict[str, Any]] = []

    def score(thr: np.ndarray, s: PostprocessSettings) -> dict[str, float]:
        r = _evaluate(probs, labels, thr, s, cols, **kwargs)
        tried.append(
            {
                "thresholds": [float(x) for x in thr],
                "hysteresis": s.hysteresis,
                "min_duration_frames": s.min_duration_frames,
                "min_off_frames": s.min_off_frames,
                **r,
            }
        )
        return r

    # Thresholds tuned: the scored behaviours; in exclusive mode every thresholded class (an absent behaviour's
    # false onsets take frames from the others). An exclusive background is not thresholded.
    bg = base.background_index if base.exclusive_background else None
    tuned = [i for i in range(k) if i != bg and (base.exclusive or i in set(cols.tolist()))]
    best = score(thresholds, settings)
    for _ in range(max(1, rounds)):
        for hyst, min_on, min_off in itertools.product(hysteresis_grid, min_duration_grid, min_off_grid):
            cand = replace(
                settings, hysteresis=float(hyst), min_duration_frames=int(min_on), min_off_frames=int(min_off)
            )
            r = score(thresholds, cand)
            if r["objective"] > best["objective"] + 1e-12:
                best, settings = r, cand
        for i in tuned:
            for t in grid:
                cand_thr = thresholds.copy()
                cand_thr[i] = t
                r = score(cand_thr, settings)
                if r["objective"] > best["objective"] + 1e-12:
                    best, thresholds = r, cand_thr
    log.info(
        "postprocessing chosen on validation: onset F1 %.3f, frame F1 %.3f, median onset delay %.1f frames "
        "(hysteresis %s, min duration %s, min off %s; %d settings tried)",
        best["onset_f1"],
        best["frame_f1"],
        best["delay_p50"],
        settings.hysteresis,
        settings.min_duration_frames,
        settings.min_off_frames,
        len(tried),
    )
    return PostprocessChoice(
        thresholds=thresholds,
        settings=settings,
        objective=best["objective"],
        onset_f1=best["onset_f1"],
        frame_f1=best["frame_f1"],
        delay_p50=best["delay_p50"],
        tried=tried,
    )
