"""Colour statistics of videos, kept in a DeepEthogram project's ``augs.normalization`` as DeepEthogram keeps them.

DeepEthogram 0.5's ``add_video_to_project`` measures each new video (``zscore.get_video_statistics``: every 10th
frame from frame 0, RGB scaled to [0, 1], the mean and population standard deviation of each channel over all those
pixels, ``N`` = frames measured), writes them to ``DATA/<video>/stats.yaml`` and folds them into the project's
``augs.normalization`` with an N-weighted running average of the means and of the stds
(``zscore.update_project_with_normalization``). Its trained models are normalised with that; ``deg-train add`` on
a DeepEthogram project does the same (:func:`write_video_stats`, :func:`fold_normalization`), so the project stays
what DeepEthogram would have made of it. numpy, PyAV and YAML only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from camera_adapters.files import atomic_write_text
from camera_adapters.video import VideoReader

#: DeepEthogram measures every STRIDE-th frame.
STRIDE = 10


def video_statistics(path: str | os.PathLike, stride: int = STRIDE) -> dict[str, Any]:
    """``{"mean": [3], "std": [3], "N": frames measured}`` of a video, as DeepEthogram's ``get_video_statistics``.

    Float64 sums over every ``stride``-th frame (from frame 0) of RGB / 255; std is the population std over all
    those pixels (what its incremental ``StatsRecorder`` computes, to float rounding).
    """
    total = np.zeros(3)
    total_sq = np.zeros(3)
    pixels = 0
    n = 0
    with VideoReader(path) as reader:
        for index, frame in reader.iter_frames(0):
            if index % stride:
                continue
            x = frame.reshape(-1, 3).astype(np.float64) / 255.0
            total += x.sum(axis=0)
            total_sq += (x * x).sum(axis=0)
            pixels += x.shape[0]
            n += 1
    if n == 0:
        raise ValueError(f"{path}: no frames to measure")
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean * mean, 0.0))
    return {"mean": mean.tolist(), "std": std.tolist(), "N": n}


def fold_normalization(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """DeepEthogram's ``update_project_with_normalization``: N-weighted averages of the means and of the stds."""
    if old and old.get("N") is not None and old.get("mean") is not None:
        n_old = float(old["N"])
        mean_total = n_old * np.asarray(old["mean"], np.float64)
        std_total = n_old * np.asarray(old["std"], np.float64)
    else:
        n_old, mean_total, std_total = 0.0, 0.0, 0.0
    n = n_old + float(new["N"])
    mean = (mean_total + new["N"] * np.asarray(new["mean"], np.float64)) / n
    std = (std_total + new["N"] * np.asarray(new["std"], np.float64)) / n
    return {"N": int(n) if float(n).is_integer() else n, "mean": mean.tolist(), "std": std.tolist()}


def is_deepethogram_normalized(config: dict[str, Any]) -> bool:
    """Whether a project config keeps DeepEthogram's ``augs.normalization`` (a project DeepEthogram made)."""
    augs = config.get("augs")
    return isinstance(augs, dict) and "normalization" in augs


def write_video_stats(video: str | os.PathLike, folder: Path) -> dict[str, Any]:
    """Measure ``video`` and write ``folder/stats.yaml`` (``normalization: {mean, std, N}``), as DeepEthogram does.

    Returns the statistics; fold them into the project with :func:`fold_normalization`.
    """
    stats = video_statistics(video)
    stats_file = folder / "stats.yaml"
    existing = yaml.safe_load(stats_file.read_text(encoding="utf-8")) if stats_file.is_file() else None
    data = existing if isinstance(existing, dict) else {}
    data["normalization"] = stats
    atomic_write_text(stats_file, yaml.safe_dump(data, sort_keys=False))
    return stats
