"""``deg-train studio``: the labelling window on a project, a DeepEthogram project, a recording folder or a video.

Imports no torch (training and inference run as child processes); Qt is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from camera_adapters.errors import UserFacingError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``studio`` to ``deg-train``."""
    p = subparsers.add_parser(
        "studio",
        help="the labelling studio: label, correct and review videos (a window)",
        description=(
            "Open the labelling studio on a project (ours or a DeepEthogram project as it is), a recording folder "
            "written by `deg-live run --record` (one session or a folder of sessions), or a single video. "
            "Number keys toggle behaviours, arrows step (painting toggled behaviours), Ctrl+S saves "
            "<video>_labels.csv; press ? in the window for every shortcut (docs/studio.md)."
        ),
    )
    p.add_argument("-p", "--project", default=None, metavar="DIR", help="the project folder")
    p.add_argument(
        "target",
        nargs="?",
        default=None,
        metavar="VIDEO",
        help="with -p: the project video to open first (name or path); without: a project folder, a recording "
        "folder or a video file (default: the current folder)",
    )
    p.add_argument(
        "--autosave-s", type=float, default=10.0, metavar="S", help="seconds between autosaves of unsaved edits"
    )
    p.add_argument(
        "--train-preset",
        default=None,
        metavar="NAME",
        help="the preset the Train button gives `deg-train train-all` when the project has no runs yet "
        "(e.g. tiny or demo_cpu for a quick first model; default: train-all's own default)",
    )
    p.add_argument(
        "--screenshot",
        default=None,
        metavar="PNG",
        help="open, draw, write a screenshot of the window to PNG and quit (for docs and checks)",
    )
    p.set_defaults(func=_studio)


def _studio(args: argparse.Namespace) -> int:
    from deg_train.studio.workspace import Workspace

    workspace = Workspace.open(args.project, None if args.project else args.target)
    start = workspace.find(args.target) if args.project and args.target else 0
    if args.autosave_s <= 0:
        raise UserFacingError(f"--autosave-s must be positive, not {args.autosave_s}")

    try:
        from pyqtgraph.Qt import QtCore, QtWidgets

        from deg_train.studio.window import StudioWindow
    except ImportError as err:
        raise UserFacingError(
            f"the studio needs PyQt6 and pyqtgraph ({err}); install the gui extra: pip install 'deg-live[gui]'"
        ) from None

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    confirm = (lambda _question: False) if args.screenshot else None  # a screenshot run never asks
    window = StudioWindow(
        workspace, start=start, autosave_s=args.autosave_s, confirm=confirm, train_preset=args.train_preset
    )
    window.show()

    def unexpected(kind, value, tb) -> None:
        # Without this hook PyQt ends the process on an exception in a slot, and unsaved edits with it.
        traceback.print_exception(kind, value, tb)
        try:
            window.autosave(force=True)
            window.say(f"internal error: {kind.__name__}: {value} (details on the terminal; edits autosaved)")
        except Exception:  # the hook must not raise
            pass

    sys.excepthook = unexpected
    if args.screenshot:

        def shoot() -> None:
            if window.doc is None and window._opening is not None:  # a large video still opening
                QtCore.QTimer.singleShot(100, shoot)
                return
            window.save_png(args.screenshot)
            window.close()

        QtCore.QTimer.singleShot(300, shoot)
    return int(app.exec())
