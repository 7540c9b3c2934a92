"""From per-frame probabilities to behaviour decisions, causally (live and offline) or DeepEthogram's way.

This module holds the causal postprocessor and DeepEthogram's minimum-bout cleanup (offline reports only).

The causal postprocessor decides at frame t from frames <= t only, so it is the ONE implementation used both
by live inference (``deg_live``, one :meth:`CausalPostprocessor.step` per processed frame) and by offline
evaluation (``deg_train``, :meth:`CausalPostprocessor.run` over a whole video). ``run`` is exactly the step
loop, which is what makes "live events == causal postprocessing of the offline probabilities" hold exactly.

Per behaviour k, with ``on = thresholds[k]`` and ``off = clip(on - hysteresis, 0, on)``:

- while OFF, a frame counts towards an onset if ``p > on``; after ``min_duration_frames`` consecutive such
  frames the decision turns on at the last of them (the *decision frame*), and the onset reports the first of
  them as the bout's start frame;
- while ON, a frame counts towards an offset if ``p <= off``; after ``min_off_frames`` consecutive such frames
  the decision turns off at the last of them, and the offset reports the first of them as its change frame;
- a NaN probability counts towards neither (it breaks a run and keeps the current decision);
- with ``exclusive_background`` the background column (``background_index``, DeepEthogram's column 0) is
  not thresholded: it is on exactly when no other behaviour is on (DeepEthogram's rule), decided causally.

With ``hysteresis=0, min_duration_frames=1, min_off_frames=1`` and no exclusive background, the decisions are
plain thresholding, ``probs > thresholds``, the same rule :func:`deg_train.evaluation.metrics.pick_thresholds`
optimises.

Durations count processed frames (calls to ``step``), not camera frame numbers: a live pipeline that skips
frames under overload says so in its state messages.

Example:
    >>> pp = CausalPostprocessor([0.5, 0.5], PostprocessSettings(min_duration_frames=2, background_index=None))
    >>> decisions, transitions = pp.run(probs)          # probs: (T, 2) float
    >>> for t, p in enumerate(probs):                   # the same, live
    ...     d, events = pp.step(p, t)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from camera_adapters.errors import UserFacingError

POSTPROCESS_SCHEMA_VERSION = 1


# Frame-count settings are bounded (an hour at 1 kHz): a bigger value is a typo, and must not overflow int64.
MAX_FRAMES_SETTING = 3_600_000


class PostprocessError(UserFacingError, ValueError):
    """Postprocessing settings or thresholds that cannot be used (wrong length, out of range)."""


@dataclass
class PostprocessSettings:
    """How probabilities become decisions. Scalars apply to every behaviour; lists give one value per behaviour.

    Attributes:
        hysteresis: live/causal: the off threshold is ``on - hysteresis`` (clipped to [0, on]); 0 = none.
        min_duration_frames: live/causal: frames the probability must stay above ``on`` before an onset is
            decided (1 = decide at the first frame above).
        min_off_frames: live/causal: frames the probability must stay at or below ``off`` before an offset is
            decided (1 = decide at the first frame below).
        min_bout_length: offline reports only (needs the future): DeepEthogram's cleanup, bouts and gaps
            shorter than this many frames are removed (1 = no cleanup). DeepEthogram's own setting
            ``min_bout_length: N`` removes bouts of length <= N, which is ``N + 1`` here.
        background_index: column of the background class (DeepEthogram puts it first), or None if there is none.
        exclusive_background: if True and ``background_index`` is set, background is on exactly when no other
            behaviour is (its own threshold is ignored); if False it is thresholded like any behaviour.
        exclusive: mutually exclusive behaviours: at most one is on at a time, the most probable one wins (see the
            module docstring). For projects whose labels never have two behaviours on one frame.
    """

    hysteresis: float | list[float] = 0.0
    min_duration_frames: int | list[int] = 1
    min_off_frames: int | list[int] = 1
    min_bout_length: int | list[int] = 1
    background_index: int | None = 0
    exclusive_background: bool = True
    exclusive: bool = False

    def __post_init__(self) -> None:
        for name, lo, hi in (
            ("hysteresis", 0.0, 1.0),
            ("min_duration_frames", 1, MAX_FRAMES_SETTING),
            ("min_off_frames", 1, MAX_FRAMES_SETTING),
            ("min_bout_length", 1, MAX_FRAMES_SETTING),
        ):
            values = getattr(self, name)
            for v in values if isinstance(values, (list, tuple)) else [values]:
                # Range first (exact for ints of any size), then finiteness: NaN fails both comparisons.
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo <= v <= hi):
                    kind = "a number" if name == "hysteresis" else "a whole number of frames"
                    raise PostprocessError(f"postprocess.{name}: expected {kind} between {lo} and {hi}, got {v!r}")
        if self.background_index is not None and not (0 <= self.background_index <= MAX_FRAMES_SETTING):
            raise PostprocessError(f"postprocess.background_index: must be >= 0 or null, got {self.background_index}")
        if self.exclusive and self.background_index is not None and not self.exclusive_background:
            raise PostprocessError(
                "postprocess.exclusive: needs exclusive_background: true (in exclusive mode background is on exactly "
                "when no behaviour is); set exclusive_background: true or background_index: null"
            )

    def per_behaviour(self, name: str, num_behaviours: int) -> np.ndarray:
        """The setting ``name`` as one value per behaviour, shape (K,).

        Raises:
            PostprocessError: a per-behaviour list whose length is not ``num_behaviours``.
        """
        value = getattr(self, name)
        dtype = np.float64 if name == "hysteresis" else np.int64
        if isinstance(value, (list, tuple)):
            if len(value) != num_behaviours:
                raise PostprocessError(
                    f"postprocess.{name}: has {len(value)} values but there are {num_behaviours} behaviours; "
                    "give one value per behaviour or a single number"
                )
            return np.asarray(value, dtype=dtype)
        return np.full(num_behaviours, value, dtype=dtype)

    def check(self, num_behaviours: int) -> None:
        """Check the settings fit ``num_behaviours`` behaviours (list lengths, background index).

        Raises:
            PostprocessError: naming the setting that does not fit.
        """
        for name in ("hysteresis", "min_duration_frames", "min_off_frames", "min_bout_length"):
            self.per_behaviour(name, num_behaviours)
        if self.background_index is not None and self.background_index >= num_behaviours:
            raise PostprocessError(
                f"postprocess.background_index: {self.background_index} but there are only {num_behaviours} "
                "behaviours; set it to the background column or null"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready values (what the bundle manifest stores under ``postprocess``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "postprocess") -> PostprocessSettings:
        """Build settings from a mapping, checking keys and types (errors name ``source`` and the key).

        Raises:
            camera_adapters.settings.ConfigError: unknown key or wrong type.
            PostprocessError: a value out of range.
        """
        from camera_adapters.settings import load_settings  # PyYAML only, imported when needed

        return load_settings(cls, data, source=source)


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [v.item() if isinstance(v, np.generic) else v for v in value]
    return value.item() if isinstance(value, np.generic) else value


class Transition(NamedTuple):
    """One decided change of one behaviour.

    Attributes:
        behaviour: column index of the behaviour.
        kind: ``"onset"`` or ``"offset"``.
        frame_index: the frame at which the change was decided (the decision is already changed there).
        bout_start_frame: the first frame of the bout this change begins or ends (for an onset, where the
            probability first went above ``on``; for an offset, the same value its onset reported).
        probability: the behaviour's probability at the decision frame.
        change_frame: where the change began: for an onset equal to ``bout_start_frame``; for an offset the first
            frame at or below ``off`` (the bout covered ``bout_start_frame`` up to, not including, it).
    """

    behaviour: int
    kind: Literal["onset", "offset"]
    frame_index: int
    bout_start_frame: int
    probability: float
    change_frame: int


class CausalPostprocessor:
    """Thresholds with hysteresis and minimum durations counted forward, deciding at frame t from frames <= t.

    Args:
        thresholds: (K,) on thresholds in [0, 1], one per behaviour (picked on validation).
        settings: the :class:`PostprocessSettings` (defaults: plain thresholding with exclusive background 0).

    Raises:
        PostprocessError: thresholds not a 1-D list of numbers in [0, 1], or settings that do not fit K.
    """

    def __init__(self, thresholds: Sequence[float] | np.ndarray, settings: PostprocessSettings | None = None):
        settings = settings if settings is not None else PostprocessSettings()
        on = np.asarray(thresholds, dtype=np.float64)
        if on.ndim != 1 or on.size == 0:
            raise PostprocessError(f"thresholds: expected a non-empty list of numbers, got shape {on.shape}")
        if not np.all(np.isfinite(on)) or np.any(on < 0) or np.any(on > 1):
            raise PostprocessError(f"thresholds: every threshold must be in [0, 1], got {on.tolist()}")
        k = on.size
        settings.check(k)
        self.settings = settings
        self.num_behaviours = k
        self.on = on
        self.off = np.clip(on - settings.per_behaviour("hysteresis", k), 0.0, on)
        self.min_on = settings.per_behaviour("min_duration_frames", k)
        self.min_off = settings.per_behaviour("min_off_frames", k)
        bg = settings.background_index
        self.background = bg if (bg is not None and settings.exclusive_background) else None
        # Thresholded columns: everything but an exclusive background.
        self._thresholded = np.ones(k, dtype=bool)
        if self.background is not None:
            self._thresholded[self.background] = False
        self.exclusive = bool(settings.exclusive)
        self.reset()

    def reset(self) -> None:
        """Start a new stream: every behaviour off (an exclusive background on), no run in progress."""
        k = self.num_behaviours
        self._active = np.zeros(k, dtype=bool)
        self._run_len = np.zeros(k, dtype=np.int64)
        self._run_start = np.zeros(k, dtype=np.int64)
        self._bout_start = np.full(k, -1, dtype=np.int64)
        self._steps = 0
        # Exclusive mode: the behaviour on (-1 = none), the challenger's run and the current one's off run.
        self._current = -1
        self._challenger = -1
        self._challenger_len = 0
        self._challenger_start = 0
        self._off_len = 0
        self._off_start = 0

    @property
    def decisions(self) -> np.ndarray:
        """The current decisions, (K,) bool (a copy)."""
        return self._active.copy()

    def step(
        self, probs: np.ndarray | Sequence[float], frame_index: int | None = None
    ) -> tuple[np.ndarray, list[Transition]]:
        """Take one frame's probabilities and return the decisions at that frame and the changes decided there.

        Args:
            probs: (K,) float probabilities of this frame.
            frame_index: the frame's index, reported in transitions; None counts calls from 0 since ``reset``.

        Returns:
            decisions: (K,) bool, the state after this frame.
            transitions: the onsets and offsets decided at this frame, ordered by behaviour (background last).

        Raises:
            PostprocessError: ``probs`` is not (K,).
        """
        p = np.asarray(probs, dtype=np.float64)
        if p.shape != (self.num_behaviours,):
            raise PostprocessError(f"probabilities: expected shape ({self.num_behaviours},), got {p.shape}")
        t = self._steps if frame_index is None else int(frame_index)
        self._steps += 1
        active = self._active
        if self.exclusive:
            transitions = self._step_exclusive(p, t)
            return self._background_step(p, t, transitions)

        # Does this frame count towards a change? OFF: above on. ON: at or below off. NaN counts for neither.
        candidate = np.where(active, p <= self.off, p > self.on) & self._thresholded
        run_len = np.where(candidate, self._run_len + 1, 0)
        self._run_start = np.where(candidate & (run_len == 1), t, self._run_start)
        flip = candidate & (run_len >= np.where(active, self.min_off, self.min_on))
        self._run_len = np.where(flip, 0, run_len)

        transitions: list[Transition] = []
        if flip.any():
            for k in np.flatnonzero(flip):
                k = int(k)
                start = int(self._run_start[k])
                if active[k]:
                    transitions.append(Transition(k, "offset", t, int(self._bout_start[k]), float(p[k]), start))
                    self._bout_start[k] = -1
                else:
                    transitions.append(Transition(k, "onset", t, start, float(p[k]), start))
                    self._bout_start[k] = start
            active ^= flip
        return self._background_step(p, t, transitions)

    def _step_exclusive(self, p: np.ndarray, t: int) -> list[Transition]:
        """One frame of the exclusive state machine (module docstring); returns the behaviours' transitions."""
        transitions: list[Transition] = []
        if np.isnan(p).any():  # a NaN frame breaks every run and keeps the decision
            self._challenger, self._challenger_len, self._off_len = -1, 0, 0
            return transitions
        cur = self._current
        # The candidate: the most probable class, if it is a thresholded behaviour above its on threshold.
        best = int(np.argmax(p))
        cand = best if (self._thresholded[best] and p[best] > self.on[best]) else -1
        # A challenger is a candidate other than the behaviour on; its run counts consecutive frames.
        if cand >= 0 and cand != cur:
            if cand == self._challenger:
                self._challenger_len += 1
            else:
                self._challenger, self._challenger_len, self._challenger_start = cand, 1, t
        else:
            self._challenger, self._challenger_len = -1, 0
        if cur >= 0:
            # Off: at or below its off threshold, or background is the most probable class.
            if p[cur] <= self.off[cur] or (self.background is not None and best == self.background):
                self._off_len += 1
                if self._off_len == 1:
                    self._off_start = t
            else:
                self._off_len = 0

        c = self._challenger
        if c >= 0 and self._challenger_len >= self.min_on[c]:
            start = self._challenger_start
            if cur >= 0:
                transitions.append(Transition(cur, "offset", t, int(self._bout_start[cur]), float(p[cur]), start))
                self._bout_start[cur] = -1
                self._active[cur] = False
            transitions.append(Transition(c, "onset", t, start, float(p[c]), start))
            self._bout_start[c] = start
            self._active[c] = True
            self._current = c
            self._challenger, self._challenger_len, self._off_len = -1, 0, 0
        elif cur >= 0 and self._off_len >= self.min_off[cur]:
            change = self._off_start
            transitions.append(Transition(cur, "offset", t, int(self._bout_start[cur]), float(p[cur]), change))
            self._bout_start[cur] = -1
            self._active[cur] = False
            self._current = -1
            self._off_len = 0
        return transitions

    def _background_step(self, p: np.ndarray, t: int, transitions: list[Transition]) -> tuple[np.ndarray, list]:
        """Set an exclusive background (on exactly when nothing else is); returns (decisions, transitions)."""
        active = self._active
        bg = self.background
        if bg is not None:
            others = np.delete(active, bg)
            on_now = not bool(others.any())  # reset() leaves it off, so a stream starts with its onset
            if on_now != bool(active[bg]):
                if on_now:
                    transitions.append(Transition(bg, "onset", t, t, float(p[bg]), t))
                    self._bout_start[bg] = t
                else:
                    transitions.append(Transition(bg, "offset", t, int(self._bout_start[bg]), float(p[bg]), t))
                    self._bout_start[bg] = -1
                active[bg] = on_now
        return active.copy(), transitions

    def run(self, probs: np.ndarray, start_frame: int = 0) -> tuple[np.ndarray, list[Transition]]:
        """Postprocess a whole sequence: the same result as :meth:`reset` then :meth:`step` for each frame.

        A test holds them equal; this computes it with scalar loops (offline evaluation and the validation
        search run it thousands of times). Leaves the postprocessor reset.

        Args:
            probs: (T, K) float probabilities.
            start_frame: frame index of ``probs[0]`` (reported in transitions).

        Returns:
            decisions: (T, K) bool; transitions: all changes in frame order.
        """
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2 or probs.shape[1] != self.num_behaviours:
            raise PostprocessError(f"probabilities: expected shape (T, {self.num_behaviours}), got {probs.shape}")
        self.reset()
        decisions = np.zeros(probs.shape, dtype=bool)
        keyed: list[tuple[int, int, int, Transition]] = []  # (frame, background last, behaviour, transition)
        if self.exclusive:
            self._run_exclusive(probs, start_frame, decisions, keyed)
        else:
            for k in np.flatnonzero(self._thresholded):
                self._run_one(int(k), probs[:, k].tolist(), start_frame, decisions, keyed)
        bg = self.background
        if bg is not None and probs.shape[0]:
            on = ~np.delete(decisions, bg, axis=1).any(axis=1)
            decisions[:, bg] = on
            change = np.flatnonzero(np.diff(np.concatenate([[False], on]).astype(np.int8)))
            start = -1
            for i in change.tolist():
                t = start_frame + i
                if on[i]:
                    start = t
                    keyed.append((t, 1, bg, Transition(bg, "onset", t, t, float(probs[i, bg]), t)))
                else:
                    keyed.append((t, 1, bg, Transition(bg, "offset", t, start, float(probs[i, bg]), t)))
        keyed.sort(key=lambda x: x[:3])
        return decisions, [x[3] for x in keyed]

    def _run_one(self, k: int, column: list[float], t0: int, decisions: np.ndarray, keyed: list) -> None:
        """Non-exclusive :meth:`run` of one behaviour (exactly :meth:`step`'s rule for column ``k``)."""
        on, off = float(self.on[k]), float(self.off[k])
        need_on, need_off = int(self.min_on[k]), int(self.min_off[k])
        active, run, run_start, bout_start = False, 0, 0, -1
        out = decisions[:, k]
        for i, x in enumerate(column):
            t = t0 + i
            if (x <= off) if active else (x > on):  # NaN is False both ways: it breaks the run
                run += 1
                if run == 1:
                    run_start = t
                if run >= (need_off if active else need_on):
                    run = 0
                    if active:
                        keyed.append((t, 0, k, Transition(k, "offset", t, bout_start, x, run_start)))
                        bout_start = -1
                    else:
                        keyed.append((t, 0, k, Transition(k, "onset", t, run_start, x, run_start)))
                        bout_start = run_start
                    active = not active
            else:
                run = 0
            out[i] = active

    def _run_exclusive(self, probs: np.ndarray, t0: int, decisions: np.ndarray, keyed: list) -> None:
        """Exclusive :meth:`run` (exactly :meth:`_step_exclusive` frame by frame), scalar loop."""
        nan_rows = np.isnan(probs).any(axis=1).tolist()
        best_all = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1).tolist()
        rows = probs.tolist()
        on, off = self.on.tolist(), self.off.tolist()
        need_on, need_off = self.min_on.tolist(), self.min_off.tolist()
        thresholded = self._thresholded.tolist()
        bg = self.background
        cur, chal, chal_len, chal_start, off_len, off_start, bout_start = -1, -1, 0, 0, 0, 0, -1
        for i, row in enumerate(rows):
            t = t0 + i
            if nan_rows[i]:
                chal, chal_len, off_len = -1, 0, 0
            else:
                best = best_all[i]
                cand = best if (thresholded[best] and row[best] > on[best]) else -1
                if cand >= 0 and cand != cur:
                    if cand == chal:
                        chal_len += 1
                    else:
                        chal, chal_len, chal_start = cand, 1, t
                else:
                    chal, chal_len = -1, 0
                if cur >= 0:
                    if row[cur] <= off[cur] or (bg is not None and best == bg):
                        off_len += 1
                        if off_len == 1:
                            off_start = t
                    else:
                        off_len = 0
                if chal >= 0 and chal_len >= need_on[chal]:
                    if cur >= 0:  # the offset first, then the onset, as step() reports them
                        keyed.append((t, 0, -1, Transition(cur, "offset", t, bout_start, row[cur], chal_start)))
                    keyed.append((t, 0, 0, Transition(chal, "onset", t, chal_start, row[chal], chal_start)))
                    cur, bout_start = chal, chal_start
                    chal, chal_len, off_len = -1, 0, 0
                elif cur >= 0 and off_len >= need_off[cur]:
                    keyed.append((t, 0, cur, Transition(cur, "offset", t, bout_start, row[cur], off_start)))
                    cur, bout_start, off_len = -1, -1, 0
            if cur >= 0:
                decisions[i, cur] = True


# ---------------------------------------------------------------------------------------------------------------
# Bouts and DeepEthogram's offline cleanup
# ---------------------------------------------------------------------------------------------------------------


def bouts(binary: np.ndarray | Sequence[bool]) -> list[tuple[int, int]]:
    """The runs of ones in a 1-D binary trace, as ``(start, stop)`` with ``stop`` exclusive.

    Example:
        >>> bouts([0, 1, 1, 0, 1])
        [(1, 3), (4, 5)]
    """
    x = np.asarray(binary).astype(bool)
    if x.ndim != 1:
        raise ValueError(f"bouts: expected a 1-D trace, got shape {x.shape}")
    edges = np.diff(np.concatenate([[False], x, [False]]).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, stops)]


def _flip_runs_of_length(trace: np.ndarray, value: bool, length: int) -> None:
    """Flip, in place, every run of ``value`` exactly ``length`` long (edge runs included, as DeepEthogram)."""
    runs = bouts(trace if value else ~trace)
    for start, stop in runs:
        if stop - start == length:
            trace[start:stop] = not value


def remove_short_bouts(trace: np.ndarray, min_bout_length: int) -> np.ndarray:
    """DeepEthogram's cleanup of one binary trace: gaps, then bouts, shorter than ``min_bout_length`` go.

    For L = 1, 2, ..., min_bout_length - 1: first gaps of exactly L frames inside (or at the edge of) a
    behaviour are filled, then bouts of exactly L frames are removed. It looks at the future, so it is for
    offline reports only.

    Args:
        trace: (T,) binary decisions.
        min_bout_length: shortest bout kept (1 = unchanged).

    Returns:
        (T,) bool, a new array.
    """
    out = np.asarray(trace).astype(bool).copy()
    for length in range(1, int(min_bout_length)):
        _flip_runs_of_length(out, False, length)
        _flip_runs_of_length(out, True, length)
    return out


def offline_cleanup(
    values: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    min_bout_length: int | Sequence[int] = 1,
    *,
    background_index: int | None = 0,
) -> np.ndarray:
    """DeepEthogram's minimum-bout postprocessing, for offline reports (it is not causal).

    Thresholds probabilities (``p > threshold``) unless given decisions, removes short gaps and bouts per
    behaviour (:func:`remove_short_bouts`), then sets the background column to "no other behaviour on".

    Args:
        values: (T, K) float probabilities (``thresholds`` needed) or bool/int decisions.
        thresholds: (K,) thresholds for probabilities.
        min_bout_length: shortest bout kept, one number or one per behaviour.
        background_index: the background column, or None.

    Returns:
        (T, K) bool decisions.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise PostprocessError(f"offline_cleanup: expected (T, K) values, got shape {values.shape}")
    k = values.shape[1]
    if values.dtype.kind == "f":
        if thresholds is None:
            raise PostprocessError("offline_cleanup: probabilities need thresholds (or pass decisions)")
        thr = np.asarray(thresholds, dtype=np.float64)
        if thr.shape != (k,):
            raise PostprocessError(f"thresholds: expected {k} values, got shape {thr.shape}")
        decisions = values > thr
    else:
        decisions = values.astype(bool)
    lengths = np.broadcast_to(np.asarray(min_bout_length, dtype=np.int64), (k,))
    out = np.stack([remove_short_bouts(decisions[:, i], int(lengths[i])) for i in range(k)], axis=1)
    if background_index is not None and k > 1:
        others = np.delete(out, background_index, axis=1)
        out[:, background_index] = ~others.any(axis=1)
    return out.reshape(decisions.shape)
