"""Datasets for stages 1 and 2: causal clips from the project's frame caches, and an epoch sampler.

Each item of :class:`ClipDataset` is the CAUSAL clip ending at frame t — frames ``t-T+1 .. t``, frame 0 repeated
before the start of the video, exactly :meth:`deg_train.project.frame_cache.FrameCache.clip` — and frame t's labels.
Frames stay ``uint8`` until they reach the training device, where :mod:`deg_train.training.augment` turns a whole batch
into normalised floats; a DataLoader batch is therefore ``clip: (B, T, H, W, 3) uint8`` and
``labels: (B, K) int8`` (1 present, 0 absent, -1 unlabelled and masked out of the loss).

:class:`EpochSampler` decides which items an epoch visits: a permutation seeded by ``seed + epoch`` (so a resumed
run sees exactly the batches the uninterrupted one would have), cut to ``samples_per_epoch`` (so an epoch on a
CPU need not be every frame of every video), and sharded by rank under torch.distributed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from camera_adapters.errors import UserFacingError
from deg_train.project.frame_cache import FrameCache


class DatasetError(UserFacingError, ValueError):
    """The videos asked for cannot make a training set (none given, none labelled, behaviours differ...)."""


class ClipDataset(Dataset):
    """Causal clips of ``frames_per_window`` frames from a project's videos, with frame t's labels.

    Args:
        project: an open :class:`deg_train.project.layout.Project`.
        videos: the video names (or ``VideoRecord`` objects) to draw clips from.
        cache_size: ``(height, width)`` of the frame cache (the training resolution).
        frames_per_window: T, frames per clip; the clip for frame t is ``t-T+1 .. t``.
        labels: load labels and return them; ``False`` for the self-supervised flow stage (every frame is used).
        skip_unlabelled: with labels, leave out frames whose labels are all -1 (default: same as ``labels``).
        progress: show progress bars while caches are built.

    Item ``i``: ``{"clip": (T, H, W, 3) uint8 tensor, "labels": (K,) int8 tensor, "video": int, "frame": int}``
    (``labels`` is an empty ``(0,)`` tensor when ``labels=False``).
    """

    def __init__(
        self,
        project: Any,
        videos: Sequence[Any],
        cache_size: tuple[int, int] | Sequence[int],
        frames_per_window: int,
        labels: bool = True,
        *,
        skip_unlabelled: bool | None = None,
        progress: bool = True,
    ) -> None:
        if not videos:
            raise DatasetError("no videos given for this dataset; check the split (deg-train split)")
        self.frames_per_window = int(frames_per_window)
        self.cache_size = (int(cache_size[0]), int(cache_size[1]))
        self.with_labels = bool(labels)
        skip = self.with_labels if skip_unlabelled is None else bool(skip_unlabelled)
        records = {r.name: r for r in project.videos}
        self.names: list[str] = []
        self.caches: list[Any] = []
        self.label_values: list[np.ndarray] = []
        self.behaviours: list[str] = list(project.behaviours) if self.with_labels else []
        index_video, index_frame = [], []
        for v in videos:
            name = v if isinstance(v, str) else v.name
            if name not in records:
                raise DatasetError(f"video {name!r} is not in the project {project.root}")
            record = records[name]
            cache = FrameCache.open(record.video_path, project.cache_dir, size=self.cache_size, progress=progress)
            n = len(cache)
            if self.with_labels:
                if record.labels_path is None:
                    if skip:
                        continue  # an unlabelled video has nothing to teach a supervised stage
                    values = np.full((n, len(self.behaviours)), -1, np.int8)
                else:
                    table = project.load_labels(name)  # columns in the project's behaviour order
                    if list(table.behaviours) != self.behaviours:
                        raise DatasetError(
                            f"{name}: behaviours {list(table.behaviours)} differ from the project's "
                            f"{self.behaviours}; fix the label file (deg-train labels)"
                        )
                    values = np.asarray(table.values, dtype=np.int8)
                if len(values) != n:
                    raise DatasetError(f"{name}: {len(values)} label rows for {n} frames")
                frames = np.flatnonzero((values >= 0).any(axis=1)) if skip else np.arange(n)
            else:
                values = np.zeros((n, 0), np.int8)
                frames = np.arange(n)
            self.names.append(name)
            self.caches.append(cache)
            self.label_values.append(values)
            index_video.append(np.full(len(frames), len(self.names) - 1, np.int64))
            index_frame.append(frames.astype(np.int64))
        if not self.names or sum(len(f) for f in index_frame) == 0:
            what = "labelled frames" if self.with_labels else "frames"
            raise DatasetError(f"no {what} in videos {[getattr(v, 'name', v) for v in videos]}")
        self.index_video = np.concatenate(index_video)
        self.index_frame = np.concatenate(index_frame)

    def __len__(self) -> int:
        return len(self.index_video)

    @property
    def num_behaviours(self) -> int:
        """K, the number of label columns (0 without labels)."""
        return len(self.behaviours)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Batched read: one fancy-indexed ``FrameCache.clips`` call per video among ``indices``."""
        indices = np.asarray(indices, dtype=np.int64)
        vids = self.index_video[indices]
        frames = self.index_frame[indices]
        out: list[dict[str, Any] | None] = [None] * len(indices)
        for v in np.unique(vids):
            where = np.flatnonzero(vids == v)
            clips = self.caches[v].clips(frames[where], self.frames_per_window)  # (b, T, H, W, 3) uint8
            labels = self.label_values[v][frames[where]]
            for j, pos in enumerate(where):
                out[pos] = {
                    "clip": torch.from_numpy(np.ascontiguousarray(clips[j])),
                    "labels": torch.from_numpy(labels[j].copy()),
                    "video": int(v),
                    "frame": int(frames[pos]),
                }
        return out  # type: ignore[return-value]

    def _item_labels(self) -> np.ndarray:
        """``(len(self), K) int8``: the labels of every item's frame, in item order."""
        labels = np.empty((len(self), self.num_behaviours), np.int8)
        for v, values in enumerate(self.label_values):
            where = np.flatnonzero(self.index_video == v)
            labels[where] = values[self.index_frame[where]]
        return labels

    def label_counts(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positive and negative counts per behaviour over this dataset's frames (unlabelled ones not counted).

        Args:
            weights: per-item sampling weights (mean 1), e.g. :meth:`class_balanced_weights`: the counts a
                training epoch drawn with them sees on average. None = every item once.

        Returns:
            ``(pos (K,), neg (K,))``, int64 without weights, float64 with them.
        """
        labels = self._item_labels()
        if weights is None:
            return (labels == 1).sum(axis=0).astype(np.int64), (labels == 0).sum(axis=0).astype(np.int64)
        w = np.asarray(weights, np.float64)
        return w @ (labels == 1), w @ (labels == 0)

    def class_balanced_weights(self, power: float) -> np.ndarray:
        """Sampling weights per item that even out how often each class is seen (class-balanced sampling).

        A frame's class is its positive behaviour, the rarest one when several are on (a frame with none is its
        own "nothing" class). Its weight is ``count(class) ** -power``: 0 samples frames uniformly (each class as
        often as it is labelled), 1 samples every class equally often, 0.5 in between (square-root balancing).

        Returns:
            ``(len(self),)`` float64 weights, mean 1.
        """
        if not self.with_labels:
            raise DatasetError("class-balanced sampling needs labels")
        positive = self._item_labels() == 1
        counts = positive.sum(axis=0).astype(np.float64)
        rarity = np.where(positive, counts[None, :], np.inf)
        cls = np.where(positive.any(axis=1), rarity.argmin(axis=1), self.num_behaviours)
        per_class = np.bincount(cls, minlength=self.num_behaviours + 1).astype(np.float64)
        weights = per_class[cls] ** -float(power)
        return weights / weights.mean()

    def close(self) -> None:
        """Release the frame caches (idempotent)."""
        for cache in self.caches:
            close = getattr(cache, "close", None)
            if close is not None:
                close()
        self.caches = []

    def __enter__(self) -> ClipDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EpochSampler(Sampler[int]):
    """Which dataset items an epoch visits: seeded per epoch, optionally capped, sharded across ranks.

    Args:
        n: dataset length.
        samples_per_epoch: items per epoch over all ranks (None: every item once). More than ``n`` draws further
            permutations, so each item is visited about equally often.
        shuffle: random order (training) or ``0..n-1`` (validation).
        seed: base seed; epoch ``e`` uses ``seed + e`` so a resumed run repeats the same order.
        rank, world_size: this process's shard under torch.distributed (every rank gets the same count).
        weights: per-item sampling weights (class-balanced sampling): items are drawn with replacement with these
            probabilities instead of permuted; None = permutations.
    """

    def __init__(
        self,
        n: int,
        *,
        samples_per_epoch: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        weights: np.ndarray | None = None,
    ) -> None:
        if n <= 0:
            raise DatasetError("empty dataset: nothing to sample")
        self.n = int(n)
        self.weights = None
        if weights is not None:
            w = torch.as_tensor(np.asarray(weights, np.float64))
            if w.shape != (self.n,) or not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or float(w.sum()) <= 0:
                raise DatasetError(f"sampling weights must be {self.n} finite non-negative numbers, not all 0")
            self.weights = w
        total = self.n if samples_per_epoch is None else int(samples_per_epoch)
        # Every rank draws the same number of items (DDP needs equal step counts); round up to a multiple.
        self.total = int(math.ceil(max(total, world_size) / world_size) * world_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order to produce."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None and self.shuffle:
            order = torch.multinomial(self.weights, self.total, replacement=True, generator=g)
            return iter(order[self.rank :: self.world_size].tolist())
        chunks, have = [], 0
        while have < self.total:
            chunk = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
            chunks.append(chunk)
            have += self.n
        order = torch.cat(chunks)[: self.total]
        return iter(order[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.total // self.world_size


def collate_clips(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Stack items into ``clip (B, T, H, W, 3) uint8``, ``labels (B, K) int8``, ``video (B,)``, ``frame (B,)``."""
    return {
        "clip": torch.stack([it["clip"] for it in items]),
        "labels": torch.stack([it["labels"] for it in items]),
        "video": torch.tensor([it["video"] for it in items], dtype=torch.int64),
        "frame": torch.tensor([it["frame"] for it in items], dtype=torch.int64),
    }
