"""deg_train.training.sequence_data: windows with real context, moving boundaries, whole videos, collation."""

from __future__ import annotations

import numpy as np
import torch

from deg_train.training.sequence_data import SequenceDataset, collate_sequences


def _data(lengths=(300, 120), d=4, k=3):
    feats = [np.arange(n * d, dtype=np.float32).reshape(n, d) + 1000 * i for i, n in enumerate(lengths)]
    labels = [np.tile(np.arange(n, dtype=np.int64)[:, None] % 2, (1, k)).astype(np.int8) for n in lengths]
    return feats, labels


def test_windows_context_masked_and_boundaries_move():
    feats, labels = _data()
    ds = SequenceDataset(feats, labels, chunk_length=50, left_context=20, seed=1)
    assert len(ds) == int(np.ceil(420 / 50))
    starts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            v, lo = item["video"], item["start"]
            n = item["features"].shape[0]
            np.testing.assert_array_equal(item["features"].numpy(), feats[v][lo : lo + n])
            lab = item["labels"].numpy()
            if lo > 0:  # the first 20 frames are context only
                assert (lab[:20] == -1).all() and (lab[20:] >= 0).all()
                assert n <= 70
            else:
                assert (lab >= 0).all()
            starts.add((v, lo))
    assert len(starts) > 10  # offsets differ between epochs: no fixed chunk boundaries
    # deterministic per (seed, epoch)
    ds.set_epoch(2)
    a = [ds[i]["start"] for i in range(len(ds))]
    ds.set_epoch(2)
    assert a == [ds[i]["start"] for i in range(len(ds))]


def test_whole_videos_and_collate():
    feats, labels = _data()
    ds = SequenceDataset.whole_videos(feats, labels)
    assert len(ds) == 2 and ds[1]["features"].shape == (120, 4)
    batch = collate_sequences([ds[0], ds[1]])
    assert batch["features"].shape == (2, 300, 4) and batch["labels"].dtype == torch.int8
    assert (batch["labels"][1, 120:] == -1).all() and (batch["features"][1, 120:] == 0).all()
    assert batch["lengths"].tolist() == [300, 120]
