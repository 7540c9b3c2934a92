"""Shared fixtures for deg_train tests: small real projects built from the labelled rat sessions.

- ``rat_project`` (session-scoped): a project of four short rat sessions (1,072 frames in all, every behaviour
  present somewhere) with a split saved in DATA/split.yaml (2 train, 1 val, 1 test). Tests may build frame caches
  and training runs in it, but must not change its videos, labels, behaviours or split.
- ``fresh_rat_project`` (per test): a private copy of it, free to modify.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deg_train.project.layout import Project

RAT_DATA = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"

# Short sessions that together hold every behaviour (background only occurs in unsessioned_*).
RAT_SESSIONS = ("cage1_6_23_17_5", "cage2_6_23_17_5", "cage2_6_23_21_4", "unsessioned_05")


def rat_video(name: str) -> Path:
    """The mp4 of a rat session in tests/data/rat_behavior."""
    return RAT_DATA / name / f"{name}.mp4"


def rat_labels(name: str) -> Path:
    """The label CSV of a rat session in tests/data/rat_behavior."""
    return RAT_DATA / name / f"{name}_labels.csv"


def make_rat_project(path: Path, sessions=RAT_SESSIONS, *, split: bool = True) -> Project:
    """A new project at ``path`` with the given rat sessions and their labels (and a saved split)."""
    project = Project.init(path, "rats")
    for name in sessions:
        project.add_video(rat_video(name), labels=rat_labels(name))
    if split:
        project.make_split(fractions=(0.5, 0.25, 0.25), seed=0)
    return project


@pytest.fixture(scope="session")
def rat_data() -> Path:
    """tests/data/rat_behavior: one folder per session with <session>.mp4 and <session>_labels.csv."""
    return RAT_DATA


@pytest.fixture(scope="session")
def rat_project_builder():
    """``make_rat_project(path, sessions=RAT_SESSIONS, split=True) -> Project`` for tests that need their own."""
    return make_rat_project


@pytest.fixture(scope="session")
def rat_project(tmp_path_factory) -> Project:
    """A read-only project of four short rat sessions with labels and a saved split (see module docstring)."""
    return make_rat_project(tmp_path_factory.mktemp("rat_project") / "rats")


@pytest.fixture
def fresh_rat_project(rat_project, tmp_path) -> Project:
    """A private, modifiable copy of ``rat_project`` (without its frame caches)."""
    target = tmp_path / "rats"
    shutil.copytree(rat_project.root, target, symlinks=True, ignore=shutil.ignore_patterns("cache"))
    return Project.open(target)
