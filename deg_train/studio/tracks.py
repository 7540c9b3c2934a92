"""The studio's timeline tracks: the label track (paint with the mouse), the predictions track and the overview.

Only the frames in view are drawn (a few hundred columns), so redrawing after an edit or a step costs the same on a
200,000-frame video as on a short one; the overview of the whole video is drawn downsampled.

Label track, one band per behaviour (``background`` on top), one column per frame:

=====================  ====================================================================================
present (1)            the behaviour's colour (:func:`deg_live.viewer.render.behaviour_colours`)
absent (0)             near-black :data:`ABSENT`
unlabelled (-1)        grey hatching :data:`UNLABELLED` / :data:`UNLABELLED_ALT`, so frames nobody labelled
                       stand apart from frames labelled absent
=====================  ====================================================================================

The predictions track is the viewer's ethogram (:func:`deg_live.viewer.render.ethogram_image`: probability
faint on top, the decision solid below, the label row under it), with the label row turned :data:`DISAGREE` red
where a labelled frame disagrees with the decision.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph.Qt import QtCore, QtGui

from deg_live.viewer.render import LABEL_ROWS, ROWS_PER_BAND, ethogram_image

LABEL_BAND_ROWS = 4  # image rows per behaviour in the label track: 3 drawn + 1 gap
ABSENT = (26, 26, 32)
UNLABELLED = (92, 92, 96)
UNLABELLED_ALT = (64, 64, 68)
GAP = (12, 12, 14)
DISAGREE = (230, 30, 30)


def label_image(values: np.ndarray, colours: np.ndarray, first_frame: int = 0) -> np.ndarray:
    """The label track of frames ``first_frame ..``: ``values (W, K) int8`` -> ``(K * LABEL_BAND_ROWS, W, 3) uint8``."""
    w, k = values.shape
    lab = values.T  # (K, W)
    rgb = np.empty((k, w, 3), np.uint8)
    hatch = ((np.arange(w) + first_frame) // 2) % 2 == 0
    rgb[:] = np.where(hatch[None, :, None], np.asarray(UNLABELLED, np.uint8), np.asarray(UNLABELLED_ALT, np.uint8))
    rgb[lab == 0] = ABSENT
    present = lab == 1
    rgb[present] = np.broadcast_to(colours[:, None, :], (k, w, 3))[present]
    image = np.empty((k, LABEL_BAND_ROWS, w, 3), np.uint8)
    image[:] = GAP
    image[:, : LABEL_BAND_ROWS - 1] = rgb[:, None]
    return image.reshape(k * LABEL_BAND_ROWS, w, 3)


def prediction_image(
    probabilities: np.ndarray, decisions: np.ndarray, colours: np.ndarray, labels: np.ndarray | None
) -> np.ndarray:
    """The predictions track for a window of frames (``(W, K)`` each; ``labels`` in the predictions' columns)."""
    image = ethogram_image(probabilities, decisions, colours, labels=labels)
    if labels is not None:
        k = probabilities.shape[1]
        wrong = (labels >= 0) & ((labels == 1) != np.asarray(decisions, bool))  # (W, K)
        bands = image.reshape(k, ROWS_PER_BAND, -1, 3)
        for b in range(k):
            bands[b, LABEL_ROWS[0] : LABEL_ROWS[1], wrong[:, b]] = DISAGREE
    return image


def overview_image(values: np.ndarray, columns: int = 1200) -> np.ndarray:
    """The whole video in ``columns`` columns: the share of labelled frames of each column, grey to green."""
    n = values.shape[0]
    columns = max(1, min(columns, n))
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    labelled = (values >= 0).all(axis=1).astype(np.float64)
    sums = np.add.reduceat(labelled, edges[:-1])
    share = sums / np.maximum(np.diff(edges), 1)
    lo, hi = np.asarray(UNLABELLED_ALT, float), np.asarray((40, 170, 90), float)
    rgb = (lo[None] + share[:, None] * (hi - lo)[None]).astype(np.uint8)
    return np.repeat(rgb[None], 6, axis=0)


class _Track(pg.PlotWidget):
    """A timeline plot in frame units that the window drives (no mouse zoom or pan, no menu)."""

    def __init__(self, height: int):
        super().__init__(background="#101014")
        self.plotItem.hideButtons()
        self.plotItem.setMenuEnabled(False)
        self.plotItem.setMouseEnabled(x=False, y=False)
        self.plotItem.invertY(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self.cursor = pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("#ffffff", width=1))
        self.addItem(self.cursor)
        self.setMinimumHeight(height)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)

    def set_names(self, names: list[str], *, width: int | None = None) -> None:
        """One y tick per band; the axis is as wide as the longest name needs (a name that does not fit is hidden)."""
        if width is None:
            width = int(np.clip(20 + 7 * max((len(n) for n in names), default=0), 100, 260))
        axis = self.plotItem.getAxis("left")
        axis.setTicks([[(i + 0.5, n) for i, n in enumerate(names)]])
        axis.setWidth(width)
        self.plotItem.setYRange(0, max(1, len(names)), padding=0)

    def show_window(self, image: np.ndarray, first: int, count: int, bands: int, cursor: int) -> None:
        """Draw ``image`` over frames ``[first, first + count)``; ``bands`` is the y extent."""
        self.image.setImage(image, levels=(0, 255), autoLevels=False)
        self.image.setRect(QtCore.QRectF(first - 0.5, 0, count, bands))
        self.plotItem.setXRange(first - 0.5, first + count - 0.5, padding=0)
        self.cursor.setValue(cursor)

    def point(self, frame: float, band: float) -> QtCore.QPoint:
        """Viewport pixel of (frame, band) — for mouse events in tests and screenshots read back."""
        scene = self.plotItem.vb.mapViewToScene(QtCore.QPointF(frame, band))
        return self.mapFromScene(scene)

    def position(self, pos: QtCore.QPointF) -> tuple[float, float]:
        """(frame, band) under a viewport pixel."""
        view = self.plotItem.vb.mapSceneToView(self.mapToScene(pos.toPoint()))
        return view.x(), view.y()


class LabelTrack(_Track):
    """The label track; press-drag-release paints a range (see :meth:`StudioWindow.stroke`).

    The window sets :attr:`on_stroke` to ``f(phase, frame, band, modifiers)`` with phase ``press``, ``move`` or
    ``release``. Shift+drag clears to unlabelled.
    """

    def __init__(self):
        super().__init__(110)
        self.on_stroke = None
        self._down = False

    def _send(self, phase: str, event: QtGui.QMouseEvent) -> None:
        if self.on_stroke is not None:
            frame, band = self.position(event.position())
            self.on_stroke(phase, frame, band, event.modifiers())

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        """Start a stroke."""
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._down = True
            self._send("press", event)
        event.accept()

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        """Extend the stroke (button state tracked here: synthetic moves may not carry it)."""
        if self._down:
            self._send("move", event)
        event.accept()

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:
        """Finish the stroke."""
        if self._down and event.button() == QtCore.Qt.MouseButton.LeftButton:
            self._down = False
            self._send("release", event)
        event.accept()


class OverviewTrack(_Track):
    """The whole video, labelled share per column; a click jumps there (the window sets :attr:`on_jump`)."""

    def __init__(self):
        super().__init__(34)
        self.plotItem.getAxis("left").setTicks([[(0.5, "video")]])
        self.plotItem.setYRange(0, 1, padding=0)
        self.on_jump = None

    def mousePressEvent(self, event: QtGui.QMouseEvent) -> None:
        """Jump to the frame clicked."""
        if self.on_jump is not None:
            frame, _ = self.position(event.position())
            self.on_jump(round(frame))
        event.accept()
