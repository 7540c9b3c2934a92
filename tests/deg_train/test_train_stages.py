"""The three training stages on real rat frames with the tiny preset: each runs and writes its run directory."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from deg_live.labels import LabelTable
from deg_train.models.checkpoints import BEST, LAST, build_model_from_checkpoint, latest_run, load_checkpoint
from deg_train.training.config import load_config
from deg_train.training.stages import StageError, train_features, train_flow, train_sequence
from deg_train.training.trainer import read_metrics

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    return load_config("tiny")


@pytest.fixture(scope="module")
def trained(rat_project, tiny, tmp_path_factory):
    """Flow, feature and sequence runs of the tiny preset on the rat project (shared by the tests below)."""
    flow = train_flow(rat_project, tiny)
    feature = train_features(rat_project, tiny)  # finds the flow run by itself
    sequence = train_sequence(rat_project, tiny)
    return {"flow": flow, "feature": feature, "sequence": sequence}


def _check_run(run, stage, arch_in_name):
    assert run.name.split("_")[2] == stage and arch_in_name in run.name
    for name in ("config.yaml", LAST, BEST, "metrics.csv", "train.log", "done.json"):
        assert (run / name).is_file(), f"{run.name}: {name} missing"
    rows = read_metrics(run)
    assert len(rows) == 1 and rows[0]["epoch"] == 0
    assert math.isfinite(rows[0]["train_loss"]) and math.isfinite(rows[0]["val_loss"])
    return rows[0]


def test_flow_stage(trained, tiny):
    row = _check_run(trained["flow"], "flow", "TinyMotionNet")
    assert {"val_photometric", "val_ssim", "val_smoothness"} <= set(row)
    model, meta = build_model_from_checkpoint(trained["flow"])
    assert meta["stage"] == "flow" and model.num_frames == tiny.data.frames_per_window
    saved = yaml.safe_load((trained["flow"] / "config.yaml").read_text())
    assert saved["preset"] == "tiny" and saved["data"]["size"] == [32, 32]


def test_feature_stage_records_its_flow_run(trained, rat_project):
    row = _check_run(trained["feature"], "feature", "resnet18")
    assert "val_f1" in row and any(k.startswith("val_f1_") for k in row)
    ckpt = load_checkpoint(trained["feature"] / LAST)
    assert ckpt["extra"]["flow_run"] == str(trained["flow"])
    assert yaml.safe_load((trained["feature"] / "config.yaml").read_text())["feature"]["flow_run"] == str(
        trained["flow"]
    )
    assert ckpt["behaviours"][0] == "background" and ckpt["behaviours"] == rat_project.behaviours
    model, _meta = build_model_from_checkpoint(trained["feature"], expect_stage="feature")
    # The frozen flow generator inside is exactly the flow run's.
    flow, _ = build_model_from_checkpoint(trained["flow"])
    for name, tensor in flow.state_dict().items():
        assert torch.equal(model.flow_generator.state_dict()[name], tensor), name
    x = torch.randn(2, 3, 3, 32, 32)
    assert model(x)["logits"].shape == (2, len(rat_project.behaviours))
    assert latest_run(rat_project, "feature") == trained["feature"]


def test_sequence_stage_records_its_feature_run(trained, rat_project):
    row = _check_run(trained["sequence"], "sequence", "tgm")
    assert "val_f1" in row
    ckpt = load_checkpoint(trained["sequence"] / LAST)
    assert ckpt["extra"]["feature_run"] == str(trained["feature"])
    assert ckpt["extra"]["latent_name"] == "deg_train_resnet18"
    assert ckpt["model_kwargs"]["causal"] is True
    model, _ = build_model_from_checkpoint(trained["sequence"], expect_stage="sequence")
    d = ckpt["model_kwargs"]["input_dim"]
    assert model(torch.randn(1, 20, d)).shape == (1, 20, len(rat_project.behaviours))
    # Features were extracted for the training videos.
    for name in ckpt["extra"]["train_videos"]:
        assert rat_project.video(name).outputs_path.is_file()


def test_sequence_fine_tunes_from_a_finished_run_and_refuses_what_does_not_fit(trained, rat_project, tiny):
    """sequence.weights: a new run starts from the weights of a finished one (the studio's retrain)."""
    import dataclasses

    start = load_checkpoint(trained["sequence"] / BEST)["state_dict"]
    cfg = dataclasses.replace(
        tiny, sequence=dataclasses.replace(tiny.sequence, weights=str(trained["sequence"]), lr=1e-12)
    )
    run = train_sequence(rat_project, cfg)
    assert run != trained["sequence"]
    # A learning rate of 1e-12 leaves the started-from weights where they were: the run began from them.
    tuned = load_checkpoint(run / LAST)["state_dict"]
    for name, tensor in start.items():
        assert torch.allclose(tuned[name].float(), tensor.float(), atol=1e-6), name
    assert yaml.safe_load((run / "config.yaml").read_text())["sequence"]["weights"] == str(trained["sequence"])
    # Another stage's checkpoint, or one trained for a different architecture, is one clear error.
    for wrong, match in ((trained["feature"], "feature checkpoint"), (trained["sequence"], "shape mismatch")):
        bad = dataclasses.replace(tiny, sequence=dataclasses.replace(tiny.sequence, weights=str(wrong)))
        if match == "shape mismatch":
            params = {**tiny.sequence.params, "tgm": {**tiny.sequence.params["tgm"], "num_features": 7}}
            bad = dataclasses.replace(bad, sequence=dataclasses.replace(bad.sequence, params=params))
        with pytest.raises(StageError, match=f"sequence.weights: .*{match}"):
            train_sequence(rat_project, bad)


def test_resume_a_finished_run_is_a_no_op_and_wrong_stage_is_refused(trained, rat_project, tiny):
    before = (trained["flow"] / LAST).read_bytes()
    assert train_flow(rat_project, tiny, run_dir=trained["flow"]) == trained["flow"]
    assert (trained["flow"] / LAST).read_bytes() == before
    with pytest.raises(StageError, match="flow run"):
        train_features(rat_project, tiny, run_dir=trained["flow"])


def test_commands_train_resume_and_visualise_flows(fresh_rat_project, tmp_path, capsys):
    from deg_train.cli import main

    project = str(fresh_rat_project.root)
    assert main(["train-flow", "-p", project, "--preset", "tiny", "--device", "cpu"]) == 0
    run = latest_run(fresh_rat_project, "flow")
    assert run is not None and str(run) in capsys.readouterr().out
    # Resuming with more epochs continues the same run from its saved config.
    assert main(["train-flow", "-p", project, "--resume", str(run), "flow.epochs=2"]) == 0
    assert [r["epoch"] for r in read_metrics(run)] == [0, 1]
    assert yaml.safe_load((run / "config.yaml").read_text())["flow"]["epochs"] == 2
    # Flows next to frames, as PNG and mp4.
    out = tmp_path / "viz"
    name = fresh_rat_project.video_names[0]
    assert main(["flow-viz", "-p", project, "--video", name, "--out", str(out), "--frames", "12"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{name}_flows_0-11.mp4", f"{name}_flows_0-11.png"]
    from camera_adapters.video import probe

    info = probe(out / f"{name}_flows_0-11.mp4")
    assert info.n_frames == 12 and info.width == 2 * info.height  # frame | flow


def test_command_errors_are_one_line(fresh_rat_project, capsys):
    from deg_train.cli import main

    project = str(fresh_rat_project.root)
    assert main(["train-flow", "-p", project, "--preset", "tiny", "flow.epochz=1"]) == 2
    err = capsys.readouterr().err
    assert "flow.epochz: unknown key" in err and "Traceback" not in err
    assert main(["train-features", "-p", project, "--preset", "tiny", "--flow-run", "no_such_run"]) == 2
    assert "no_such_run: run directory not found" in capsys.readouterr().err
    assert main(["flow-viz", "-p", project, "--video", "nope", "--out", "x", "--run", "no_such_run"]) == 2


def test_rat_labels_train_in_exclusive_mode_with_softmax_outputs(trained, rat_project):
    # The rat sessions have exactly one behaviour per frame: detected, recorded in the runs, softmax outputs.
    exclusive, why = rat_project.exclusive_behaviours()
    assert exclusive and "detected from the labels" in why
    for stage in ("feature", "sequence"):
        ckpt = load_checkpoint(trained[stage] / LAST)
        assert ckpt["extra"]["exclusive"] is True
        assert yaml.safe_load((trained[stage] / "config.yaml").read_text())["data"]["exclusive"] is True
    from deg_live.outputs import read_outputs

    name = load_checkpoint(trained["sequence"] / LAST)["extra"]["train_videos"][0]
    group = read_outputs(rat_project.video(name).outputs_path, "deg_train_resnet18")
    assert abs(group.probabilities.sum(axis=1) - 1).max() < 1e-4  # softmax over background + behaviours


def test_multi_label_stays_the_default_where_labels_overlap(fresh_rat_project, tiny):
    project = fresh_rat_project
    name = project.video_names[0]
    table = project.load_labels(name)
    values = table.values.copy()
    values[0, :] = 0
    values[0, 1:3] = 1  # two behaviours on one frame
    project.save_labels(name, LabelTable(table.behaviours, values))
    exclusive, why = project.exclusive_behaviours()
    assert not exclusive and f"{name} frame 0 has two behaviours" in why
    # The project setting and the training config override the detection.
    project.settings.labels.exclusive = True
    assert project.exclusive_behaviours() == (True, "project setting labels.exclusive: true")
