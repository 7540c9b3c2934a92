"""Training in a DeepEthogram project honours its settings (``augs.resize``, ``augs.normalization``, ``postprocessor``)
and lists the ones it cannot, once, at the start of training and in the run's ``train.log``.

The project is the rat project with the sections DeepEthogram 0.5 writes into ``project_config.yaml``
(``augs``, ``compute``, ``postprocessor``, ``sequence``, ``train``, as in its ``project_config_default.yaml``), some
of them changed the way a lab would. Tiny preset: each stage takes seconds.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from deg_train.cli import main
from deg_train.models.checkpoints import build_model_from_checkpoint, latest_run
from deg_train.project.layout import Project
from deg_train.training.config import load_config
from deg_train.training.project_settings import is_deepethogram_project, load_project_config, not_honoured

MEAN, STD = [0.2, 0.3, 0.4], [0.1, 0.2, 0.3]


def deepethogramise(project: Project, **changes) -> Project:
    """Give ``project`` the sections DeepEthogram 0.5 keeps in project_config.yaml (its defaults, then ``changes``)."""
    config = yaml.safe_load(project.config_path.read_text())
    config.update(
        {
            "augs": {"LR": 0.5, "UD": 0.0, "brightness": 0.25, "contrast": 0.1, "crop_size": None, "degrees": 10,
                     "hue": 0.1, "saturation": 0.1, "grayscale": 0.5,
                     "normalization": {"N": 40, "mean": MEAN, "std": STD}, "pad": None, "random_resize": False,
                     "resize": [48, 48]},
            "compute": {"batch_size": 32, "distributed": False, "gpu_id": 0, "num_workers": 8},
            "postprocessor": {"type": "min_bout", "min_bout_length": 2},
            "sequence": {"filter_length": 15},
            "train": {"loss_weight_exp": 1.0},
        }
    )  # fmt: skip
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        config[section][key] = value
    project.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return Project.open(project.root)


def test_our_projects_are_left_alone(fresh_rat_project):
    assert not is_deepethogram_project(fresh_rat_project.config)
    cfg = load_project_config(fresh_rat_project, "tiny")
    assert cfg == load_config("tiny") and not_honoured(fresh_rat_project, cfg) == []


def test_project_settings_win_over_the_preset_and_overrides_win_over_the_project(fresh_rat_project):
    project = deepethogramise(fresh_rat_project)
    cfg = load_project_config(project, "tiny")
    assert list(cfg.data.size) == [48, 48] and list(cfg.data.mean) == MEAN and list(cfg.data.std) == STD
    assert cfg.postprocess.min_bout_length == [3] * len(project.behaviours)  # removes bouts <= 2: keeps >= 3
    assert not_honoured(project, cfg)[0].startswith("train.* (loss_weight_exp 1.0)")
    explicit = load_project_config(project, "tiny", ["data.size=[32, 32]", "data.mean=[0.5, 0.5, 0.5]"])
    assert list(explicit.data.size) == [32, 32] and list(explicit.data.mean) == [0.5] * 3
    lines = not_honoured(project, explicit)
    assert any(line.startswith("augs.resize [48, 48]: training at data.size [32, 32]") for line in lines)
    assert any(line.startswith("augs.normalization: training with data.mean") for line in lines)


def test_train_in_a_deepethogram_project_uses_its_size_and_normalisation(fresh_rat_project, caplog):
    project = deepethogramise(fresh_rat_project, augs__crop_size=[40, 40], augs__dali=True, augs__LR=0.0)
    config = yaml.safe_load(project.config_path.read_text())
    config["feature_extractor"] = {"arch": "resnet50"}
    project.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    root = str(project.root)
    with caplog.at_level(logging.WARNING, logger="deg_train"):
        assert main(["train-flow", "-p", root, "--preset", "tiny", "--device", "cpu"]) == 0
        assert main(["train-features", "-p", root, "--preset", "tiny", "--device", "cpu"]) == 0
    blocks = [
        r.getMessage()
        for r in caplog.records
        if "DeepEthogram settings this training does not follow" in r.getMessage()
    ]
    assert len(blocks) == 1  # once, however many stages run in the process
    block = blocks[0]
    expected_lines = (
        "augs.crop_size [40, 40]",
        "augs.dali True",
        "augs.LR 0.0: ours is augment.lr_flip 0.5",
        "train.* (loss_weight_exp 1.0)",
        "feature_extractor.arch resnet50: the preset trains resnet18",
    )
    for expected in expected_lines:
        assert expected in block
    for honoured in ("augs.resize", "augs.normalization", "compute.", "sequence.filter_length", "postprocessor"):
        assert honoured not in block

    for stage in ("flow", "feature"):
        run = latest_run(Project.open(root), stage)
        saved = yaml.safe_load((run / "config.yaml").read_text())
        assert saved["data"]["size"] == [48, 48] and saved["data"]["mean"] == MEAN and saved["data"]["std"] == STD
        assert saved["postprocess"]["min_bout_length"] == [3] * len(project.behaviours)
        assert "augs.crop_size [40, 40]" in (run / "train.log").read_text()
        model, meta = build_model_from_checkpoint(run, expect_stage=stage)
        np.testing.assert_allclose(model.input_mean.numpy(), MEAN, rtol=1e-6)
        np.testing.assert_allclose(model.input_std.numpy(), STD, rtol=1e-6)
    assert meta["extra"]["size"] == [48, 48]


@pytest.mark.parametrize("resize", [[100, 100], 90])
def test_a_size_our_models_cannot_take_is_reported_not_used(fresh_rat_project, resize):
    project = deepethogramise(fresh_rat_project, augs__resize=resize)
    cfg = load_project_config(project, "tiny")
    assert list(cfg.data.size) == [32, 32]  # the preset's
    assert any("multiples of 16" in line for line in not_honoured(project, cfg))


def test_the_sequence_stage_does_not_claim_the_preset_builds_the_feature_extractor(fresh_rat_project):
    # It trains on an existing feature run's features (possibly DeepEthogram's own, imported).
    project = deepethogramise(fresh_rat_project)
    config = yaml.safe_load(project.config_path.read_text())
    config.update({"feature_extractor": {"arch": "resnet50"}, "flow_generator": {"arch": "MotionNet"}})
    project.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = Project.open(project.root)
    cfg = load_project_config(project, "tiny")
    every_stage = not_honoured(project, cfg)
    assert any(line.startswith("feature_extractor.arch resnet50") for line in every_stage)
    assert any(line.startswith("flow_generator.arch MotionNet") for line in every_stage)
    sequence = not_honoured(project, cfg, stage="sequence")
    assert not any(".arch" in line and "sequence" not in line for line in sequence)
    assert set(sequence) < set(every_stage)


def kinetics_pretrained(project: Project) -> tuple:
    """DeepEthogram's pretrained_models folder as its download has it: a TinyMotionNet and a Kinetics-700 deg_f
    feature extractor (700-class heads), in its older hyperparameters.yaml layout, with DeepEthogram's key names."""
    import torch

    from tests.deg_train.test_weights import DEG_F_TABLE, fake_state

    state = fake_state(DEG_F_TABLE, seed=3)
    for head in ("spatial_classifier.1", "flow_classifier.1"):
        state[f"{head}.weight"] = torch.randn(700, 512)
        state[f"{head}.bias"] = torch.zeros(700)
    flow_state = {k[len("flow_generator.") :]: v for k, v in state.items() if k.startswith("flow_generator.")}
    folder = project.root / "models" / "pretrained_models"
    files = []
    for name, params, weights in (
        ("200221_115158_TinyMotionNet", {"model": "flow_generator", "flow_generator": "TinyMotionNet"}, flow_state),
        ("200415_125824_hidden_two_stream_kinetics_degf", {"model": "feature_extractor", "classifier": "resnet18"},
         state),
    ):  # fmt: skip
        run = folder / name
        run.mkdir(parents=True)
        (run / "hyperparameters.yaml").write_text(yaml.safe_dump(params))
        torch.save({"epoch": 20, "state_dict": weights, "optimizer": None}, run / "checkpoint.pt")
        files.append(run / "checkpoint.pt")
    return files[0], files[1], state


def test_pretrained_weights_are_honoured_where_the_preset_builds_their_models(fresh_rat_project):
    """flow_generator/feature_extractor.weights: pretrained (DeepEthogram's default) -> its pretrained files."""
    project = deepethogramise(fresh_rat_project)
    lines = not_honoured(project, load_project_config(project, "deg_f"))
    assert "flow_generator.weights pretrained: no pretrained TinyMotionNet (no pretrained_models folder" in "\n".join(
        lines
    )
    flow_file, feature_file, _ = kinetics_pretrained(project)
    cfg = load_project_config(project, "deg_f")
    assert cfg.flow.weights == str(flow_file) and cfg.feature.weights == str(feature_file)
    assert not any("weights pretrained" in line for line in not_honoured(project, cfg))
    # Narrower models or other clip lengths cannot take them: from scratch, and said why.
    tiny = load_project_config(project, "tiny")
    assert tiny.flow.weights is None and tiny.feature.weights is None
    lines = "\n".join(not_honoured(project, tiny))
    assert "flow_generator.weights pretrained: data.frames_per_window is 3" in lines
    assert "feature_extractor.weights pretrained: the preset's feature model is 0.25x wide" in lines
    # An explicit choice wins, and a project that asks for no pretrained weights gets none.
    explicit = load_project_config(project, "deg_f", ["feature.weights=null"])
    assert explicit.feature.weights is None and explicit.flow.weights == str(flow_file)
    assert "feature_extractor.weights pretrained: " in "\n".join(not_honoured(project, explicit))
    config = yaml.safe_load(project.config_path.read_text())
    config["feature_extractor"] = {"arch": "resnet18", "weights": None}
    project.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    project = Project.open(project.root)
    cfg = load_project_config(project, "deg_f")
    assert cfg.feature.weights is None and cfg.flow.weights == str(flow_file)
    assert not any(line.startswith("feature_extractor.weights") for line in not_honoured(project, cfg))


def test_training_starts_from_the_kinetics_feature_extractor(fresh_rat_project, caplog):
    """The Kinetics-700 model's streams load, its 700-class heads are replaced by the project's behaviours."""
    import torch

    project = deepethogramise(fresh_rat_project, augs__resize=[32, 32])
    flow_file, feature_file, state = kinetics_pretrained(project)
    root = str(project.root)
    # Full-width models on 11-frame clips take the pretrained files; a learning rate of 1e-12 leaves them as loaded.
    quick = ["feature.width=1.0", "data.frames_per_window=11", "flow.lr=1e-12", "feature.lr=1e-12", "--device", "cpu"]
    with caplog.at_level(logging.INFO, logger="deg_train"):
        assert main(["train-flow", "-p", root, "--preset", "tiny", *quick]) == 0
        assert main(["train-features", "-p", root, "--preset", "tiny", *quick]) == 0
    assert f"initial weights from {feature_file}" in caplog.text
    flow_run, run = (latest_run(Project.open(root), stage) for stage in ("flow", "feature"))
    assert yaml.safe_load((flow_run / "config.yaml").read_text())["flow"]["weights"] == str(flow_file)
    assert yaml.safe_load((run / "config.yaml").read_text())["feature"]["weights"] == str(feature_file)
    model, meta = build_model_from_checkpoint(run, expect_stage="feature")
    assert meta["behaviours"] == project.behaviours and model.spatial_head.weight.shape[0] == len(project.behaviours)
    pairs = (
        ("flow_generator.conv1.0.weight", model.flow_generator.conv1[0].weight),  # via the flow run
        ("spatial_classifier.0.conv1.weight", model.spatial_encoder.conv1.weight),
        ("flow_classifier.0.layer4.1.conv2.weight", model.flow_encoder.layer4[1].conv2.weight),
    )
    for theirs, ours in pairs:
        assert torch.allclose(ours, state[theirs], atol=1e-6), theirs


def test_train_all_in_a_deepethogram_project_leaves_its_outputs_alone(fresh_rat_project, caplog):
    """train-all end to end in a project DeepEthogram made and ran: its settings honoured, its groups untouched."""
    import h5py

    project = deepethogramise(fresh_rat_project, augs__resize=[32, 32])
    name = project.video_names[0]
    outputs = project.video(name).directory / f"{name}_outputs.h5"
    n = len(project.load_labels(name).values)
    k = len(project.behaviours)
    rng = np.random.default_rng(0)
    theirs = {"resnet18": rng.random((n, k), np.float32), "tgmj": rng.random((n, k), np.float32)}
    with h5py.File(outputs, "w") as f:  # as DeepEthogram 0.5 writes them: its datasets, no attributes
        for group, probabilities in theirs.items():
            g = f.create_group(group)
            g.create_dataset("P", data=probabilities)
            g.create_dataset("thresholds", data=np.full(k, 0.5, np.float32))
            g.create_dataset("class_names", data=[b.encode() for b in project.behaviours], dtype=h5py.string_dtype())
    with caplog.at_level(logging.WARNING, logger="deg_train"):
        code = main(["train-all", "-p", str(project.root), "--preset", "tiny", "--no-compare", "--device", "cpu"])
    assert code == 0
    assert sum("DeepEthogram settings this training does not follow" in r.getMessage() for r in caplog.records) == 1
    with h5py.File(outputs, "r") as f:
        assert set(theirs) < set(f) and all(g == "resnet18" or g == "tgmj" or g.startswith("deg_train_") for g in f)
        for group, probabilities in theirs.items():
            np.testing.assert_array_equal(f[group]["P"][:], probabilities)  # DeepEthogram's groups, as it wrote them
            assert dict(f[group].attrs) == {}
    for stage in ("flow", "feature", "sequence"):
        run = latest_run(Project.open(project.root), stage)
        assert run is not None and (run / "done.json").is_file()
        assert yaml.safe_load((run / "config.yaml").read_text())["data"]["size"] == [32, 32]  # its augs.resize
    assert (latest_run(Project.open(project.root), "sequence") / "evaluation" / "report.json").is_file()
