"""The viewer window (PyQt6 + pyqtgraph): newest frame, scrolling ethogram, probability traces, status line.

One window serves two modes:

- **live**: a :class:`~deg_live.viewer.receiver.StreamReceiver` fills a ring buffer from its own thread; a
  ``QTimer`` on the GUI thread redraws from the newest snapshot at a steady rate (``setImage``/``setData`` with
  fixed levels, as in pyqtgraph's ``scrollingPlots.py``/``ImageItem.py`` examples), whatever the camera rate;
- **review**: a :class:`~deg_live.viewer.review.ReviewData` (a recorded session or an offline outputs file) drawn
  once; a cursor moves with the slider and the keys (Left/Right: one frame, Shift: ten, PageUp/PageDown: one
  second, Home/End, Space: play/pause) and the window scrolls with it; labels, where they exist, are drawn under
  the predictions of each behaviour.

Layout of the ethogram: see :mod:`deg_live.viewer.render` (one band per behaviour: probability colour, decision
bar, label row); onsets are marked with small white triangles. The x axis is seconds: before the newest frame
(live) or from the start of the video (review).
"""

from __future__ import annotations

import html
import math
import time

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui, QtWidgets

from deg_live.viewer.receiver import StreamReceiver
from deg_live.viewer.render import (
    DECISION_ROWS,
    ROWS_PER_BAND,
    behaviour_colours,
    ethogram_image,
    onset_frames,
)
from deg_live.viewer.review import ReviewData
from deg_live.viewer.timeline import TimelineSnapshot

_DECISION_TOP = DECISION_ROWS[0] / ROWS_PER_BAND


def _hex(colour: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in colour))


class FrameBox(pg.ViewBox):
    """A video frame (aspect locked, y down) with an HTML text overlay in its top-left corner.

    Shared by the viewer and the labelling studio (:mod:`deg_train.studio`). ``interactive=True`` lets the mouse
    zoom (wheel) and pan (drag); :meth:`fit` shows the whole frame again.
    """

    def __init__(self, *, interactive: bool = False):
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self.setMouseEnabled(interactive, interactive)
        self.frame_item = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.frame_item)
        self.text_item = pg.TextItem(anchor=(0, 0), fill=pg.mkBrush(0, 0, 0, 150))
        self.addItem(self.text_item)
        self.frame_shape: tuple[int, ...] | None = None

    def show_frame(self, rgb: np.ndarray) -> None:
        """Draw ``rgb`` ``(H, W, 3) uint8``; a frame of a new size is fitted to the view.

        uint8 goes to Qt as it is (no levels): the same pixels as ``levels=(0, 255)``, without pyqtgraph's rescale
        pass, which costs about 10 ms per 1080p frame on a small CPU.
        """
        if rgb.dtype == np.uint8:
            self.frame_item.setImage(rgb, autoLevels=False, levels=None)
        else:
            self.frame_item.setImage(rgb, levels=(0, 255), autoLevels=False)
        if rgb.shape != self.frame_shape:
            self.frame_shape = rgb.shape
            self.frame_item.setRect(QtCore.QRectF(0, 0, rgb.shape[1], rgb.shape[0]))
            self.text_item.setPos(0, 0)
            self.fit()

    def fit(self) -> None:
        """Show the whole frame (undo any zoom or pan)."""
        if self.frame_shape is not None:
            self.setRange(QtCore.QRectF(0, 0, self.frame_shape[1], self.frame_shape[0]), padding=0)


class ViewerWindow(QtWidgets.QWidget):
    """The ethogram viewer, live (``receiver``) or review (``review``).

    Args:
        receiver: a live :class:`~deg_live.viewer.receiver.StreamReceiver` (live mode).
        review: the data to review (review mode); exactly one of ``receiver`` and ``review``.
        seconds: width of the ethogram window in seconds.
        refresh_hz: redraws per second (live mode; review redraws when the cursor moves).
        title: window title.
    """

    def __init__(
        self,
        *,
        receiver: StreamReceiver | None = None,
        review: ReviewData | None = None,
        seconds: float = 20.0,
        refresh_hz: float = 30.0,
        title: str = "deg-live view",
    ):
        super().__init__()
        if (receiver is None) == (review is None):
            raise ValueError("ViewerWindow needs exactly one of receiver (live) and review")
        self.receiver = receiver
        self.review = review
        self.seconds = float(seconds)
        self.setWindowTitle(title if review is None else f"{title}: {review.title}")
        self.resize(1280, 720)
        self.behaviours: list[str] = []
        self.colours = np.zeros((0, 3), np.uint8)
        self.traces: list[pg.PlotItem] = []
        self.curves: list[pg.PlotDataItem] = []
        self.threshold_lines: list[pg.InfiniteLine] = []
        self.cursor_lines: list[pg.InfiniteLine] = []
        self.last_snapshot: TimelineSnapshot | None = None
        self.redraws = 0
        self.cursor = 0
        self._video_reader = None
        self._playing = False
        self._play_clock = 0.0

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#101014")
        layout.addWidget(self.graphics, stretch=1)

        # The frame, with the current behaviours written on it.
        self.frame_view = FrameBox()
        self.frame_item = self.frame_view.frame_item
        self.frame_text = self.frame_view.text_item
        self.graphics.addItem(self.frame_view, row=0, col=0, rowspan=2)

        # The ethogram.
        self.ethogram = pg.PlotItem()
        self.ethogram.invertY(True)
        self.ethogram.hideButtons()
        self.ethogram.setMenuEnabled(False)
        self.ethogram.setMouseEnabled(x=review is not None, y=False)
        self.ethogram.getAxis("bottom").setLabel("s" if review is not None else "seconds before now")
        self.ethogram_item = pg.ImageItem(axisOrder="row-major")
        self.ethogram.addItem(self.ethogram_item)
        self.onset_markers = pg.ScatterPlotItem(symbol="t", size=9, brush=pg.mkBrush("w"), pen=None)
        self.ethogram.addItem(self.onset_markers)
        self.graphics.addItem(self.ethogram, row=0, col=1)
        self.traces_layout = self.graphics.addLayout(row=1, col=1)
        self.traces_layout.setSpacing(3)
        self.graphics.ci.layout.setColumnStretchFactor(0, 2)
        self.graphics.ci.layout.setColumnStretchFactor(1, 5)
        self.graphics.ci.layout.setRowStretchFactor(0, 1)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)

        mono = QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont)
        self.status = QtWidgets.QLabel("waiting for state messages…")
        self.status.setFont(mono)
        layout.addWidget(self.status)
        self.events_label = QtWidgets.QLabel("")
        self.events_label.setFont(mono)
        layout.addWidget(self.events_label)

        self.slider: QtWidgets.QSlider | None = None
        self.timer = QtCore.QTimer(self)
        if review is not None:
            self.events_label.hide()
            self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
            self.slider.setRange(0, max(0, review.n_frames - 1))
            self.slider.valueChanged.connect(self.set_cursor)
            layout.addWidget(self.slider)
            self._setup_review(review)
            self.timer.timeout.connect(self._play_tick)
            self.timer.start(int(1000 / max(1.0, min(refresh_hz, review.fps or 30.0))))
        else:
            self.timer.timeout.connect(self.refresh)
            self.timer.start(max(1, round(1000.0 / refresh_hz)))
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    # ------------------------------------------------------------------------------------------ structure
    def _set_behaviours(self, behaviours: list[str], thresholds: np.ndarray) -> None:
        """(Re)build the y axis and the per-behaviour trace plots."""
        self.behaviours = list(behaviours)
        self.colours = behaviour_colours(self.behaviours)
        k = len(self.behaviours)
        self.ethogram.getAxis("left").setTicks([[(i + 0.5, name) for i, name in enumerate(self.behaviours)]])
        self.ethogram.setYRange(0, k, padding=0)
        self.ethogram.setMinimumHeight(min(420, 26 * k + 50))  # bands stay readable however many traces follow
        self.traces_layout.clear()
        self.traces, self.curves, self.threshold_lines = [], [], []
        self.cursor_lines = []
        for i, name in enumerate(self.behaviours):
            plot = self.traces_layout.addPlot(row=i, col=0)
            plot.hideButtons()
            plot.setMenuEnabled(False)
            plot.setMouseEnabled(x=self.review is not None, y=False)
            plot.setMinimumHeight(24)
            plot.getViewBox().setBackgroundColor("#1b1b24")  # each trace's panel visible against the window
            plot.setYRange(0, 1, padding=0.05)
            plot.setXLink(self.ethogram)
            plot.getAxis("left").setWidth(self.ethogram.getAxis("left").width())
            plot.getAxis("left").setTicks([[(0, ""), (1, "1")]])
            plot.showAxis("bottom", i == k - 1)
            name_item = pg.TextItem(name, color=_hex(self.colours[i]), anchor=(0, 0))
            name_item.setParentItem(plot.getViewBox())  # fixed in the plot's corner, not in data coordinates
            name_item.setPos(2, -2)
            curve = plot.plot(pen=pg.mkPen(_hex(self.colours[i]), width=1.5), connect="finite")
            thr = float(thresholds[i]) if i < len(thresholds) and np.isfinite(thresholds[i]) else None
            line = pg.InfiniteLine(
                pos=thr if thr is not None else 0.5,
                angle=0,
                pen=pg.mkPen("#dddddd", style=QtCore.Qt.PenStyle.DashLine, width=1),
            )
            line.setVisible(thr is not None)
            plot.addItem(line)
            self.traces.append(plot)
            self.curves.append(curve)
            self.threshold_lines.append(line)
        # Align the ethogram's left axis with the traces'.
        metrics = QtGui.QFontMetrics(QtGui.QFont())
        longest = max((metrics.horizontalAdvance(name) for name in self.behaviours), default=40)
        width = max(60, longest + 20)  # tick labels that do not fit are not drawn at all
        self.ethogram.getAxis("left").setWidth(width)
        for plot in self.traces:
            plot.getAxis("left").setWidth(width)

    # ------------------------------------------------------------------------------------------ live
    def window_frames(self, fps: float) -> int:
        """Frames in the ethogram window at ``fps``."""
        return max(2, math.ceil(self.seconds * fps) + 1)

    def refresh(self) -> None:
        """Redraw from the newest snapshot (live mode; called by the timer)."""
        rx = self.receiver
        frame = rx.latest_frame()
        if frame is not None:
            self._show_frame(frame.to_rgb())
        estimate = self.last_snapshot.fps if self.last_snapshot is not None else 30.0
        snap = rx.timeline.snapshot(self.window_frames(estimate))
        if snap is None:
            where = rx.state_endpoint
            self.status.setText(f"waiting for state messages on {where} (is `deg-live run` publishing there?)")
            if frame is not None:
                self.frame_text.setHtml("<span style='color:#bbbbbb'>no state yet</span>")
            return
        if snap.behaviours != self.behaviours:
            self._set_behaviours(snap.behaviours, snap.thresholds)
        else:
            for line, thr in zip(self.threshold_lines, snap.thresholds, strict=False):
                if np.isfinite(thr):
                    line.setValue(float(thr))
                    line.setVisible(True)
        self.last_snapshot = snap
        fps = snap.fps
        n = len(snap.valid)
        x0 = (snap.first_frame - snap.newest_frame - 0.5) / fps
        image = ethogram_image(snap.probabilities, snap.decisions, self.colours, valid=snap.valid)
        self.ethogram_item.setImage(image, levels=(0, 255), autoLevels=False)
        self.ethogram_item.setRect(QtCore.QRectF(x0, 0, n / fps, len(self.behaviours)))
        self.ethogram.setXRange(-self.seconds, 0.5 / fps, padding=0)
        x = (np.arange(n) + snap.first_frame - snap.newest_frame) / fps
        for i, curve in enumerate(self.curves):
            curve.setData(x, snap.probabilities[:, i])
        onsets = onset_frames(snap.decisions, snap.first_frame, snap.valid)
        self.onset_markers.setData(
            [(f - snap.newest_frame) / fps for f, _ in onsets], [b + _DECISION_TOP for _, b in onsets]
        )
        self._write_on_frame(snap.newest_frame, snap.newest_probabilities, snap.newest_decisions, None)
        self.status.setText(self._live_status(snap))
        self.events_label.setText(self._events_text(snap))
        self.redraws += 1

    def _live_status(self, snap: TimelineSnapshot) -> str:
        parts = [
            f"frame {snap.newest_frame}",
            f"processing {snap.rate:5.1f} fps (camera {snap.fps:5.1f})",
            f"latency p50 {snap.latency_p50_ms:6.1f} ms p99 {snap.latency_p99_ms:6.1f} ms",
            f"skipped {snap.skipped}",
            f"lost {snap.lost}",
        ]
        if snap.missed_messages:
            parts.append(f"viewer missed {snap.missed_messages}")
        if self.receiver.frames_ended:
            parts.append(f"camera: {self.receiver.frames_ended}")
        if snap.age_s > 2.0:
            parts.append(f"NO STATE FOR {snap.age_s:.0f} s")
        return " | ".join(parts)

    @staticmethod
    def _events_text(snap: TimelineSnapshot) -> str:
        if not snap.events:
            return "events: none yet"
        shown = [f"{e.behaviour} {e.kind} @{e.frame_index} ({e.latency_ms:.1f} ms)" for e in reversed(snap.events[-4:])]
        return "events: " + "  ·  ".join(shown)

    # ------------------------------------------------------------------------------------------ frame
    def _show_frame(self, rgb: np.ndarray) -> None:
        self.frame_view.show_frame(rgb)

    def _write_on_frame(
        self, frame_index: int, probs: np.ndarray, decisions: np.ndarray, labels: np.ndarray | None
    ) -> None:
        lines = [f"<span style='color:#bbbbbb'>frame {frame_index}</span>"]
        for i in np.flatnonzero(decisions):
            p = probs[i]
            value = "" if not np.isfinite(p) else f" {p:.2f}"
            lines.append(
                f"<b><span style='color:{_hex(self.colours[i])}'>{html.escape(self.behaviours[i])}{value}</span></b>"
            )
        if labels is not None:
            names = [self.behaviours[i] for i in np.flatnonzero(labels == 1)]
            lines.append(f"<span style='color:#eeeeee'>label: {html.escape(', '.join(names) or '—')}</span>")
        self.frame_text.setHtml("<br>".join(lines))

    # ------------------------------------------------------------------------------------------ review
    def _setup_review(self, data: ReviewData) -> None:
        self._set_behaviours(data.behaviours, data.thresholds)
        fps = data.fps
        # Frames inference skipped have no probability: the image holds the last one (as live does) and the
        # traces join the processed frames; the decisions already hold (see deg_live.viewer.review).
        finite = np.isfinite(data.probabilities)
        seen = np.maximum.accumulate(finite.any(axis=1))
        last = np.where(finite.any(axis=1), np.arange(data.n_frames), -1)
        np.maximum.accumulate(last, out=last)
        held = np.where((last >= 0)[:, None], data.probabilities[np.maximum(last, 0)], np.nan)
        image = ethogram_image(held, data.decisions, self.colours, labels=data.labels)
        self.ethogram_item.setImage(image, levels=(0, 255), autoLevels=False, autoDownsample=True)
        self.ethogram_item.setRect(QtCore.QRectF(-0.5 / fps, 0, data.n_frames / fps, len(self.behaviours)))
        x = np.arange(data.n_frames) / fps
        for i, curve in enumerate(self.curves):
            ok = finite[:, i]
            curve.setData(x[ok], data.probabilities[ok, i])
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
        onsets = onset_frames(data.decisions, 0, seen)
        self.onset_markers.setData([f / fps for f, _ in onsets], [b + _DECISION_TOP for _, b in onsets])
        for plot in [self.ethogram, *self.traces]:
            line = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("#ffffff", width=1))
            plot.addItem(line)
            self.cursor_lines.append(line)
        if data.video is not None:
            from camera_adapters.video import VideoReader

            self._video_reader = VideoReader(data.video)
        self.set_cursor(0)

    def set_cursor(self, frame: int) -> None:
        """Move the review cursor to ``frame`` (clipped), show that frame, and scroll the ethogram to it."""
        data = self.review
        if data is None:
            return
        frame = int(np.clip(frame, 0, data.n_frames - 1))
        self.cursor = frame
        if self.slider is not None and self.slider.value() != frame:
            self.slider.blockSignals(True)
            self.slider.setValue(frame)
            self.slider.blockSignals(False)
        t = frame / data.fps
        for line in self.cursor_lines:
            line.setValue(t)
        self.ethogram.setXRange(t - self.seconds / 2, t + self.seconds / 2, padding=0)
        if self._video_reader is not None and frame < len(self._video_reader):
            self._show_frame(self._video_reader.read(frame))
        labels = None if data.labels is None else data.labels[frame]
        self._write_on_frame(frame, data.probabilities[frame], data.decisions[frame], labels)
        on = [self.behaviours[i] for i in np.flatnonzero(data.decisions[frame])]
        text = f"frame {frame}/{data.n_frames - 1} | {t:8.2f} s | predicted: {', '.join(on) or '—'}"
        if labels is not None:
            text += f" | labelled: {', '.join(self.behaviours[i] for i in np.flatnonzero(labels == 1)) or '—'}"
        text += " | keys: ←/→ frame, shift ×10, PgUp/PgDn 1 s, Home/End, space play"
        self.status.setText(text)
        self.redraws += 1

    def _play_tick(self) -> None:
        if not self._playing or self.review is None:
            return
        now = time.monotonic()
        advance = int((now - self._play_clock) * self.review.fps)
        if advance >= 1:
            self._play_clock += advance / self.review.fps
            if self.cursor + advance >= self.review.n_frames - 1:
                self._playing = False
            self.set_cursor(self.cursor + advance)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        """Frame stepping in review mode."""
        if self.review is None:
            super().keyPressEvent(event)
            return
        key = event.key()
        keys = QtCore.Qt.Key
        step = 10 if event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier else 1
        second = max(1, round(self.review.fps))
        moves = {
            keys.Key_Right: step,
            keys.Key_Left: -step,
            keys.Key_PageDown: second,
            keys.Key_PageUp: -second,
        }
        if key in moves:
            self.set_cursor(self.cursor + moves[key])
        elif key == keys.Key_Home:
            self.set_cursor(0)
        elif key == keys.Key_End:
            self.set_cursor(self.review.n_frames - 1)
        elif key == keys.Key_Space:
            self._playing = not self._playing
            self._play_clock = time.monotonic()
        else:
            super().keyPressEvent(event)

    # ------------------------------------------------------------------------------------------ helpers
    def ethogram_point(self, x: float, behaviour: int, part: str = "decision") -> QtCore.QPoint:
        """Window pixel of ethogram position ``x`` (seconds on the axis) in a part of a behaviour's band.

        ``part`` is ``"prob"``, ``"decision"`` or ``"label"`` (see :mod:`deg_live.viewer.render`); the point is
        the middle of that part's rows. Used by tests and screenshots to read what is drawn.
        """
        from deg_live.viewer.render import band_rows

        start, stop = band_rows(behaviour, part)
        y = (start + stop) / 2 / ROWS_PER_BAND
        scene = self.ethogram.vb.mapViewToScene(QtCore.QPointF(x, y))
        view_point = self.graphics.mapFromScene(scene)
        return self.graphics.mapTo(self, view_point)

    def save_png(self, path: str) -> bool:
        """Grab the whole window into a PNG; returns whether it was written."""
        return self.grab().save(str(path), "PNG")

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """Stop the timer, the receiver and the video reader."""
        self.timer.stop()
        if self.receiver is not None:
            self.receiver.close()
        if self._video_reader is not None:
            self._video_reader.close()
            self._video_reader = None
        super().closeEvent(event)
