"""Training config: presets load, inheritance, overrides, clear errors for unknown keys and wrong types."""

from __future__ import annotations

import dataclasses
import re
import sys
from importlib import resources
from pathlib import Path

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
    # The sequence architectures' numbers live in the YAML only; every other default is in both, held equal here.
    defaults = load_config("defaults")
    assert set(defaults.sequence.params) == {"tgm", "tcn", "gru"}
    assert dataclasses.replace(defaults, sequence=dataclasses.replace(defaults.sequence, params={})) == TrainConfig()
    assert load_config(None) == defaults
    text = (PRESETS_DIR / "defaults.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":") or lines[i - 1].rstrip().endswith(","):
            continue  # comments, section headers and continued flow mappings
        # Every key: value line is directly below a comment line.
        assert lines[i - 1].strip().startswith("#"), f"defaults.yaml line {i + 1} has no comment: {line}"


@pytest.mark.parametrize("name", list_presets())
def test_every_key_of_every_preset_is_commented(name):
    lines = (PRESETS_DIR / f"{name}.yaml").read_text().splitlines()
    assert lines[0].startswith("#"), f"{name}.yaml: starts without a comment saying what the preset is for"
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":") or lines[i - 1].rstrip().endswith(","):
            continue  # comments, section headers and continued flow mappings
        if line.startswith(("base:", "preset:", "schema_version:")):
            continue  # said by the header comment
        assert lines[i - 1].strip().startswith("#") or " #" in line, f"{name}.yaml line {i + 1} has no comment: {line}"


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


@pytest.mark.parametrize(
    ("override", "key", "allowed"),
    [
        ("flow.epochs=-3", "flow.epochs", "an integer from 1"),
        ("flow.epochs=0", "flow.epochs", "an integer from 1"),
        ("flow.batch_size=0", "flow.batch_size", "an integer from 1"),
        ("flow.lr=-1", "flow.lr", r"a number in \(0, 10\]"),
        ("flow.lr=.nan", "flow.lr", r"a number in \(0, 10\]"),
        ("feature.lr=0", "feature.lr", r"a number in \(0, 10\]"),
        ("feature.steps_per_epoch=0", "feature.steps_per_epoch", "an integer from 1 .*or null"),
        ("feature.width=-0.5", "feature.width", r"\(0, 4\]"),
        ("feature.label_smoothing=0.7", "feature.label_smoothing", r"\[0, 0.5\)"),
        ("sequence.batch_size=-2", "sequence.batch_size", "an integer from 1"),
        ("sequence.chunk_length=0", "sequence.chunk_length", "an integer from 1"),
        ("sequence.weight_decay=-0.1", "sequence.weight_decay", r"\[0, 10\]"),
        ("augment.lr_flip=1.5", "augment.lr_flip", r"\[0, 1\]"),
        ("augment.grayscale=-0.1", "augment.grayscale", r"\[0, 1\]"),
        ("data.frames_per_window=1000", "data.frames_per_window", "from 2 to 256"),
        ("data.size=[100, 96]", "data.size", "multiples of 16"),
        ("train.num_workers=-1", "train.num_workers", "from 0"),
        ("train.grad_clip=0", "train.grad_clip", r"\(0, inf\), or null"),
        ("train.early_stop_patience=0", "train.early_stop_patience", "from 1"),
    ],
)
def test_values_out_of_range_name_the_key_and_the_allowed_range(override, key, allowed):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)} = .* is out of range; allowed: .*{allowed}"):
        load_config("deg_f", [override])


def test_a_bad_value_stops_the_command_before_any_run_folder_exists(rat_project, capsys):
    """``flow.epochs=-3`` used to "finish" an untrained run, ``flow.batch_size=0`` to leave a half-made folder."""
    from deg_train.cli import main

    before = sorted(p.name for p in rat_project.models_dir.iterdir()) if rat_project.models_dir.exists() else []
    for override in ("flow.epochs=-3", "flow.batch_size=0", "flow.lr=-1"):
        assert main(["train-flow", "-p", str(rat_project.root), "--preset", "tiny", override]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and override.split("=")[0] in err[0] and "allowed:" in err[0] and "Traceback" not in err[0]
    after = sorted(p.name for p in rat_project.models_dir.iterdir()) if rat_project.models_dir.exists() else []
    assert after == before


def test_presets_ship_inside_the_package():
    # What an installed wheel holds, found through importlib.resources (no repository needed) ...
    packaged = resources.files("deg_train").joinpath("configs", "presets")
    names = sorted(p.name[: -len(".yaml")] for p in packaged.iterdir() if p.name.endswith(".yaml"))
    assert names == list_presets() and "demo_fast" in names
    assert load_config("demo_fast").preset == "demo_fast"
    # ... the same files as the top-level configs/presets users see in a checkout ...
    root = Path(__file__).resolve().parents[2]
    assert sorted(p.stem for p in (root / "configs" / "presets").glob("*.yaml")) == names
    # ... and the build's package data takes every one of them (and the documented project defaults).
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["deg_train"]
    shipped = {p.relative_to(root / "deg_train").as_posix() for g in globs for p in (root / "deg_train").glob(g)}
    assert {f"configs/presets/{n}.yaml" for n in names} | {"configs/project.yaml"} <= shipped
