"""The studio window offscreen on real rat videos, driven by real key and mouse events (QTest).

Each test checks the labels the window holds (and writes) frame by frame against what the keys and the mouse
should have done, DeepEthogram's rules: a toggled behaviour is painted while stepping forward and erased while
stepping back; 0 is background and excludes the rest; unlabelled is -1.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import time

import numpy as np
import pytest
from studio_support import BEHAVIOURS, SESSION_B, pump, rat_mp4, unlabelled_video, write_model_outputs

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")

from pyqtgraph.Qt import QtCore, QtTest, QtWidgets

from deg_live.labels import read_labels
from deg_train.project.layout import Project
from deg_train.studio.workspace import Workspace

pytestmark = pytest.mark.gui

K = QtCore.Qt.Key
CTRL = QtCore.Qt.KeyboardModifier.ControlModifier
SHIFT = QtCore.Qt.KeyboardModifier.ShiftModifier
NONE = QtCore.Qt.KeyboardModifier.NoModifier
LEFT_BUTTON = QtCore.Qt.MouseButton.LeftButton


def press(window, key, mods=NONE, times: int = 1) -> None:
    """Real key clicks delivered where the keyboard focus is (the window unless a child took it)."""
    target = QtWidgets.QApplication.focusWidget() or window
    for _ in range(times):
        QtTest.QTest.keyClick(target, key, mods)


def drag(window, frame_from: int, frame_to: int, behaviour: int, mods=NONE) -> None:
    """Press on the label track at ``frame_from`` in ``behaviour``'s band, move to ``frame_to``, release."""
    view = window.label_track.viewport()
    a = window.track_point(frame_from, behaviour)
    b = window.track_point(frame_to, behaviour)
    QtTest.QTest.mousePress(view, LEFT_BUTTON, mods, a)
    mid = window.track_point((frame_from + frame_to) / 2, behaviour)
    QtTest.QTest.mouseMove(view, mid)
    QtTest.QTest.mouseMove(view, b)
    QtTest.QTest.mouseRelease(view, LEFT_BUTTON, mods, b)


def rows(*cells) -> np.ndarray:
    return np.array(cells, dtype=np.int8)


UNL = [-1, -1, -1]
BG = [1, 0, 0]
GROOM = [0, 1, 0]
REAR = [0, 0, 1]


def test_number_keys_and_stepping_paint_and_erase(studio, tmp_path):
    w = studio(unlabelled_video(tmp_path))
    assert w.doc.behaviours == BEHAVIOURS and w.cursor == 0 and not w.doc.labelled_rows().any()
    press(w, K.Key_1)  # grooming on: labels frame 0
    press(w, K.Key_Right, times=4)  # paints 1..4
    press(w, K.Key_Left, times=2)  # erases 4 and 3 (they stay labelled: grooming absent -> background)
    assert w.cursor == 2
    np.testing.assert_array_equal(w.doc.values[:6], rows(GROOM, GROOM, GROOM, BG, BG, UNL))
    press(w, K.Key_1)  # grooming off: stepping no longer paints
    press(w, K.Key_Up)  # 10 frames forward
    assert w.cursor == 12 and not w.doc.labelled_rows()[5:].any()
    press(w, K.Key_2)  # rearing on at 12
    press(w, K.Key_1)  # grooming too (multi-label project)
    press(w, K.Key_Right, times=2)
    np.testing.assert_array_equal(w.doc.values[12:15], rows([0, 1, 1], [0, 1, 1], [0, 1, 1]))
    press(w, K.Key_0)  # background: exclusive, the others untoggled, this frame background only
    assert w.toggled == [0]
    press(w, K.Key_Right)
    np.testing.assert_array_equal(w.doc.values[14:16], rows(BG, BG))
    press(w, K.Key_Escape)
    press(w, K.Key_Right, CTRL)  # a page: no painting
    assert w.cursor == 143 and w.doc.counts()["labelled"] == 9
    press(w, K.Key_Home)
    press(w, K.Key_Delete)  # frame 0 unlabelled again
    np.testing.assert_array_equal(w.doc.values[0], UNL)
    # The info box counts what the track shows.
    assert "labelled" in w.info.text() and ">8<" in w.info.text().replace("&nbsp;", "")


def test_drag_paints_a_range_undo_redo(studio, tmp_path):
    w = studio(unlabelled_video(tmp_path))
    drag(w, 20, 40, 2)  # rearing on 20..40
    on = np.flatnonzero(w.doc.values[:, 2] == 1)
    assert on[0] in (19, 20, 21) and on[-1] in (39, 40, 41), on  # within a pixel of the frames pressed
    first, last = int(on[0]), int(on[-1])
    np.testing.assert_array_equal(w.doc.values[first : last + 1], np.tile(REAR, (last - first + 1, 1)))
    assert not w.doc.labelled_rows()[:first].any() and not w.doc.labelled_rows()[last + 1 :].any()
    after_drag = w.doc.values.copy()
    drag(w, 30, 35, 2)  # a press on a present frame erases
    assert (w.doc.values[31:35, 2] == 0).all() and (w.doc.values[31:35, 0] == 1).all()
    drag(w, 25, 27, 2, SHIFT)  # Shift: unlabelled
    assert (w.doc.values[26] == -1).all()
    press(w, K.Key_Z, CTRL)
    press(w, K.Key_Z, CTRL)  # both strokes undone, one step each
    np.testing.assert_array_equal(w.doc.values, after_drag)
    press(w, K.Key_Z, CTRL)
    assert not w.doc.labelled_rows().any()
    press(w, K.Key_Z, CTRL | SHIFT)  # redo
    np.testing.assert_array_equal(w.doc.values, after_drag)
    press(w, K.Key_Y, CTRL)
    assert (w.doc.values[31:35, 2] == 0).all()
    # A toggle-and-step bout is one undo step.
    press(w, K.Key_End)
    press(w, K.Key_1)
    press(w, K.Key_Left, times=5)
    press(w, K.Key_Escape)
    press(w, K.Key_Z, CTRL)
    assert (w.doc.values[130:] == -1).all()


def test_save_writes_deepethogram_csv_atomically(studio, tmp_path):
    video = unlabelled_video(tmp_path)
    path = tmp_path / "a_labels.csv"
    inode = path.stat().st_ino
    w = studio(video)
    press(w, K.Key_1)
    press(w, K.Key_Right, times=9)
    press(w, K.Key_S, CTRL)
    assert not w.doc.dirty
    table = read_labels(path, n_frames=144)
    assert table.behaviours == BEHAVIOURS
    np.testing.assert_array_equal(table.values, w.doc.values)
    assert path.stat().st_ino != inode  # replaced whole (a new file renamed over the old), never written in place
    header = path.read_text().splitlines()[0]
    assert header == ",background,grooming,rearing"  # DeepEthogram's layout: unnamed index column first
    assert sorted(p.name for p in tmp_path.iterdir()) == [".deg_studio", "a.mp4", "a_labels.csv"]  # no temporary
    assert [p.name for p in (tmp_path / ".deg_studio").iterdir()] == ["a.open.json"]  # which studio has it open


def test_finalise_makes_the_rest_background_and_opens_the_next_unfinished(studio, tmp_path):
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    for name, session in (("a", None), ("b", SESSION_B)):
        src = unlabelled_video(tmp_path / "src", name, session=session or "cage1_6_23_17_5")
        project.add_video(src, labels=src.with_name(f"{name}_labels.csv"))
    questions = []
    w = studio(tmp_path / "p", confirm=lambda q: questions.append(q) or True)
    assert w.ws.project is not None and [v.name for v in w.ws.videos] == ["a", "b"]
    press(w, K.Key_2)
    press(w, K.Key_Right, times=3)
    press(w, K.Key_Return, CTRL)
    assert questions and "144" not in questions[0] and "140 unlabelled" in questions[0]
    assert w.index == 1 and w.ws.videos[1].name == "b"
    saved = Project.open(tmp_path / "p").load_labels("a")
    np.testing.assert_array_equal(saved.values[:4], rows(REAR, REAR, REAR, REAR))
    np.testing.assert_array_equal(saved.values[4:], np.tile(BG, (140, 1)))


def test_import_predictions_only_unlabelled_or_all(studio, tmp_path):
    video = unlabelled_video(tmp_path)
    probs = np.full((144, 3), 0.1, np.float32)
    probs[:, 0] = 0.9
    probs[50:80, 1] = 0.95
    probs[50:80, 0] = 0.05
    write_model_outputs(video, probs)
    w = studio(video)
    assert w.predictions is not None and w.group_combo.currentText() == "tgm"
    press(w, K.Key_2)
    press(w, K.Key_Right, times=59)  # rearing on 0..59 by hand
    press(w, K.Key_Escape)
    w.import_predictions(only_unlabelled=True)
    np.testing.assert_array_equal(w.doc.values[55], REAR)  # hand labels kept
    np.testing.assert_array_equal(w.doc.values[60:80], np.tile(GROOM, (20, 1)))
    np.testing.assert_array_equal(w.doc.values[80:], np.tile(BG, (64, 1)))
    w.import_predictions(only_unlabelled=False)
    np.testing.assert_array_equal(w.doc.values[50:80], np.tile(GROOM, (30, 1)))
    np.testing.assert_array_equal(w.doc.values[:50], np.tile(BG, (50, 1)))
    press(w, K.Key_Z, CTRL)
    np.testing.assert_array_equal(w.doc.values[55], REAR)


def grooming_then_rearing(studio, tmp_path):
    """A project (grooming, rearing) open in the studio, labelled by keys: grooming 0..4, rearing 9..13 (toggled on,
    unsaved)."""
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    src = unlabelled_video(tmp_path / "src", "a")
    project.add_video(src, labels=src.with_name("a_labels.csv"))
    w = studio(tmp_path / "p")
    press(w, K.Key_1)
    press(w, K.Key_Right, times=4)
    press(w, K.Key_Escape)
    press(w, K.Key_Right, times=5)
    press(w, K.Key_2)
    press(w, K.Key_Right, times=4)
    return w


def test_add_and_remove_behaviours_keep_labels(studio, tmp_path):
    w = grooming_then_rearing(studio, tmp_path)  # unsaved: changing the behaviours saves first
    w.remove_behaviour("grooming")  # frames where it alone was on become background
    assert w.doc.behaviours == ["background", "rearing"] and w.cursor == 13
    np.testing.assert_array_equal(w.doc.values[:5], np.tile([1, 0], (5, 1)))
    np.testing.assert_array_equal(w.doc.values[9:14], np.tile([0, 1], (5, 1)))
    w.add_behaviour("sniffing")
    assert w.doc.behaviours == ["background", "rearing", "sniffing"]
    assert Project.open(tmp_path / "p").behaviours == w.doc.behaviours
    # The new column is unlabelled everywhere (nobody looked for it yet); the others keep their labels.
    np.testing.assert_array_equal(w.doc.values[:5], np.tile([1, 0, -1], (5, 1)))
    np.testing.assert_array_equal(w.doc.values[5], [-1, -1, -1])
    assert w.cursor == 13
    press(w, K.Key_2)  # the new behaviour's key works at once
    np.testing.assert_array_equal(w.doc.values[13], [0, 1, 1])
    press(w, K.Key_S, CTRL)
    on_disk = read_labels(w.ws.videos[0].labels_path)
    assert on_disk.behaviours == ["background", "rearing", "sniffing"]
    np.testing.assert_array_equal(on_disk.values, w.doc.values)


def test_behaviour_changes_are_undone_keeping_later_edits(studio, tmp_path):
    """Removing a behaviour is undone (its column back in place, in every label file); edits made since stay."""
    w = grooming_then_rearing(studio, tmp_path)
    press(w, K.Key_Escape)
    press(w, K.Key_S, CTRL)
    w.remove_behaviour("grooming")
    assert w.doc.behaviours == ["background", "rearing"]
    press(w, K.Key_Right, times=7)
    press(w, K.Key_1)
    press(w, K.Key_Right, times=2)  # rearing 20..22, painted after the removal
    press(w, K.Key_Escape)
    press(w, K.Key_S, CTRL)
    w.undo_behaviours()
    assert w.doc.behaviours == ["background", "grooming", "rearing"]
    assert Project.open(tmp_path / "p").behaviours == ["background", "grooming", "rearing"]
    on_disk = read_labels(w.ws.videos[0].labels_path)
    assert on_disk.behaviours == ["background", "grooming", "rearing"]
    np.testing.assert_array_equal(on_disk.values[:5], np.tile([0, 1, 0], (5, 1)))  # grooming again, not background
    np.testing.assert_array_equal(on_disk.values[9:14], np.tile([0, 0, 1], (5, 1)))
    np.testing.assert_array_equal(on_disk.values[20:23], np.tile([0, -1, 1], (3, 1)))  # the later edit is kept
    np.testing.assert_array_equal(w.doc.values, on_disk.values)
    # With no label edit left to undo, Ctrl+Z undoes the last change of behaviours too.
    w.add_behaviour("sniffing")
    assert w.doc.behaviours[-1] == "sniffing" and not w.doc.can_undo
    press(w, K.Key_Z, CTRL)
    assert w.doc.behaviours == ["background", "grooming", "rearing"]
    assert read_labels(w.ws.videos[0].labels_path).behaviours == ["background", "grooming", "rearing"]
    press(w, K.Key_Z, CTRL)  # nothing left: said, nothing changed
    assert w.doc.behaviours == ["background", "grooming", "rearing"]


def test_exclusive_project_keeps_one_behaviour_per_frame(studio, tmp_path):
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    src = unlabelled_video(tmp_path / "src", "a")
    project.add_video(src, labels=src.with_name("a_labels.csv"))
    project.config.setdefault("deg_live", {}).setdefault("labels", {})["exclusive"] = True
    project.save_config()
    w = studio(tmp_path / "p")
    assert w.ws.exclusive and w.doc.exclusive and "exclusive" in w.info.text()
    press(w, K.Key_1)
    press(w, K.Key_2)  # in exclusive mode a second toggle replaces the first
    assert w.toggled == [2]
    press(w, K.Key_Right, times=3)
    np.testing.assert_array_equal(w.doc.values[:4], np.tile(REAR, (4, 1)))
    press(w, K.Key_Escape)
    drag(w, 2, 2, 1)  # grooming painted on a rearing frame: rearing goes
    np.testing.assert_array_equal(w.doc.values[2], GROOM)
    assert ((w.doc.values == 1).sum(axis=1) <= 1).all()


def test_play_pause_speeds_and_stepping_while_playing(studio, tmp_path, qapp):
    w = studio(unlabelled_video(tmp_path))
    press(w, K.Key_BracketLeft, times=10)
    assert w.speed == 0.1
    press(w, K.Key_BracketRight, times=10)
    assert w.speed == 4.0
    press(w, K.Key_Space)
    assert w.playing
    assert pump(qapp, 5.0, until=lambda: w.cursor >= 20), w.cursor  # 4x of 25 fps: 100 frames/s
    press(w, K.Key_Space)
    stopped = w.cursor
    pump(qapp, 0.3)
    assert not w.playing and w.cursor == stopped
    # At 0.1x (2.5 frames/s) a step while playing moves exactly one frame and playing goes on from there.
    w.set_cursor(0)
    press(w, K.Key_BracketLeft, times=10)
    press(w, K.Key_Space)
    press(w, K.Key_Right)
    assert w.cursor == 1 and w.playing
    press(w, K.Key_Space)
    assert pump(qapp, 1.0, until=lambda: not w.playing) and w.cursor in (1, 2)
    # Playing to the end stops there, and a toggled behaviour is painted on every frame played over.
    w.set_speed(4.0)
    w.set_cursor(130)
    press(w, K.Key_2)
    press(w, K.Key_Space)
    assert pump(qapp, 5.0, until=lambda: not w.playing) and w.cursor == 143
    np.testing.assert_array_equal(w.doc.values[130:], np.tile(REAR, (14, 1)))
    assert not w.doc.labelled_rows()[3:130].any()


def test_suggestion_queue_ranks_and_next_key_jumps(studio, tmp_path):
    video = unlabelled_video(tmp_path)
    probs = np.full((144, 3), 0.05, np.float32)
    probs[:, 0] = 0.95
    probs[30:45, 1] = 0.5  # right at the threshold: least sure
    probs[90:110, 2] = 0.38  # near it, less so
    write_model_outputs(video, probs)
    w = studio(video)
    near = [s for s in w.suggestions if s.reason == "near threshold"]
    assert [(s.start, s.stop, s.behaviour) for s in near[:2]] == [(30, 45, "grooming"), (90, 110, "rearing")]
    assert near[0].score > near[1].score and w.queue_list.count() == len(w.suggestions)
    assert w.suggestions[0].start == 30
    press(w, K.Key_N)
    assert w.cursor == w.suggestions[0].start and w.suggestion_at == 0
    press(w, K.Key_N)
    assert w.cursor == w.suggestions[1].start
    press(w, K.Key_N, SHIFT)
    assert w.cursor == w.suggestions[0].start
    # Labelling the bout takes it off the queue.
    press(w, K.Key_1)
    press(w, K.Key_Right, times=15)
    press(w, K.Key_Escape)
    w.refresh_suggestions()
    assert all(not (s.start < 45 and s.stop > 30) for s in w.suggestions)


def test_help_overlay_and_frame_box(studio, tmp_path, qapp):
    w = studio(unlabelled_video(tmp_path))
    press(w, K.Key_Question, SHIFT)
    assert w.help.isVisible() and "Ctrl+Z" in w.help.text()
    press(w, K.Key_Escape)
    assert not w.help.isVisible()
    QtTest.QTest.mouseClick(w.frame_spin, LEFT_BUTTON)
    w.frame_spin.selectAll()
    QtTest.QTest.keyClicks(w.frame_spin, "77")
    QtTest.QTest.keyClick(w.frame_spin, K.Key_Return)
    pump(qapp, 0.05)
    assert w.cursor == 77
    np.testing.assert_array_equal(w.frame_box.frame_item.image, w.frames.get(77))
    w.frame_box.frame_item.render()  # what Qt paints: the decoded pixels exactly (no levels rescale)
    q, rgb = w.frame_box.frame_item.qimage, w.frames.get(77)
    for x, y in ((0, 0), (160, 90), (319, 179)):
        assert q.pixelColor(x, y).getRgb()[:3] == tuple(int(c) for c in rgb[y, x])


def test_job_runs_a_child_shows_progress_and_cancels_without_freezing(studio, tmp_path, qapp):
    w = studio(unlabelled_video(tmp_path))
    script = tmp_path / "stage.py"
    script.write_text(
        "import sys, time\n"
        "for i in range(0, 101, 5):\n"
        "    sys.stderr.write(f'\\rtraining: {i:3d}%|####| {i}/100'); sys.stderr.flush(); time.sleep(0.02)\n"
        "print('\\nINFO trainer: sequence epoch 2/4: step 5/10, 3.0 clips/s, loss 0.1'); sys.stdout.flush()\n"
        "time.sleep(0.3)\n"
        "print('stage done'); sys.stdout.flush()\n"
        "if 'long' in sys.argv: time.sleep(600)\n"
    )
    w.job_program = [sys.executable, str(script)]
    job = w.start_job("train", steps=[["short"], ["long"]])
    seen = []
    job.progress.connect(lambda percent, line: seen.append((percent, line)))
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    assert pump(qapp, 20.0, until=lambda: job._step == 1 and w.job_progress.value() == 37), w.job_label.text()
    percents = [p for p, _ in seen if p >= 0]
    assert percents[-1] == 37 and max(percents) >= 50  # the bar climbing, then epoch 2/4 step 5/10 = 37.5%
    assert any("stage done" in line for _, line in seen)
    assert job.running and w.cancel_button.isEnabled()
    t0 = time.monotonic()
    w.cancel_button.click()
    assert pump(qapp, 10.0, until=lambda: job.done)
    assert time.monotonic() - t0 < 8.0 and "cancelled" in w.job_label.text() and not w.cancel_button.isEnabled()
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 20 and gaps.max() < 1.0  # the event loop kept running while the child ran


def test_job_runs_deg_train(studio, tmp_path, qapp):
    """A real ``deg-train`` child process (``status`` of the open project) through the Train/Infer machinery."""
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    src = unlabelled_video(tmp_path / "src", "a")
    project.add_video(src, labels=src.with_name("a_labels.csv"))
    w = studio(tmp_path / "p")
    assert w.job_steps("infer") == [["infer", "-p", str(project.root), "a"]]
    assert w.job_steps("train") == [["train-all", "-p", str(project.root)], ["infer", "-p", str(project.root)]]
    w.train_preset = "tiny"
    assert w.job_steps("train")[0] == ["train-all", "-p", str(project.root), "--preset", "tiny"]
    run = project.runs_dir / "20260101_000000_sequence_tgm"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("preset: tiny\nsequence:\n  causal: true\n")
    assert w.job_steps("train")[0][0] == "train-all"  # not finished yet (no done.json)
    (run / "done.json").write_text("{}\n")
    centred = project.runs_dir / "20260101_000001_sequence_tgm-centred"  # newer, but a comparison model
    centred.mkdir()
    (centred / "config.yaml").write_text("preset: tiny\nsequence:\n  causal: false\n")
    (centred / "done.json").write_text("{}\n")
    assert w.job_steps("train") == [  # with runs: the sequence model fine-tuned on the new labels, then predictions
        ["train-sequence", "-p", str(project.root), "--config", str(run / "config.yaml"), f"sequence.weights={run}"],
        ["evaluate", "-p", str(project.root), "--compare", "none"],
        ["infer", "-p", str(project.root)],
    ]
    job = w.start_job("status", steps=[["status", "-p", str(project.root)]])
    assert pump(qapp, 60.0, until=lambda: job.done)
    assert "status: done" in w.job_label.text(), job.output
    assert any("a" in line for line in job.output)


def test_opens_a_recording_folder(studio, tmp_path):
    from camera_adapters.video import VideoReader
    from camera_adapters.wire import Frame
    from deg_live.recorder import Recorder

    with VideoReader(rat_mp4()) as video:
        frames = [video[i] for i in range(40)]
    behaviours = BEHAVIOURS
    with Recorder(tmp_path, "cam0", behaviours, [0.5, 0.5, 0.5], session="s1", codec="high", flush_s=0.0) as rec:
        for i, pixels in enumerate(frames):
            rec.write_frame(Frame(index=i, pixels=pixels, capture_time_ns=i, publish_time_ns=i, stream_id="s", fps=25))
            grooming = 10 <= i < 20
            rec.write_outputs(
                i,
                np.array([0.1, 0.9 if grooming else 0.1, 0.1]),
                [not grooming, grooming, False],
                np.zeros(3),
                stream_id="s",
            )
        rec.close()
    w = studio(tmp_path)  # a folder of sessions
    assert [v.name for v in w.ws.videos] == ["s1"] and w.doc.n_frames == 40
    assert w.group_combo.currentText() == "deg_live" and w.predictions is not None
    assert any(s.reason == "live event" and s.start <= 10 < s.stop for s in w.suggestions)
    w.import_predictions(only_unlabelled=True)
    press(w, K.Key_S, CTRL)
    saved = read_labels(tmp_path / "s1" / "s1_labels.csv", n_frames=40)
    assert (saved.values[10:20, 1] == 1).all() and (saved.values[:10, 0] == 1).all()
    assert Workspace.open(None, tmp_path / "s1").videos[0].name == "s1"  # one session folder opens too


def test_opens_a_deepethogram_project_as_it_is(studio, tmp_path):
    """A project as DeepEthogram leaves it (absolute paths from another machine, its config sections, -1.0 cells,
    a video without labels): the studio labels it in place and leaves DeepEthogram's files readable by it."""
    import shutil

    import yaml

    root = tmp_path / "mice_deepethogram"
    for name in ("m1", "m2"):
        (root / "DATA" / name).mkdir(parents=True)
    config = {
        "augs": {"LR": 0.5, "resize": [224, 224]},
        "project": {
            "class_names": ["background", "grooming", "rearing"],
            "config_file": "/old/machine/mice_deepethogram/project_config.yaml",
            "data_path": "/old/machine/mice_deepethogram/DATA",
            "model_path": "/old/machine/mice_deepethogram/models",
            "labeler": "jim",
            "name": "mice",
            "path": "/old/machine/mice_deepethogram",
        },
        "sequence": {"filter_length": 15},
    }
    (root / "project_config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(rat_mp4(), root / "DATA" / "m1" / "m1.mp4")
    shutil.copy(rat_mp4(SESSION_B), root / "DATA" / "m2" / "m2.mp4")
    lines = [",background,grooming,rearing"] + [f"{i},0,1,0" if i < 20 else f"{i},-1,-1,-1.0" for i in range(144)]
    (root / "DATA" / "m1" / "m1_labels.csv").write_text("\n".join(lines) + "\n")
    w = studio(root)
    assert [v.name for v in w.ws.videos] == ["m1", "m2"] and w.doc.counts()["labelled"] == 20
    np.testing.assert_array_equal(w.doc.values[:20], np.tile(GROOM, (20, 1)))
    press(w, K.Key_Return, CTRL)  # finalise m1 -> m2 (no labels yet) opens
    assert w.ws.videos[w.index].name == "m2" and not w.doc.labelled_rows().any()
    press(w, K.Key_2)
    press(w, K.Key_Right, times=9)
    press(w, K.Key_S, CTRL)
    m2 = read_labels(root / "DATA" / "m2" / "m2_labels.csv", n_frames=160)
    assert m2.behaviours == BEHAVIOURS and (m2.values[:10, 2] == 1).all() and (m2.values[10:] == -1).all()
    kept = yaml.safe_load((root / "project_config.yaml").read_text())
    assert kept["augs"] == config["augs"] and kept["sequence"] == config["sequence"]  # its sections intact
    m1 = read_labels(root / "DATA" / "m1" / "m1_labels.csv", n_frames=144)
    assert (m1.values[20:] == [1, 0, 0]).all()


def test_screenshot_shows_what_was_painted(studio, tmp_path, qapp):
    from deg_live.viewer.render import behaviour_colours
    from deg_train.studio.tracks import UNLABELLED, UNLABELLED_ALT

    w = studio(unlabelled_video(tmp_path))
    press(w, K.Key_2)
    press(w, K.Key_Right, times=30)
    press(w, K.Key_Escape)
    pump(qapp, 0.05)
    image = w.grab().toImage()
    colours = behaviour_colours(BEHAVIOURS)

    def at(frame: int, band: int) -> np.ndarray:
        p = w.label_track.mapTo(w, w.track_point(frame, band))
        c = image.pixelColor(p.x(), p.y())
        return np.array([c.red(), c.green(), c.blue()])

    assert np.abs(at(15, 2) - colours[2]).max() <= 8  # rearing painted in its colour
    grey = [np.abs(at(f, 2) - np.asarray(u)).max() for f in (80, 82) for u in (UNLABELLED, UNLABELLED_ALT)]
    assert min(grey) <= 8  # unlabelled hatching where nobody labelled
    assert np.abs(at(15, 1) - colours[1]).max() > 40  # grooming absent there: not its colour


def test_an_unreadable_video_leaves_the_open_one_open(studio, tmp_path):
    good = tmp_path / "s1"
    unlabelled_video(good, "s1")
    (good / "s1_recording.json").write_text("{}\n")
    bad = tmp_path / "s2"
    bad.mkdir()
    (bad / "s2.mp4").write_bytes(b"not a video at all" * 100)
    (bad / "s2_recording.json").write_text("{}\n")
    w = studio(tmp_path)
    assert [v.name for v in w.ws.videos] == ["s1", "s2"] and w.index == 0
    press(w, K.Key_1)
    press(w, K.Key_Right, times=3)
    assert w.open_video(1) is False
    assert w.index == 0 and w.doc.dirty and "cannot open s2" in w.messages[-1]
    np.testing.assert_array_equal(w.doc.values[:4, 1], [1, 1, 1, 1])
    press(w, K.Key_Right)  # still working
    assert w.cursor == 4 and w.doc.values[4, 1] == 1


def test_a_large_video_opens_in_the_background(qapp, tmp_path):
    """The window shows before the video is indexed (hour-long files take seconds); keys wait for it."""
    from deg_train.studio.window import StudioWindow

    video = unlabelled_video(tmp_path)
    w = StudioWindow(Workspace.open(None, video), confirm=lambda _q: False, autosave_s=3600, background_open=True)
    try:
        w.show()
        assert w.doc is None and w._opening is not None  # nothing indexed until the event loop runs
        press(w, K.Key_Right)
        press(w, K.Key_1)
        press(w, K.Key_S, CTRL)  # ignored, no error
        assert pump(qapp, 20.0, until=lambda: w.doc is not None)
        assert w.cursor == 0 and w.doc.n_frames == 144 and not w.doc.labelled_rows().any()
        press(w, K.Key_1)
        press(w, K.Key_Right)
        np.testing.assert_array_equal(w.doc.values[:2], rows(GROOM, GROOM))
        # Switching to a video in the background keeps the current one usable until the new one is ready.
        w.ws.videos.append(Workspace.open(None, unlabelled_video(tmp_path / "b", "b")).videos[0])
        assert w.open_video(1, background=True) and w.index == 0
        press(w, K.Key_Right)
        assert w.doc.values[2, 1] == 1
        assert pump(qapp, 20.0, until=lambda: w.index == 1)
        assert not w.doc.labelled_rows().any()
        assert (tmp_path / ".deg_studio" / "a_labels.autosave.csv").exists()  # the edits of a, autosaved
    finally:
        w.close()


def test_predictions_track_shows_decisions_and_disagreements(studio, tmp_path, qapp):
    from deg_live.viewer.render import LABEL_PRESENT, behaviour_colours
    from deg_train.studio.tracks import DISAGREE

    video = unlabelled_video(tmp_path)
    probs = np.full((144, 3), 0.05, np.float32)
    probs[:, 0] = 0.95
    probs[20:60, 1] = 0.9  # the model: grooming on 20..59
    probs[20:60, 0] = 0.05
    write_model_outputs(video, probs)
    w = studio(video)
    drag(w, 40, 80, 1)  # a person: grooming on ~40..80 (agrees on 40..59, disagrees after)
    pump(qapp, 0.05)
    image = w.grab().toImage()

    def at(frame: int, part: str) -> np.ndarray:
        p = w.pred_track.mapTo(w, w.track_point(frame, 1, "pred", part))
        c = image.pixelColor(p.x(), p.y())
        return np.array([c.red(), c.green(), c.blue()])

    assert np.abs(at(30, "decision") - behaviour_colours(BEHAVIOURS)[1]).max() <= 8  # the model's decision, solid
    assert np.abs(at(50, "label") - np.asarray(LABEL_PRESENT)).max() <= 8  # label agrees: white
    assert np.abs(at(70, "label") - np.asarray(DISAGREE)).max() <= 8  # labelled grooming, model says no: red


def test_add_video_to_a_project_opens_it(studio, tmp_path):
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    src = unlabelled_video(tmp_path / "src", "a")
    project.add_video(src, labels=src.with_name("a_labels.csv"))
    w = studio(tmp_path / "p")
    w.add_video(rat_mp4(SESSION_B))  # copied into the project and checked, as `deg-train add` does
    assert [v.name for v in w.ws.videos] == ["a", SESSION_B] and w.index == 1 and w.doc.n_frames == 160
    assert (tmp_path / "p" / "DATA" / SESSION_B / f"{SESSION_B}.mp4").is_file()
    press(w, K.Key_2)
    press(w, K.Key_S, CTRL)
    assert Project.open(tmp_path / "p").load_labels(SESSION_B).values[0, 2] == 1
    w.add_video(tmp_path / "missing.mp4")
    assert w.index == 1 and "missing.mp4" in w.messages[-1]


def test_next_suggestion_opens_the_other_video_at_the_bout(studio, tmp_path):
    project = Project.init(tmp_path / "p", "p", ["grooming", "rearing"])
    for name, session in (("a", SESSION_B), ("b", "cage1_6_23_17_5")):
        src = unlabelled_video(tmp_path / "src", name, session=session)
        project.add_video(src, labels=src.with_name(f"{name}_labels.csv"))
    probs = np.full((144, 3), 0.05, np.float32)
    probs[:, 0] = 0.95
    probs[70:90, 2] = 0.5
    write_model_outputs(Project.open(tmp_path / "p").video("b").video_path, probs, group="deg_train_tgm")
    w = studio(tmp_path / "p")
    assert w.ws.videos[w.index].name == "a" and w.suggestions and w.suggestions[0].video == "b"
    press(w, K.Key_N)
    assert w.ws.videos[w.index].name == "b" and w.cursor == 70 and w.suggestion_at == 0
    assert w.group_combo.currentText() == "deg_train_tgm" and w.predictions is not None
    w.frame_box.scaleBy((0.25, 0.25))  # zoomed in; F fits the whole frame again
    press(w, K.Key_F)
    (x0, x1), (y0, y1) = w.frame_box.viewRange()
    assert x0 <= 0.5 and x1 >= 319.5 and y0 <= 0.5 and y1 >= 179.5


def test_a_video_open_in_another_studio_is_flagged(studio, tmp_path):
    import json
    import socket
    import subprocess
    import sys

    video = unlabelled_video(tmp_path)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        note = tmp_path / ".deg_studio" / "a.open.json"
        note.parent.mkdir()
        note.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname(), "since": "earlier"}))
        w = studio(video)
        assert any("also open in another studio" in m and str(other.pid) in m for m in w.messages)
        assert json.loads(note.read_text())["pid"] == os.getpid()  # now ours
        w.close()
        assert not note.exists() and not note.parent.exists()  # released on close, the empty folder too
    finally:
        other.kill()
        other.wait()
    # A note left by a process that is gone is replaced without a word.
    note.parent.mkdir(exist_ok=True)
    note.write_text(json.dumps({"pid": other.pid, "host": socket.gethostname()}))
    w2 = studio(video)
    assert not any("also open" in m for m in w2.messages)
