"""deg_train.evaluation.evaluate: thresholds on validation, the printed table, report files and PNG plots, and `infer`.

Runs are made from small randomly initialised models saved as real checkpoints (no training): this tests the
evaluation, not the learning.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from deg_live.outputs import list_groups, read_outputs
from deg_train.cli import main
from deg_train.evaluation.evaluate import pick_run_thresholds
from deg_train.inference.extract import load_encoder
from deg_train.inference.predict import read_thresholds
from deg_train.inference.videos import infer_videos
from deg_train.models.checkpoints import mark_done, new_run_dir, save_checkpoint
from deg_train.models.registry import create_model

FEATURE_KWARGS = {
    "flow_generator": "tinymotionnet",
    "backbone": "resnet18",
    "num_frames": 3,
    "width": 0.25,
    "flow_generator_kwargs": {"width": 0.25},
}


def _config(causal=True):
    return {
        "data": {"size": [32, 32], "frames_per_window": 3},
        "feature": {"arch": "resnet18"},
        "sequence": {"arch": "tgm", "causal": causal, "latent_name": None},
        "postprocess": {
            "hysteresis": 0.05,
            "min_duration_frames": 2,
            "min_off_frames": 1,
            "exclusive_background": False,
            "min_bout_length": 3,
        },
        # These tests check the configured postprocessing is used as it is; test_onsets.py and the test below
        # cover choosing it on validation.
        "events": {"choose_on_validation": False},
    }


@pytest.fixture(scope="module")
def runs(rat_project_builder, tmp_path_factory):
    """A project of 4 rat sessions with a feature run, a causal and a centred sequence run (random weights)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    project = rat_project_builder(tmp_path_factory.mktemp("evaluate") / "rats")
    behaviours = project.behaviours
    k = len(behaviours)
    feature = create_model("two_stream", "hidden_two_stream", num_classes=k, **FEATURE_KWARGS)
    feature_run = new_run_dir(project.models_dir, "feature", "resnet18")
    save_checkpoint(
        feature_run / "checkpoint_best.pt",
        model=feature,
        stage="feature",
        arch="hidden_two_stream",
        model_kwargs={"num_classes": k, **FEATURE_KWARGS},
        behaviours=behaviours,
        config=_config(),
        epoch=0,
    )
    mark_done(feature_run, {})
    seq_runs = []
    for causal in (True, False):
        kwargs = {
            "input_dim": feature.num_features,
            "num_classes": k,
            "filter_length": 5,
            "num_layers": 2,
            "num_features": 16,
            "causal": causal,
        }
        model = create_model("sequence", "tgm", **kwargs)
        run = new_run_dir(project.models_dir, "sequence", "tgm" if causal else "tgm-centred")
        save_checkpoint(
            run / "checkpoint_best.pt",
            model=model,
            stage="sequence",
            arch="tgm",
            model_kwargs=kwargs,
            behaviours=behaviours,
            config=_config(causal),
            epoch=0,
            extra={"feature_run": str(feature_run), "latent_name": "resnet18"},  # as runs made before deg_train_ names
        )
        pd.DataFrame({"epoch": [0, 1], "train_loss": [0.5, 0.4], "val_loss": [0.6, 0.5], "val_f1": [0.2, 0.3]}).to_csv(
            run / "metrics.csv", index=False
        )
        mark_done(run, {})
        seq_runs.append(run)
    return project, feature_run, seq_runs[0], seq_runs[1]


def test_evaluate_writes_table_report_and_plots(runs, capsys):
    project, _, causal, centred = runs
    code = main(
        [
            "evaluate",
            "--project",
            str(project.root),
            "--sequence-run",
            str(causal),
            "--compare",
            str(centred),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "macro" in out and "f1" in out and "onset_delay_median" in out
    assert "Causality costs" in out
    for name in project.behaviours:
        assert name in out
    folder = causal / "evaluation"
    for name in (
        "report.md",
        "report.json",
        "metrics_causal.csv",
        "metrics_offline_cleanup.csv",
        "metrics_features_only.csv",
        "metrics_centred.csv",
        "comparison.csv",
        "training_curves.png",
        "f1_per_behaviour.png",
    ):
        assert (folder / name).is_file(), name
    pngs = list(folder.glob("*.png"))
    assert len(pngs) == 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert any(p.name.startswith("ethogram_") for p in pngs)
    report = json.loads((folder / "report.json").read_text())
    assert report["part"] == "test" and set(report["reports"]) >= {"causal", "offline_cleanup", "centred"}
    table = pd.read_csv(folder / "metrics_causal.csv", index_col=0)
    assert list(table.index) == [*project.behaviours, "macro"]
    assert {"f1", "precision", "recall", "auroc", "ap", "onset_delay_median", "bout_count_error"} <= set(table.columns)
    # thresholds were picked on validation and saved with the postprocessing settings
    saved = read_thresholds(causal)
    assert saved["behaviours"] == project.behaviours and saved["picked_on"] == project.load_split().val
    assert saved["postprocess"]["min_duration_frames"] == 2


def test_thresholds_maximise_validation_f1(runs):
    """Against a brute-force search: every grid threshold tried, F1 counted frame by frame on the pooled
    labelled validation frames; the chosen threshold has the best F1 (the lowest such threshold on ties)."""
    from deg_train.evaluation.evaluate import run_scores
    from deg_train.inference.predict import load_sequence

    project, _, causal, _ = runs
    thresholds = pick_run_thresholds(project, causal, force=True)
    assert thresholds.shape == (len(project.behaviours),)
    val = [n for n in project.load_split().val if project.video(n).labels_path is not None]
    scores = run_scores(project, load_sequence(causal), val)
    probs = np.concatenate([s.probabilities for s in scores]).astype(np.float64)
    labels = np.concatenate([s.labels for s in scores])
    grid = [round(0.01 * i, 2) for i in range(1, 100)]
    checked = 0
    for k, name in enumerate(project.behaviours):
        frames = [(float(p), int(y)) for p, y in zip(probs[:, k], labels[:, k]) if y >= 0]
        if not any(y == 1 for _, y in frames):
            assert thresholds[k] == pytest.approx(0.5), name  # nothing to maximise: the default
            continue

        def f1(t, frames=frames):
            tp = sum(1 for p, y in frames if p > t and y == 1)
            fp = sum(1 for p, y in frames if p > t and y == 0)
            fn = sum(1 for p, y in frames if p <= t and y == 1)
            return 2 * tp / (2 * tp + fp + fn)

        brute = {t: f1(t) for t in grid}
        best = max(brute.values())
        assert f1(float(thresholds[k])) == pytest.approx(best, abs=1e-12), name
        assert float(thresholds[k]) == pytest.approx(min(t for t, v in brute.items() if v == best)), name
        checked += 1
    assert checked >= 2  # the random model's probabilities really are searched, on several behaviours


def test_infer_writes_outputs_and_predictions_and_shards(runs, tmp_path):
    project, feature_run, causal, _ = runs
    names = [r.name for r in project.videos]
    # DeepEthogram's postprocess_and_save output (its to_csv of a DataFrame) for one video: never replaced
    theirs = tmp_path / f"{names[0]}_predictions.csv"
    pd.DataFrame(np.ones((3, len(project.behaviours)), np.int64), columns=project.behaviours).to_csv(theirs)
    before = theirs.read_bytes()
    written = []
    for i in range(2):
        written += infer_videos(project=project, sequence_run=causal, shard=f"{i}/2", out_dir=tmp_path, progress=False)
    assert sorted(v.stem for v, _ in written) == sorted(names)  # the two shards cover every video once
    assert theirs.read_bytes() == before
    assert sorted(csv.name for _, csv in written) == sorted(f"{n}_predictions_deg_train.csv" for n in names)
    for video, csv in written:
        frame = pd.read_csv(csv, index_col=0)
        assert list(frame.columns) == project.behaviours
        assert set(np.unique(frame.to_numpy())) <= {0, 1}
        h5 = tmp_path / f"{video.stem}_outputs.h5"
        assert list_groups(h5) == ["deg_train_resnet18", "deg_train_tgm"]  # never DeepEthogram's own names
        assert len(frame) == read_outputs(h5, "deg_train_tgm").n_frames
    # a video file outside the project, runs given as paths
    video = project.video(names[0]).video_path
    out = tmp_path / "single"
    [(_video, csv)] = infer_videos(
        videos=[str(video)], feature_run=feature_run, sequence_run=causal, out_dir=out, progress=False
    )
    assert csv == out / f"{video.stem}_predictions_deg_train.csv" and csv.is_file()
    assert load_encoder(feature_run).latent_name == "deg_train_resnet18"


def test_postprocessing_chosen_on_validation_for_onsets(runs):
    project, _, causal, _ = runs
    from deg_train.evaluation.evaluate import pick_run_thresholds
    from deg_train.inference.predict import load_sequence

    seq = load_sequence(causal)
    seq.meta["config"]["events"] = {"choose_on_validation": True, "max_onset_delay_frames": 2.0}
    thresholds = pick_run_thresholds(project, seq, force=True)
    saved = read_thresholds(causal)
    assert saved["thresholds"] == pytest.approx(thresholds.tolist())
    assert saved["events"]["max_onset_delay_frames"] == 2.0 and saved["events"]["candidates_tried"] > 10
    assert saved["postprocess"] == seq.postprocess.to_dict()
    assert saved["postprocess"]["min_duration_frames"] in (1, 2, 3)
