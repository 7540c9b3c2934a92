"""camera_adapters.settings: typed YAML settings, overrides and errors that name the key."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from camera_adapters.files import atomic_output, atomic_write_text
from camera_adapters.settings import (
    ConfigError,
    load_settings,
    load_settings_file,
    parse_overrides,
    save_settings,
)


@dataclass
class Optim:
    lr: float = 1e-3
    schedule: Literal["plateau", "cosine"] = "plateau"


@dataclass
class Run:
    name: str = "run"
    epochs: int = 10
    size: tuple[int, int] = (128, 128)
    behaviours: list[str] = field(default_factory=list)
    weights: str | None = None
    amp: bool = True
    optim: Optim = field(default_factory=Optim)


def test_defaults_data_and_overrides_combine():
    run = load_settings(
        Run, {"epochs": 3, "optim": {"lr": "1e-4"}}, overrides=["size=[64, 96]", "optim.schedule=cosine"]
    )
    assert run.epochs == 3 and run.size == (64, 96)
    assert run.optim.lr == pytest.approx(1e-4) and run.optim.schedule == "cosine"
    assert run.weights is None and run.amp is True


@pytest.mark.parametrize(
    ("data", "overrides", "message"),
    [
        ({"epochs": "ten"}, [], "epochs: expected an integer"),
        ({"optim": {"lr": True}}, [], "optim.lr: expected a number"),
        ({"optim": {"momentum": 0.9}}, [], "optim.momentum: unknown key"),
        ({"size": [1, 2, 3]}, [], "size: expected a list of 2"),
        ({}, ["optim.schedule=linear"], "optim.schedule: expected one of"),
        ({}, ["amp=maybe"], "amp: expected true or false"),
        ({}, ["epochs"], "expected dotted.key=value"),
        ({"behaviours": "grooming"}, [], "behaviours: expected a list"),
    ],
)
def test_errors_name_the_source_and_key(data, overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(Run, data, overrides=overrides, source="my.yaml")
    assert "my.yaml" in str(err.value) or "override" in str(err.value)


def test_file_round_trip_and_bad_files(tmp_path):
    path = save_settings(load_settings(Run, {"name": "x", "behaviours": ["groom"]}), tmp_path / "run.yaml")
    again = load_settings_file(Run, path)
    assert again.name == "x" and again.behaviours == ["groom"] and again.size == (128, 128)
    (tmp_path / "bad.yaml").write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_settings_file(Run, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="not found"):
        load_settings_file(Run, tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings_file(Run, tmp_path / "list.yaml")
    # Crafted files: one ConfigError naming the file, never a RecursionError or UnicodeDecodeError traceback.
    (tmp_path / "deep.yaml").write_text("epochs: " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"deep\.yaml: nested too deeply"):
        load_settings_file(Run, tmp_path / "deep.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"epochs: \xff\xfe\x00")
    with pytest.raises(ConfigError, match=r"binary\.yaml: not a UTF-8 text file"):
        load_settings_file(Run, tmp_path / "binary.yaml")
    with pytest.raises(ConfigError, match="nested too deeply"):
        load_settings(Run, {}, overrides=["epochs=" + "[" * 100_000 + "]" * 100_000])


def test_parse_overrides_nests_and_parses_values():
    assert parse_overrides(["a.b=1", "a.c=[1, 2]", "d=null", "e=text"]) == {
        "a": {"b": 1, "c": [1, 2]},
        "d": None,
        "e": "text",
    }


def test_atomic_writes_leave_the_old_file_on_failure(tmp_path):
    target = atomic_write_text(tmp_path / "keep.txt", "old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_atomic_writes_give_normal_permissions(tmp_path):
    import os

    target = atomic_write_text(tmp_path / "shared.txt", "x")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(target, 0o640)
    atomic_write_text(target, "y")
    assert target.stat().st_mode & 0o777 == 0o640
