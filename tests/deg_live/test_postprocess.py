"""Causal postprocessing: known answers on hand-made traces, step == run, causality, and DeepEthogram's cleanup."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camera_adapters.settings import ConfigError
from deg_live.postprocess import (
    CausalPostprocessor,
    PostprocessError,
    PostprocessSettings,
    Transition,
    bouts,
    offline_cleanup,
    remove_short_bouts,
)

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"


def rat_labels(session: str = "cage1_6_23_17_5") -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(RAT / session / f"{session}_labels.csv", index_col=0)
    return list(frame.columns), frame.to_numpy()


def trace(s: str) -> np.ndarray:
    return np.array([c == "1" for c in s])


def no_bg(**kw) -> PostprocessSettings:
    return PostprocessSettings(background_index=None, **kw)


def test_defaults_without_background_are_plain_thresholding():
    rng = np.random.default_rng(0)
    probs = rng.random((500, 4))
    thr = np.array([0.2, 0.5, 0.7, 0.9])
    decisions, transitions = CausalPostprocessor(thr, no_bg()).run(probs)
    np.testing.assert_array_equal(decisions, probs > thr)
    # Transitions are exactly the edges of the decisions.
    onsets = sorted((t.behaviour, t.frame_index) for t in transitions if t.kind == "onset")
    expected = sorted((k, a) for k in range(4) for a, _ in bouts(decisions[:, k]))
    assert onsets == expected


def test_min_duration_hysteresis_and_min_off_on_a_known_trace():
    p = np.array([0.1, 0.6, 0.7, 0.4, 0.6, 0.6, 0.6, 0.45, 0.35, 0.5, 0.3, 0.2, 0.9])
    settings = no_bg(hysteresis=0.2, min_duration_frames=3, min_off_frames=2)
    decisions, transitions = CausalPostprocessor([0.5], settings).run(p[:, None], start_frame=100)
    # frames 1-2 above 0.5 but only 2 in a row: no onset. Frames 4,5,6 above: onset decided at 6, bout from 4.
    # off threshold 0.3: frame 7 (0.45), 8 (0.35), 9 (0.5) are above it, so ON continues; frames 10 (0.3) and
    # 11 (0.2) are <= 0.3 -> offset decided at 11, change began at 10. Frame 12 is a single frame above: no onset.
    expected = np.zeros(len(p), dtype=bool)
    expected[6:11] = True
    np.testing.assert_array_equal(decisions[:, 0], expected)
    assert transitions == [
        Transition(0, "onset", 106, 104, 0.6, 104),
        Transition(0, "offset", 111, 104, 0.2, 110),
    ]


def test_per_behaviour_settings():
    p = np.tile(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0])[:, None], (1, 2))
    settings = no_bg(min_duration_frames=[1, 3], min_off_frames=[2, 1])
    decisions, _ = CausalPostprocessor([0.5, 0.5], settings).run(p)
    np.testing.assert_array_equal(decisions[:, 0], trace("01111100"))
    np.testing.assert_array_equal(decisions[:, 1], trace("00011000"))


def test_exclusive_background_is_on_when_nothing_else_is():
    p = np.array([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.1], [0.9, 0.1, 0.7], [0.9, 0.9, 0.9]])
    decisions, transitions = CausalPostprocessor([0.99, 0.5, 0.5], PostprocessSettings()).run(p)
    np.testing.assert_array_equal(
        decisions.astype(int), [[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
    )  # background's own probability and threshold are ignored
    assert transitions[0] == Transition(0, "onset", 0, 0, 0.9, 0)
    assert np.array_equal(decisions[:, 0], ~decisions[:, 1:].any(1))


def test_non_exclusive_background_is_thresholded():
    p = np.array([[0.9, 0.9], [0.1, 0.1]])
    decisions, _ = CausalPostprocessor([0.5, 0.5], PostprocessSettings(exclusive_background=False)).run(p)
    np.testing.assert_array_equal(decisions, [[True, True], [False, False]])


def test_nan_breaks_runs_and_keeps_the_decision():
    p = np.array([0.9, 0.9, np.nan, 0.9, 0.9, np.nan, 0.1, 0.1])[:, None]
    decisions, _ = CausalPostprocessor([0.5], no_bg(min_duration_frames=3, min_off_frames=2)).run(p)
    # the NaN at 2 restarts the count: 3,4 are only two frames, so nothing turns on
    assert not decisions.any()
    p = np.array([0.9, np.nan, 0.1, np.nan, 0.1, 0.1])[:, None]
    decisions, _ = CausalPostprocessor([0.5], no_bg(min_off_frames=2)).run(p)
    np.testing.assert_array_equal(decisions[:, 0], trace("111110"))


@pytest.mark.parametrize(
    "settings",
    [
        PostprocessSettings(),
        PostprocessSettings(hysteresis=0.15, min_duration_frames=4, min_off_frames=3),
        PostprocessSettings(hysteresis=[0.0, 0.1, 0.3], min_duration_frames=[1, 2, 5], background_index=None),
    ],
)
def test_step_loop_equals_run(settings):
    rng = np.random.default_rng(1)
    probs = np.clip(np.cumsum(rng.normal(0, 0.15, (400, 3)), axis=0) % 1.0, 0, 1)
    pp = CausalPostprocessor([0.5, 0.4, 0.6], settings)
    decisions, transitions = pp.run(probs, start_frame=7)
    pp.step(probs[0])  # dirty the state: run() and reset() must start afresh
    pp.reset()
    stepped, events = [], []
    for t in range(len(probs)):
        d, tr = pp.step(probs[t], t + 7)
        stepped.append(d)
        events.extend(tr)
    np.testing.assert_array_equal(np.array(stepped), decisions)
    assert events == transitions
    assert len(transitions) > 10


def test_changing_the_future_never_changes_the_past():
    rng = np.random.default_rng(2)
    probs = rng.random((300, 4))
    settings = PostprocessSettings(hysteresis=0.2, min_duration_frames=3, min_off_frames=2)
    pp = CausalPostprocessor([0.6, 0.5, 0.5, 0.7], settings)
    base_d, base_tr = pp.run(probs)
    for t in (0, 17, 150, 298):
        changed = probs.copy()
        changed[t + 1 :] = rng.random(changed[t + 1 :].shape)
        d, tr = pp.run(changed)
        np.testing.assert_array_equal(d[: t + 1], base_d[: t + 1])
        assert [x for x in tr if x.frame_index <= t] == [x for x in base_tr if x.frame_index <= t]
        if t < 250:
            assert not np.array_equal(d, base_d)  # the future did change, so the test can fail


def test_real_labels_as_probabilities_give_onsets_delayed_by_min_duration():
    names, labels = rat_labels()
    n = 3
    settings = PostprocessSettings(min_duration_frames=n, min_off_frames=2)
    decisions, transitions = CausalPostprocessor([0.5] * len(names), settings).run(labels.astype(float))
    for k in range(1, len(names)):
        expected = [(a, a + n - 1) for a, b in bouts(labels[:, k]) if b - a >= n]
        got = [(t.bout_start_frame, t.frame_index) for t in transitions if t.behaviour == k and t.kind == "onset"]
        assert got == expected, names[k]
    assert sum(t.kind == "onset" for t in transitions if t.behaviour > 0) > 3
    np.testing.assert_array_equal(decisions[:, 0], ~decisions[:, 1:].any(1))


def test_settings_validation():
    with pytest.raises(PostprocessError, match="min_duration_frames"):
        CausalPostprocessor([0.5, 0.5], PostprocessSettings(min_duration_frames=[1, 2, 3]))
    with pytest.raises(PostprocessError, match="hysteresis"):
        PostprocessSettings(hysteresis=-0.1)
    with pytest.raises(PostprocessError, match="min_off_frames"):
        PostprocessSettings(min_off_frames=0)
    with pytest.raises(PostprocessError, match="thresholds"):
        CausalPostprocessor([0.5, 1.5])
    with pytest.raises(PostprocessError, match="background_index"):
        CausalPostprocessor([0.5], PostprocessSettings(background_index=3))
    with pytest.raises(PostprocessError, match="shape"):
        CausalPostprocessor([0.5, 0.5], no_bg()).step([0.1, 0.2, 0.3])
    with pytest.raises(ConfigError, match="unknown key"):
        PostprocessSettings.from_dict({"hysterisis": 0.1})
    s = PostprocessSettings.from_dict({"hysteresis": 0.1, "min_duration_frames": [1, 2], "background_index": None})
    assert PostprocessSettings.from_dict(s.to_dict()) == s


def test_remove_short_bouts_follows_deepethogram():
    # DeepEthogram's docstring example with its bout_length 2 (ours: min_bout_length 3): gaps first, then bouts.
    out = remove_short_bouts(trace("000111001111111011000010"), 3)
    np.testing.assert_array_equal(out, trace("000111111111111111000000"))
    # edge runs count too (gaps are filled before bouts are removed); min_bout_length 1 changes nothing
    np.testing.assert_array_equal(remove_short_bouts(trace("1100111"), 3), trace("1111111"))
    np.testing.assert_array_equal(remove_short_bouts(trace("1101111"), 3), trace("1111111"))
    np.testing.assert_array_equal(remove_short_bouts(trace("1000111"), 3), trace("0000111"))
    np.testing.assert_array_equal(remove_short_bouts(trace("0001110"), 2), trace("0001111"))
    np.testing.assert_array_equal(remove_short_bouts(trace("0111011"), 2), trace("1111111"))
    np.testing.assert_array_equal(remove_short_bouts(trace("0101"), 1), trace("0101"))


def test_offline_cleanup_thresholds_cleans_and_fills_background():
    probs = np.zeros((10, 3))
    probs[2:7, 1] = 0.9
    probs[4, 1] = 0.2  # a 1-frame gap, filled
    probs[7, 2] = 0.9  # a 1-frame bout, removed
    out = offline_cleanup(probs, [0.5, 0.5, 0.5], min_bout_length=2)
    np.testing.assert_array_equal(out[:, 1], trace("0011111000"))
    assert not out[:, 2].any()
    np.testing.assert_array_equal(out[:, 0], ~out[:, 1:].any(1))
    # decisions in, per-behaviour lengths, no background
    dec = probs > 0.5
    out = offline_cleanup(dec, min_bout_length=[1, 1, 1], background_index=None)
    np.testing.assert_array_equal(out, dec)
    with pytest.raises(PostprocessError, match="thresholds"):
        offline_cleanup(probs)


# ---------------------------------------------------------------------------------------------------------------
# Exclusive mode: mutually exclusive behaviours
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(min_duration_frames=3, min_off_frames=2, hysteresis=0.1),
        dict(min_duration_frames=[1, 2, 3, 4], min_off_frames=[4, 3, 2, 1], hysteresis=[0.0, 0.1, 0.2, 0.3]),
        dict(background_index=None),
    ],
)
def test_exclusive_mode_never_has_two_behaviours_on(settings):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(4, 0.3), size=600)  # softmax-like: rows sum to 1
    pp = CausalPostprocessor([0.3, 0.2, 0.4, 0.25], PostprocessSettings(exclusive=True, **settings))
    decisions, transitions = pp.run(probs)
    on = decisions.sum(axis=1)
    if settings.get("background_index", 0) is None:
        assert (on <= 1).all()
    else:
        assert (on == 1).all()  # exactly one class, background included
    # Live, frame by frame, gives the same decisions and transitions.
    pp.reset()
    live = []
    for t, p in enumerate(probs):
        d, changes = pp.step(p, t)
        assert (d == decisions[t]).all()
        live.extend(changes)
    assert live == transitions


def test_exclusive_mode_with_zero_thresholds_is_the_argmax():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.full(5, 0.5), size=400)
    decisions, _ = CausalPostprocessor(np.zeros(5), PostprocessSettings(exclusive=True)).run(probs)
    assert (decisions.argmax(axis=1) == probs.argmax(axis=1)).all()


def test_exclusive_switch_waits_for_the_minimum_duration_and_is_one_transition_pair():
    # background, a, b: a for 5 frames, then b for 5 frames.
    probs = np.array([[0.1, 0.8, 0.1]] * 5 + [[0.1, 0.2, 0.7]] * 5)
    settings = PostprocessSettings(exclusive=True, min_duration_frames=2, min_off_frames=3)
    decisions, transitions = CausalPostprocessor([0.5, 0.5, 0.5], settings).run(probs)
    assert decisions[:, 1].tolist() == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0]
    assert decisions[:, 2].tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    switch = [tr for tr in transitions if tr.frame_index == 6]
    assert [(tr.behaviour, tr.kind, tr.change_frame) for tr in switch] == [(1, "offset", 5), (2, "onset", 5)]


def test_exclusive_hysteresis_keeps_the_current_behaviour():
    # a is on; then its probability dips to 0.45 (below on 0.5, above off 0.3) while nothing else qualifies.
    probs = np.array([[0.1, 0.8, 0.1]] * 3 + [[0.3, 0.45, 0.25]] * 3 + [[0.8, 0.1, 0.1]] * 2)
    settings = PostprocessSettings(exclusive=True, hysteresis=0.2)
    decisions, _ = CausalPostprocessor([0.5, 0.5, 0.5], settings).run(probs)
    assert decisions[:, 1].tolist() == [1, 1, 1, 1, 1, 1, 0, 0]
    assert decisions[:, 0].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]


def test_exclusive_mode_needs_an_exclusive_background():
    with pytest.raises(PostprocessError, match="exclusive_background"):
        PostprocessSettings(exclusive=True, exclusive_background=False)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_run_equals_the_step_loop(exclusive, seed):
    # run() is a fast scalar implementation; the live step loop is the reference.
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    probs = rng.dirichlet(np.full(k, 0.4), size=300) if exclusive else rng.random((300, k))
    probs[rng.random(300) < 0.03, int(rng.integers(k))] = np.nan  # NaN frames break runs
    settings = PostprocessSettings(
        exclusive=exclusive,
        hysteresis=[float(x) for x in rng.choice([0.0, 0.1, 0.3], k)],
        min_duration_frames=[int(x) for x in rng.integers(1, 4, k)],
        min_off_frames=[int(x) for x in rng.integers(1, 5, k)],
        background_index=None if seed % 3 == 0 else 0,
    )
    pp = CausalPostprocessor(rng.uniform(0.1, 0.7, k), settings)
    decisions, transitions = pp.run(probs, start_frame=100)
    pp.reset()
    steps, live = [], []
    for t, p in enumerate(probs):
        d, changes = pp.step(p, 100 + t)
        steps.append(d)
        live.extend(changes)
    assert (np.array(steps) == decisions).all()
    assert live == transitions
