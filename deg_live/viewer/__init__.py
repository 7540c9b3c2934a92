"""The live ethogram viewer (``deg-live view``) and its review mode.

Importing this package does not import Qt: the data side (:class:`Timeline`, :class:`StreamReceiver`,
:func:`load_session`, :func:`load_outputs`, :func:`ethogram_image`) is plain numpy and ZeroMQ; the window lives in
:mod:`deg_live.viewer.widgets` and the entry point in :mod:`deg_live.viewer.app` (PyQt6 + pyqtgraph).
"""

from deg_live.viewer.receiver import StreamReceiver
from deg_live.viewer.render import ethogram_image
from deg_live.viewer.review import ReviewData, ReviewError, load_outputs, load_session
from deg_live.viewer.timeline import Timeline, TimelineSnapshot

__all__ = [
    "ReviewData",
    "ReviewError",
    "StreamReceiver",
    "Timeline",
    "TimelineSnapshot",
    "ethogram_image",
    "load_outputs",
    "load_session",
]
