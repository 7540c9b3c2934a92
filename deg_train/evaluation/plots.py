"""PNG plots for ``deg-train evaluate``: training curves, per-behaviour F1 bars, an ethogram (matplotlib, Agg).

Every function writes one PNG atomically and returns its path; none opens a window (the Agg backend is selected
on a private figure, so importing this module never changes a user's interactive backend).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from camera_adapters.files import atomic_output


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike) -> Path:
    path = Path(path)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_training_curves(runs: Sequence[str | os.PathLike], path: str | os.PathLike) -> Path:
    """One row per run: losses per epoch (left) and F1 / other scores (right), from each ``metrics.csv``.

    Columns whose name contains ``loss`` go left, ``f1`` (or ``auroc``, ``ap``) right; ``lr`` is drawn on a log
    axis under the losses. Runs without a ``metrics.csv`` are listed as missing.
    """
    runs = [Path(r) for r in runs]
    fig = _figure(11, 3.2 * max(1, len(runs)))
    for row, run in enumerate(runs):
        ax_loss = fig.add_subplot(len(runs), 2, 2 * row + 1)
        ax_score = fig.add_subplot(len(runs), 2, 2 * row + 2)
        csv = run / "metrics.csv"
        ax_loss.set_title(f"{run.name}: losses", fontsize=9)
        ax_score.set_title(f"{run.name}: validation scores", fontsize=9)
        if not csv.is_file():
            ax_loss.text(0.5, 0.5, "no metrics.csv", ha="center", va="center", transform=ax_loss.transAxes)
            continue
        frame = pd.read_csv(csv)
        x = frame["epoch"] if "epoch" in frame.columns else np.arange(len(frame))
        for col in frame.columns:
            name = col.lower()
            values = pd.to_numeric(frame[col], errors="coerce")
            if values.isna().all():
                continue
            if "loss" in name:
                ax_loss.plot(x, values, marker="o", ms=3, label=col)
            elif name in ("val_f1", "f1", "val_macro_f1", "val_auroc", "val_ap"):
                ax_score.plot(x, values, marker="o", ms=4, lw=2, label=col)
            elif name.startswith("val_f1_"):  # per behaviour: thin, no legend entry of its own
                ax_score.plot(x, values, lw=0.8, alpha=0.5, label=name[len("val_f1_") :])
        ax_loss.set_xlabel("epoch")
        ax_score.set_xlabel("epoch")
        for ax in (ax_loss, ax_score):
            if ax.lines:
                ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_f1_bars(scores: pd.DataFrame, path: str | os.PathLike, *, title: str = "F1 per behaviour") -> Path:
    """Grouped bars: one group per behaviour (rows of ``scores``), one bar per column (e.g. causal, centred)."""
    scores = scores.astype(float)
    n_rows, n_cols = scores.shape
    fig = _figure(min(16, max(6, 0.3 * n_rows * max(1, n_cols) + 3)), 4.5)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(1, n_cols)
    x = np.arange(n_rows)
    for j, col in enumerate(scores.columns):
        bars = ax.bar(x + (j - (n_cols - 1) / 2) * width, scores[col].fillna(0).to_numpy(), width, label=str(col))
        for bar, value in zip(bars, scores[col]):
            if np.isfinite(value):
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    bar.get_height(),
                    f"{value:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(x)
    ax.set_xticklabels([str(i) for i in scores.index], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1")
    ax.set_title(title)
    if n_cols > 1:
        ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_ethogram(
    labels: np.ndarray,
    decisions: np.ndarray,
    behaviours: Sequence[str],
    path: str | os.PathLike,
    *,
    probabilities: np.ndarray | None = None,
    fps: float | None = None,
    title: str = "",
) -> Path:
    """Labels against predictions for one video.

    Per behaviour, a row of labels and a row of decisions (unlabelled frames grey), and the probability trace
    over the decisions if given.

    Args:
        labels: ``(N, K)`` in {1, 0, -1}.
        decisions: ``(N, K)`` bool.
        behaviours: K names.
        path: the PNG.
        probabilities: ``(N, K)`` float, drawn as a line in each behaviour's prediction row.
        fps: frames per second, for a time axis in seconds (frames otherwise).
        title: figure title.
    """
    labels = np.asarray(labels)
    decisions = np.asarray(decisions).astype(bool)
    n, k = decisions.shape
    fig = _figure(12, 0.55 * 2 * k + 1.2)
    ax = fig.add_subplot(1, 1, 1)
    # image rows: for behaviour i, row 2i = label, row 2i+1 = prediction; values 0 absent, 1 present, nan grey
    image = np.full((2 * k, n), np.nan)
    for i in range(k):
        lab = labels[:, i].astype(float)
        lab[labels[:, i] < 0] = np.nan
        image[2 * i] = lab
        image[2 * i + 1] = decisions[:, i]
    scale = (1.0 / fps) if fps else 1.0
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(["#f4f4f4", "#1f4e9c"]).with_extremes(bad="#c8c8c8")
    ax.imshow(
        np.ma.masked_invalid(image),
        aspect="auto",
        interpolation="nearest",
        cmap=cmap,
        vmin=0,
        vmax=1,
        extent=(0, n * scale, 2 * k - 0.5, -0.5),
    )
    if probabilities is not None:
        p = np.asarray(probabilities)
        t = (np.arange(n) + 0.5) * scale
        for i in range(k):
            ax.plot(t, 2 * i + 1 + 0.45 - 0.9 * p[:, i], color="#e0701b", lw=0.6)
    ax.set_yticks(np.arange(2 * k))
    ax.set_yticklabels([f"{b} {kind}" for b in behaviours for kind in ("label", "pred")], fontsize=7)
    for i in range(1, k):
        ax.axhline(2 * i - 0.5, color="white", lw=1.5)
    ax.set_xlabel("time (s)" if fps else "frame")
    ax.set_title(title or "ethogram: labels vs predictions (grey = unlabelled)", fontsize=9)
    return _save(fig, path)
