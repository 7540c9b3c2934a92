"""Start the viewer: the Qt application, the window, Ctrl-C/SIGTERM handling, optional screenshot and exit.

``deg-live view`` calls :func:`run_viewer`; it runs in its own process (the viewer never shares a process with
inference). Headless machines can still produce pictures: ``QT_QPA_PLATFORM=offscreen`` with ``screenshot=``.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deg_live.viewer.receiver import StreamReceiver
    from deg_live.viewer.review import ReviewData

logger = logging.getLogger(__name__)


def qt_application():
    """The process's QApplication (created on first use)."""
    import pyqtgraph as pg

    pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
    return pg.mkQApp("deg-live view")


def run_viewer(
    *,
    receiver: StreamReceiver | None = None,
    review: ReviewData | None = None,
    seconds: float = 20.0,
    refresh_hz: float = 30.0,
    screenshot: str | Path | None = None,
    screenshot_after_s: float = 2.0,
    duration_s: float | None = None,
    thresholds: Sequence[float] | None = None,
) -> int:
    """Open the window and run the Qt event loop until it is closed (or ``duration_s`` passed).

    Args:
        receiver: a live :class:`~deg_live.viewer.receiver.StreamReceiver` (live mode; closed on exit).
        review: a :class:`~deg_live.viewer.review.ReviewData` (review mode).
        seconds: ethogram window width in seconds.
        refresh_hz: redraw rate of the live view.
        screenshot: write a PNG of the window here after ``screenshot_after_s`` seconds, then quit.
        screenshot_after_s: when to take the screenshot.
        duration_s: quit after this many seconds.
        thresholds: ``(K,)`` on-thresholds to draw in live mode (e.g. from the bundle).

    Returns:
        The exit status (0).
    """
    from pyqtgraph.Qt import QtCore

    from deg_live.viewer.widgets import ViewerWindow

    app = qt_application()
    if receiver is not None and thresholds is not None:
        receiver.timeline.set_thresholds(thresholds)
    window = ViewerWindow(receiver=receiver, review=review, seconds=seconds, refresh_hz=refresh_hz)
    window.show()

    # Qt's loop does not run Python signal handlers by itself: a tick lets Ctrl-C and SIGTERM close the window.
    def stop(*_args) -> None:
        window.close()
        app.quit()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)

    if screenshot is not None:

        def shoot() -> None:
            if window.receiver is not None:
                window.refresh()
            ok = window.save_png(str(screenshot))
            print(f"viewer: screenshot {'written to' if ok else 'FAILED:'} {screenshot}", flush=True)
            stop()

        QtCore.QTimer.singleShot(int(screenshot_after_s * 1000), shoot)
    if duration_s is not None:
        QtCore.QTimer.singleShot(int(duration_s * 1000), stop)
    try:
        app.exec()
    finally:
        tick.stop()
        window.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
