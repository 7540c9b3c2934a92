"""The README's workflow through the real command-line tools, checked end to end on files and sockets.

A lab's path from labelled videos to a live recording, each step the command a user types, each in its own
process:

1. ``deg-train init / add --find-labels / split --make`` a project of four short rat sessions;
2. ``deg-train train-all --preset tiny`` (all three stages, thresholds picked on validation);
3. ``deg-train export PROJECT --out BUNDLE``, and meanwhile ``deg-train infer -p PROJECT VIDEO --out DIR`` on a
   held-out video (the project's newest causal runs: those the bundle is exported from, checked);
4. ``deg-camera video path=VIDEO rate=0 --lossless ... --lossless-block`` replays that video on the LOSSLESS path
   over loopback TCP (ports chosen by the kernel, read back from the adapter's start line), and
   ``deg-live run --frames LOSSLESS --every-frame --exit-at-end --record DIR`` runs the bundle on every frame.

Then the recording (``<session>_outputs.h5``, ``<session>_events.csv``, ``<session>_frames.csv``) must hold
exactly what ``deg-train infer`` wrote (``<video>_outputs.h5``, ``<video>_predictions_deg_train.csv``): the
probabilities of every frame to float tolerance (same fp32 arithmetic, exported graph vs eager torch), the decisions
exactly, and the onsets/offsets exactly (the edges of the offline decisions: same frames, behaviours and kinds).
tests/deg_live/test_live_offline_equivalence.py holds the same promise on in-memory modules; this test holds it
for what a user runs and what lands on disk.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest puts tests/ first on sys.path, where tests/deg_live/ and tests/deg_train/ would shadow the real packages.
sys.path.insert(0, str(REPO))
RAT = REPO / "tests" / "data" / "rat_behavior"
# Short sessions that together hold every behaviour (the set tests/deg_train/conftest.py uses); cage1_6_23_17_5
# and cage2_6_23_17_5 were filmed together, so the split keeps them in one part.
SESSIONS = ("cage1_6_23_17_5", "cage2_6_23_17_5", "cage2_6_23_21_4", "unsessioned_05")
SPLIT_OPTIONS = ("--seed", "0", "--group-by", "^cage[0-9]+_([0-9_]+)$")
ONE_CPU_THREAD = ("--device", "cpu", "--threads", "1")  # the test shares two cores with other jobs
LIVE_SESSION = "rehearsal"
# The recording and deg-train infer run the same fp32 weights (exported ONNX graph vs eager torch).
PROB_RTOL, PROB_ATOL = 1e-4, 2e-5


def cli(name: str) -> list[str]:
    """The installed console script ``name`` (deg-train, deg-live, deg-camera), else its module with -m."""
    script = Path(sys.executable).with_name(name)
    if script.is_file():
        return [str(script)]
    module = {"deg-train": "deg_train.cli", "deg-live": "deg_live.cli", "deg-camera": "camera_adapters.cli"}[name]
    return [sys.executable, "-m", module]


def free_port() -> int:
    """A TCP port free on loopback now (for deg-live's events endpoint; the camera adapter binds port ``*``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict:
    """Children on one torch thread each (the test shares two cores) and without a display."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    return env


class Children:
    """The test's child processes: each in its own process group, all stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.seconds: dict[str, float] = {}

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "wb")
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO, start_new_session=True
        )
        log.close()  # the child holds its own descriptor
        self.procs.append((name, proc))
        return proc

    def run(self, name: str, cmd: list[str], timeout_s: float) -> str:
        """Run ``cmd`` to completion; returns its output; fails the test (with the output's tail) otherwise."""
        proc = self.start(name, cmd)
        started = time.monotonic()
        self.wait(name, proc, timeout_s)
        self.seconds[name] = round(time.monotonic() - started, 1)
        return self.output(name)

    def wait(self, name: str, proc: subprocess.Popen, timeout_s: float) -> None:
        """Wait for a started child to finish; fails the test (with its output's tail) unless it exits with 0."""
        try:
            code = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            pytest.fail(f"{name} did not finish in {timeout_s:.0f} s:\n{self.tail(name)}")
        assert code == 0, f"{name} exited with {code}: {' '.join(proc.args)}\n{self.tail(name)}"

    def output(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.output(name).splitlines()[-lines:])

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                return
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue

    def stop_all(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)


def wait_for(pattern: str, children: Children, name: str, proc: subprocess.Popen, timeout_s: float) -> re.Match:
    """The first match of ``pattern`` in a child's output, waiting for it to appear."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = re.search(pattern, children.output(name))
        if match:
            return match
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(f"{name}: no line matching {pattern!r} (exit status {proc.poll()}):\n{children.tail(name)}")


def replay_lossless(
    children: Children, video: Path, bundle_dir: Path, record: Path, session: str
) -> tuple[subprocess.Popen, subprocess.Popen]:
    """``deg-camera video`` on the lossless path and ``deg-live run --every-frame --record`` on it: (camera, live).

    The camera is unpaced and flow-controlled (it waits for deg-live to start and take every frame); its ports are
    picked by the kernel and read back from its start line.
    """
    camera = children.start(
        "deg-camera",
        [
            *cli("deg-camera"),
            *("video", f"path={video}", "rate=0"),  # unpaced: as fast as the lossless receiver takes frames
            *("--bind", "tcp://127.0.0.1:*", "--lossless", "tcp://127.0.0.1:*", "--lossless-block"),
            *("--drain-timeout", "180", "--quiet"),  # wait for deg-live to start and take every frame
        ],
    )
    lossless = wait_for(r"\(lossless (tcp://127\.0\.0\.1:\d+)\)", children, "deg-camera", camera, 60).group(1)
    live = children.start(
        "deg-live",
        [
            *cli("deg-live"),
            *("run", "--bundle", str(bundle_dir), "--frames", lossless, "--every-frame", "--exit-at-end"),
            *("--record", str(record), "--session", session, "--events", f"tcp://127.0.0.1:{free_port()}"),
            *("--backend", "onnxruntime", "--precision", "fp32", "--engine-option", "threads=1"),
            *("--warmup", "2", "--quiet"),
        ],
    )
    return camera, live


def read_decisions_csv(path: Path, behaviours: list[str]) -> np.ndarray:
    """``<video>_predictions_deg_train.csv`` (a frame column, then one 0/1 column per behaviour) as ``(N, K) bool``."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    assert header[1:] == behaviours, f"{path}: columns {header} vs the bundle's behaviours {behaviours}"
    assert [int(r[0]) for r in body] == list(range(len(body))), f"{path}: frame column is not 0..N-1"
    return np.asarray([[int(v) for v in r[1:]] for r in body], dtype=np.int8).astype(bool)


def edges(decisions: np.ndarray, behaviours: list[str]) -> list[tuple[int, str, str]]:
    """The onsets/offsets implied by per-frame decisions ``(N, K) bool`` (every behaviour off before frame 0),
    in the live order: by frame, background last, then by column."""
    padded = np.vstack([np.zeros((1, decisions.shape[1]), bool), decisions]).astype(np.int8)
    change = np.diff(padded, axis=0)
    out = []
    for t, k in zip(*np.nonzero(change), strict=True):
        out.append((int(t), behaviours[k] == "background", int(k), "onset" if change[t, k] > 0 else "offset"))
    out.sort()
    return [(t, behaviours[k], kind) for t, _, k, kind in out]


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 75 s on an idle 2-core machine; several minutes when it shares the cores
def test_readme_workflow_recording_equals_deg_train_infer(tmp_path):
    from camera_adapters.video import probe
    from deg_live.bundle import read_bundle
    from deg_live.outputs import read_predictions
    from deg_live.recorder import read_recording
    from deg_train.project.splits import Split

    logs = tmp_path / "logs"
    logs.mkdir()
    children = Children(logs)
    project, bundle_dir, record, offline = (tmp_path / n for n in ("rats", "bundle", "recordings", "offline"))
    started = time.monotonic()
    try:
        # 1. The project: init, add the videos with the labels beside them, split by recording session.
        dt = cli("deg-train")
        children.run("init", [*dt, "init", str(project)], 60)
        videos = [str(RAT / s / f"{s}.mp4") for s in SESSIONS]
        children.run("add", [*dt, "add", "-p", str(project), *videos, "--find-labels"], 120)
        children.run(
            "split",
            [*dt, "split", "-p", str(project), "--make", "--fractions", "0.5", "0.25", "0.25", *SPLIT_OPTIONS],
            60,
        )
        # The video to rehearse on: a held-out one (test part of the split), as a lab replays a new session.
        held_out = sorted(Split.load(project / "DATA" / "split.yaml").test)[0]
        video = RAT / held_out / f"{held_out}.mp4"
        n_frames = probe(video).n_frames

        # 2. Train the three stages: the tiny preset (no centred comparison model), its sequence model trained a
        # little longer (seconds) so that its probabilities move and the replay has onsets and offsets.
        children.run(
            "train-all",
            [
                *(*dt, "train-all", "-p", str(project), "--preset", "tiny", "--no-compare", *ONE_CPU_THREAD),
                *("sequence.epochs=4", "sequence.steps_per_epoch=10"),
            ],
            600,
        )
        # 3. Export the bundle; meanwhile deg-train infer on the held-out video (the project's newest causal
        # sequence run and its feature run: the runs the bundle is exported from, checked below).
        infer = children.start(
            "infer", [*dt, "infer", "-p", str(project), str(video), "--out", str(offline), *ONE_CPU_THREAD]
        )
        children.run("export", [*dt, "export", str(project), "--out", str(bundle_dir), "--no-torch"], 300)

        # 4. The camera adapter on the lossless path (flow-controlled: waits for deg-live), ports picked by the
        # kernel; then deg-live on every frame of that endpoint, recording.
        camera, live = replay_lossless(children, video, bundle_dir, record, LIVE_SESSION)
        for name, proc in (("infer", infer), ("deg-camera", camera), ("deg-live", live)):
            children.wait(name, proc, 300)
    finally:
        children.stop_all()
    elapsed = time.monotonic() - started
    bundle = read_bundle(bundle_dir)
    behaviours = list(bundle.behaviours)

    # Nothing dropped on the way: the camera adapter sent every frame, the recorder wrote every frame.
    camera_log = children.output("deg-camera")
    sent = re.search(r"lossless sent (\d+) queued (\d+) DROPPED (\d+)", camera_log)
    assert sent and sent.groups() == (str(n_frames), "0", "0"), camera_log
    assert "never reached a receiver" not in camera_log and "still connected" not in camera_log, camera_log
    rec = read_recording(record / LIVE_SESSION)
    info = rec["info"]
    assert info["status"] == "complete", info
    assert info.get("frames_missing", 0) == 0 and info.get("frames_dropped", 0) == 0, info
    assert rec["frames"]["frame_index"].tolist() == list(range(n_frames))
    assert rec["frames"]["source_frame"].tolist() == list(range(n_frames))

    # deg-train infer's files, from the runs the bundle was exported from.
    predictions = read_predictions(offline / f"{held_out}_outputs.h5")  # the sequence model's group
    assert predictions.behaviours == behaviours
    assert Path(predictions.attrs["run"]).resolve() == Path(bundle.manifest.training["sequence_run"]).resolve()
    offline_probs = predictions.probabilities
    offline_decisions = read_decisions_csv(offline / f"{held_out}_predictions_deg_train.csv", behaviours)
    assert offline_probs.shape == offline_decisions.shape == (n_frames, len(behaviours))
    np.testing.assert_allclose(predictions.thresholds, bundle.thresholds, rtol=0, atol=1e-6)

    # The recording's per-frame outputs: one row per frame, in order, equal to offline.
    out = rec["outputs"]
    assert out["frame_index"].tolist() == list(range(n_frames))
    assert out["video_frame"].tolist() == list(range(n_frames))
    live_probs = np.asarray(out["P"], np.float32)
    np.testing.assert_allclose(live_probs, offline_probs, rtol=PROB_RTOL, atol=PROB_ATOL)
    live_decisions = np.asarray(out["decisions"]).astype(bool)
    mismatch = np.argwhere(live_decisions != offline_decisions)
    assert mismatch.size == 0, (
        f"decisions differ at (frame, behaviour) {mismatch[:10].tolist()}; probabilities there: live "
        f"{live_probs[tuple(mismatch[:10].T)].tolist()} offline {offline_probs[tuple(mismatch[:10].T)].tolist()}, "
        f"thresholds {list(bundle.thresholds)}"
    )

    # The recording's events: exactly the onsets/offsets of the offline decisions.
    expected = edges(offline_decisions, behaviours)
    recorded = [(int(e["frame_index"]), e["behaviour"], e["kind"]) for e in rec["events"]]
    assert recorded == expected
    assert all(e["camera_id"] == "cam0" for e in rec["events"])
    for e in rec["events"]:  # each event's probability is that frame's
        k = behaviours.index(e["behaviour"])
        assert float(e["probability"]) == pytest.approx(float(offline_probs[int(e["frame_index"]), k]), abs=1e-4)
    # Not a vacuous comparison: a behaviour other than background switched on after the first frame, and off.
    assert any(b != "background" and kind == "onset" and t > 0 for t, b, kind in expected), expected
    assert any(b != "background" and kind == "offset" for _, b, kind in expected), expected
    print(
        f"workflow: {n_frames} frames of {held_out}, {len(expected)} events, max |dP| "
        f"{np.abs(live_probs - offline_probs).max():.2e}, {elapsed:.0f} s (steps: {children.seconds})"
    )

    # 5-8. The loop the studio closes: review the recording, label its suggested bouts, retrain, export again.
    try:
        review_label_retrain(children, project, record / LIVE_SESSION, bundle, tmp_path / "bundle2")
    finally:
        children.stop_all()


def review_label_retrain(children: Children, project: Path, session: Path, bundle, bundle2: Path) -> None:
    """docs/studio.md's walk-through after the live run, through the studio's real window and its Train button.

    5. ``deg-train studio SESSION``: the live onsets nobody has labelled are suggestions; ``N`` goes to the first;
       a number key and Right paint its behaviour; finalise makes the rest background and saves the labels.
    6. ``deg-train add`` the reviewed session with those labels, ``deg-train split --assign train`` it.
    7. ``deg-train studio -p PROJECT``, Train: the newest causal sequence model is fine-tuned (a new run starting
       from its weights) on the labels including the session, its thresholds picked, the predictions refreshed.
    8. ``deg-train export`` takes the new run.
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import yaml
    from PyQt6 import QtCore, QtTest, QtWidgets

    from deg_live.bundle import read_bundle
    from deg_live.labels import read_labels
    from deg_live.viewer.app import qt_application
    from deg_train.models.checkpoints import load_checkpoint
    from deg_train.studio.window import StudioWindow
    from deg_train.studio.workspace import Workspace

    qapp = qt_application()
    keys = QtCore.Qt.Key

    def pump(seconds: float, until=lambda: False) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not until():
            qapp.processEvents()
            time.sleep(0.01)
        return bool(until())

    def press(window, key, times: int = 1) -> None:
        for _ in range(times):
            QtTest.QTest.keyClick(QtWidgets.QApplication.focusWidget() or window, key)

    def open_window(ws):
        window = StudioWindow(ws, confirm=lambda _q: True, autosave_s=3600)
        window.show()
        pump(0.1)
        window.activateWindow()
        window.setFocus()
        pump(0.05)
        return window

    # 5. Review: the first suggested live event, its behaviour painted over 5 frames, the rest background.
    w = open_window(Workspace.open(None, session))
    try:
        live = [s for s in w.suggestions if s.reason == "live event" and s.behaviour != "background"]
        assert live, [s.describe() for s in w.suggestions]
        first = w.suggestions.index(live[0])
        press(w, keys.Key_N, first + 1)
        assert w.cursor == live[0].start
        k = w.doc.behaviours.index(live[0].behaviour)
        press(w, getattr(keys, f"Key_{k}"))
        press(w, keys.Key_Right, 5)
        press(w, keys.Key_Escape)
        w.finalise()
    finally:
        w.confirm = lambda _q: False
        w.close()
    labels_file = session / f"{session.name}_labels.csv"
    labels = read_labels(labels_file)
    assert (labels.values >= 0).all()
    painted = labels.values[live[0].start : live[0].start + 6, labels.behaviours.index(live[0].behaviour)]
    assert painted.tolist() == [1] * 6

    # 6. The reviewed session joins the project's training videos.
    dt = cli("deg-train")
    video = session / f"{session.name}.mp4"
    children.run("add session", [*dt, "add", "-p", str(project), str(video), "--labels", str(labels_file)], 120)
    children.run("assign", [*dt, "split", "-p", str(project), "--assign", "train", session.name], 60)

    # 7. Train from the studio: child processes, the window responsive, the newest causal run fine-tuned.
    previous = Path(bundle.manifest.training["sequence_run"]).resolve()
    w = open_window(Workspace.open(project, None))
    try:
        steps = w.job_steps("train")
        assert steps[0][0] == "train-sequence" and steps[0][-1] == f"sequence.weights={previous}", steps
        job = w.start_job("train")
        assert pump(600, until=lambda: job.done), job.output[-20:]
        assert job.output[-1] == "train: done", job.output[-40:]
    finally:
        w.confirm = lambda _q: False
        w.close()
    runs = sorted(p for p in (project / "models").glob("*_sequence_tgm") if (p / "done.json").is_file())
    tuned = runs[-1].resolve()
    assert tuned != previous
    assert yaml.safe_load((tuned / "config.yaml").read_text())["sequence"]["weights"] == str(previous)
    assert session.name in load_checkpoint(tuned)["extra"]["train_videos"]

    # 8. Export takes the fine-tuned run.
    children.run("export again", [*dt, "export", str(project), "--out", str(bundle2), "--no-torch"], 300)
    assert Path(read_bundle(bundle2).manifest.training["sequence_run"]).resolve() == tuned
