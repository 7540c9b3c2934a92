"""Helpers of the labelling studio's tests: real rat videos, model outputs beside them, the Qt event loop.

A module of its own (not conftest.py): test modules import it by a name no other test folder uses."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil
import time
from pathlib import Path

import numpy as np

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


def pump(qapp, seconds: float = 0.05, until=lambda: False) -> bool:
    """Run the event loop for up to ``seconds`` or until ``until()``; returns ``until()``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        qapp.processEvents()
        time.sleep(0.005)
    qapp.processEvents()
    return bool(until())
