"""Training config: presets load, inheritance, overrides, clear errors for unknown keys and wrong types."""

from __future__ import annotations

import pytest
import yaml

from camera_adapters.settings import ConfigError
from deg_train.training.config import PRESETS_DIR, TrainConfig, list_presets, load_config, read_preset, save_config


def test_every_preset_loads_and_names_itself():
    names = list_presets()
    assert {"defaults", "deg_f", "deg_m", "deg_s", "tiny", "demo_cpu"} <= set(names)
    for name in names:
        cfg = load_config(name)
        assert isinstance(cfg, TrainConfig)
        if name != "defaults":
            assert cfg.preset == name
    assert load_config("deg_m").feature.arch == "resnet50"
    assert load_config("deg_s").flow.flow_sparsity is True
    assert load_config("tiny").data.size == (32, 32)


def test_defaults_yaml_matches_the_dataclass_defaults_and_comments_every_key():
    assert load_config("defaults") == TrainConfig()
    text = (PRESETS_DIR / "defaults.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":") or lines[i - 1].rstrip().endswith(","):
            continue  # comments, section headers and continued flow mappings
        # Every key: value line is directly below a comment line.
        assert lines[i - 1].strip().startswith("#"), f"defaults.yaml line {i + 1} has no comment: {line}"


def test_preset_inherits_from_its_base(tmp_path):
    data = read_preset("tiny")
    assert "base" not in data
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: tiny\nflow:\n  lr: 0.5\n")
    cfg = load_config(mine)
    assert cfg.flow.lr == 0.5 and cfg.data.size == (32, 32) and cfg.flow.arch == "TinyMotionNet"
    child = tmp_path / "child.yaml"
    child.write_text("base: mine.yaml\nfeature:\n  epochs: 7\n")  # a path relative to the file
    cfg = load_config(child)
    assert cfg.flow.lr == 0.5 and cfg.feature.epochs == 7


def test_overrides_apply_on_top():
    cfg = load_config(
        "deg_f",
        ["flow.epochs=2", "data.size=[64, 96]", "sequence.params.tgm={num_layers: 2}", "postprocess.hysteresis=0.1"],
    )
    assert cfg.flow.epochs == 2 and cfg.data.size == (64, 96)
    assert cfg.sequence.model_params()["num_layers"] == 2 and cfg.sequence.model_params()["n_filters"] == 8
    assert cfg.postprocess.hysteresis == 0.1


def test_unknown_key_wrong_type_and_bad_values_are_named():
    with pytest.raises(ConfigError, match=r"flow\.epochz: unknown key"):
        load_config("deg_f", ["flow.epochz=1"])
    with pytest.raises(ConfigError, match=r"train\.seed: expected an integer"):
        load_config("deg_f", ["train.seed=abc"])
    with pytest.raises(ConfigError, match="multiples of 16"):
        load_config("deg_f", ["data.size=[100, 104]"])
    with pytest.raises(ConfigError, match="fusion"):
        load_config("deg_f", ["feature.fusion=sum"])
    with pytest.raises(ConfigError, match=r"unknown preset 'deg_q'.*deg_f"):
        load_config("deg_q")


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: deg_f\naugment:\n  flipz: 1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: augment\.flipz: unknown key"):
        load_config(bad)


def test_base_cycle_is_an_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = load_config("deg_s", ["postprocess.min_duration_frames=[1, 2, 3]", "feature.params={a: 1}"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert yaml.safe_load(path.read_text())["schema_version"] == 1
    assert load_config(path) == cfg


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("schema_version: 99\n")
    with pytest.raises(ConfigError, match="upgrade deg-train"):
        load_config(path)


@pytest.mark.parametrize("name", ["deg_f", "deg_m", "deg_s", "deg_live_cpu"])
def test_presets_match_the_model_presets(name):
    from deg_train.models.presets import get_preset

    ref = get_preset(name)
    cfg = load_config(name)
    assert cfg.flow.arch.lower() == ref["flow"]["arch"]
    assert cfg.data.frames_per_window == ref["frames_per_window"]
    assert cfg.feature.arch == ref["feature"]["backbone"]
    assert cfg.feature.fusion == ref["feature"]["fusion"]
    assert cfg.feature.flow_fusion_weight == ref["feature"]["flow_fusion_weight"]
    assert cfg.feature.dropout == ref["feature"]["dropout"]
    assert cfg.feature.width == ref["feature"]["width"]
    assert cfg.sequence.arch == ref["sequence"]["arch"]
    params = cfg.sequence.model_params()
    for key, value in ref["sequence"].items():
        if key not in ("arch", "causal"):
            assert params[key] == value, key
    for key, value in ref["flow"]["loss"].items():
        assert getattr(cfg.flow, key) == value, key
    for key, value in ref["flow"].items():
        if key not in ("arch", "num_frames", "loss"):
            assert cfg.flow.params[key] == value, key
