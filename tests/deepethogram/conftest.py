"""A tiny DeepEthogram 0.5 project, built and trained by the real ``deepethogram`` package, for the parity tests.

DeepEthogram is never a dependency of ours: it lives in an environment of its own, named by ``$DEG_PEER_VENV``
(see ``../shared/peer/README.md`` for how to make one). Without it every test here is skipped with that reason.

The project is TINY (3 videos of 200 frames at 64x64, a few training steps), so building it takes a few minutes on
a small CPU. The videos are real rat sessions (``tests/data/rat_behavior``), already at the project's input size and
stored losslessly as RGB (FFV1, ``bgr0``), so the training videos' comparison measures the models alone. A fourth
video, ``unseen_a``, is added after training at its own size (320x180 H.264, as labs record): DeepEthogram decodes
it with OpenCV and resizes it with ``cv2.resize``; ours must give its numbers on it too.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from camera_adapters.video import VideoReader, resize_rgb, write_video

DATA = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
BUILD_SCRIPT = Path(__file__).with_name("build_deepethogram_project.py")
SIZE = 64
N_FRAMES = 200
BEHAVIOURS = ["background", "grooming", "genital_licking"]
SESSIONS = {"train_a": "unsessioned_03", "val_a": "unsessioned_02", "test_a": "unsessioned_04"}
SPLIT = {"train": ["train_a"], "val": ["val_a"], "test": ["test_a"]}
EXTRA = ("unseen_a", "unsessioned_05")  # added after training, at its own size (320x180): DeepEthogram resizes it


def peer_python() -> Path:
    """The peer environment's interpreter, or skip the test with the reason."""
    venv = os.environ.get("DEG_PEER_VENV")
    if not venv:
        pytest.skip(
            "DEG_PEER_VENV is not set: these tests need DeepEthogram 0.5 installed in an environment of its own "
            "(see ../shared/peer/README.md); run `make test-deepethogram DEG_PEER_VENV=/path/to/venv`"
        )
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        pytest.skip(f"DEG_PEER_VENV={venv} has no bin/python")
    return python


def write_lossless_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """``frames (N, H, W, 3) uint8`` RGB -> an FFV1 ``.avi`` holding exactly these pixels (no chroma subsampling)."""
    return write_video(path, frames, fps, codec="ffv1", pix_fmt="bgr0")


def write_h264_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    """``frames (N, H, W, 3) uint8`` RGB -> an H.264 (yuv420p) ``.mp4``, the usual lab video."""
    return write_video(path, frames, fps)


def make_sources(folder: Path) -> dict:
    """The tiny project's videos and label files (from the rat sessions), and the build spec naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    videos, labels = {}, {}
    for name, session in SESSIONS.items():
        with VideoReader(DATA / session / f"{session}.mp4") as reader:
            frames = np.stack([resize_rgb(reader[i], (SIZE, SIZE)) for i in range(N_FRAMES)])
        videos[name] = str(write_lossless_video(folder / f"{name}.avi", frames))
        with open(DATA / session / f"{session}_labels.csv") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], rows[1 : N_FRAMES + 1]
        cols = [header.index(b) for b in BEHAVIOURS[1:]]
        out = folder / f"{name}_labels.csv"
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["", *BEHAVIOURS])
            for i, row in enumerate(body):
                kept = [int(row[c]) for c in cols]
                writer.writerow([i, int(not any(kept)), *kept])
        labels[name] = str(out)
    # A video at its own size (320x180 H.264, as labs record), not trained on: DeepEthogram resizes it with OpenCV.
    with VideoReader(DATA / EXTRA[1] / f"{EXTRA[1]}.mp4") as reader:
        frames = np.stack([reader[i] for i in range(N_FRAMES)])
    extra = write_h264_video(folder / f"{EXTRA[0]}.mp4", frames)
    return {
        "extra_videos": {EXTRA[0]: str(extra)},
        "root": str(folder),
        "name": "tiny",
        "behaviours": BEHAVIOURS,
        "videos": videos,
        "labels": labels,
        "split": SPLIT,
        "size": SIZE,
        "steps": 3,
    }


def build_project(folder: Path, python: Path) -> Path:
    """Make the sources and let DeepEthogram build and train its project in ``folder``; returns the project."""
    spec = make_sources(folder / "sources")
    spec["root"] = str(folder)
    spec_file = folder / "spec.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [str(python), str(BUILD_SCRIPT), str(spec_file)], env=env, capture_output=True, text=True, check=False
    )
    (folder / "build.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(f"DeepEthogram failed to build the tiny project; see {folder / 'build.log'}:\n{tail}")
    return folder / "tiny_deepethogram"


@pytest.fixture(scope="session")
def deepethogram_project(cache_dir) -> Path:
    """A built and trained tiny DeepEthogram project (a fresh copy per session; built once per cache key)."""
    python = peer_python()
    prebuilt = os.environ.get("DEG_DEEPETHOGRAM_TINY")  # a project this fixture built before (to iterate faster)
    if prebuilt and (Path(prebuilt) / "BUILT").is_file():
        return Path(prebuilt)
    key = hashlib.sha256(BUILD_SCRIPT.read_bytes() + Path(__file__).read_bytes()).hexdigest()[:12]
    folder = cache_dir(f"deepethogram_tiny_{key}")
    project = folder / "tiny_deepethogram"
    if not (project / "BUILT").exists():
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        project = build_project(folder, python)
    return project
