"""The DeepEthogram comparison's scoring (benchmarks/accuracy_vs_deepethogram.py) on synthetic arrays."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy_vs_deepethogram.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("accuracy_vs_deepethogram", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _onehot(seq, k):
    y = np.zeros((len(seq), k), dtype=np.int64)
    y[np.arange(len(seq)), seq] = 1
    return y


def test_score_stage_thresholds_from_validation_macro_present_and_all(bench):
    behaviours = ["background", "a", "b", "c"]
    # Validation: "a" and "b" present; perfect probabilities are 0.8 on positives, 0.2 elsewhere.
    val_y = _onehot([0] * 10 + [1] * 10 + [2] * 10, 4)
    val_p = np.where(val_y == 1, 0.8, 0.2)
    # Test: "a" present (perfectly predicted), "b" present (never predicted), "c" absent.
    test_y = _onehot([0] * 10 + [1] * 5 + [0] * 5 + [2] * 10, 4)
    test_p = np.where(test_y == 1, 0.8, 0.2)
    test_p[:, 2] = 0.1  # "b" below its validation threshold everywhere
    r = bench.score_stage([val_p], [val_y], [test_p], [test_y], behaviours)
    assert r["present"] == ["a", "b"]
    assert r["per_behaviour"]["a"]["f1"] == pytest.approx(1.0)
    assert r["per_behaviour"]["b"]["f1"] == pytest.approx(0.0)
    assert r["per_behaviour"]["c"]["f1"] == pytest.approx(0.0)  # absent and never predicted: counted as 0
    assert r["macro_f1_present"] == pytest.approx(0.5)  # (1 + 0) / 2
    assert r["macro_f1_all"] == pytest.approx(1 / 3, abs=1e-4)  # (1 + 0 + 0) / 3
    # without thresholds, the most probable class: "a" frames are "a", "b" frames tie and go to background
    assert r["macro_f1_argmax_present"] == pytest.approx(0.5)
    # thresholds come from validation: "a"'s is below 0.8 and at or above 0.2
    assert 0.2 <= r["per_behaviour"]["a"]["threshold"] < 0.8
    # one labelled bout of "a" (predicted once) and one of "b" (never predicted)
    assert r["bouts_labelled"] == 2
    assert r["bouts_predicted"] == 1


def test_score_stage_keeps_videos_apart_for_bouts(bench):
    behaviours = ["background", "a"]
    y = _onehot([1] * 4, 2)  # each video ends and starts inside one bout of "a"
    p = np.where(y == 1, 0.9, 0.1)
    r = bench.score_stage([p], [y], [p, p], [y, y], behaviours)
    assert r["bouts_labelled"] == 2 and r["bouts_predicted"] == 2
    assert r["macro_f1_present"] == pytest.approx(1.0)


def test_aggregate_mean_and_spread_over_seeds(bench):
    def seed(f1):
        st = {
            "macro_f1_present": f1,
            "macro_f1_all": f1 / 2,
            "val_macro_f1_present": 0.5,
            "bouts_predicted": 10,
            "bouts_labelled": 5,
            "present": ["a"],
            "per_behaviour": {"a": {"f1": f1}},
        }
        return {"stages": {"feature extractor": st}, "train_all_s": 60.0}

    agg = bench.aggregate({0: seed(0.4), 1: seed(0.6)})
    a = agg["feature extractor"]
    assert a["macro_f1_present"]["mean"] == pytest.approx(0.5)
    assert a["macro_f1_present"]["std"] == pytest.approx(np.std([0.4, 0.6], ddof=1), abs=1e-4)
    assert a["per_behaviour"]["a"]["min"] == pytest.approx(0.4)
    assert "| ours" in bench.render_table(
        {"ours": {"preset": "p", "seeds": {0: seed(0.4), 1: seed(0.6)}, "aggregate": agg}}
    )
