"""Fixtures for the labelling studio's tests: real windows offscreen (helpers: studio_support.py)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import pytest
from studio_support import pump


@pytest.fixture(scope="session")
def qapp():
    from deg_live.viewer.app import qt_application

    return qt_application()


@pytest.fixture
def studio(qapp):
    """``open(workspace_or_path, **kwargs) -> StudioWindow``: a shown window (closed after the test)."""
    from deg_train.studio.window import StudioWindow
    from deg_train.studio.workspace import Workspace

    windows = []

    def open_(target, *, project=None, **kwargs):
        ws = target if isinstance(target, Workspace) else Workspace.open(project, target)
        kwargs.setdefault("confirm", lambda _q: True)
        kwargs.setdefault("autosave_s", 3600)
        window = StudioWindow(ws, **kwargs)
        window.show()
        pump(qapp, 0.05)
        window.activateWindow()
        window.setFocus()
        pump(qapp, 0.02)
        windows.append(window)
        return window

    yield open_
    for w in windows:
        w.confirm = lambda _q: False
        w.close()
    pump(qapp, 0.01)
