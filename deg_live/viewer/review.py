"""Data for reviewing a finished recording or an offline result in the viewer (no Qt, no deg_train).

Two sources, both turned into one :class:`ReviewData` indexed by *video frame*:

- a recorded session folder (``deg-live run --record DIR``, see :mod:`deg_live.recorder`):
  ``<session>.mp4``, ``<session>_outputs.h5`` (group ``deg_live``: ``P``, ``decisions``, ``frame_index`` and,
  once finalised, ``video_frame``), ``<session>_frames.csv`` (video row -> camera frame index);
- an offline result: a ``<video>_outputs.h5`` in DeepEthogram's layout (groups holding ``P``, ``thresholds``,
  ``class_names``; ``deg-train infer``) beside its video. Decisions are the dataset ``decisions`` if the group
  has one, else the causal postprocessor (:class:`deg_live.postprocess.CausalPostprocessor`, default settings)
  run on ``P`` with the group's thresholds — what live would have decided.

Labels (``<video>_labels.csv``, DeepEthogram's layout: an index column, then one 0/1/-1 column per behaviour)
are picked up beside the video when they exist and drawn against the predictions; :mod:`deg_live.labels` reads
them (the same reader deg_train uses).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camera_adapters.errors import UserFacingError
from deg_live.labels import LabelError, read_labels
from deg_live.outputs import OutputsError, list_groups, read_predictions
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v")


class ReviewError(UserFacingError, ValueError):
    """A session folder, outputs file, video or label file the viewer cannot review."""


@dataclass
class ReviewData:
    """Predictions (and labels) of one video, one row per video frame.

    Attributes:
        behaviours: K names.
        probabilities: ``(N, K) float32``; NaN where no prediction exists (a frame inference skipped).
        decisions: ``(N, K) bool``.
        thresholds: ``(K,) float32``.
        labels: ``(N, K) int8`` in {1, 0, -1}, or None.
        video: the video file, or None.
        fps: frames per second of the video (for the time axis).
        title: shown in the window title.
    """

    behaviours: list[str]
    probabilities: np.ndarray
    decisions: np.ndarray
    thresholds: np.ndarray
    labels: np.ndarray | None
    video: Path | None
    fps: float
    title: str

    @property
    def n_frames(self) -> int:
        """N."""
        return int(self.probabilities.shape[0])


def _video_info(video: Path) -> tuple[int, float]:
    from camera_adapters.video import VideoError, probe

    try:
        info = probe(video, exact=False)
    except VideoError as err:
        raise ReviewError(str(err)) from None
    return int(info.n_frames), float(info.fps or 30.0)


def read_label_csv(path: str | os.PathLike, behaviours: list[str], n_frames: int) -> np.ndarray:
    """Read a DeepEthogram label CSV into ``(n_frames, K) int8`` columns in ``behaviours`` order.

    The file is read and checked by :func:`deg_live.labels.read_labels` (the one label reader); for review it is
    then fitted to the predictions: behaviours the file lacks are -1 (unlabelled), rows beyond the file are -1,
    rows beyond ``n_frames`` are ignored, columns the predictions lack are not drawn.

    Raises:
        ReviewError: the file cannot be read or is not a valid label file (the message says where).
    """
    try:
        table = read_labels(path)
    except LabelError as err:
        raise ReviewError(str(err)) from None
    labels = np.full((n_frames, len(behaviours)), -1, dtype=np.int8)
    rows = min(n_frames, table.n_frames)
    for k, name in enumerate(behaviours):
        if name in table.behaviours:
            labels[:rows, k] = table.values[:rows, table.behaviours.index(name)]
    return labels


def _labels_beside(video: Path | None, outputs: Path) -> Path | None:
    stems = []
    if video is not None:
        stems.append(video.with_suffix(""))
    name = outputs.name
    if name.endswith("_outputs.h5"):
        stems.append(outputs.with_name(name[: -len("_outputs.h5")]))
    for stem in stems:
        candidate = stem.with_name(stem.name + "_labels.csv")
        if candidate.exists():
            return candidate
    return None


def load_outputs(
    outputs: str | os.PathLike,
    video: str | os.PathLike | None = None,
    *,
    group: str | None = None,
    labels: str | os.PathLike | None = None,
) -> ReviewData:
    """Load an offline ``<video>_outputs.h5`` (and its video and labels) for review.

    Args:
        outputs: the outputs file.
        video: the video; default: ``<video>.mp4`` (or another common suffix) beside the outputs file.
        group: the HDF5 group (model); default: the only one, else the newest sequence model's.
        labels: a label CSV; default: ``<video>_labels.csv`` beside the video if it exists.

    Raises:
        ReviewError: missing or inconsistent files.
    """
    outputs = Path(outputs)
    if not outputs.exists():
        raise ReviewError(f"{outputs}: outputs file not found")
    if video is None and outputs.name.endswith("_outputs.h5"):
        stem = outputs.name[: -len("_outputs.h5")]
        found = [outputs.with_name(stem + s) for s in VIDEO_SUFFIXES if outputs.with_name(stem + s).exists()]
        video = found[0] if found else None
    video = Path(video) if video is not None else None
    if video is not None and not video.exists():
        raise ReviewError(f"{video}: video not found")
    try:
        read = read_predictions(outputs, group)
    except OutputsError as err:
        raise ReviewError(str(err)) from None
    probs, behaviours, thresholds, group_name = read.probabilities, read.behaviours, read.thresholds, read.group
    decisions = read.rows.get("decisions")
    if decisions is None or decisions.shape != probs.shape:
        settings = PostprocessSettings(background_index=0 if behaviours[0] == "background" else None)
        decisions, _ = CausalPostprocessor(thresholds, settings).run(np.nan_to_num(probs))
    fps = 30.0
    if video is not None:
        n_video, fps = _video_info(video)
        probs, decisions = _fit_rows(probs, decisions, n_video)
    label_path = Path(labels) if labels is not None else _labels_beside(video, outputs)
    label_values = None if label_path is None else read_label_csv(label_path, behaviours, probs.shape[0])
    return ReviewData(
        behaviours=behaviours,
        probabilities=probs,
        decisions=np.asarray(decisions, dtype=bool),
        thresholds=np.asarray(thresholds, dtype=np.float32),
        labels=label_values,
        video=video,
        fps=fps,
        title=f"{outputs.name} [{group_name}]",
    )


def _fit_rows(probs: np.ndarray, decisions: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (NaN / False) or cut predictions to the video's ``n`` frames."""
    m, k = probs.shape
    if m == n:
        return probs, decisions
    p = np.full((n, k), np.nan, dtype=np.float32)
    d = np.zeros((n, k), dtype=bool)
    p[: min(m, n)] = probs[:n]
    d[: min(m, n)] = decisions[:n]
    return p, d


def load_session(directory: str | os.PathLike, *, labels: str | os.PathLike | None = None) -> ReviewData:
    """Load a recorded session folder (``deg-live run --record``) for review, one row per video frame.

    Processed frames are placed at their video row (``video_frame``, or the frames CSV, or in order); a video
    row inference skipped holds the decision of the last processed frame before it and has no probability.

    Args:
        directory: the session folder ``DIR/<session>/``.
        labels: a label CSV for the session video; default: ``<session>_labels.csv`` in the folder if it exists.

    Raises:
        ReviewError: the folder has no outputs file, or it cannot be read.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ReviewError(f"{directory}: not a session folder")
    session = directory.name
    outputs = directory / f"{session}_outputs.h5"
    if not outputs.exists():
        found = sorted(directory.glob("*_outputs.h5"))
        if not found:
            raise ReviewError(f"{directory}: no <session>_outputs.h5 here; is this a deg-live recording?")
        outputs = found[0]
        session = outputs.name[: -len("_outputs.h5")]
    video = directory / f"{session}.mp4"
    try:
        read = read_predictions(outputs, "deg_live" if "deg_live" in list_groups(outputs) else None)
    except OutputsError as err:
        raise ReviewError(f"cannot read the recording's outputs: {err}") from None
    probs, behaviours, thresholds = read.probabilities, read.behaviours, read.thresholds
    decisions = read.rows.get("decisions", probs >= thresholds)
    frame_index, video_frame = read.rows.get("frame_index"), read.rows.get("video_frame")
    m = len(probs)
    if video_frame is None or len(video_frame) != m:
        video_frame = _rows_from_frames_csv(directory / f"{session}_frames.csv", frame_index, m)
    if video.exists():
        n, fps = _video_info(video)
    else:
        video, fps = None, 30.0
        n = int(video_frame.max()) + 1 if m else 0
    n = max(n, 1)
    rows = np.full(n, -1, dtype=np.int64)
    keep = (video_frame >= 0) & (video_frame < n)
    rows[video_frame[keep]] = np.nonzero(keep)[0]
    held = rows.copy()
    np.maximum.accumulate(held, out=held)  # skipped rows hold the last processed decision
    p = np.full((n, len(behaviours)), np.nan, dtype=np.float32)
    d = np.zeros((n, len(behaviours)), dtype=bool)
    p[rows >= 0] = probs[rows[rows >= 0]]
    d[held >= 0] = decisions[held[held >= 0]]
    if labels is None and (directory / f"{session}_labels.csv").exists():
        labels = directory / f"{session}_labels.csv"
    label_values = None if labels is None else read_label_csv(labels, behaviours, n)
    return ReviewData(behaviours, p, d, thresholds, label_values, video, fps, f"session {session}{_status(directory)}")


def _status(directory: Path) -> str:
    """`` (interrupted)`` and the like for the title, from the session's summary.

    A killed recording is reported as interrupted (:func:`deg_live.recorder.read_recording_info`).
    """
    from deg_live.recorder import RecorderError, read_recording_info

    if not (directory / f"{directory.name}_recording.json").exists():
        return ""
    try:
        status = read_recording_info(directory).get("status")
    except RecorderError:
        return " (summary unreadable)"
    return "" if status == "complete" else f" ({status})"


def _rows_from_frames_csv(path: Path, frame_index: np.ndarray | None, m: int) -> np.ndarray:
    """Video rows of the processed frames from the recorder's frames CSV (camera frame index -> video row)."""
    if frame_index is None:
        return np.arange(m)
    if path.exists():
        mapping: dict[int, int] = {}
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                try:
                    mapping[int(row["frame_index"])] = int(row["video_frame"])
                except (KeyError, ValueError):
                    continue
        if mapping:
            return np.asarray([mapping.get(int(i), -1) for i in frame_index], dtype=np.int64)
    return frame_index - frame_index.min() if m else np.zeros(0, dtype=np.int64)
