"""Stage 3's data: saved per-frame features with labels, served as long windows with no fixed chunk boundaries.

DeepEthogram cuts each video into fixed, non-overlapping chunks of 180 features; a frame near a chunk's start then
sees no past at all, during training and inference, and the boundaries never move. Here:

- **training** draws windows at random offsets each epoch (no fixed boundaries). A window covers
  ``left_context + chunk_length`` frames (plus ``right_context`` for the centred comparison model); the loss is
  taken only on the ``chunk_length`` frames whose context is real, so every trained prediction saw the same past
  it sees at inference. A window that reaches the start of a video keeps its labels there: at frame 0 the
  model's own padding is exactly what inference sees too.
- **validation / inference** use whole videos, one per item (:meth:`SequenceDataset.whole_videos`).

Items are ``{"features": (L, D) float32, "labels": (L, K) int8, "video": int}``; unlabelled and context frames
are ``-1`` (masked). :func:`collate_sequences` right-pads a batch to its longest item (labels ``-1``), which
does not change a causal model's outputs on the real frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deg_live.outputs import read_features


class SequenceDataset(Dataset):
    """Windows of per-frame features and labels over several videos.

    Args:
        features: one ``(N_i, D) float32`` array per video.
        labels: one ``(N_i, K) int8`` array per video (1, 0, or -1 = unlabelled), same N as its features.
        chunk_length: frames per window that carry a loss (L).
        left_context: frames of real past before each window's loss frames (the model's receptive field - 1).
        right_context: frames after (only for the centred, non-causal comparison model; 0 for causal).
        windows_per_epoch: how many windows one epoch draws; default ``ceil(total_frames / chunk_length)``.
        seed: base seed; each epoch's offsets depend on ``(seed, epoch)`` (see :meth:`set_epoch`).
        whole: serve whole videos, one per item, in order (for validation and inference).
    """

    def __init__(
        self,
        features: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        *,
        chunk_length: int = 180,
        left_context: int = 0,
        right_context: int = 0,
        windows_per_epoch: int | None = None,
        seed: int = 0,
        whole: bool = False,
    ):
        if len(features) != len(labels) or not features:
            raise ValueError(f"need one labels array per features array, got {len(features)} and {len(labels)}")
        for i, (f, y) in enumerate(zip(features, labels)):
            if f.ndim != 2 or y.ndim != 2 or f.shape[0] != y.shape[0]:
                raise ValueError(f"video {i}: features {f.shape} and labels {y.shape} must be (N, D) and (N, K)")
        if chunk_length < 1 or left_context < 0 or right_context < 0:
            raise ValueError("chunk_length must be >= 1 and the contexts >= 0")
        self.features = [np.ascontiguousarray(f, dtype=np.float32) for f in features]
        self.labels = [np.ascontiguousarray(y, dtype=np.int8) for y in labels]
        self.chunk_length = int(chunk_length)
        self.left_context = int(left_context)
        self.right_context = int(right_context)
        self.whole = whole
        self.seed = int(seed)
        self.lengths = np.array([f.shape[0] for f in self.features])
        total = int(self.lengths.sum())
        self.windows_per_epoch = windows_per_epoch or max(1, math.ceil(total / self.chunk_length))
        self.set_epoch(0)

    @classmethod
    def whole_videos(cls, features: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> SequenceDataset:
        """Whole videos, one per item, in order (validation and inference)."""
        return cls(features, labels, whole=True)

    @classmethod
    def from_outputs(
        cls,
        outputs_paths: Sequence[Any],
        labels: Sequence[np.ndarray],
        latent_name: str | None,
        **kwargs: Any,
    ) -> SequenceDataset:
        """Read the features of each ``<video>_outputs.h5`` (group ``latent_name``) and pair them with labels.

        Raises:
            OutputsError: a file or group is missing.
            ValueError: a video's labels have another frame count than its features.
        """
        features = [read_features(p, latent_name)[0] for p in outputs_paths]
        for p, f, y in zip(outputs_paths, features, labels):
            if f.shape[0] != y.shape[0]:
                raise ValueError(f"{p}: {f.shape[0]} feature rows but {y.shape[0]} label rows; re-run extract")
        return cls(features, labels, **kwargs)

    @property
    def feature_size(self) -> int:
        """D."""
        return int(self.features[0].shape[1])

    @property
    def n_behaviours(self) -> int:
        """K."""
        return int(self.labels[0].shape[1])

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's windows (deterministic in ``(seed, epoch)``); call at the start of each epoch."""
        if self.whole:
            self._windows = [(v, 0, int(n)) for v, n in enumerate(self.lengths)]
            return
        rng = np.random.default_rng([self.seed, int(epoch)])
        # Videos are picked in proportion to their length, then a loss-start uniformly over the whole video, so
        # every frame is equally likely to carry a loss and chunk boundaries move every epoch.
        p = self.lengths / self.lengths.sum()
        videos = rng.choice(len(self.lengths), size=self.windows_per_epoch, p=p)
        windows = []
        for v in videos:
            n = int(self.lengths[v])
            start = int(rng.integers(0, max(1, n - self.chunk_length + 1)))
            windows.append((int(v), start, min(n, start + self.chunk_length)))
        self._windows = windows

    def __len__(self) -> int:
        return len(self._windows)

    def __getitem__(self, index: int) -> dict[str, Any]:
        v, start, stop = self._windows[index]
        n = int(self.lengths[v])
        lo = max(0, start - self.left_context)
        hi = min(n, stop + self.right_context)
        features = self.features[v][lo:hi]
        labels = self.labels[v][lo:hi].copy()
        # Context frames carry no loss: they are there so the loss frames see their real past (and future).
        # Frames whose context reaches the video's start (or end) keep theirs: the model's padding there is exactly
        # what inference sees.
        if lo > 0:
            labels[: start - lo] = -1
        if hi < n:
            labels[stop - lo :] = -1
        return {
            "features": torch.from_numpy(np.ascontiguousarray(features)),
            "labels": torch.from_numpy(labels),
            "video": v,
            "start": lo,
        }


def collate_sequences(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items of different lengths into a batch, padded at the end.

    Features ``(B, L, D)`` are zero-padded and labels ``(B, L, K)`` -1-padded at the END: a causal model's
    outputs on real frames do not depend on later padding.
    """
    length = max(item["features"].shape[0] for item in items)
    d = items[0]["features"].shape[1]
    k = items[0]["labels"].shape[1]
    features = torch.zeros(len(items), length, d, dtype=torch.float32)
    labels = torch.full((len(items), length, k), -1, dtype=torch.int8)
    lengths = torch.zeros(len(items), dtype=torch.long)
    for i, item in enumerate(items):
        n = item["features"].shape[0]
        features[i, :n] = item["features"]
        labels[i, :n] = item["labels"]
        lengths[i] = n
    return {
        "features": features,
        "labels": labels,
        "lengths": lengths,
        "video": torch.tensor([item["video"] for item in items]),
        "start": torch.tensor([item["start"] for item in items]),
    }
