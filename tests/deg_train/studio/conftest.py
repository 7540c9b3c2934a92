"""Fixtures for the labelling studio's tests: real rat videos, real windows offscreen, real key and mouse events."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from camera_adapters.video import probe
from deg_live.labels import empty_labels, write_labels
from deg_live.outputs import write_outputs

RAT_DATA = Path(__file__).resolve().parents[2] / "data" / "rat_behavior"
SESSION = "cage1_6_23_17_5"  # 144 frames, 320x180, 25 fps
SESSION_B = "cage2_6_23_17_5"
BEHAVIOURS = ["background", "grooming", "rearing"]


def rat_mp4(name: str = SESSION) -> Path:
    """A real rat session video of tests/data."""
    return RAT_DATA / name / f"{name}.mp4"


def unlabelled_video(folder: Path, name: str = "a", behaviours=BEHAVIOURS, session: str = SESSION) -> Path:
    """A copy of a rat video in ``folder`` with an all-unlabelled ``<name>_labels.csv`` naming ``behaviours``."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / f"{name}.mp4"
    shutil.copy(rat_mp4(session), video)
    write_labels(empty_labels(behaviours, probe(video).n_frames), folder / f"{name}_labels.csv")
    return video


def write_model_outputs(video: Path, probabilities: np.ndarray, behaviours=BEHAVIOURS, group: str = "tgm") -> Path:
    """``<video>_outputs.h5`` with one sequence group of these probabilities (thresholds 0.5)."""
    return write_outputs(
        video.with_name(f"{video.stem}_outputs.h5"),
        group,
        logits=np.log(probabilities + 1e-6),
        probabilities=probabilities.astype(np.float32),
        thresholds=[0.5] * len(behaviours),
        behaviours=behaviours,
    )


@pytest.fixture(scope="session")
def qapp():
    from deg_live.viewer.app import qt_application

    return qt_application()


def pump(qapp, seconds: float = 0.05, until=lambda: False) -> bool:
    """Run the event loop for up to ``seconds`` or until ``until()``; returns ``until()``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        qapp.processEvents()
        time.sleep(0.005)
    qapp.processEvents()
    return bool(until())


@pytest.fixture
def studio(qapp):
    """``open(workspace_or_path, **kwargs) -> StudioWindow``: a shown window (closed after the test)."""
    from deg_train.studio.window import StudioWindow
    from deg_train.studio.workspace import Workspace

    windows = []

    def open_(target, *, project=None, **kwargs):
        ws = target if isinstance(target, Workspace) else Workspace.open(project, target)
        kwargs.setdefault("confirm", lambda _q: True)
        kwargs.setdefault("autosave_s", 3600)
        window = StudioWindow(ws, **kwargs)
        window.show()
        pump(qapp, 0.05)
        window.activateWindow()
        window.setFocus()
        pump(qapp, 0.02)
        windows.append(window)
        return window

    yield open_
    for w in windows:
        w.confirm = lambda _q: False
        w.close()
    pump(qapp, 0.01)
