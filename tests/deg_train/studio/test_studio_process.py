"""The studio as a process: ``deg-train studio`` starts without torch, and a killed window loses nothing saved.

Both run the real command line / real window in a child Python (offscreen), as a person would, and look at what
it leaves on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from studio_support import unlabelled_video

from deg_live.labels import read_labels

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}


def test_cli_opens_without_torch_and_writes_a_screenshot(tmp_path):
    video = unlabelled_video(tmp_path)
    shot = tmp_path / "studio.png"
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from deg_train.cli import main\n"
        f"rc = main(['studio', {str(video)!r}, '--screenshot', {str(shot)!r}])\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', f'{time.perf_counter() - t:.2f}')\n"
        "sys.exit(rc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "NO-TORCH" in out.stdout, out.stdout
    assert shot.stat().st_size > 10_000  # a real picture of the window
    from pyqtgraph.Qt import QtGui

    image = QtGui.QImage(str(shot))
    assert image.width() >= 800 and image.height() >= 600


def test_cli_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "deg_train.cli", "studio", str(tmp_path / "empty")],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "neither a project" in out.stderr and "recording folder" in out.stderr


EDITOR = """
import os, sys, time
from deg_live.viewer.app import qt_application
app = qt_application()
from pyqtgraph.Qt import QtCore, QtTest
from deg_train.studio.window import StudioWindow
from deg_train.studio.workspace import Workspace
K = QtCore.Qt.Key
w = StudioWindow(Workspace.open(None, sys.argv[1]), autosave_s=0.2)
w.show()
app.processEvents()
QtTest.QTest.keyClick(w, K.Key_1)
for _ in range(9):
    QtTest.QTest.keyClick(w, K.Key_Right)
QtTest.QTest.keyClick(w, K.Key_S, QtCore.Qt.KeyboardModifier.ControlModifier)  # saved: grooming 0..9
QtTest.QTest.keyClick(w, K.Key_1)
QtTest.QTest.keyClick(w, K.Key_2)
for _ in range(20):
    QtTest.QTest.keyClick(w, K.Key_Right)  # unsaved: rearing 9..29
autosave = w.ws.videos[0].autosave_path
while not autosave.exists():
    app.processEvents(); time.sleep(0.01)
print("READY", flush=True)
while True:  # keep editing until killed
    QtTest.QTest.keyClick(w, K.Key_Right)
    app.processEvents(); time.sleep(0.02)
"""


def test_killed_window_keeps_the_saved_csv_and_a_readable_autosave(tmp_path, studio):
    video = unlabelled_video(tmp_path)
    child = subprocess.Popen(
        [sys.executable, "-c", EDITOR, str(video)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        assert line.strip() == "READY", child.stderr.read()
        time.sleep(0.5)  # mid-edit: autosaves keep landing
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    saved = read_labels(tmp_path / "a_labels.csv", n_frames=144)
    expected = np.full((144, 3), -1, np.int8)
    expected[:10] = [0, 1, 0]
    np.testing.assert_array_equal(saved.values, expected)  # the last save, intact
    autosave = tmp_path / ".deg_studio" / "a_labels.autosave.csv"
    auto = read_labels(autosave, n_frames=144)  # readable whatever moment the kill came
    assert (auto.values[10:30, 2] == 1).all() and (auto.values[:9, 1] == 1).all()
    # Opening again restores the autosave (and says so); saving makes it the labels and removes the autosave.
    w = studio(video)
    assert any("restored unsaved edits" in m for m in w.messages)
    assert w.doc.dirty and (w.doc.values[10:30, 2] == 1).all() and w.cursor >= 29
    w.save()
    assert not autosave.exists()
    np.testing.assert_array_equal(read_labels(tmp_path / "a_labels.csv").values, w.doc.values)


def test_an_unexpected_error_in_the_window_does_not_end_it(tmp_path):
    """PyQt ends the process on an exception in a slot unless a hook takes it: the studio's hook logs it and keeps
    the window (and the person's edits) alive."""
    video = unlabelled_video(tmp_path)
    shot = tmp_path / "after.png"
    code = (
        "import sys\n"
        "from pyqtgraph.Qt import QtCore, QtWidgets\n"
        "app = QtWidgets.QApplication(sys.argv[:1])\n"
        "def boom():\n"
        "    raise ZeroDivisionError('scripted failure in a slot')\n"
        "QtCore.QTimer.singleShot(50, boom)\n"
        "from deg_train.cli import main\n"
        f"sys.exit(main(['studio', {str(video)!r}, '--screenshot', {str(shot)!r}]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "scripted failure in a slot" in out.stderr and shot.exists()


def test_deepethogram_reads_what_the_studio_saved(tmp_path, studio):
    """DeepEthogram's own label reader (in its own environment, ``$DEG_PEER_VENV``) reads the studio's CSV as the
    same array: unlabelled -1, absent 0, present 1, background first."""
    venv = os.environ.get("DEG_PEER_VENV")
    if not venv or not (Path(venv) / "bin" / "python").exists():
        pytest.skip("DEG_PEER_VENV is not set to an environment with DeepEthogram 0.5 (see ../shared/peer/README.md)")
    from pyqtgraph.Qt import QtCore, QtTest

    w = studio(unlabelled_video(tmp_path))
    QtTest.QTest.keyClick(w, QtCore.Qt.Key.Key_2)
    for _ in range(20):
        QtTest.QTest.keyClick(w, QtCore.Qt.Key.Key_Right)
    path = w.save()
    code = (
        "import sys, json\n"
        "from deepethogram.file_io import read_labels\n"
        "print(json.dumps(read_labels(sys.argv[1]).astype(int).tolist()))\n"
    )
    out = subprocess.run(
        [str(Path(venv) / "bin" / "python"), "-c", code, str(path)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    import json

    np.testing.assert_array_equal(np.array(json.loads(out.stdout.strip().splitlines()[-1])), w.doc.values)
