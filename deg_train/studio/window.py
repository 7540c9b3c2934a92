"""The labelling studio window (PyQt6 + pyqtgraph): label, correct and review videos; no torch in this process.

Layout: the video (wheel zooms, drag pans, ``F`` fits) beside a side panel (behaviour toggles, info box, videos,
predictions group, the active-learning queue, train/infer); under them the label track, the predictions track and
an overview of the whole video; a frame box and play controls at the bottom. ``?`` shows every shortcut.

Labelling works as in DeepEthogram: a number key toggles a behaviour (``0`` = background, which excludes the
others) and labels the current frame; while a behaviour is toggled on, stepping forward paints it on every frame
stepped over and stepping back erases it from the frames left behind (jumps — the frame box, the overview, the
queue — never paint). A press-drag on the label track paints a range (or erases it when the press lands on a frame
where the behaviour is present; Shift+drag makes it unlabelled). Every edit can be undone (Ctrl+Z) and redone
(Ctrl+Shift+Z / Ctrl+Y); one toggle-and-step bout or one drag is one undo step.

Saving writes DeepEthogram's ``<video>_labels.csv`` atomically; unsaved edits are autosaved every few seconds
(see :mod:`deg_train.studio.workspace`), so a killed window loses nothing that was autosaved and never damages the
saved file.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import yaml
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from camera_adapters.errors import UserFacingError
from deg_live.viewer.render import ROWS_PER_BAND, band_rows, behaviour_colours
from deg_live.viewer.review import ReviewData, ReviewError, load_outputs, load_session
from deg_live.viewer.widgets import FrameBox
from deg_train.studio.document import LabelDocument
from deg_train.studio.frames import FrameCache
from deg_train.studio.jobs import StageJob
from deg_train.studio.suggest import Suggestion, suggest
from deg_train.studio.tracks import (
    LABEL_BAND_ROWS,
    LabelTrack,
    OverviewTrack,
    _Track,
    label_image,
    overview_image,
    prediction_image,
)
from deg_train.studio.workspace import Workspace, claim, read_autosave_info, release

log = logging.getLogger(__name__)

SPEEDS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)
FEW = 10  # Up/Down step

SHORTCUTS = [
    ("← / →", "previous / next frame (paints or erases toggled behaviours)"),
    ("↑ / ↓", f"{FEW} frames forward / back"),
    ("Ctrl+← / Ctrl+→, PgUp / PgDn", "a page (the visible timeline)"),
    ("Home / End", "first / last frame"),
    ("0 … 9", "toggle a behaviour (0 = background, exclusive); labels this frame"),
    ("Esc", "untoggle every behaviour; close this help"),
    ("Delete", "make this frame unlabelled"),
    ("drag on the label track", "paint a range (erase from a present frame; Shift: unlabel)"),
    ("Space", "play / pause"),
    ("[ / ]", "slower / faster (0.1× … 4×)"),
    ("+ / -", "zoom the timeline in / out"),
    ("F", "fit the video in its view (the wheel zooms, dragging pans)"),
    ("N / Shift+N", "next / previous suggested bout (active-learning queue)"),
    ("Ctrl+Z, Ctrl+Shift+Z / Ctrl+Y", "undo, redo (with no label edit left, Ctrl+Z undoes a change of behaviours)"),
    ("Ctrl+S", "save <video>_labels.csv"),
    ("Ctrl+Enter", "finalise: the rest becomes background, then the next unfinished video"),
    ("?", "this help"),
]


def _hex(colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in colour))


class StudioWindow(QtWidgets.QMainWindow):
    """The labelling studio on a :class:`~deg_train.studio.workspace.Workspace`.

    Args:
        workspace: what to label.
        start: the video to open first (index).
        confirm: ``f(question) -> bool`` for yes/no questions (default: a dialog).
        autosave_s: seconds between autosaves of unsaved edits.
        span: frames visible on the timeline.
        background_open: open the first video in a thread (None: when it is larger than
            :attr:`background_open_bytes`); the window shows at once and the video appears when indexed.
        train_preset: the preset Train uses when the project has no runs yet (``deg-train train-all --preset``;
            None: train-all's default). With runs, Train fine-tunes the newest causal sequence run on the new labels.
    """

    #: Video files larger than this open in a background thread (their timestamp index takes a while).
    background_open_bytes = 200 << 20

    def __init__(
        self,
        workspace: Workspace,
        *,
        start: int = 0,
        confirm: Callable[[str], bool] | None = None,
        autosave_s: float = 10.0,
        span: int = 240,
        background_open: bool | None = None,
        train_preset: str | None = None,
    ):
        super().__init__()
        if not workspace.videos:
            raise UserFacingError(f"{workspace.title}: no videos to label; add one (deg-train add) first")
        self.ws = workspace
        self.confirm = confirm or self._ask
        self.span = int(span)
        self.index = -1
        self.doc: LabelDocument | None = None
        self.frames: FrameCache | None = None
        self.cursor = 0
        self.toggled: list[int] = []
        self.predictions: ReviewData | None = None
        self.pred_columns: list[int] = []
        self.suggestions: list[Suggestion] = []
        self.suggestion_at = -1
        self.job: StageJob | None = None
        self.job_program: list[str] | None = None
        self.train_preset = train_preset  # the command jobs run (default: deg-train in this Python)
        self.playing = False
        self.speed = 1.0
        self.messages: list[str] = []
        self._session = 0  # toggle bouts: one undo step each
        self._stroke: dict | None = None
        self._autosaved = -1
        self._autosave_thread: threading.Thread | None = None
        self._play_origin = (0, 0.0)

        self.setWindowTitle(f"deg-train studio: {workspace.title}")
        self.resize(1400, 900)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self._build()
        self._build_menu()

        self.play_timer = QtCore.QTimer(self)
        self.play_timer.setInterval(10)
        self.play_timer.timeout.connect(self._play_tick)
        self.autosave_timer = QtCore.QTimer(self)
        self.autosave_timer.timeout.connect(self.autosave)
        self.autosave_timer.start(max(200, int(autosave_s * 1000)))
        self.overview_timer = QtCore.QTimer(self)
        self.overview_timer.setSingleShot(True)
        self.overview_timer.setInterval(250)
        self.overview_timer.timeout.connect(self._draw_overview)
        self._pending_suggestion: int | None = None
        self._opening: tuple | None = None  # (index, cursor, thread, result) while a video opens in the background
        self._open_timer = QtCore.QTimer(self)
        self._open_timer.setInterval(30)
        self._open_timer.timeout.connect(self._check_opening)

        self.open_video(start, background=background_open)

    # ============================================================================================ building
    def _build(self) -> None:
        central = QtWidgets.QWidget()
        self.setCentralWidget(central)
        outer = QtWidgets.QVBoxLayout(central)
        outer.setContentsMargins(4, 4, 4, 4)
        top = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        outer.addWidget(top, stretch=3)

        self.video_widget = pg.GraphicsLayoutWidget()
        self.video_widget.setBackground("#101014")
        self.video_widget.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.frame_box = FrameBox(interactive=True)
        self.video_widget.addItem(self.frame_box)
        top.addWidget(self.video_widget)

        side = QtWidgets.QWidget()
        side_layout = QtWidgets.QVBoxLayout(side)
        side_layout.setContentsMargins(2, 2, 2, 2)
        self.buttons_box = QtWidgets.QGroupBox("behaviours (number keys)")
        self.buttons_layout = QtWidgets.QVBoxLayout(self.buttons_box)
        self.buttons_layout.setSpacing(1)
        side_layout.addWidget(self.buttons_box)
        self.behaviour_buttons: list[QtWidgets.QPushButton] = []
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("predictions:"))
        self.group_combo = QtWidgets.QComboBox()
        self.group_combo.activated.connect(lambda _i: self.load_predictions(self.group_combo.currentText() or None))
        row.addWidget(self.group_combo, stretch=1)
        side_layout.addLayout(row)

        self.queue_list = QtWidgets.QListWidget()
        self.queue_list.itemActivated.connect(lambda item: self.go_to_suggestion(self.queue_list.row(item)))
        side_layout.addWidget(QtWidgets.QLabel("suggested bouts (N: next)"))
        self.queue_list.setMinimumHeight(90)
        side_layout.addWidget(self.queue_list, stretch=1)

        self.info = QtWidgets.QLabel()
        self.info.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.info.setWordWrap(True)
        info_box = QtWidgets.QGroupBox("info")
        QtWidgets.QVBoxLayout(info_box).addWidget(self.info)
        side_layout.addWidget(info_box)

        self.video_list = QtWidgets.QListWidget()
        self.video_list.setMaximumHeight(110)
        self.video_list.itemActivated.connect(lambda item: self.open_video(self.video_list.row(item)))
        side_layout.addWidget(QtWidgets.QLabel("videos (Enter / double-click to open)"))
        side_layout.addWidget(self.video_list)

        self.train_button = QtWidgets.QPushButton("Train")
        self.train_button.clicked.connect(lambda: self.start_job("train"))
        self.infer_button = QtWidgets.QPushButton("Infer")
        self.infer_button.clicked.connect(lambda: self.start_job("infer"))
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_job)
        self.cancel_button.setEnabled(False)
        self.job_progress = QtWidgets.QProgressBar()
        self.job_progress.setRange(0, 100)
        self.job_progress.setValue(0)
        self.job_progress.setMaximumWidth(160)
        self.job_label = QtWidgets.QLabel("")
        self.job_label.setMaximumWidth(420)
        scroll = QtWidgets.QScrollArea()  # the side panel scrolls rather than making the window taller
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        scroll.setWidget(side)
        scroll.setMinimumWidth(300)
        top.addWidget(scroll)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)

        self.label_track = LabelTrack()
        self.label_track.on_stroke = self.stroke
        outer.addWidget(self.label_track, stretch=1)
        self.pred_track = _Track(80)
        outer.addWidget(self.pred_track, stretch=1)
        self.overview = OverviewTrack()
        self.overview.on_jump = self.set_cursor
        self.overview.setMaximumHeight(40)
        outer.addWidget(self.overview)

        bar = QtWidgets.QHBoxLayout()
        self.play_button = QtWidgets.QPushButton("▶ play")
        self.play_button.clicked.connect(self.toggle_play)
        bar.addWidget(self.play_button)
        self.speed_combo = QtWidgets.QComboBox()
        self.speed_combo.addItems([f"{s:g}×" for s in SPEEDS])
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.activated.connect(lambda i: self.set_speed(SPEEDS[i]))
        bar.addWidget(self.speed_combo)
        bar.addWidget(QtWidgets.QLabel("frame:"))
        self.frame_spin = QtWidgets.QSpinBox()
        self.frame_spin.setKeyboardTracking(False)
        self.frame_spin.editingFinished.connect(self._frame_box_jump)
        bar.addWidget(self.frame_spin)
        self.position_label = QtWidgets.QLabel("")
        bar.addWidget(self.position_label, stretch=1)
        for w in (self.job_label, self.job_progress, self.train_button, self.infer_button, self.cancel_button):
            bar.addWidget(w)  # jobs always in view, whatever the side panel's scroll
        outer.addLayout(bar)

        self.frame_spin.setFocusPolicy(QtCore.Qt.FocusPolicy.ClickFocus)  # keys go to the window unless clicked
        for w in (self.video_list, self.group_combo, self.queue_list, self.speed_combo, self.play_button):
            w.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        for b in (self.train_button, self.infer_button, self.cancel_button):
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)

        self.help = QtWidgets.QLabel(self)
        rows = "".join(
            f"<tr><td><b>{html.escape(k)}</b></td><td>&nbsp;&nbsp;{html.escape(v)}</td></tr>" for k, v in SHORTCUTS
        )
        self.help.setText(f"<h3>Shortcuts</h3><table>{rows}</table><p>? or Esc closes this</p>")
        self.help.setStyleSheet("background: rgba(10,10,20,230); color: #eeeeee; padding: 18px; font-size: 13px;")
        self.help.hide()

    def _build_menu(self) -> None:
        bar = self.menuBar()
        file = bar.addMenu("&File")
        file.addAction("Add video…", self._add_video_dialog)
        file.addAction("Save\tCtrl+S", self.save)
        file.addAction("Finalise\tCtrl+Enter", self.finalise)
        file.addSeparator()
        file.addAction("Quit", self.close)
        edit = bar.addMenu("&Edit")
        edit.addAction("Undo\tCtrl+Z", self.undo)
        edit.addAction("Redo\tCtrl+Shift+Z", self.redo)
        edit.addSeparator()
        edit.addAction("Import predictions (unlabelled frames)", lambda: self.import_predictions(True))
        edit.addAction("Import predictions (all frames)", lambda: self.import_predictions(False))
        edit.addSeparator()
        edit.addAction("Add behaviour…", self._add_behaviour_dialog)
        edit.addAction("Remove behaviour…", self._remove_behaviour_dialog)
        model = bar.addMenu("&Model")
        model.addAction("Train (deg-train)", lambda: self.start_job("train"))
        model.addAction("Infer this video (deg-train infer)", lambda: self.start_job("infer"))
        model.addAction("Cancel", self.cancel_job)
        model.addAction("Refresh suggestions", self.refresh_suggestions)
        bar.addMenu("&Help").addAction("Shortcuts\t?", self.toggle_help)

    def _rebuild_behaviours(self) -> None:
        for b in self.behaviour_buttons:
            self.buttons_layout.removeWidget(b)
            b.deleteLater()
        self.behaviour_buttons = []
        self.colours = behaviour_colours(self.doc.behaviours)
        for k, name in enumerate(self.doc.behaviours):
            key = f"[{k}] " if k < 10 else ""
            button = QtWidgets.QPushButton(f"{key}{name}")
            button.setCheckable(True)
            button.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            button.setStyleSheet(
                f"QPushButton {{ text-align: left; border-left: 8px solid {_hex(self.colours[k])}; padding: 3px; }}"
                "QPushButton:checked { background-color: #3a3a50; font-weight: bold; }"
            )
            button.clicked.connect(lambda _checked, k=k: self.toggle(k))
            self.buttons_layout.addWidget(button)
            self.behaviour_buttons.append(button)
        names = [f"[{k}] {n}" if k < 10 else n for k, n in enumerate(self.doc.behaviours)]
        # One axis width for every track, so their frames line up (the longest label name decides).
        self.axis_width = int(np.clip(20 + 7 * max(len(n) for n in names), 100, 260))
        self.label_track.set_names(names, width=self.axis_width)
        self.overview.plotItem.getAxis("left").setWidth(self.axis_width)
        self.label_track.setMinimumHeight(30 + 14 * len(names))  # every band tall enough to read and to hit
        self.toggled = [k for k in self.toggled if k < len(self.doc.behaviours)]

    # ============================================================================================ videos
    def open_video(self, index: int, *, cursor: int | None = None, background: bool | None = None) -> bool:
        """Open video ``index`` of the workspace at frame ``cursor`` (default: the first, or the autosave's).

        The current video is autosaved first if it has unsaved edits. A video or label file that cannot be read
        leaves the current video open and says why (it raises only when no video is open yet and the open is not in
        the background).

        Opening indexes the file's frame timestamps (a whole demux: about 2 s for an hour of 1080p here), so a
        large file (:attr:`background_open_bytes`, or ``background=True``) opens in a thread: the window shows and
        stays usable on the current video, and switches when the new one is ready. Returns False when nothing was
        (or will be) opened.
        """
        if not 0 <= index < len(self.ws.videos):
            return False
        if self._opening is not None:
            self.say(f"still opening {self.ws.videos[self._opening[0]].name}")
            return False
        video = self.ws.videos[index]
        if background is None:
            try:
                background = video.video.stat().st_size > self.background_open_bytes
            except OSError:
                background = False
        if background:
            result: dict = {}

            def load() -> None:
                try:
                    result["value"] = self._load(index)
                except UserFacingError as err:
                    result["error"] = err

            thread = threading.Thread(target=load, name="studio-open", daemon=True)
            self._opening = (index, cursor, thread, result)
            thread.start()
            self._open_timer.start()
            self.say(f"opening {video.name}…")
            return True
        try:
            frames, table, note = self._load(index)
        except UserFacingError as err:
            if self.doc is None:
                raise
            self.say(f"cannot open {video.name}: {err}")
            return False
        self._show_opened(index, frames, table, note, cursor)
        return True

    def _load(self, index: int):
        """The frames and labels of video ``index`` (any thread): ``(FrameCache, LabelTable, note)``."""
        frames = FrameCache(self.ws.videos[index].video)
        try:
            table, note = self.ws.load_labels(index, frames.n_frames)
        except BaseException:
            frames.close()
            raise
        return frames, table, note

    def _check_opening(self) -> None:
        index, cursor, thread, result = self._opening
        if thread.is_alive():
            return
        self._open_timer.stop()
        self._opening = None
        if "error" in result:
            self.say(f"cannot open {self.ws.videos[index].name}: {result['error']}")
            if self.doc is None:
                self.frame_box.text_item.setHtml(html.escape(str(result["error"])))
            return
        if "value" in result:
            self._show_opened(index, *result["value"], cursor)

    def _show_opened(self, index: int, frames: FrameCache, table, note: str | None, cursor: int | None) -> None:
        """Make an opened video the current one (GUI thread)."""
        if self.doc is not None and self.doc.dirty:
            self.autosave(force=True)
        self.pause()
        video = self.ws.videos[index]
        if self.frames is not None:
            self.frames.close()
        if self.index >= 0 and self.index != index:
            release(self.ws.videos[self.index])
        self.frames = frames
        self.index = index
        self.doc = LabelDocument(table, exclusive=self.ws.exclusive)
        self._autosaved = -1
        start = 0 if cursor is None else int(cursor)
        if note is not None:
            self.doc.revision += 1  # restored from an autosave: not on disk yet
            self._autosaved = self.doc.revision
            info = read_autosave_info(video) or {}
            start = int(info.get("cursor", 0)) if str(info.get("cursor", "0")).isdigit() else 0
            self.say(note)
        shared = claim(video)
        if shared is not None:
            self.say(shared)
        self.toggled = []
        self._rebuild_behaviours()
        self.frame_spin.setRange(0, self.doc.n_frames - 1)
        self._fill_video_list()
        self.group_combo.clear()
        groups = video.prediction_groups()
        if video.session is not None and "deg_live" in groups:
            groups = ["deg_live"] + [g for g in groups if g != "deg_live"]
        self.group_combo.addItems(groups)
        self.load_predictions(groups[0] if groups else None)
        self.cursor = -1
        self.set_cursor(min(start, self.doc.n_frames - 1))
        self.frame_box.fit()
        self._draw_overview()
        self.refresh_suggestions()
        if self._pending_suggestion is not None and self.suggestions:
            self.suggestion_at = min(self._pending_suggestion, len(self.suggestions) - 1)
            self.queue_list.setCurrentRow(self.suggestion_at)
        self._pending_suggestion = None

    def _fill_video_list(self) -> None:
        self.video_list.clear()
        for i, v in enumerate(self.ws.videos):
            mark = "▶ " if i == self.index else "   "
            state = "labels" if v.labels_path.is_file() else "no labels"
            self.video_list.addItem(f"{mark}{v.name} ({state})")
        self.video_list.setCurrentRow(self.index)

    def load_predictions(self, group: str | None) -> None:
        """Show the predictions of ``group`` of the video's outputs file (None: no predictions track)."""
        self.predictions = None
        self.pred_columns = []
        video = self.ws.videos[self.index]
        if group:
            try:
                if video.session is not None and group == "deg_live":
                    data = load_session(video.session, labels=_no_labels(video))
                else:
                    data = load_outputs(video.outputs_path, video.video, group=group, labels=_no_labels(video))
            except (ReviewError, UserFacingError) as err:
                self.say(f"predictions not shown: {err}")
                data = None
            if data is not None:
                self.predictions = data
                self.pred_colours = behaviour_colours(data.behaviours)
                self.pred_columns = [
                    self.doc.behaviours.index(b) if b in self.doc.behaviours else -1 for b in data.behaviours
                ]
                self.pred_track.set_names(data.behaviours, width=self.axis_width)
                self.pred_track.setMinimumHeight(30 + 20 * len(data.behaviours))  # probability, decision, label
        self.pred_track.setVisible(self.predictions is not None)
        if self.cursor >= 0:
            self._draw()

    # ============================================================================================ navigation
    def set_cursor(self, frame: int, *, paint: bool = False) -> None:
        """Move to ``frame`` (clipped). With ``paint``, toggled behaviours are painted (forward) or erased (back)."""
        if self.doc is None:
            return
        frame = int(np.clip(frame, 0, self.doc.n_frames - 1))
        old = self.cursor
        if paint and self.toggled and old >= 0 and frame != old:
            merge = ("toggle", self._session)
            if frame > old:
                self.doc.paint(self.toggled, old, frame + 1, True, merge=merge)
            else:
                self.doc.paint(self.toggled, frame + 1, old + 1, False, merge=merge)
            self._edited()
        self.cursor = frame
        self._draw()

    def step(self, delta: int) -> None:
        """Step ``delta`` frames, painting or erasing toggled behaviours on the way."""
        self.set_cursor(self.cursor + delta, paint=True)
        if self.playing:
            self._play_origin = (self.cursor, time.monotonic())

    def _frame_box_jump(self) -> None:
        if self.frame_spin.value() != self.cursor:
            self.set_cursor(self.frame_spin.value())
        self.setFocus()

    def window_range(self) -> tuple[int, int]:
        """Frames ``[first, stop)`` on the timeline now."""
        n = self.doc.n_frames
        span = min(self.span, n)
        first = int(np.clip(self.cursor - span // 2, 0, n - span))
        return first, first + span

    # ============================================================================================ drawing
    def _draw(self) -> None:
        doc = self.doc
        frame = self.cursor
        try:
            rgb = self.frames.get(frame)
        except UserFacingError as err:
            self.say(str(err))
            rgb = None
        self.frames.set_cursor(frame)
        if rgb is not None:
            self.frame_box.show_frame(rgb)
        present = [doc.behaviours[k] for k in np.flatnonzero(doc.values[frame] == 1)]
        state = "unlabelled" if (doc.values[frame] < 0).all() else ", ".join(present) or "—"
        lines = [f"<span style='color:#cccccc'>frame {frame}</span>", f"<b>{html.escape(state)}</b>"]
        if self.predictions is not None and frame < self.predictions.n_frames:
            on = [self.predictions.behaviours[k] for k in np.flatnonzero(self.predictions.decisions[frame])]
            lines.append(f"<span style='color:#aaaaff'>model: {html.escape(', '.join(on) or '—')}</span>")
        self.frame_box.text_item.setHtml("<br>".join(lines))
        self._draw_tracks()
        if self.frame_spin.value() != frame:
            self.frame_spin.blockSignals(True)
            self.frame_spin.setValue(frame)
            self.frame_spin.blockSignals(False)
        fps = self.frames.fps
        self.position_label.setText(
            f"  {frame / fps:8.2f} s / {doc.n_frames / fps:.2f} s   speed {self.speed:g}×"
            + ("   ▶ playing" if self.playing else "")
        )
        self.overview.cursor.setValue(frame)
        for k, button in enumerate(self.behaviour_buttons):
            button.setChecked(k in self.toggled)
        self._draw_info()

    def _draw_tracks(self) -> None:
        first, stop = self.window_range()
        doc = self.doc
        k = len(doc.behaviours)
        image = label_image(doc.values[first:stop], self.colours, first)
        self.label_track.show_window(image, first, stop - first, k, self.cursor)
        data = self.predictions
        if data is not None:
            a, b = min(first, data.n_frames), min(stop, data.n_frames)
            probs = np.full((stop - first, len(data.behaviours)), np.nan, np.float32)
            dec = np.zeros_like(probs, dtype=bool)
            probs[: b - a] = data.probabilities[a:b]
            dec[: b - a] = data.decisions[a:b]
            labels = np.full(probs.shape, -1, np.int8)
            for j, col in enumerate(self.pred_columns):
                if col >= 0:
                    labels[:, j] = doc.values[first:stop, col]
            image = prediction_image(probs, dec, self.pred_colours, labels)
            self.pred_track.show_window(image, first, stop - first, len(data.behaviours), self.cursor)

    def _draw_overview(self) -> None:
        n = self.doc.n_frames
        self.overview.show_window(overview_image(self.doc.values), 0, n, 1, self.cursor)

    def _draw_info(self) -> None:
        doc = self.doc
        c = doc.counts()
        fps = self.frames.fps
        video = self.ws.videos[self.index]
        saved = "unsaved changes" if doc.dirty else "saved"
        toggled = ", ".join(doc.behaviours[k] for k in self.toggled) or "none"
        rows = [
            ("video", html.escape(video.name)),
            ("frames", f"{c['frames']}"),
            ("labelled", f"{c['labelled']}"),
            ("unlabelled", f"{c['unlabelled']}"),
            ("fps", f"{fps:g}"),
            ("duration", f"{c['frames'] / fps:.1f} s"),
            ("mode", "exclusive" if doc.exclusive else "multi-label"),
            ("toggled", html.escape(toggled)),
            ("state", saved),
        ]
        body = "".join(f"<tr><td>{a}</td><td>&nbsp;{b}</td></tr>" for a, b in rows)
        last = f"<br><i>{html.escape(self.messages[-1])}</i>" if self.messages else ""
        self.info.setText(f"<table>{body}</table>{last}")

    def say(self, message: str) -> None:
        """Show ``message`` in the status bar and the info box (and log it)."""
        log.info("%s", message)
        self.messages.append(message)
        self.statusBar().showMessage(message, 15000)

    def _edited(self) -> None:
        self.overview_timer.start()

    # ============================================================================================ editing
    def toggle(self, k: int) -> None:
        """Toggle behaviour ``k`` (DeepEthogram's number keys); toggling on labels the current frame."""
        if self.doc is None or not 0 <= k < len(self.doc.behaviours):
            return
        if k in self.toggled:
            self.toggled.remove(k)
            self.doc.end_merge()
        else:
            self._session += 1
            if k == 0 or self.doc.exclusive:
                self.toggled = [k]
            else:
                self.toggled = [j for j in self.toggled if j != 0] + [k]
            self.doc.paint([k], self.cursor, self.cursor + 1, True, merge=("toggle", self._session))
            self._edited()
        self._draw()

    def untoggle_all(self) -> None:
        """Turn every behaviour toggle off."""
        self.toggled = []
        self.doc.end_merge()
        self._draw()

    def stroke(self, phase: str, frame: float, band: float, modifiers) -> None:
        """A mouse stroke on the label track: ``press`` at (frame, band), ``move``, ``release``."""
        if self.doc is None:
            return
        doc = self.doc
        f = int(np.clip(round(frame), 0, doc.n_frames - 1))
        if phase == "press":
            k = int(np.floor(band))
            if not 0 <= k < len(doc.behaviours):
                self._stroke = None
                return
            clear = bool(modifiers & QtCore.Qt.KeyboardModifier.ShiftModifier)
            doc.end_merge()
            self._session += 1
            self._stroke = {
                "k": k,
                "from": f,
                "clear": clear,
                "present": doc.values[f, k] != 1,
                "applied": False,
                "merge": ("drag", self._session),
            }
        s = self._stroke
        if s is None:
            return
        if s["applied"]:  # redraw the whole stroke from its start: dragging back shrinks it
            doc.undo()
            s["applied"] = False
        lo, hi = min(s["from"], f), max(s["from"], f) + 1
        if s["clear"]:
            changed = doc.clear(lo, hi, merge=s["merge"])
        else:
            changed = doc.paint([s["k"]], lo, hi, s["present"], merge=s["merge"])
        s["applied"] = changed is not None
        if phase == "release":
            doc.end_merge()
            self._stroke = None
        self._edited()
        self._draw()

    def clear_frame(self) -> None:
        """Make the current frame unlabelled."""
        if self.doc is None:
            return
        if self.doc.clear(self.cursor, self.cursor + 1):
            self._edited()
        self._draw()

    def undo(self) -> None:
        """Undo the last edit; with no label edit left, the last change of the project's behaviours."""
        if self.doc is None:
            return
        if not self.doc.can_undo and self.ws.can_undo_behaviours:
            self.undo_behaviours()
            return
        if self.doc.undo() is None:
            self.say("nothing to undo")
        self._edited()
        self._draw()

    def redo(self) -> None:
        """Redo the last undone edit."""
        if self.doc is None:
            return
        if self.doc.redo() is None:
            self.say("nothing to redo")
        self._edited()
        self._draw()

    def import_predictions(self, only_unlabelled: bool = True) -> None:
        """Take the shown predictions' decisions as labels (only unlabelled frames, or all)."""
        if self.doc is None:
            return
        if self.predictions is None:
            self.say("no predictions to import: choose a group with predictions, or run Infer")
            return
        if not only_unlabelled and not self.confirm("Overwrite every label of this video with the predictions?"):
            return
        changed = self.doc.import_predictions(
            self.predictions.decisions, self.predictions.behaviours, only_unlabelled=only_unlabelled
        )
        self.say("imported the predictions" if changed else "nothing to import")
        self._edited()
        self._draw()

    # ============================================================================================ files
    def save(self) -> Path | None:
        """Write the labels (atomically) and remove the autosave; returns the label file."""
        if self.doc is None:
            return None
        if self._autosave_thread is not None:
            self._autosave_thread.join()  # or it could write a stale autosave after the save removed it
        try:
            path = self.ws.save_labels(self.index, self.doc.table())
        except (OSError, UserFacingError) as err:  # a full disk, a read-only folder: keep the window and the edits
            self.say(f"NOT saved: {err}")
            return None
        self.doc.mark_saved()
        self._autosaved = self.doc.revision
        self.say(f"saved {path}")
        self._fill_video_list()
        self._draw_info()
        return path

    def autosave(self, force: bool = False) -> Path | None:
        """Write the autosave when there are edits since the last save or autosave.

        The timer's autosaves are written by a background thread from a copy of the labels (a 200,000-row CSV
        takes about half a second here; the window must not stall for it); ``force`` (closing, switching videos)
        writes now and returns the path.
        """
        doc = self.doc
        if doc is None or not doc.dirty or (doc.revision == self._autosaved and not force):
            return None
        if self._autosave_thread is not None and self._autosave_thread.is_alive():
            if not force:
                return None  # the previous one is still writing; the next tick catches up
            self._autosave_thread.join()
        index, table, cursor, revision = self.index, doc.table(), self.cursor, doc.revision
        if not force:

            def write() -> None:
                try:
                    self.ws.autosave(index, table, cursor)
                except (OSError, UserFacingError) as err:
                    log.warning("autosave failed: %s", err)

            self._autosave_thread = threading.Thread(target=write, name="studio-autosave", daemon=True)
            self._autosave_thread.start()
            self._autosaved = revision
            return None
        try:
            path = self.ws.autosave(index, table, cursor)
        except (OSError, UserFacingError) as err:
            self.say(f"autosave failed: {err}")
            return None
        self._autosaved = revision
        return path

    def finalise(self) -> None:
        """Confirm, make the rest background, save, and open the next unfinished video."""
        if self.doc is None:
            return
        n = self.doc.counts()["unlabelled"]
        name = self.ws.videos[self.index].name
        if not self.confirm(f"Finalise {name}? Its {n} unlabelled frames become background."):
            return
        self.doc.finalise()
        if self.save() is None:
            return
        nxt = self._next_unfinished()
        if nxt is None:
            self.say(f"finalised {name}; every video is labelled")
            self._draw()
        else:
            self.open_video(nxt)
            self.say(f"finalised {name}; opened {self.ws.videos[nxt].name}, the next unfinished video")

    def _next_unfinished(self) -> int | None:
        from deg_live.labels import LabelError, read_labels

        count = len(self.ws.videos)
        for step in range(1, count):
            i = (self.index + step) % count
            path = self.ws.videos[i].labels_path
            if not path.is_file():
                return i
            try:
                if (read_labels(path).values < 0).any():
                    return i
            except LabelError:
                return i
        return None

    def undo_behaviours(self) -> None:
        """Undo the last add/remove of a behaviour in every label file of the project (asks first).

        Label edits made since are kept (:meth:`Workspace.undo_behaviours`).
        """
        if not self.ws.can_undo_behaviours:
            self.say("no change of behaviours to undo")
            return
        if not self.confirm("Undo the last change of behaviours in every label file of the project?"):
            return
        try:
            if self.doc is not None and self.doc.dirty and self.save() is None:
                return
            behaviours = self.ws.undo_behaviours()
            self.open_video(self.index, cursor=self.cursor, background=False)
        except UserFacingError as err:
            self.say(str(err))
            return
        self.say(f"undid the change of behaviours: {', '.join(behaviours)}")

    def add_behaviour(self, name: str) -> None:
        """Add a behaviour (to the project and every label file; the current labels are saved first)."""
        if self.doc is None:
            return
        try:
            if self.ws.project is not None:
                if self.doc.dirty and self.save() is None:
                    return
                self.ws.add_behaviour(name)
                self.open_video(self.index, cursor=self.cursor, background=False)
            else:
                self.ws.add_behaviour(name)
                self.doc.add_behaviour(name)
                self._rebuild_behaviours()
                self._draw()
        except UserFacingError as err:
            self.say(str(err))
            return
        self.say(f"added behaviour {name!r}")

    def remove_behaviour(self, name: str) -> None:
        """Remove a behaviour (from the project and every label file; the current labels are saved first)."""
        if self.doc is None:
            return
        if not self.confirm(
            f"Remove {name!r} from every video's labels? Frames where it alone was on become background."
        ):
            return
        try:
            if self.ws.project is not None:
                if self.doc.dirty and self.save() is None:
                    return
                self.ws.remove_behaviour(name)
                self.open_video(self.index, cursor=self.cursor, background=False)
            else:
                self.doc.remove_behaviour(name)
                self.ws.remove_behaviour(name)
                self._rebuild_behaviours()
                self._draw()
        except UserFacingError as err:
            self.say(str(err))
            return
        self.say(f"removed behaviour {name!r}")

    def add_video(self, path: str | Path) -> None:
        """Add a video to the workspace (into the project: copied and checked) and open it."""
        try:
            index = self.ws.add_video(path)
        except UserFacingError as err:
            self.say(str(err))
            return
        self.open_video(index)

    def _add_video_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Add video", "", "Videos (*.mp4 *.avi *.mov *.mkv)")
        if path:
            self.add_video(path)

    def _add_behaviour_dialog(self) -> None:
        name, ok = QtWidgets.QInputDialog.getText(self, "Add behaviour", "name:")
        if ok and name.strip():
            self.add_behaviour(name.strip())

    def _remove_behaviour_dialog(self) -> None:
        if self.doc is None:
            return
        names = self.doc.behaviours[1:]
        if not names:
            return
        name, ok = QtWidgets.QInputDialog.getItem(self, "Remove behaviour", "behaviour:", names, 0, False)
        if ok:
            self.remove_behaviour(name)

    def _ask(self, question: str) -> bool:
        answer = QtWidgets.QMessageBox.question(self, "deg-train studio", question)
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    # ============================================================================================ playing
    def toggle_play(self) -> None:
        """Play or pause."""
        if self.playing:
            self.pause()
        else:
            self.play()

    def play(self) -> None:
        """Play from the cursor at the current speed (toggled behaviours are painted as it goes)."""
        if self.doc is None:
            return
        if self.cursor >= self.doc.n_frames - 1:
            return
        self.playing = True
        self._play_origin = (self.cursor, time.monotonic())
        self.play_button.setText("❚❚ pause")
        self.play_timer.start()
        self._draw()

    def pause(self) -> None:
        """Stop playing."""
        if not self.playing:
            return
        self.playing = False
        self.play_timer.stop()
        self.play_button.setText("▶ play")
        self._draw()

    def set_speed(self, speed: float) -> None:
        """Playback speed, one of :data:`SPEEDS`."""
        self.speed = float(speed)
        self.speed_combo.setCurrentIndex(SPEEDS.index(self.speed) if self.speed in SPEEDS else 3)
        self._play_origin = (self.cursor, time.monotonic())
        self._draw()

    def _play_tick(self) -> None:
        origin, t0 = self._play_origin
        target = origin + int((time.monotonic() - t0) * self.frames.fps * self.speed)
        if target != self.cursor:
            self.set_cursor(target, paint=True)
        if self.cursor >= self.doc.n_frames - 1:
            self.pause()

    # ============================================================================================ suggestions
    def refresh_suggestions(self) -> None:
        """Rank the bouts to label across every video (from their outputs files)."""
        pairs = []
        for i, v in enumerate(self.ws.videos):
            if i == self.index:
                labelled = self.doc.labelled_rows()
            elif v.labels_path.is_file():
                try:
                    from deg_live.labels import read_labels

                    labelled = (read_labels(v.labels_path).values >= 0).all(axis=1)
                except UserFacingError:
                    labelled = None
            else:
                labelled = None
            pairs.append((v, labelled))
        self.suggestions = suggest(pairs)
        self.suggestion_at = -1
        self.queue_list.clear()
        for s in self.suggestions[:500]:
            self.queue_list.addItem(s.describe())

    def go_to_suggestion(self, i: int) -> None:
        """Open suggestion ``i``'s video at its first frame."""
        if not 0 <= i < len(self.suggestions):
            self.say("no suggestions: the queue comes from <video>_outputs.h5 (run Infer)")
            return
        s = self.suggestions[i]
        self.suggestion_at = i
        if self.ws.videos[self.index].name != s.video:
            self._pending_suggestion = i
            self.open_video(next(j for j, v in enumerate(self.ws.videos) if v.name == s.video), cursor=s.start)
            return  # the cursor lands on the bout when the video is open
        self.queue_list.setCurrentRow(i)
        self.set_cursor(s.start)
        self.say(f"suggestion {i + 1}/{len(self.suggestions)}: {s.describe()}")

    # ============================================================================================ jobs
    def job_steps(self, kind: str) -> list[list[str]]:
        """The ``deg-train`` steps of the Train or Infer button for this workspace."""
        project = self.ws.project
        video = self.ws.videos[self.index]
        if kind == "infer":
            if project is not None:
                return [["infer", "-p", str(project.root), video.name]]
            return [["infer", str(video.video)]]
        if project is None:
            raise UserFacingError("training needs a project: open one with deg-train studio -p PROJECT")
        runs = _causal_sequence_runs(project.runs_dir)
        if not runs:
            preset = ["--preset", self.train_preset] if self.train_preset else []
            return [["train-all", "-p", str(project.root), *preset], ["infer", "-p", str(project.root)]]
        # Stages 1 and 2 (and their saved features) are kept; the sequence model is fine-tuned on the new labels
        # from the newest causal run (its settings and weights), then the predictions are refreshed.
        return [
            [
                "train-sequence",
                "-p",
                str(project.root),
                "--config",
                str(runs[-1]),
                f"sequence.weights={runs[-1].parent}",
            ],
            # thresholds picked on validation for the new run (and its report); without it infer uses 0.5
            ["evaluate", "-p", str(project.root), "--compare", "none"],
            ["infer", "-p", str(project.root)],
        ]

    def start_job(self, kind: str, steps: list[list[str]] | None = None) -> StageJob | None:
        """Run the Train or Infer steps (or ``steps``) as child processes; the labels are saved first."""
        if self.doc is None:
            return None
        if self.job is not None and self.job.running:
            self.say(f"{self.job.name} is still running; cancel it first")
            return None
        try:
            steps = steps or self.job_steps(kind)
        except UserFacingError as err:
            self.say(str(err))
            return None
        if self.doc.dirty and self.save() is None:
            return None
        job = StageJob(steps, kind, self, program=self.job_program)
        job.progress.connect(self._job_progress)
        job.finished.connect(self._job_finished)
        self.job = job
        self.cancel_button.setEnabled(True)
        self.job_progress.setRange(0, 0)  # busy until a percentage arrives
        job.start()
        return job

    def cancel_job(self) -> None:
        """Cancel the running job."""
        if self.job is not None:
            self.job.cancel()

    def _job_progress(self, percent: int, line: str) -> None:
        if percent >= 0:
            self.job_progress.setRange(0, 100)
            self.job_progress.setValue(percent)
        self.job_label.setText(line)

    def _job_finished(self, code: int, message: str) -> None:
        self.cancel_button.setEnabled(False)
        self.job_progress.setRange(0, 100)
        self.job_progress.setValue(100 if code == 0 else 0)
        self.job_label.setText(message)
        self.say(message)
        if code == 0:
            current = self.group_combo.currentText() or None
            if not self.doc.dirty:
                self.open_video(self.index, cursor=self.cursor, background=False)
            if current and current in [self.group_combo.itemText(i) for i in range(self.group_combo.count())]:
                self.group_combo.setCurrentText(current)
                self.load_predictions(current)

    # ============================================================================================ keys
    def toggle_help(self) -> None:
        """Show or hide the shortcut overlay."""
        if self.help.isVisible():
            self.help.hide()
        else:
            self.help.adjustSize()
            self.help.move(max(0, (self.width() - self.help.width()) // 2), 60)
            self.help.raise_()
            self.help.show()

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        """Every shortcut (see :data:`SHORTCUTS`)."""
        if self.doc is None:  # the first video is still opening
            if event.key() == QtCore.Qt.Key.Key_Question or event.text() == "?":
                self.toggle_help()
            return super().keyPressEvent(event)
        keys = QtCore.Qt.Key
        key = event.key()
        mods = event.modifiers()
        ctrl = bool(mods & QtCore.Qt.KeyboardModifier.ControlModifier)
        shift = bool(mods & QtCore.Qt.KeyboardModifier.ShiftModifier)
        page = min(self.span, self.doc.n_frames)
        if key == keys.Key_Question or event.text() == "?":
            self.toggle_help()
        elif key in (keys.Key_Right, keys.Key_Left):
            sign = 1 if key == keys.Key_Right else -1
            self.step(sign * (page if ctrl else 1))
        elif key in (keys.Key_Up, keys.Key_Down):
            self.step(FEW if key == keys.Key_Up else -FEW)
        elif key in (keys.Key_PageDown, keys.Key_PageUp):
            self.step(page if key == keys.Key_PageDown else -page)
        elif key == keys.Key_Home:
            self.set_cursor(0)
        elif key == keys.Key_End:
            self.set_cursor(self.doc.n_frames - 1)
        elif keys.Key_0 <= key <= keys.Key_9 and not ctrl:
            self.toggle(int(key - keys.Key_0))
        elif key == keys.Key_Escape:
            self.help.hide()
            self.untoggle_all()
        elif key in (keys.Key_Delete, keys.Key_Backspace):
            self.clear_frame()
        elif key == keys.Key_Space:
            self.toggle_play()
        elif key in (keys.Key_BracketLeft, keys.Key_BracketRight):
            i = SPEEDS.index(self.speed) if self.speed in SPEEDS else 3
            i = max(0, i - 1) if key == keys.Key_BracketLeft else min(len(SPEEDS) - 1, i + 1)
            self.set_speed(SPEEDS[i])
        elif key in (keys.Key_Plus, keys.Key_Equal, keys.Key_Minus):
            factor = 1 / 1.5 if key != keys.Key_Minus else 1.5
            self.span = int(np.clip(self.span * factor, 20, 20000))
            self._draw()
        elif key == keys.Key_S and ctrl:
            self.save()
        elif key == keys.Key_Z and ctrl:
            self.redo() if shift else self.undo()
        elif key == keys.Key_Y and ctrl:
            self.redo()
        elif key in (keys.Key_Return, keys.Key_Enter) and ctrl:
            self.finalise()
        elif key == keys.Key_N and not ctrl:
            if not self.suggestions:
                self.say("no suggestions: the queue comes from <video>_outputs.h5 (run Infer)")
            else:
                step = -1 if shift else 1
                self.go_to_suggestion((self.suggestion_at + step) % len(self.suggestions))
        elif key == keys.Key_F and not ctrl:
            self.frame_box.fit()
        else:
            super().keyPressEvent(event)

    # ============================================================================================ helpers
    def track_point(self, frame: float, behaviour: int, track: str = "label", part: str = "decision") -> QtCore.QPoint:
        """Viewport pixel of a frame in a behaviour's band (tests, screenshots).

        Args:
            frame: the frame.
            behaviour: the band (a column of the labels for ``label``, of the predictions for ``pred``).
            track: ``label`` or ``pred``.
            part: in the ``pred`` track, the middle row of ``prob``, ``decision`` or ``label``.
        """
        if track == "label":
            band = behaviour + (LABEL_BAND_ROWS - 1) / 2 / LABEL_BAND_ROWS
            return self.label_track.point(frame, band)
        start, stop = band_rows(0, part)
        return self.pred_track.point(frame, behaviour + (start + stop) / 2 / ROWS_PER_BAND)

    def save_png(self, path: str | Path) -> bool:
        """Grab the window into a PNG."""
        return self.grab().save(str(path), "PNG")

    def showEvent(self, event: QtGui.QShowEvent) -> None:
        """Take the keyboard focus (the shortcuts belong to the window)."""
        super().showEvent(event)
        self.setFocus()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """Ask to save unsaved edits (if not, they stay in the autosave), stop timers, the job and the decoder."""
        if self.doc is not None and self.doc.dirty:
            if self.confirm(f"Save the labels of {self.ws.videos[self.index].name}?"):
                self.save()
            else:
                self.autosave(force=True)
        if self._opening is not None:  # a video still opening in the background: wait for it, then release it
            _, _, thread, result = self._opening
            thread.join(60.0)
            if "value" in result:
                result["value"][0].close()
            self._opening = None
            self._open_timer.stop()
        self.play_timer.stop()
        self.autosave_timer.stop()
        if self.job is not None and self.job.running:
            self.job.cancel(grace_ms=2000)
        if self.frames is not None:
            self.frames.close()
        if self.index >= 0:
            release(self.ws.videos[self.index])
        super().closeEvent(event)


def _causal_sequence_runs(models_dir: Path) -> list[Path]:
    """Config files of the finished causal sequence runs in ``models_dir``, oldest first.

    A run is finished when it holds ``done.json`` (as :mod:`deg_train.models.checkpoints` says; that module needs
    torch, so the rule is repeated here). Centred comparison runs (``sequence.causal: false``, named
    ``..._sequence_<arch>-centred``) are left out: retraining one would give a model that cannot run live.
    """
    if not models_dir.is_dir():
        return []
    found = []
    for config in sorted(models_dir.glob("*_sequence_*/config.yaml")):
        if not (config.parent / "done.json").is_file():
            continue
        try:
            sequence = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("sequence") or {}
        except (OSError, yaml.YAMLError):
            continue
        if sequence.get("causal", True) is False or config.parent.name.endswith("-centred"):
            continue
        found.append(config)
    return found


def _no_labels(video) -> Path | None:
    """The label file the review loader should read.

    None: the loader's default (``<video>_labels.csv`` beside the video, if any); the studio draws its own labels.
    """
    return None
