"""The labelling studio (``deg-train studio``): label, correct and review videos in a PyQt6 + pyqtgraph window.

No torch in this process: training and inference run as ``deg-train`` child processes
(:class:`~deg_train.studio.jobs.StageJob`). The parts below the window need no Qt:
:class:`~deg_train.studio.document.LabelDocument` (edits, undo, redo), :class:`~deg_train.studio.frames.FrameCache`
(decode-ahead), :class:`~deg_train.studio.workspace.Workspace` (what is open, saving, autosave) and
:func:`~deg_train.studio.suggest.suggest` (the active-learning queue). Importing this package imports no Qt; the
window is :mod:`deg_train.studio.window`.
"""

from deg_train.studio.document import LabelDocument
from deg_train.studio.workspace import StudioError, StudioVideo, Workspace

__all__ = ["LabelDocument", "StudioError", "StudioVideo", "Workspace"]
