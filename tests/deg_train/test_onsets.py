"""Event-level scoring and the postprocessing chosen on validation for it (deg_train.evaluation.onsets)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deg_live.postprocess import CausalPostprocessor, PostprocessSettings
from deg_train.evaluation.metrics import compute_metrics, match_onsets, onset_metrics
from deg_train.evaluation.onsets import choose_postprocess
from deg_train.training.losses import MaskedSoftmaxCE, exclusive_targets, init_softmax_bias_from_counts


def test_onsets_match_one_to_one_within_the_tolerance():
    assert match_onsets(np.array([1, 5, 9]), np.array([0, 6, 20]), tolerance=2) == 2
    assert match_onsets(np.array([0, 1, 2]), np.array([1]), tolerance=5) == 1  # one labelled onset, one match
    assert match_onsets(np.array([10]), np.array([3]), tolerance=6) == 0


def test_onset_metrics_count_false_onsets_per_minute_and_delays():
    # 1500 frames at 25 fps = 1 minute; one labelled bout at 100..199.
    labels = np.zeros((1500, 1), np.int8)
    labels[100:200] = 1
    decisions = np.zeros((1500, 1), bool)
    decisions[102:200] = True  # detected 2 frames late
    decisions[500:510] = True  # a false onset
    decisions[800:805] = True  # another
    m = onset_metrics(decisions, labels, fps=25, tolerance=3)
    assert m["onsets_labelled"][0] == 1 and m["onsets_predicted"][0] == 3 and m["onsets_matched"][0] == 1
    assert m["onset_precision"][0] == pytest.approx(1 / 3) and m["onset_recall"][0] == 1
    assert m["false_onsets_per_min"][0] == pytest.approx(2.0)
    assert m["onset_delay_p50"][0] == 2 and m["onset_delay_p90"][0] == 2
    # Outside the tolerance the late onset does not match.
    assert onset_metrics(decisions, labels, fps=25, tolerance=1)["onsets_matched"][0] == 0


def test_macro_f1_over_present_and_over_all_behaviours():
    labels = np.zeros((100, 3), np.int8)
    labels[:, 0] = 1
    labels[10:30, 1] = 1
    labels[10:30, 0] = 0
    decisions = labels.astype(bool).copy()
    report = compute_metrics(labels, decisions=decisions, behaviours=["background", "a", "b"], fps=25)
    # b is absent and never predicted: present-only macro 1.0, all-behaviours macro counts it as 0.
    assert report.macro_f1_present == pytest.approx(1.0)
    assert report.macro_f1_all == pytest.approx(0.5)
    assert report.values["onset_f1"][1] == 1.0 and np.isnan(report.values["onset_f1"][2])


def test_postprocessing_chosen_on_validation_removes_flicker_onsets():
    # Probabilities of one behaviour in 16-frame bouts, with single-frame flickers that cross any threshold.
    rng = np.random.default_rng(0)
    videos, labels = [], []
    for _ in range(3):
        y = np.zeros((800, 2), np.int8)
        for start in range(40, 800, 120):
            y[start : start + 40, 1] = 1
        y[:, 0] = 1 - y[:, 1]
        p1 = np.where(y[:, 1] == 1, 0.8, 0.1) + rng.normal(0, 0.05, 800)
        flicker = rng.random(800) < 0.04
        p1[flicker] = 0.95
        p = np.clip(np.stack([1 - p1, p1], axis=1), 0, 1)
        videos.append(p)
        labels.append(y)
    names = ["background", "grooming"]
    plain = compute_metrics(
        labels,
        decisions=[CausalPostprocessor([0.5, 0.5]).run(p)[0] for p in videos],
        behaviours=names,
        fps=25,
    )
    choice = choose_postprocess(videos, labels, names, PostprocessSettings(), fps=25, max_delay=3)
    chosen = compute_metrics(
        labels,
        decisions=[CausalPostprocessor(choice.thresholds, choice.settings).run(p)[0] for p in videos],
        behaviours=names,
        fps=25,
    )
    assert chosen.values["onsets_predicted"][1] < plain.values["onsets_predicted"][1] / 2
    assert chosen.values["onset_f1"][1] > 0.9 > plain.values["onset_f1"][1]
    assert choice.settings.min_duration_frames >= 2 and choice.delay_p50 <= 3
    assert choice.objective >= max(t["objective"] for t in choice.tried) - 1e-12


def test_softmax_loss_is_cross_entropy_on_one_hot_rows_and_masks_the_rest():
    logits = torch.randn(6, 4)
    targets = torch.tensor(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [-1, -1, -1, -1], [0, 1, 1, 0]], dtype=torch.int8
    )
    assert exclusive_targets(targets).tolist() == [0, 1, 3, -100, -100, -100]
    loss = MaskedSoftmaxCE(gamma=0.0, label_smoothing=0.0)(logits, targets)
    assert loss.item() == pytest.approx(F.cross_entropy(logits[:3], torch.tensor([0, 1, 3])).item(), rel=1e-5)
    # Class weights weigh rows by their class; focal loss is smaller than plain CE.
    weighted = MaskedSoftmaxCE(class_weight=[1.0, 3.0, 1.0, 1.0], gamma=0.0, label_smoothing=0.0)(logits, targets)
    per_row = F.cross_entropy(logits[:3], torch.tensor([0, 1, 3]), reduction="none")
    assert weighted.item() == pytest.approx(((per_row * torch.tensor([1.0, 3.0, 1.0])).sum() / 5).item(), rel=1e-5)
    assert MaskedSoftmaxCE(gamma=2.0, label_smoothing=0.0)(logits, targets) < loss
    # Everything masked: zero, with a gradient path.
    assert MaskedSoftmaxCE()(logits, torch.full((6, 4), -1, dtype=torch.int8)).item() == 0.0


def test_softmax_bias_starts_at_the_class_priors():
    layer = torch.nn.Linear(3, 3)
    init_softmax_bias_from_counts(layer, [60, 30, 10])
    probs = torch.softmax(layer.bias.detach(), dim=0)
    assert probs.tolist() == pytest.approx([0.6, 0.3, 0.1], rel=1e-5)
