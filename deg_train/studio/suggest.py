"""The active-learning queue: across every video, the bouts where the model is least sure, ranked (numpy, no Qt).

Four reasons to look at a stretch of frames nobody has labelled yet, each scored in [0, 1] per frame:

- ``near threshold``: a behaviour's probability close to its threshold, ``1 - |p - t| / max(t, 1 - t)``;
- ``uncertain``: high entropy of the behaviours' probabilities (normalised: 1 = no idea which behaviour);
- ``causal vs centred``: the causal model (group ``deg_train_<arch>``) and the centred comparison model
  (``deg_train_<arch>_centred``, :func:`deg_live.outputs.our_group_name`) decide differently;
- ``live event``: an onset decided live in a recording (``deg_live`` group) that no label covers yet.

Frames scoring at least ``min_score`` join into bouts (gaps of up to ``join_gap`` frames bridged); each bout's
score is its mean frame score (live events score 1). Labelled frames never make a bout. :func:`suggest` returns the
bouts of all videos, best first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from camera_adapters.errors import UserFacingError
from deg_live.outputs import OUR_GROUP_PREFIX, our_group_name, read_predictions
from deg_train.studio.workspace import StudioVideo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Suggestion:
    """A stretch of one video worth labelling.

    Attributes:
        video: the video's name.
        start, stop: frames ``[start, stop)``.
        score: in [0, 1]; higher is less sure.
        reason: ``near threshold``, ``uncertain``, ``causal vs centred`` or ``live event``.
        behaviour: the behaviour concerned (the one nearest its threshold, the event's), or "".
    """

    video: str
    start: int
    stop: int
    score: float
    reason: str
    behaviour: str = ""

    def describe(self) -> str:
        """One line for the queue list."""
        what = f" {self.behaviour}" if self.behaviour else ""
        return f"{self.video} {self.start}-{self.stop - 1}: {self.reason}{what} ({self.score:.2f})"


def frame_scores(probabilities: np.ndarray, thresholds: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-frame uncertainty of one model's outputs.

    Args:
        probabilities: ``(N, K)``; NaN where nothing was predicted.
        thresholds: ``(K,)``.

    Returns:
        ``{"near threshold": (score (N,), behaviour index (N,)), "uncertain": (score (N,), argmax (N,))}``.
    """
    p = np.nan_to_num(np.asarray(probabilities, np.float64), nan=0.0)
    t = np.clip(np.asarray(thresholds, np.float64), 1e-3, 1 - 1e-3)
    near = np.clip(1.0 - np.abs(p - t) / np.maximum(t, 1.0 - t), 0.0, 1.0)
    near[~np.isfinite(probabilities)] = 0.0
    k = p.shape[1]
    mass = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-9)
    entropy = -(mass * np.log(np.maximum(mass, 1e-12))).sum(axis=1) / np.log(max(k, 2))
    entropy[~np.isfinite(probabilities).any(axis=1)] = 0.0
    return {
        "near threshold": (near.max(axis=1), near.argmax(axis=1)),
        "uncertain": (entropy, p.argmax(axis=1)),
    }


def bouts(score: np.ndarray, open_frames: np.ndarray, *, min_score: float, join_gap: int, min_length: int):
    """``[(start, stop, mean score)]`` of runs where ``score >= min_score`` on ``open_frames`` (gaps bridged)."""
    hot = (np.asarray(score) >= min_score) & np.asarray(open_frames, bool)
    idx = np.flatnonzero(hot)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > join_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    stops = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    out = []
    for a, b in zip(starts, stops, strict=True):
        if b - a >= min_length:
            out.append((int(a), int(b), float(np.mean(score[a:b][hot[a:b]]))))
    return out


def suggest_for_video(
    video: StudioVideo,
    labelled: np.ndarray | None,
    *,
    min_score: float = 0.6,
    join_gap: int = 5,
    min_length: int = 3,
    per_reason: int = 20,
) -> list[Suggestion]:
    """The suggestions of one video (see the module docstring); [] when it has no outputs file.

    Args:
        video: the video.
        labelled: ``(N,) bool`` frames already labelled (never suggested), or None (nothing labelled).
        min_score: the least frame score that joins a bout.
        join_gap: gaps of up to this many frames inside a bout are bridged.
        min_length: shorter bouts are dropped.
        per_reason: at most this many bouts per reason, the best.
    """
    groups = video.prediction_groups()
    if not groups:
        return []
    out: list[Suggestion] = []
    try:
        main = read_predictions(video.outputs_path, "deg_live" if "deg_live" in groups else None)
    except UserFacingError as err:
        log.warning("suggestions: %s", err)
        return []
    n = main.probabilities.shape[0]
    open_frames = np.ones(n, bool)
    if labelled is not None:
        m = min(n, len(labelled))
        open_frames[:m] = ~np.asarray(labelled[:m], bool)

    def add(reason: str, found, behaviour_of) -> None:
        found = sorted(found, key=lambda b: -b[2])[:per_reason]
        out.extend(Suggestion(video.name, a, b, round(s, 4), reason, behaviour_of(a, b)) for a, b, s in found)

    for reason, (score, which) in frame_scores(main.probabilities, main.thresholds).items():
        found = bouts(score, open_frames, min_score=min_score, join_gap=join_gap, min_length=min_length)
        add(reason, found, lambda a, b, w=which: main.behaviours[int(np.bincount(w[a:b]).argmax())])

    centred = our_group_name(main.group, centred=True) if main.group.startswith(OUR_GROUP_PREFIX) else None
    if centred is not None and centred != main.group and centred in groups:
        try:
            other = read_predictions(video.outputs_path, centred)
        except UserFacingError as err:
            log.warning("suggestions: %s", err)
        else:
            m = min(n, other.probabilities.shape[0])
            a_dec = np.nan_to_num(main.probabilities[:m]) >= main.thresholds
            b_dec = np.nan_to_num(other.probabilities[:m]) >= other.thresholds
            differ = (a_dec != b_dec).any(axis=1).astype(float)
            found = bouts(differ, open_frames[:m], min_score=0.5, join_gap=join_gap, min_length=min_length)
            which = (a_dec != b_dec).argmax(axis=1)
            add("causal vs centred", found, lambda a, b: main.behaviours[int(np.bincount(which[a:b]).argmax())])

    decisions = main.rows.get("decisions")
    if main.group == "deg_live" and decisions is not None and len(decisions) == n:
        rows = main.rows.get("video_frame")
        dec = np.asarray(decisions, bool)
        rising = np.argwhere(dec[1:] & ~dec[:-1])
        events = []
        for r, k in rising:
            if main.behaviours[k] == "background":
                continue
            frame = int(rows[r + 1]) if rows is not None and len(rows) == n else int(r + 1)
            if 0 <= frame < len(open_frames) and open_frames[frame]:
                events.append((max(0, frame - 5), min(len(open_frames), frame + 20), 1.0, int(k)))
        found = [(a, b, s) for a, b, s, _ in events]
        kinds = {(a, b): k for a, b, _, k in events}
        add("live event", found, lambda a, b: main.behaviours[kinds[(a, b)]])
    return out


def suggest(videos: Iterable[tuple[StudioVideo, np.ndarray | None]], **kwargs) -> list[Suggestion]:
    """Suggestions across videos, best first.

    Args:
        videos: ``(video, labelled frames or None)`` pairs.
        **kwargs: those of :func:`suggest_for_video`.
    """
    everything: list[Suggestion] = []
    for video, labelled in videos:
        everything.extend(suggest_for_video(video, labelled, **kwargs))
    order = {"live event": 0, "causal vs centred": 1, "near threshold": 2, "uncertain": 3}
    return sorted(everything, key=lambda s: (-s.score, order.get(s.reason, 9), s.video, s.start))
