"""The ethogram viewer, rendered offscreen from real streams, and read back from its pixels.

Live: scripted state messages go over a real PUB socket on loopback (:class:`deg_live.events.EventPublisher`)
and real rat frames through a real :class:`camera_adapters.publisher.FramePublisher`; the window is grabbed to a
PNG and the ethogram's pixels are checked where the decisions change. Review: a small outputs file beside a real
rat video and its labels, and a recorded-session folder, stepped with keys and the slider.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("PyQt6")
pytest.importorskip("pyqtgraph")

from camera_adapters.publisher import FramePublisher
from camera_adapters.video import VideoReader
from camera_adapters.wire import Frame, restart_reason
from deg_live.events import EventMessage, EventPublisher, StateMessage
from deg_live.viewer.app import qt_application
from deg_live.viewer.receiver import StreamReceiver
from deg_live.viewer.render import DECISION_OFF, LABEL_ABSENT, LABEL_PRESENT, PROBABILITY_LUT, behaviour_colours
from deg_live.viewer.review import ReviewError, load_outputs, load_session

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]
SESSION = "cage1_6_23_17_5"  # 144 frames, 320x180, 25 fps
RAT_DIR = REPO / "tests" / "data" / "rat_behavior" / SESSION
BEHAVIOURS = ["background", "grooming", "rearing"]
FPS = 25.0
N = 160
ON = {1: (40, 100), 2: (70, 130)}  # behaviour -> [start, stop) of its scripted bout


def scripted(n: int = N) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(n, 3)`` and decisions: grooming on [40, 100), rearing on [70, 130), background otherwise."""
    dec = np.zeros((n, 3), dtype=bool)
    for k, (a, b) in ON.items():
        dec[a:b, k] = True
    dec[:, 0] = ~dec[:, 1:].any(axis=1)
    probs = np.where(dec, 0.9, 0.1).astype(np.float32)
    return probs, dec


@pytest.fixture(scope="module")
def qapp():
    return qt_application()


def pump(qapp, seconds: float, until=lambda: False) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        qapp.processEvents()
        time.sleep(0.01)
    qapp.processEvents()


def pixel(image, point, radius: int = 1) -> np.ndarray:
    """Median RGB around a window point of a QImage."""
    values = []
    for dx in range(-radius, radius + 1):
        for dy in range(-radius, radius + 1):
            c = image.pixelColor(point.x() + dx, point.y() + dy)
            values.append((c.red(), c.green(), c.blue()))
    return np.median(np.asarray(values), axis=0)


def close_to(rgb, expected, tol: float = 12.0) -> bool:
    return float(np.abs(np.asarray(rgb, float) - np.asarray(expected, float)).max()) <= tol


def load_png(path: Path):
    from pyqtgraph.Qt import QtGui

    image = QtGui.QImage(str(path))
    assert not image.isNull()
    return image


def test_live_window_draws_the_stream_it_receives(qapp, tmp_path):
    from deg_live.viewer.widgets import ViewerWindow

    probs, dec = scripted()
    reader = VideoReader(RAT_DIR / f"{SESSION}.mp4")
    with (
        EventPublisher("tcp://127.0.0.1:*", "cam0", stream_id="warmup") as pub,
        FramePublisher("tcp://127.0.0.1:*", camera_id="cam0") as frames,
    ):
        rx = StreamReceiver(pub.bound_endpoint, frames=frames.endpoint, camera_id="cam0")
        window = ViewerWindow(receiver=rx, seconds=8.0, refresh_hz=30)
        window.resize(1200, 800)
        window.show()
        try:
            # ZeroMQ's slow joiner: repeat a warm-up state of another stream until the subscription is live.
            t0 = time.time_ns()
            for _ in range(300):
                pub.publish(StateMessage("cam0", 0, t0, t0, BEHAVIOURS, [1, 0, 0], [1, 0, 0], stream_id="warmup"))
                pump(qapp, 0.02)
                if rx.timeline.states_received:
                    break
            assert rx.timeline.states_received, "no state message arrived over loopback"
            received_before = rx.timeline.states_received
            # The real stream: 160 frames at 25 fps (capture times), published about every millisecond.
            start = time.time_ns()
            for i in range(N):
                capture = start + int(i * 1e9 / FPS)
                if i % 20 == 0:
                    frames.publish(Frame(index=i, pixels=reader.read(i % len(reader)), capture_time_ns=capture))
                state = StateMessage(
                    "cam0",
                    i,
                    capture,
                    capture + 8_000_000,
                    BEHAVIOURS,
                    probs[i],
                    dec[i],
                    skipped=0,
                    lost=0,
                    stream_id="real",
                )
                pub.publish(state)
                for k in range(1, 3):
                    if i == ON[k][0]:
                        pub.publish(
                            EventMessage(
                                "cam0",
                                BEHAVIOURS[k],
                                "onset",
                                i,
                                i,
                                0.9,
                                capture,
                                capture + 8_000_000,
                                behaviour_index=k,
                                stream_id="real",
                            )
                        )
                time.sleep(0.001)
            pump(qapp, 5.0, until=lambda: rx.timeline.states_received >= received_before + N)
            assert rx.timeline.states_received == received_before + N
            pump(qapp, 0.5)  # a few timer redraws, and the newest frame
            window.refresh()
            qapp.processEvents()
            png = tmp_path / "live.png"
            assert window.save_png(str(png))
        finally:
            window.close()
            reader.close()

    snap = window.last_snapshot
    assert snap.newest_frame == N - 1 and snap.missed_messages == 0
    assert abs(snap.fps - FPS) < 0.5
    assert window.redraws > 3  # the timer redrew on its own
    assert "latency p50" in window.status.text() and "skipped 0" in window.status.text()
    assert "rearing onset @70" in window.events_label.text()
    assert window.frame_item.image is not None and window.frame_item.image.shape == (180, 320, 3)

    image = load_png(png)
    colours = behaviour_colours(BEHAVIOURS)

    def x_of(frame: int) -> float:
        return (frame - (N - 1)) / FPS

    def decision_pixel(frame: int, k: int) -> np.ndarray:
        return pixel(image, window.ethogram_point(x_of(frame), k, "decision"))

    # Decision bars: on inside the scripted bouts, off outside, for each behaviour.
    for k, (a, b) in ON.items():
        for frame in (a + 5, (a + b) // 2, b - 5):
            assert close_to(decision_pixel(frame, k), colours[k]), (k, frame, decision_pixel(frame, k))
        for frame in (a - 10, b + 10):
            assert close_to(decision_pixel(frame, k), DECISION_OFF), (k, frame, decision_pixel(frame, k))
    assert close_to(decision_pixel(20, 0), colours[0]) and close_to(decision_pixel(80, 0), DECISION_OFF)
    # Probability colour follows the probability.
    on_prob = pixel(image, window.ethogram_point(x_of(60), 1, "prob"))
    off_prob = pixel(image, window.ethogram_point(x_of(20), 1, "prob"))
    assert close_to(on_prob, PROBABILITY_LUT[round(0.9 * 255)], 20) and close_to(off_prob, PROBABILITY_LUT[26], 20)

    # Scan grooming's decision row: the bar starts and ends where the decision changes (within a frame).
    xs = np.arange(10, 150, 0.25)
    on = np.array([close_to(decision_pixel(f, 1), colours[1], 30) for f in xs])
    edges = xs[1:][np.diff(on.astype(int)) != 0]
    assert len(edges) == 2, edges
    assert abs(edges[0] - (ON[1][0] - 0.5)) <= 1.0 and abs(edges[1] - (ON[1][1] - 0.5)) <= 1.0, edges


def test_a_frozen_viewer_does_not_slow_the_publisher(qapp):
    """3000 states in a burst while the GUI does nothing: publishing never waits for the viewer; the viewer
    counts what it missed and shows the newest state once the burst is over."""
    with EventPublisher("tcp://127.0.0.1:*", "cam0", sndhwm=50) as pub:
        with StreamReceiver(pub.bound_endpoint, camera_id="cam0", rcvhwm=20) as rx:
            t0 = time.time_ns()
            for _ in range(300):
                pub.publish(StateMessage("cam0", 0, t0, t0, BEHAVIOURS, [1, 0, 0], [1, 0, 0], stream_id="warmup"))
                time.sleep(0.01)
                if rx.timeline.states_received:
                    break
            warmups = rx.timeline.states_received
            start = time.perf_counter()
            for i in range(3000):
                pub.publish(StateMessage("cam0", i, t0, t0, BEHAVIOURS, [0.1, 0.9, 0], [0, 1, 0], stream_id="s"))
            elapsed = time.perf_counter() - start
            time.sleep(1.0)  # the GUI is "frozen": nothing calls snapshot
            pub.publish(StateMessage("cam0", 3000, t0, t0, BEHAVIOURS, [0.1, 0.9, 0], [0, 1, 0], stream_id="s"))
            time.sleep(0.3)
            snap = rx.timeline.snapshot(100)
    assert elapsed < 3.0, f"publishing 3000 states took {elapsed:.2f} s"
    assert snap is not None and snap.newest_frame == 3000
    # Every state the publisher sent either arrived or is counted as missed by the viewer.
    assert rx.timeline.states_received - warmups + snap.missed_messages == 3001 - pub.dropped


def _write_outputs(path: Path, probs: np.ndarray, behaviours: list[str], group: str = "tgm") -> None:
    with h5py.File(path, "w") as f:
        g = f.create_group(group)
        g.create_dataset("P", data=probs)
        g.create_dataset("logits", data=np.log(probs / (1 - probs)))
        g.create_dataset("thresholds", data=np.full(len(behaviours), 0.5, np.float32))
        g.create_dataset("class_names", data=np.array(behaviours, dtype="S"))


def _rat_copy(tmp_path: Path) -> tuple[Path, np.ndarray, list[str]]:
    video = tmp_path / f"{SESSION}.mp4"
    shutil.copy(RAT_DIR / f"{SESSION}.mp4", video)
    shutil.copy(RAT_DIR / f"{SESSION}_labels.csv", tmp_path / f"{SESSION}_labels.csv")
    import csv

    with open(RAT_DIR / f"{SESSION}_labels.csv") as fh:
        rows = list(csv.reader(fh))
    behaviours = rows[0][1:]
    labels = np.asarray([[int(v) for v in r[1:]] for r in rows[1:]], dtype=np.int8)
    return video, labels, behaviours


def test_review_outputs_file_steps_frames_and_draws_labels(qapp, tmp_path):
    from pyqtgraph.Qt import QtCore, QtTest

    from deg_live.viewer.widgets import ViewerWindow

    video, labels, behaviours = _rat_copy(tmp_path)
    n = len(labels)
    # Predictions: the labels, wrong on frames 60..79 (everything predicted absent there).
    probs = np.where(labels == 1, 0.95, 0.05).astype(np.float32)
    probs[60:80] = 0.05
    outputs = tmp_path / f"{SESSION}_outputs.h5"
    _write_outputs(outputs, probs, behaviours)
    data = load_outputs(outputs)  # video and labels found beside it
    assert data.video == video and data.labels is not None and data.n_frames == n
    assert np.array_equal(data.labels, labels)

    window = ViewerWindow(review=data, seconds=6.0)
    window.resize(1200, 800)
    window.show()
    pump(qapp, 0.2)
    reader = VideoReader(video)
    try:
        QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_Right)
        assert window.cursor == 1
        QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_PageDown)
        assert window.cursor == 26
        QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_Right, QtCore.Qt.KeyboardModifier.ShiftModifier)
        assert window.cursor == 36
        assert np.array_equal(window.frame_item.image, reader.read(36))
        window.slider.setValue(70)
        assert window.cursor == 70 and np.array_equal(window.frame_item.image, reader.read(70))
        QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_End)
        assert window.cursor == n - 1
        window.set_cursor(70)
        pump(qapp, 0.2)
        png = tmp_path / "review.png"
        assert window.save_png(str(png))
        assert "labelled:" in window.status.text()
    finally:
        window.close()
        reader.close()

    image = load_png(png)
    colours = behaviour_colours(behaviours)
    k = int(np.flatnonzero(labels[70] == 1)[0])  # the behaviour labelled at frame 70 (genital_licking)
    other = int(np.flatnonzero(labels[70] == 0)[0])  # one labelled absent there

    def at(frame: int, behaviour: int, part: str) -> np.ndarray:
        return pixel(image, window.ethogram_point(frame / data.fps, behaviour, part))

    assert labels[85, k] == 1  # the same bout goes on after the wrongly predicted frames 60..79
    assert close_to(at(70, k, "label"), LABEL_PRESENT)  # labelled present ...
    assert close_to(at(70, k, "decision"), DECISION_OFF)  # ... but not predicted (frames 60..79)
    assert close_to(at(85, k, "label"), LABEL_PRESENT) and close_to(at(85, k, "decision"), colours[k])
    assert close_to(at(70, other, "label"), LABEL_ABSENT)


def test_review_session_folder_holds_skipped_frames(tmp_path):
    """A recording whose inference skipped frames 10..12: those rows hold the last decision, no probability."""
    session = tmp_path / "cam0_20250101_000000"
    session.mkdir()
    m_frames = list(range(0, 10)) + list(range(13, 30))
    behaviours = ["background", "grooming"]
    p = np.zeros((len(m_frames), 2), np.float32)
    d = np.zeros((len(m_frames), 2), np.uint8)
    for row, f in enumerate(m_frames):
        on = 5 <= f < 20
        p[row] = (0.1, 0.9) if on else (0.9, 0.1)
        d[row] = (0, 1) if on else (1, 0)
    with h5py.File(session / f"{session.name}_outputs.h5", "w") as f:
        g = f.create_group("deg_live")
        g.create_dataset("P", data=p)
        g.create_dataset("decisions", data=d)
        g.create_dataset("frame_index", data=np.asarray(m_frames, np.int64) + 1000)
        g.create_dataset("video_frame", data=np.asarray(m_frames, np.int64))
        g.create_dataset("thresholds", data=np.array([0.5, 0.5], np.float32))
        g.create_dataset("class_names", data=np.array(behaviours, dtype="S"))
    data = load_session(session)
    assert data.n_frames == 30 and data.video is None
    assert np.isnan(data.probabilities[10:13]).all() and data.decisions[10:13, 1].all()
    assert data.decisions[25, 0] and not data.decisions[25, 1]
    with pytest.raises(ReviewError, match=r"no <session>_outputs\.h5"):
        load_session(tmp_path)


def test_view_command_screenshot_and_errors(tmp_path):
    _, labels, behaviours = _rat_copy(tmp_path)
    probs = np.where(labels == 1, 0.9, 0.1).astype(np.float32)
    _write_outputs(tmp_path / f"{SESSION}_outputs.h5", probs, behaviours)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    png = tmp_path / "shot.png"
    cmd = [sys.executable, "-m", "deg_live.cli", "view", "--outputs", str(tmp_path / f"{SESSION}_outputs.h5")]
    done = subprocess.run(
        [*cmd, "--screenshot", str(png), "--after", "0.3"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert png.exists() and png.stat().st_size > 10_000
    bad = subprocess.run(
        [sys.executable, "-m", "deg_live.cli", "view", "--session", str(tmp_path / "nowhere")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "not a session folder" in bad.stderr


def test_viewer_data_side_imports_neither_qt_nor_torch():
    code = (
        "import sys, deg_live.viewer, deg_live.commands.view; "
        "bad = [m for m in ('torch', 'PyQt6', 'pyqtgraph', 'deg_train') if m in sys.modules]; "
        "sys.exit(', '.join(bad) or None)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_timeline_holds_skipped_frames_and_resets_on_a_new_stream():
    from deg_live.viewer.timeline import Timeline

    timeline = Timeline(capacity=64)
    t0 = time.time_ns()
    for seq, i in enumerate([0, 1, 2, 5, 6]):  # inference skipped frames 3 and 4
        on = i >= 2
        state = StateMessage("cam0", i, t0 + i * 40_000_000, t0, BEHAVIOURS, [0, float(on), 0], [0, on, 0], seq=seq)
        timeline.add_state(state)
    snap = timeline.snapshot(10)
    assert snap.first_frame == -3 and snap.newest_frame == 6
    assert snap.valid.tolist() == [False] * 3 + [True] * 7
    assert snap.processed.tolist() == [False] * 3 + [True, True, True, False, False, True, True]
    assert snap.decisions[:, 1].tolist() == [False] * 5 + [True] * 5  # frames 3, 4 hold frame 2's decision
    assert abs(snap.fps - 25.0) < 1e-6 and snap.missed_messages == 0
    # A new stream (another stream id): the old frames are gone.
    timeline.add_state(StateMessage("cam0", 0, t0, t0, BEHAVIOURS, [1, 0, 0], [1, 0, 0], stream_id="other"))
    snap = timeline.snapshot(10)
    assert snap.newest_frame == 0 and snap.valid.sum() == 1 and snap.decisions[-1].tolist() == [True, False, False]


def test_timeline_follows_the_one_restart_rule():
    """camera_adapters.wire.restart_reason decides: an index that goes back clears, a forward jump (a gap) does not."""
    from deg_live.viewer.timeline import Timeline

    timeline = Timeline(capacity=64)
    t0 = time.time_ns()

    def state(i, stream="s"):
        return StateMessage("cam0", i, t0 + i * 40_000_000, t0, BEHAVIOURS, [0, 1, 0], [0, 1, 0], stream_id=stream)

    for i in (10, 11, 30):  # 12..29 never arrived: a gap in one stream, kept
        timeline.add_state(state(i))
    assert restart_reason("s", 11, "s", 30) is None and timeline.snapshot(64).processed.sum() == 3
    timeline.add_state(state(30))  # the same index again: the camera restarted its counter
    assert restart_reason("s", 30, "s", 30) and timeline.snapshot(64).processed.sum() == 1
    timeline.add_state(state(31, stream="t"))  # another stream id, index forward: also a restart
    assert restart_reason("s", 30, "t", 31) and timeline.snapshot(64).processed.sum() == 1


def test_receiver_takes_state_and_events_from_separate_endpoints():
    """``deg-live run --state A --events B``: the receiver subscribes to both; another camera is ignored."""
    with (
        EventPublisher("tcp://127.0.0.1:*", "cam0") as states,
        EventPublisher("tcp://127.0.0.1:*", "cam0") as events,
        EventPublisher("tcp://127.0.0.1:*", "cam1") as other,
    ):
        with StreamReceiver(states.bound_endpoint, events.bound_endpoint, camera_id="cam0") as rx:
            t0 = time.time_ns()
            deadline = time.monotonic() + 10
            i = 0
            while time.monotonic() < deadline and not (rx.timeline.states_received and rx.timeline.events_received):
                states.publish(StateMessage("cam0", i, t0, t0, BEHAVIOURS, [0, 1, 0], [0, 1, 0]))
                events.publish(EventMessage("cam0", "grooming", "onset", i, i, 0.9, t0, t0, behaviour_index=1))
                i += 1
                time.sleep(0.02)
            snap = rx.timeline.snapshot(10)
        assert rx.timeline.states_received and rx.timeline.events_received
        assert snap.events[-1].behaviour == "grooming" and snap.newest_decisions.tolist() == [False, True, False]
        with (
            StreamReceiver(other.bound_endpoint, camera_id="cam0") as rx_cam0,
            StreamReceiver(other.bound_endpoint) as rx_any,
        ):
            for j in range(100):
                other.publish(StateMessage("cam1", j, t0, t0, BEHAVIOURS, [0, 1, 0], [0, 1, 0]))
                time.sleep(0.01)
                if rx_any.timeline.states_received > 10:
                    break
            assert rx_any.timeline.states_received > 10  # cam1's states are there ...
            assert rx_cam0.timeline.snapshot(10) is None  # ... but they are not cam0's
