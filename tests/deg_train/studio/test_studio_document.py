"""The studio's parts below the window: label edits with undo/redo (DeepEthogram's rules), the decode-ahead frame
cache on a real video, and the suggestion ranking on a real outputs file."""

from __future__ import annotations

import numpy as np
import pytest
from studio_support import BEHAVIOURS, rat_mp4, unlabelled_video, write_model_outputs

from camera_adapters.video import VideoReader
from deg_live.labels import LabelError, empty_labels
from deg_train.studio.document import LabelDocument
from deg_train.studio.frames import FrameCache
from deg_train.studio.suggest import bouts, suggest
from deg_train.studio.workspace import Workspace


def doc(n: int = 20, exclusive: bool = False) -> LabelDocument:
    return LabelDocument(empty_labels(BEHAVIOURS, n), exclusive=exclusive)


def test_paint_rules_background_and_unlabelled():
    d = doc()
    d.paint([1], 2, 5)
    np.testing.assert_array_equal(d.values[2:5], [[0, 1, 0]] * 3)
    assert d.counts() == {"frames": 20, "labelled": 3, "unlabelled": 17}
    d.paint([2], 4, 6)  # multi-label: both on at 4
    np.testing.assert_array_equal(d.values[4], [0, 1, 1])
    d.paint([0], 4, 5)  # background clears the others
    np.testing.assert_array_equal(d.values[4], [1, 0, 0])
    d.paint([1], 2, 3, present=False)  # erased: labelled, nothing on -> background
    np.testing.assert_array_equal(d.values[2], [1, 0, 0])
    d.paint([0], 2, 3, present=False)  # erasing background -> unlabelled
    np.testing.assert_array_equal(d.values[2], [-1, -1, -1])
    with pytest.raises(LabelError, match="out of range"):
        d.paint([7], 0, 1)


def test_exclusive_and_finalise_and_import():
    d = doc(exclusive=True)
    d.paint([1], 0, 10)
    d.paint([2], 5, 8)
    assert ((d.values == 1).sum(axis=1)[:10] == 1).all() and (d.values[5:8, 2] == 1).all()
    d.finalise()
    np.testing.assert_array_equal(d.values[10:], [[1, 0, 0]] * 10)
    assert not d.unfinished() and d.finalise() is None
    d = doc(exclusive=True)
    dec = np.zeros((20, 3), bool)
    dec[:, 1] = dec[:, 2] = True  # an overlapping multi-label model: the first behaviour wins
    d.import_predictions(dec, BEHAVIOURS, only_unlabelled=False)
    np.testing.assert_array_equal(d.values, [[0, 1, 0]] * 20)


def test_undo_redo_and_merged_bouts():
    d = doc()
    d.paint([1], 0, 1, merge="a")
    d.paint([1], 1, 2, merge="a")
    d.paint([1], 2, 3, merge="a")  # one bout, one undo step
    d.paint([2], 10, 12)
    assert d.undo() == (10, 12) and d.undo() == (0, 3)
    assert not d.labelled_rows().any() and not d.can_undo
    assert d.redo() == (0, 3)
    np.testing.assert_array_equal(d.values[:3, 1], [1, 1, 1])
    d.paint([2], 15, 16)  # a new edit drops the redo stack
    assert not d.can_redo
    assert d.dirty
    d.mark_saved()
    assert not d.dirty


def test_edits_on_a_200000_frame_document_cost_the_edit_not_the_video():
    d = doc(200_000)
    for i in range(0, 2_000, 2):
        d.paint([1 + i % 2], 100_000 + i, 100_002 + i, merge=None)
    assert len(d._undo) == 1_000
    assert sum(e.before.nbytes + e.after.nbytes for e in d._undo) == 1_000 * 2 * 2 * 3  # two rows each, no copies
    for _ in range(1_000):
        d.undo()
    assert not d.labelled_rows().any()


def test_frame_cache_matches_the_reader_and_decodes_ahead():
    with VideoReader(rat_mp4()) as reader, FrameCache(rat_mp4(), ahead=20, behind=10) as frames:
        assert frames.n_frames == len(reader) == 144 and frames.fps == 25
        for i in (0, 1, 77, 76, 143, 5):
            np.testing.assert_array_equal(frames.get(i), reader[i])
        frames.set_cursor(60)
        assert frames.wait_ready(50, 31, timeout=20)  # 10 behind, the cursor and 20 ahead
        hits = frames.hits
        for i in range(50, 81):
            np.testing.assert_array_equal(frames.get(i), reader[i])
        assert frames.hits == hits + 31


def test_suggestions_rank_across_videos(tmp_path):
    a = unlabelled_video(tmp_path / "s", "a")
    b = unlabelled_video(tmp_path / "s", "b")
    pa = np.full((144, 3), 0.02, np.float32)
    pa[:, 0] = 0.98
    pa[20:30, 2] = 0.45
    pb = pa.copy()
    pb[20:30, 2] = 0.02
    pb[60:70, 1] = 0.5
    write_model_outputs(a, pa)
    write_model_outputs(b, pb)
    ws = Workspace.open(None, a)
    ws.videos.append(Workspace.open(None, b).videos[0])
    ranked = [s for s in suggest([(v, None) for v in ws.videos]) if s.reason == "near threshold"]
    assert [(s.video, s.start, s.stop, s.behaviour) for s in ranked] == [
        ("b", 60, 70, "grooming"),
        ("a", 20, 30, "rearing"),
    ]
    labelled = np.zeros(144, bool)
    labelled[60:70] = True
    assert not [s for s in suggest([(ws.videos[1], labelled)]) if s.reason == "near threshold"]
    assert bouts(
        np.array([0.9, 0.9, 0, 0.9, 0, 0, 0, 0.9]), np.ones(8, bool), min_score=0.5, join_gap=1, min_length=1
    ) == [
        (0, 4, 0.9),
        (7, 8, 0.9),
    ]


def test_causal_and_centred_models_disagreeing_make_a_suggestion(tmp_path):
    from deg_live.outputs import our_group_name

    video = unlabelled_video(tmp_path)
    causal = np.full((144, 3), 0.02, np.float32)
    causal[:, 0] = 0.98
    centred = causal.copy()
    centred[100:120, 1] = 0.97  # the centred model sees grooming the causal one misses (both far from 0.5)
    write_model_outputs(video, causal, group=our_group_name("tgm"))
    write_model_outputs(video, centred, group=our_group_name("tgm", centred=True))
    ws = Workspace.open(None, video)
    found = [s for s in suggest([(ws.videos[0], None)]) if s.reason == "causal vs centred"]
    assert [(s.start, s.stop, s.behaviour) for s in found] == [(100, 120, "grooming")]
