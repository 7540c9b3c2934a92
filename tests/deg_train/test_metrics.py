"""Metrics against scikit-learn and hand-computed answers, threshold picking, bouts, and the report."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

from deg_train.evaluation.metrics import (
    MetricsReport,
    average_precision,
    bout_stats,
    bouts,
    compute_metrics,
    frame_metrics,
    onset_delays,
    pick_thresholds,
    roc_auc,
    threshold_search,
)

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"


def rat_labels(session: str) -> tuple[list[str], np.ndarray]:
    frame = pd.read_csv(RAT / session / f"{session}_labels.csv", index_col=0)
    return list(frame.columns), frame.to_numpy()


def noisy_probs(labels: np.ndarray, seed: int = 0, noise: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(labels * 0.6 + rng.random(labels.shape) * noise + 0.05, 0, 1)


def test_frame_metrics_match_sklearn_with_masking():
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 4)) < 0.2).astype(int)
    labels[rng.random(labels.shape) < 0.1] = -1  # unlabelled frames, per behaviour
    probs = noisy_probs(labels.clip(0))
    decisions = probs > 0.5
    m = frame_metrics(decisions, labels, probs)
    for k in range(4):
        v = labels[:, k] >= 0
        y, d, p = labels[v, k], decisions[v, k], probs[v, k]
        assert m["f1"][k] == pytest.approx(f1_score(y, d))
        assert m["precision"][k] == pytest.approx(precision_score(y, d))
        assert m["recall"][k] == pytest.approx(recall_score(y, d))
        assert m["auroc"][k] == pytest.approx(roc_auc_score(y, p))
        assert m["ap"][k] == pytest.approx(average_precision_score(y, p))
        assert m["frames"][k] == v.sum() and m["positives"][k] == y.sum()


def test_auroc_and_ap_match_sklearn_with_ties():
    rng = np.random.default_rng(5)
    for _ in range(20):
        y = rng.random(300) < rng.uniform(0.05, 0.6)
        scores = np.round(rng.random(300) * 0.5 + y * 0.3, 1)  # many ties
        assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores))
        assert average_precision(y, scores) == pytest.approx(average_precision_score(y, scores))


def test_undefined_metrics_are_nan():
    labels = np.array([[0, 1], [0, 1], [0, 0]])
    decisions = np.zeros((3, 2), dtype=bool)
    m = frame_metrics(decisions, labels, np.zeros((3, 2)))
    assert np.isnan(m["f1"][0]) and np.isnan(m["precision"][0]) and np.isnan(m["recall"][0])
    assert np.isnan(m["auroc"][0]) and np.isnan(m["ap"][0])
    assert m["f1"][1] == 0.0 and m["recall"][1] == 0.0 and np.isnan(m["precision"][1])


def test_pick_thresholds_finds_the_known_optimum():
    rng = np.random.default_rng(1)
    t = 2000
    labels = np.zeros((t, 2), dtype=int)
    labels[: t // 4, 0] = 1
    labels[: t // 2, 1] = 1
    probs = np.empty((t, 2))
    # behaviour 0: negatives <= 0.365, positives >= 0.375: only 0.37 on a 0.01 grid separates them
    probs[:, 0] = np.where(labels[:, 0] == 1, rng.uniform(0.375, 1.0, t), rng.uniform(0.0, 0.365, t))
    probs[0, 0], probs[t // 4, 0] = 0.375, 0.365
    # behaviour 1: overlapping classes; the optimum is whatever brute force over the grid says
    probs[:, 1] = np.clip(labels[:, 1] * 0.3 + rng.normal(0.35, 0.15, t), 0, 1)
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    search = threshold_search(probs, labels, grid)
    assert search.thresholds[0] == pytest.approx(0.37) and search.f1[0] == 1.0
    brute = np.array([f1_score(labels[:, 1], probs[:, 1] > g) for g in grid])
    np.testing.assert_allclose(search.f1_curve[:, 1], brute)
    assert search.thresholds[1] == pytest.approx(grid[np.argmax(brute)])
    np.testing.assert_allclose(pick_thresholds(probs, labels), search.thresholds)


def test_pick_thresholds_masks_and_flags_behaviours_without_positives():
    labels = np.array([[1, 0], [0, 0], [-1, 0], [1, -1]])
    probs = np.array([[0.8, 0.9], [0.3, 0.9], [0.99, 0.1], [0.7, 0.2]])
    with pytest.warns(RuntimeWarning, match="rearing"):
        thr = pick_thresholds(probs, labels, behaviours=["grooming", "rearing"])
    assert thr[1] == 0.5
    assert 0.3 <= thr[0] < 0.7  # the masked 0.99 frame is ignored
    assert threshold_search(probs, labels).no_positives.tolist() == [False, True]


def test_bouts_and_onset_delays_by_hand():
    assert bouts([0, 1, 1, 0, 0, 1]) == [(1, 3), (5, 6)]
    assert bouts([1, 1]) == [(0, 2)] and bouts([0, 0]) == []
    labelled = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 0])
    predicted = np.array([0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1])
    # bout (1,4): first overlapping prediction starts at 3 -> +2; bout (6,8): the same predicted bout (3,9)
    # starts at 3 -> -3; bout (10,11): no overlap
    np.testing.assert_array_equal(onset_delays(predicted, labelled), [2, -3])
    stats = bout_stats(predicted[:, None], labelled[:, None])
    assert stats["bouts_labelled"][0] == 3 and stats["bouts_predicted"][0] == 2
    assert stats["bout_count_error"][0] == -1 and stats["bout_count_error_rel"][0] == pytest.approx(-1 / 3)
    assert stats["bouts_detected"][0] == 2
    assert stats["onset_delay_median"][0] == pytest.approx(-0.5)


def test_videos_are_kept_apart_for_bouts():
    a = np.array([[0], [1], [1]])
    b = np.array([[1], [1], [0]])
    together = bout_stats(np.concatenate([a, b]), np.concatenate([a, b]))
    apart = bout_stats([a, b], [a, b])
    assert together["bouts_labelled"][0] == 1 and apart["bouts_labelled"][0] == 2


def test_real_labels_shifted_by_two_frames():
    names, labels = rat_labels("cage2_6_23_21_4")
    shifted = np.zeros_like(labels)
    shifted[2:] = labels[:-2]  # predictions 2 frames late
    report = compute_metrics(labels, decisions=shifted, behaviours=names)
    frame = report.to_frame()
    present = [n for n, k in zip(names, labels.sum(0)) if k > 0 and n != "background"]
    assert present
    for name in present:
        assert frame.loc[name, "onset_delay_median"] == 2.0
        assert frame.loc[name, "bout_count_error"] == 0 or labels[-2:, names.index(name)].any()
        assert frame.loc[name, "f1"] < 1.0
    assert "background" not in report.macro_behaviours
    assert report.macro["onset_delay_median"] == pytest.approx(2.0)


def test_compute_metrics_on_several_real_videos_and_the_report():
    sessions = ["cage1_6_20_22_56", "cage1_6_22_0_29", "cage1_6_23_17_5"]
    loaded = [rat_labels(s) for s in sessions]
    names = loaded[0][0]
    labels = [lab for _, lab in loaded]
    probs = [noisy_probs(lab, seed=i) for i, lab in enumerate(labels)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # some behaviours are absent from these sessions
        thresholds = pick_thresholds(probs, labels, behaviours=names)
    report = compute_metrics(labels, probs, thresholds=thresholds, behaviours=names, meta={"split": "test"})
    assert isinstance(report, MetricsReport)
    frame = report.to_frame()
    assert list(frame.index) == [*names, "macro"]
    allp, ally = np.concatenate(probs), np.concatenate(labels)
    for k, name in enumerate(names):
        if ally[:, k].sum() > 0:
            assert frame.loc[name, "f1"] == pytest.approx(f1_score(ally[:, k], allp[:, k] > thresholds[k]))
    used = [n for n in report.macro_behaviours if frame.loc[n, "f1"] == frame.loc[n, "f1"]]
    assert report.macro_f1 == pytest.approx(frame.loc[used, "f1"].mean())
    text = report.format_table()
    assert "macro" in text and "f1" in text and "grooming" in text
    data = json.loads(json.dumps(report.to_dict()))  # JSON-ready, NaN as null
    assert data["meta"] == {"split": "test"} and set(data["per_behaviour"]) == set(names)


def test_fast_enough_for_100k_frames_and_10_behaviours():
    rng = np.random.default_rng(3)
    labels = (rng.random((100_000, 10)) < 0.1).astype(np.int8)
    probs = noisy_probs(labels)
    thr = pick_thresholds(probs, labels)
    report = compute_metrics(labels, probs, thresholds=thr)
    assert report.macro_f1 > 0.5


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(np.zeros((5, 2), int), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="names"):
        compute_metrics(np.zeros((5, 2), int), np.zeros((5, 2)), behaviours=["a"])
