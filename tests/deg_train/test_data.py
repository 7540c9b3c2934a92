"""Clip datasets on real rat frames: causal clips, labels, masking; the epoch sampler's order and shards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deg_train.project.frame_cache import FrameCache
from deg_train.training.data import ClipDataset, DatasetError, EpochSampler, collate_clips


def test_items_are_causal_clips_with_frame_t_labels(rat_project):
    names = rat_project.video_names[:2]
    ds = ClipDataset(rat_project, names, (32, 32), 5, labels=True, progress=False)
    assert ds.behaviours == rat_project.behaviours and ds.num_behaviours == len(rat_project.behaviours)
    cache = FrameCache.open(rat_project.video(names[0]).video_path, rat_project.cache_dir, size=(32, 32))
    labels = rat_project.load_labels(names[0]).values
    for i in (0, 3, 10):
        item = ds[i]
        t = item["frame"]
        assert item["clip"].dtype == torch.uint8 and item["clip"].shape == (5, 32, 32, 3)
        assert np.array_equal(item["clip"].numpy(), cache.clip(t, 5))  # frames t-4 .. t, frame 0 repeated
        assert np.array_equal(item["labels"].numpy(), labels[t])
    batch = collate_clips(ds.__getitems__([5, 0, len(ds) - 1]))
    assert batch["clip"].shape == (3, 5, 32, 32, 3) and batch["labels"].dtype == torch.int8
    pos, neg = ds.label_counts()
    assert (pos + neg).max() <= len(ds) and pos.sum() > 0


def test_fully_unlabelled_frames_are_skipped(fresh_rat_project):
    name = fresh_rat_project.video_names[0]
    table = fresh_rat_project.load_labels(name)
    values = table.values.copy()
    values[:10] = -1  # first 10 frames unlabelled
    values[10, 1] = -1  # one entry unlabelled: the frame stays, the entry is masked
    from deg_live.labels import LabelTable

    fresh_rat_project.save_labels(name, LabelTable(table.behaviours, values))
    ds = ClipDataset(fresh_rat_project, [name], (32, 32), 3, labels=True, progress=False)
    assert len(ds) == len(values) - 10 and ds.index_frame.min() == 10
    assert ds[0]["labels"][1] == -1
    # The flow stage uses every frame.
    assert len(ClipDataset(fresh_rat_project, [name], (32, 32), 3, labels=False, progress=False)) == len(values)


def test_bad_requests_are_clear(rat_project):
    with pytest.raises(DatasetError, match="no videos"):
        ClipDataset(rat_project, [], (32, 32), 3)
    with pytest.raises(DatasetError, match="not in the project"):
        ClipDataset(rat_project, ["nope"], (32, 32), 3)


def test_epoch_sampler_is_seeded_capped_and_sharded():
    s = EpochSampler(10, samples_per_epoch=7, seed=1)
    s.set_epoch(3)
    a = list(s)
    s.set_epoch(3)
    assert list(s) == a and len(a) == 7 == len(s) and len(set(a)) == 7
    s.set_epoch(4)
    assert list(s) != a
    # More than n: further permutations, every item about equally often.
    big = EpochSampler(10, samples_per_epoch=30, seed=0)
    assert sorted(np.bincount(list(big), minlength=10).tolist()) == [3] * 10
    # Two ranks: equal counts, disjoint shards of the same epoch order.
    r0 = EpochSampler(10, samples_per_epoch=9, seed=2, rank=0, world_size=2)
    r1 = EpochSampler(10, samples_per_epoch=9, seed=2, rank=1, world_size=2)
    assert len(r0) == len(r1) == 5 and not set(r0) & set(r1)
    # Validation order: no shuffle.
    assert list(EpochSampler(4, shuffle=False)) == [0, 1, 2, 3]


def test_class_balanced_sampling_evens_out_the_classes(rat_project):
    """feature.class_balance: rare behaviours of real rat labels are drawn about as often as common ones."""
    ds = ClipDataset(rat_project, rat_project.video_names[:4], (32, 32), 3, labels=True, progress=False)
    pos, _ = ds.label_counts()
    assert np.array_equal(ds.class_balanced_weights(0.0), np.ones(len(ds)))  # 0 = uniform
    full = ds.class_balanced_weights(1.0)
    assert full.shape == (len(ds),) and np.isclose(full.mean(), 1.0)
    # Drawn with the weights, each class present is seen about equally often (exclusive rat labels).
    seen_pos, seen_neg = ds.label_counts(full)
    present = pos > 0
    assert np.allclose(seen_pos[present], seen_pos[present].mean(), rtol=1e-6)
    assert np.allclose(seen_pos + seen_neg, len(ds))  # every frame labelled for every behaviour
    half_pos, _ = ds.label_counts(ds.class_balanced_weights(0.5))
    spread = lambda p: p[present].max() / p[present].min()  # noqa: E731
    assert spread(pos) > spread(half_pos) > spread(seen_pos) - 1e-9
    # The sampler draws with the weights: seeded, and the rare class comes up far more often than uniformly.
    rare = int(np.argmin(np.where(present, pos, np.inf)))
    is_rare = np.asarray([ds.label_values[v][f, rare] == 1 for v, f in zip(ds.index_video, ds.index_frame)])
    s = EpochSampler(len(ds), samples_per_epoch=4000, seed=3, weights=full)
    s.set_epoch(1)
    drawn = list(s)
    s.set_epoch(1)
    assert list(s) == drawn and len(drawn) == 4000
    assert is_rare[drawn].mean() > 3 * is_rare.mean()
    with pytest.raises(DatasetError, match="sampling weights"):
        EpochSampler(len(ds), weights=np.zeros(len(ds)))
