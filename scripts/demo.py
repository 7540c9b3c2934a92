#!/usr/bin/env python
"""The built-in demo behind ``make demo``: train on the rat sessions, then classify a held-out one live.

On a fresh clone, with nothing else provided, it

1. creates a project in ``demo_out/project`` from the labelled rat sessions committed in
   ``tests/data/rat_behavior``, split by recording session (``deg-train init / add / split``);
2. trains all three stages on the CPU (``deg-train train-all``, preset ``live_cpu_hour``: 5-10 minutes; progress
   shown) and exports the model bundle to ``demo_out/bundle`` (``deg-train export``) — skipped when a valid
   bundle is already there;
3. replays a held-out session in real time through the ``video`` camera adapter (``deg-camera video``),
   classifies it live (``deg-live run``, recording everything to ``demo_out/live/``), and prints each behaviour
   onset/offset as it happens with its latency (it subscribes to the events itself);
4. runs the same session OFFLINE with the same models and the same causal postprocessing (``deg-train infer`` with
   the runs the bundle was exported from; a bundle without its runs is run offline through its own graphs), so
   the live figure has a fair reference: the same frames, the same thresholds;
5. prints the session's F1 against the labels, live and offline side by side with their difference, the number
   of onsets/offsets live, offline and labelled, and the latency summary; writes them to
   ``demo_out/demo_result.json`` and an ethogram PNG (labels vs live decisions) to ``demo_out/ethogram.png``.
   With a display it also opens the live viewer (``deg-live view``) and afterwards the review of the recording;
   headless it says where the PNG is.

Every process it starts runs in its own process group and is stopped at the end, also on Ctrl-C or SIGTERM.

Usage::

    python scripts/demo.py                 # the full demo (training takes a while on a laptop CPU)
    python scripts/demo.py --quick         # tiny models, a few sessions, 6 s of replay: checks that it all works
    python scripts/demo.py --retrain       # train again even if demo_out/bundle exists
    python scripts/demo.py --every-frame   # process every frame in order (lossless path) instead of the newest
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from camera_adapters.errors import UserFacingError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "rat_behavior"
SESSION_GROUPS = "^cage[0-9]+_([0-9_]+)$"  # cage1_<time> and cage2_<time> were filmed together: one session
CLI = {
    "deg-train": [sys.executable, "-m", "deg_train.cli"],
    "deg-live": [sys.executable, "-m", "deg_live.cli"],
    "deg-camera": [sys.executable, "-m", "camera_adapters.cli"],
}
STATE_FILE = "demo.json"


class DemoError(Exception):
    """A step of the demo failed; the message says which and where its log is."""


def say(text: str = "") -> None:
    """Print a demo line (flushed: the demo interleaves with child processes)."""
    print(text, flush=True)


# -------------------------------------------------------------------------------------------------------------
# Child processes
# -------------------------------------------------------------------------------------------------------------


class Processes:
    """Every child process of the demo, each in its own process group, all stopped by :meth:`stop_all`.

    Children get their own process group (``start_new_session``) so that Ctrl-C reaches only the demo, which
    then stops them in order with SIGINT (their clean shutdown: a recording is finalised), SIGTERM, then SIGKILL.
    """

    def __init__(self) -> None:
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: Sequence[str], *, log: Path | None = None, env=None) -> subprocess.Popen:
        """Start ``cmd``; its output goes to ``log`` (appended) or, without one, to this terminal."""
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")
        proc = subprocess.Popen(
            list(cmd), stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True, env=env
        )
        proc._demo_log = out  # type: ignore[attr-defined]
        self.running.append((name, proc))
        return proc

    def run(self, name: str, cmd: Sequence[str], *, log: Path | None = None) -> None:
        """Run ``cmd`` to completion (output to the terminal unless ``log``); raise DemoError if it fails."""
        proc = self.start(name, cmd, log=log)
        try:
            code = proc.wait()
        finally:
            self.stop(proc)
        if code != 0:
            where = f":\n{tail(log)}\n(full log: {log})" if log else ""
            raise DemoError(f"{name} failed (exit status {code}): {' '.join(map(str, cmd))}{where}")

    def stop(self, proc: subprocess.Popen, grace_s: float = 15.0) -> int | None:
        """Stop one child: SIGINT, then SIGTERM after ``grace_s``, then SIGKILL; returns its exit status."""
        for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        log = getattr(proc, "_demo_log", None)
        if log is not None:
            log.close()
        self.running = [(n, p) for n, p in self.running if p is not proc]
        return proc.poll()

    def stop_all(self) -> None:
        """Stop every child still running, newest first (idempotent)."""
        for _name, proc in reversed(list(self.running)):
            try:
                self.stop(proc)
            except KeyboardInterrupt:  # impatient user: no more grace
                self.stop(proc, grace_s=0.5)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(log: Path, lines: int = 8) -> str:
    """The last lines of a child's log, indented (for error messages)."""
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "   (no log)"
    return "\n".join("   | " + line for line in text)


def wait_for_line(log: Path, needle: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait until ``needle`` appears in ``log`` (True), the process ends or the time is up (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and needle in log.read_text(errors="replace"):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return False


# -------------------------------------------------------------------------------------------------------------
# Training
# -------------------------------------------------------------------------------------------------------------


def sessions(limit: int | None = None) -> list[str]:
    """The committed rat sessions (``cage*`` first, then ``unsessioned_*``), at most ``limit``."""
    names = sorted(p.name for p in DATA.iterdir() if (p / f"{p.name}.mp4").exists())
    if limit:
        # Keep whole recording sessions (cage1_X with cage2_X) so the split by session still has enough groups.
        names = names[:limit]
    return names


def read_state(path: Path) -> dict:
    """A JSON state file as a dict (empty if missing or unreadable); ``demo_out/demo.json`` says which bundle
    was trained on which split with which preset."""
    if path.is_dir():
        path = path / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def bundle_ok(bundle: Path) -> str | None:
    """None if ``bundle`` is a valid bundle, else why not."""
    from deg_live.bundle import BundleError, read_bundle

    if not (bundle / "manifest.json").exists():
        return "no bundle yet"
    try:
        read_bundle(bundle)
    except BundleError as err:
        return f"the bundle there is not usable ({err})"
    return None


def choose_held_out(project: Path) -> tuple[str, list[str]]:
    """The held-out (test) video to replay: the test video with the most labelled behaviours."""
    from deg_live.labels import read_labels
    from deg_train.project.splits import Split

    split = Split.load(project / "DATA" / "split.yaml")
    test = list(split.test) or list(split.val)
    if not test:
        raise DemoError(f"{project}: the split has no test or validation video to replay")

    def richness(name: str) -> tuple[int, int]:
        table = read_labels(DATA / name / f"{name}_labels.csv")
        present = (table.values == 1).any(axis=0)
        return int(present[1:].sum()), len(table)

    return max(test, key=richness), test


def train(args: argparse.Namespace, procs: Processes, out: Path) -> dict:
    """Create the project, train all three stages, export the bundle; returns the demo state."""
    project = Path(args.project).resolve() if args.project else out / "project"
    logs = out / "logs"
    dt = CLI["deg-train"]
    if not (project / "project_config.yaml").exists():
        if project.exists() and any(project.iterdir()):
            if args.project:
                raise DemoError(f"{project} exists but is not a deg-train project (no project_config.yaml)")
            shutil.rmtree(project)  # the demo's own, left half-made by an interrupted run
        names = sessions(args.sessions)
        say(
            f"== creating the project {project.relative_to(REPO) if project.is_relative_to(REPO) else project} "
            f"from {len(names)} labelled rat sessions"
        )
        procs.run("deg-train init", [*dt, "init", str(project), "--name", "rat_demo"], log=logs / "project.log")
        videos = [str(DATA / n / f"{n}.mp4") for n in names]
        labels = [str(DATA / n / f"{n}_labels.csv") for n in names]
        procs.run(
            "deg-train add",
            [*dt, "add", "--project", str(project), *videos, "--labels", *labels],
            log=logs / "project.log",
        )
    if not (project / "DATA" / "split.yaml").exists():
        procs.run(
            "deg-train split",
            [
                *dt,
                "split",
                "--project",
                str(project),
                "--make",
                "--fractions",
                "0.6",
                "0.2",
                "0.2",
                "--seed",
                "0",
                "--group-by",
                SESSION_GROUPS,
            ],
            log=logs / "project.log",
        )
    held_out, test = choose_held_out(project)
    say(f"== training all three stages on the CPU (preset {args.preset}); held-out sessions: {', '.join(test)}")
    # train-all resumes the pipeline recorded in the project; start a new one to train again or to train
    # another preset (or other overrides) than the recorded one.
    recorded = read_state(project / "models" / "train_all.json") if (project / "models").is_dir() else {}
    other = bool(recorded) and (recorded.get("preset"), recorded.get("overrides")) != (args.preset, list(args.override))
    fresh = ["--fresh"] if args.retrain or other else []
    started = time.monotonic()
    procs.run(
        "deg-train train-all",
        [*dt, "train-all", "--project", str(project), "--preset", args.preset, "--no-compare", *fresh, *args.override],
    )
    minutes = (time.monotonic() - started) / 60
    say(f"== training took {minutes:.1f} min; exporting the bundle")
    bundle = out / "bundle"
    procs.run(
        "deg-train export",
        # --quick: ONNX only (the CPU engines use it; the torch programs take most of the export time)
        [*dt, "export", str(project), "--out", str(bundle), "--overwrite", *(["--no-torch"] if args.quick else [])],
        log=logs / "export.log",
    )
    state = {
        "bundle": str(bundle),
        "project": str(project),
        "held_out": held_out,
        "test": test,
        "preset": args.preset,
        "training_minutes": round(minutes, 2),
    }
    (out / STATE_FILE).write_text(json.dumps(state, indent=2))
    return state


# -------------------------------------------------------------------------------------------------------------
# Live replay
# -------------------------------------------------------------------------------------------------------------


def engine_options(args: argparse.Namespace) -> list[str]:
    """``--engine-option`` values for deg-live run: the user's, else ``threads=1`` on a machine without a GPU.

    On a small CPU the engine shares the cores with the camera adapter, the recorder's video encoder and the
    demo itself; with one intra-op thread per engine call nothing waits on a busy core (with two threads on two
    shared cores, calls of ~10 ms stalled for up to 1.7 s and most frames were skipped; see docs/live.md).
    """
    if args.engine_option is not None:
        return list(args.engine_option)
    from deg_live.engines.registry import cuda_device_count

    return [] if cuda_device_count() > 0 else ["threads=1"]


def has_display() -> bool:
    """True where a window can be shown."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or sys.platform in ("darwin", "win32")


def viewer_env() -> dict:
    """The environment for a visible viewer (the Makefile exports QT_QPA_PLATFORM=offscreen for the tests)."""
    env = dict(os.environ)
    if env.get("QT_QPA_PLATFORM") == "offscreen":
        del env["QT_QPA_PLATFORM"]
    return env


class EventPrinter:
    """Subscribes to the pipeline's events and state; prints each event as it happens with its latency."""

    def __init__(self, endpoint: str, behaviours: Sequence[str]):
        from deg_live.events import EventSubscriber

        self.sub = EventSubscriber(endpoint, ("events/", "state/"))
        self.events: list = []
        self.state_latency_ms: list[float] = []
        self.last_state = None
        self.receive_ms: list[float] = []
        self.width = max(len(b) for b in behaviours) if behaviours else 10
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-events", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from deg_live.events import EventMessage, MessageError

        while not self._stop.is_set():
            try:
                msg = self.sub.recv(timeout=0.2)
            except MessageError as err:
                say(f"   (malformed message: {err})")
                continue
            if msg is None:
                continue
            received = time.time_ns()
            if isinstance(msg, EventMessage):
                self.events.append(msg)
                self.receive_ms.append((received - msg.capture_time_ns) / 1e6)
                if msg.behaviour == "background":
                    continue
                arrow = "▶ onset " if msg.kind == "onset" else "■ offset"
                say(
                    f"   frame {msg.frame_index:5d}  {arrow}  {msg.behaviour:<{self.width}}  "
                    f"p={msg.probability if msg.probability is not None else float('nan'):.2f}  "
                    f"latency {msg.latency_ms:6.1f} ms (received after {self.receive_ms[-1]:6.1f} ms)"
                )
            else:
                self.last_state = msg
                self.state_latency_ms.append(msg.latency_ms)

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._stop.set()
        self._thread.join(2.0)
        self.sub.close()


def replay(args: argparse.Namespace, procs: Processes, out: Path, bundle_dir: Path, held_out: str) -> dict:
    """Replay the held-out session through deg-camera and deg-live run; returns what was measured."""
    from deg_live.bundle import read_bundle

    bundle = read_bundle(bundle_dir)
    logs = out / "logs"
    record = out / "live"
    session = f"replay_{held_out}"
    if (record / session).exists():
        shutil.rmtree(record / session)
    for log in ("live.log", "camera.log", "viewer.log"):
        (logs / log).unlink(missing_ok=True)
    frames, lossless, events = (f"tcp://127.0.0.1:{free_port()}" for _ in range(3))
    video = DATA / held_out / f"{held_out}.mp4"

    options = " ".join(engine_options(args))
    say(
        f"== live: deg-live run on {bundle_dir} (backend {args.backend}{', ' + options if options else ''}), "
        f"recording to {record / session}"
    )
    live = procs.start(
        "deg-live run",
        [
            *CLI["deg-live"],
            "run",
            "--bundle",
            str(bundle_dir),
            # --every-frame: every frame in order from the lossless path (the camera adapter waits for inference);
            # else the newest frame from the live path, and the recorder on the lossless path.
            *(
                ["--frames", lossless, "--every-frame"]
                if args.every_frame
                else ["--frames", frames, "--lossless", lossless]
            ),
            "--record",
            str(record),
            "--session",
            session,
            "--events",
            events,
            "--backend",
            args.backend,
            *[f"--engine-option={opt}" for opt in engine_options(args)],
            "--exit-at-end",
            "--telemetry",
            str(logs),
        ],
        log=logs / "live.log",
    )
    if not wait_for_line(logs / "live.log", "warm-up", live, timeout_s=120):
        if live.poll() is not None:
            raise DemoError(f"deg-live run did not start:\n{tail(logs / 'live.log')}\n(full log: {logs / 'live.log'})")
        say("   deg-live run is slow to warm up; going on")
    printer = EventPrinter(events, bundle.behaviours)
    from camera_adapters.video import probe

    info = probe(video, exact=False)
    n = min(info.n_frames, args.max_frames or info.n_frames)
    rate = args.rate or info.fps
    viewer = None
    view_cmd = [*CLI["deg-live"], "view", "--state", events, "--frames", frames, "--bundle", str(bundle_dir)]
    if has_display() and not args.no_viewer:
        viewer = procs.start("deg-live view", view_cmd, log=logs / "viewer.log", env=viewer_env())
        say("== the live viewer is opening in its own window")
    elif args.viewer_png:
        # Headless: the same viewer, offscreen, saves a picture of itself near the end of the replay.
        shot = ["--refresh", "10", "--screenshot", str(out / "viewer.png"), "--after", f"{0.5 + 0.8 * n / rate:.1f}"]
        viewer = procs.start(
            "deg-live view", view_cmd + shot, log=logs / "viewer.log", env=dict(os.environ, QT_QPA_PLATFORM="offscreen")
        )
    time.sleep(1.0)  # subscriptions settle (ZeroMQ's slow joiner)

    camera_cmd = [*CLI["deg-camera"], "video", f"path={video}"]  # source settings first, then options
    if args.rate is not None:
        camera_cmd.append(f"rate={args.rate}")
    camera_cmd += ["--bind", frames, "--lossless", lossless, "--quiet"]
    if args.every_frame:
        camera_cmd += ["--lossless-block", "--drain-timeout", "60"]
    if args.max_frames:
        camera_cmd += ["--max-frames", str(args.max_frames)]
    say(
        f"== replaying held-out session {held_out} ({n} frames, {n / rate:.0f} s at {rate:g} fps) through "
        f"deg-camera video{' (every frame, in order)' if args.every_frame else ''}; events as they happen:"
    )
    camera = procs.start("deg-camera video", camera_cmd, log=logs / "camera.log")
    started = time.monotonic()
    try:
        camera.wait(timeout=n / rate * 3 + 60)
    except subprocess.TimeoutExpired:
        say("   the camera adapter did not finish in time; stopping it")
    camera_code = procs.stop(camera)
    if camera_code not in (0, None):
        procs.stop(live)
        printer.close()
        raise DemoError(
            f"the camera adapter failed (exit status {camera_code}):\n{tail(logs / 'camera.log')}\n"
            f"(full log: {logs / 'camera.log'})"
        )
    try:
        live.wait(timeout=60)
    except subprocess.TimeoutExpired:
        say("   deg-live run did not stop at the end of the stream; stopping it")
    code = procs.stop(live)
    time.sleep(0.3)
    printer.close()
    if viewer is not None:
        if args.viewer_png and not has_display():
            try:
                viewer.wait(timeout=10)  # it exits by itself after its screenshot
            except subprocess.TimeoutExpired:
                pass
        procs.stop(viewer)
    if code not in (0, None):
        raise DemoError(
            f"deg-live run failed (exit status {code}):\n{tail(logs / 'live.log')}\n(full log: {logs / 'live.log'})"
        )
    return {
        "bundle": bundle,
        "session_dir": record / session,
        "video": video,
        "fps": info.fps,
        "events": printer.events,
        "state_latency_ms": printer.state_latency_ms,
        "receive_ms": printer.receive_ms,
        "last_state": printer.last_state,
        "seconds": time.monotonic() - started,
    }


# -------------------------------------------------------------------------------------------------------------
# Offline reference: the same session, the same models, the same causal postprocessing
# -------------------------------------------------------------------------------------------------------------


def offline_reference(procs: Processes, out: Path, bundle, video: Path) -> dict:
    """The replayed video run offline with the bundle's models, thresholds and causal postprocessing.

    With the runs the bundle was exported from (its manifest's ``training.feature_run`` / ``sequence_run``, as
    after the demo's own training) this is ``deg-train infer`` on the video: what ``deg-train evaluate`` scores.
    A bundle whose runs are not here (exported elsewhere) is run offline through its own graphs instead: the whole
    video decoded and resized as live does, ONNX Runtime fp32 on every causal window, then the causal
    postprocessor with the bundle's thresholds and settings.

    Returns:
        ``probabilities (N, K) float32``, ``decisions (N, K) bool`` for every frame of the video, and ``source``
        (how they were computed).
    """
    training = bundle.manifest.training or {}
    feature_run, sequence_run = training.get("feature_run"), training.get("sequence_run")
    if feature_run and sequence_run and Path(feature_run).is_dir() and Path(sequence_run).is_dir():
        from deg_live.labels import read_labels
        from deg_live.outputs import read_predictions

        dest = out / "offline"
        shutil.rmtree(dest, ignore_errors=True)
        say(f"== offline reference: deg-train infer on {video.name} with the bundle's runs")
        procs.run(
            "deg-train infer",
            [
                *CLI["deg-train"],
                "infer",
                str(video),
                "--sequence-run",
                str(sequence_run),
                "--feature-run",
                str(feature_run),
                "--out",
                str(dest),
            ],
            log=out / "logs" / "offline.log",
        )
        predictions = read_predictions(dest / f"{video.stem}_outputs.h5")  # the sequence model's group
        table = read_labels(dest / f"{video.stem}_predictions_deg_train.csv")
        if list(table.behaviours) != list(bundle.behaviours) or predictions.behaviours != list(bundle.behaviours):
            raise DemoError(f"deg-train infer's behaviours {table.behaviours} are not the bundle's {bundle.behaviours}")
        return {
            "probabilities": predictions.probabilities,
            "decisions": table.values == 1,
            "source": f"deg-train infer (sequence run {Path(sequence_run).name})",
        }

    from camera_adapters.video import VideoReader
    from deg_live.engines import create_engine
    from deg_live.postprocess import CausalPostprocessor

    say(f"== offline reference: the bundle's own graphs on every frame of {video.name} (its runs are not here)")
    size = (bundle.manifest.input.height, bundle.manifest.input.width)
    with VideoReader(video, size=size) as reader:
        frames = reader.read_range(0, len(reader))
    with create_engine(bundle, "onnxruntime", threads=1) as engine:
        probs = engine.infer_frames(frames).probs
    decisions, _ = CausalPostprocessor(bundle.thresholds, bundle.postprocess_settings()).run(probs)
    return {"probabilities": probs, "decisions": decisions, "source": "the bundle offline (ONNX Runtime fp32)"}


def count_bouts(on: np.ndarray) -> int:
    """Bouts (runs of consecutive True frames) in a ``(N,)`` bool column; unlabelled frames must be False."""
    on = np.asarray(on, dtype=np.int8)
    return int(np.count_nonzero(np.diff(np.concatenate([[0], on])) == 1))


# -------------------------------------------------------------------------------------------------------------
# Report
# -------------------------------------------------------------------------------------------------------------


def live_decisions(session_dir: Path, n_frames: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recording's per-frame results on the replayed video's frames.

    Returns:
        probabilities ``(n_frames, K)`` (NaN where not processed), decisions ``(n_frames, K)`` (held from the
        last processed frame), processed ``(n_frames,)`` bool.
    """
    import csv

    from deg_live.outputs import read_predictions
    from deg_live.recorder import OUTPUTS_GROUP

    name = session_dir.name
    recorded = read_predictions(session_dir / f"{name}_outputs.h5", OUTPUTS_GROUP)
    probs, dec, frame_index = recorded.probabilities, recorded.rows["decisions"], recorded.rows["frame_index"]
    source = {}
    frames_csv = session_dir / f"{name}_frames.csv"
    if frames_csv.exists():
        with open(frames_csv, newline="") as fh:
            for row in csv.DictReader(fh):
                if row.get("source_frame") not in (None, ""):
                    source[int(row["frame_index"])] = int(row["source_frame"])
    rows = np.asarray([source.get(int(i), int(i)) for i in frame_index], dtype=np.int64)
    p = np.full((n_frames, k), np.nan, dtype=np.float32)
    d = np.zeros((n_frames, k), dtype=bool)
    processed = np.zeros(n_frames, dtype=bool)
    ok = (rows >= 0) & (rows < n_frames)
    p[rows[ok]] = probs[ok]
    d[rows[ok]] = dec[ok]
    processed[rows[ok]] = True
    held = np.where(processed, np.arange(n_frames), -1)
    np.maximum.accumulate(held, out=held)
    d = np.where((held >= 0)[:, None], d[np.maximum(held, 0)], False)
    return p, d, processed


def report(result: dict, out: Path, held_out: str) -> dict:
    """Print F1 against the labels and the latency summary; write the ethogram PNG; returns the numbers."""
    from deg_live.labels import read_labels
    from deg_train.evaluation.metrics import compute_metrics
    from deg_train.evaluation.plots import plot_ethogram

    bundle = result["bundle"]
    behaviours = bundle.behaviours
    table = read_labels(DATA / held_out / f"{held_out}_labels.csv")
    labels = np.full((len(table), len(behaviours)), -1, dtype=np.int8)  # the bundle's columns, in its order
    for k, name in enumerate(behaviours):
        if name in table.behaviours:
            labels[:, k] = table.values[:, table.behaviours.index(name)]
    n = len(labels)
    session_dir: Path = result["session_dir"]
    probs, decisions, processed = live_decisions(session_dir, n, len(behaviours))
    if not processed.any():
        raise DemoError(f"nothing was processed; see {out / 'logs' / 'live.log'}")
    last = int(np.flatnonzero(processed).max()) + 1  # a --max-frames replay stops early
    metrics = compute_metrics(
        labels[processed],
        probs[processed],
        decisions=decisions[processed],
        thresholds=bundle.thresholds,
        behaviours=behaviours,
    )
    say()
    say(
        f"== F1 of the live decisions against the labels of {held_out} "
        f"({int(processed.sum())} processed frames of {last} replayed)"
    )
    say(metrics.format_table(["f1", "precision", "recall"]) if _has_columns(metrics) else metrics.format_table())
    say(f"   macro F1 (behaviours other than background): {metrics.macro_f1:.3f}")
    comparison = compare_with_offline(result, labels, probs, decisions, processed, last, metrics)

    lat = np.asarray(result["state_latency_ms"], dtype=float)
    ev = [e for e in result["events"]]
    st = result["last_state"]
    say()
    say("== latency (camera capture -> decision published), measured by the demo on the state stream")
    if len(lat):
        say(
            f"   {len(lat)} frames: median {np.median(lat):.1f} ms, p99 {np.percentile(lat, 99):.1f} ms, "
            f"max {lat.max():.1f} ms"
        )
    if ev:
        ev_lat = np.asarray([e.latency_ms for e in ev])
        say(
            f"   {len(ev)} events: median {np.median(ev_lat):.1f} ms, p99 {np.percentile(ev_lat, 99):.1f} ms; "
            f"received by this process after median {np.median(result['receive_ms']):.1f} ms"
        )
    if st is not None:
        say(f"   frames skipped by inference: {st.skipped}, lost on the way: {st.lost}")
    telemetry = session_dir / f"{session_dir.name}_telemetry.json"
    if telemetry.exists():
        say(f"   per-stage timings: {telemetry}")

    png = out / "ethogram.png"
    plot_ethogram(
        labels[:last],
        decisions[:last],
        behaviours,
        png,
        probabilities=probs[:last],
        fps=result["fps"],
        title=f"{held_out}: labels vs live decisions (deg-live run, {bundle.manifest.preset})",
    )
    say()
    say(f"== ethogram (labels vs live decisions): {png}")
    numbers = {
        "held_out": held_out,
        "processed_frames": int(processed.sum()),
        "macro_f1": float(metrics.macro_f1),
        "f1": {b: float(v) for b, v in zip(behaviours, metrics.values["f1"], strict=True)},
        "latency_ms_p50": float(np.median(lat)) if len(lat) else None,
        "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else None,
        "events": len(ev),
        "skipped": int(st.skipped) if st is not None else None,
        "lost": int(st.lost) if st is not None else None,
        "ethogram": str(png),
        "recording": str(session_dir),
        **comparison,
    }
    (out / "demo_result.json").write_text(json.dumps(numbers, indent=2))
    return numbers


def compare_with_offline(
    result: dict,
    labels: np.ndarray,
    probs: np.ndarray,
    decisions: np.ndarray,
    processed: np.ndarray,
    last: int,
    live_metrics,
) -> dict:
    """Print the live figures beside the offline ones on the same frames; returns them for demo_result.json.

    F1 is scored on the frames live inference processed (all replayed frames when nothing was skipped), offline
    decisions on the same frames. Onsets are counted over the replayed frames ``[0, last)``: live from the
    recording's events, offline from the edges of its decisions, labelled as the bouts in the label file.
    """
    from deg_live.recorder import read_recording
    from deg_train.evaluation.metrics import compute_metrics

    bundle = result["bundle"]
    behaviours = list(bundle.behaviours)
    offline = result.get("offline")
    if offline is None:
        return {}
    n = len(labels)
    off_probs, off_decisions = offline["probabilities"], offline["decisions"]
    if off_probs.shape != (n, len(behaviours)) or off_decisions.shape != off_probs.shape:
        raise DemoError(
            f"the offline reference has {off_probs.shape} outputs for a video with {n} labelled frames and "
            f"{len(behaviours)} behaviours"
        )
    off_metrics = compute_metrics(
        labels[processed],
        off_probs[processed],
        decisions=off_decisions[processed],
        thresholds=bundle.thresholds,
        behaviours=behaviours,
    )
    events = read_recording(result["session_dir"])["events"]
    shown = [k for k, b in enumerate(behaviours) if b != "background"]
    onsets_live, events_live, onsets_offline, events_offline, bouts = {}, 0, {}, 0, {}
    padded = np.vstack([np.zeros((1, len(behaviours)), bool), off_decisions[:last]]).astype(np.int8)
    edges = np.diff(padded, axis=0)
    for k in shown:
        name = behaviours[k]
        mine = [e for e in events if e["behaviour"] == name and int(e["frame_index"]) < last]
        onsets_live[name] = sum(e["kind"] == "onset" for e in mine)
        events_live += len(mine)
        onsets_offline[name] = int(np.count_nonzero(edges[:, k] == 1))
        events_offline += int(np.count_nonzero(edges[:, k]))
        bouts[name] = count_bouts(labels[:last, k] == 1)

    live_f1 = float(live_metrics.macro_f1)
    off_f1 = float(off_metrics.macro_f1)
    width = max(len(behaviours[k]) for k in shown) if shown else 10
    say()
    say(
        f"== live vs offline on the same {int(processed.sum())} frames of this session; offline: {offline['source']}, "
        "the same thresholds and causal postprocessing"
    )
    say(f"   {'behaviour':<{width}}  F1 live  F1 offline  onsets live  onsets offline  labelled bouts")
    live_f1s = dict(zip(behaviours, live_metrics.values["f1"], strict=True))
    off_f1s = dict(zip(behaviours, off_metrics.values["f1"], strict=True))
    for k in shown:
        name = behaviours[k]
        say(
            f"   {name:<{width}}  {live_f1s[name]:7.3f}  {off_f1s[name]:10.3f}  {onsets_live[name]:11d}  "
            f"{onsets_offline[name]:14d}  {bouts[name]:14d}"
        )
    say(f"   {'macro F1':<{width}}  {live_f1:7.3f}  {off_f1:10.3f}   live - offline: {live_f1 - off_f1:+.3f}")
    first = int(np.flatnonzero(processed)[0])
    if first > 0:
        say(
            f"   (live began at frame {first}: the stream's first frames went out before deg-live's subscription was "
            "up; offline begins at frame 0)"
        )
    say(
        f"   onset/offset events (behaviours other than background) in {last} frames: live {events_live}, "
        f"offline {events_offline}; onsets live {sum(onsets_live.values())}, offline "
        f"{sum(onsets_offline.values())}, labelled bouts {sum(bouts.values())}"
    )
    return {
        "offline_source": offline["source"],
        "macro_f1_offline": off_f1,
        "macro_f1_live_minus_offline": live_f1 - off_f1,
        "f1_offline": {b: _number(v) for b, v in off_f1s.items()},
        "events_live": events_live,
        "events_offline": events_offline,
        "onsets_live": onsets_live,
        "onsets_offline": onsets_offline,
        "labelled_bouts": bouts,
    }


def _number(value) -> float | None:
    """A float for JSON; None where undefined (NaN: e.g. the F1 of a behaviour neither labelled nor predicted)."""
    value = float(value)
    return None if np.isnan(value) else value


def _has_columns(metrics) -> bool:
    return all(c in metrics.values for c in ("f1", "precision", "recall"))


# -------------------------------------------------------------------------------------------------------------
# Main
# -------------------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(REPO / "demo_out"), help="output folder (default demo_out/)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny models on 5 sessions and 150 replayed frames (a check that everything works, "
        "~1-2 min); output in <out>/quick unless --out is given",
    )
    p.add_argument(
        "--preset",
        default=None,
        help="training preset (default live_cpu_hour: the live CPU models, 5-10 minutes on 2 cores; demo_fast: the "
        "same in about 4 minutes, less accurate; tiny with --quick)",
    )
    p.add_argument(
        "--project",
        help="train in this project instead of <out>/project (created if missing; an existing one is resumed, e.g. "
        "runs/rat_demo from scripts/train_rat.sh)",
    )
    p.add_argument("--sessions", type=int, default=None, help="use only the first N rat sessions for training")
    p.add_argument("--retrain", action="store_true", help="train again even if a valid bundle exists")
    p.add_argument("--backend", default="auto", help="deg-live engine: auto (default), onnxruntime, torch, ...")
    p.add_argument(
        "--engine-option",
        action="append",
        metavar="KEY=VALUE",
        help="deg-live engine option (repeatable); default threads=1 on a machine without a GPU",
    )
    p.add_argument("--rate", type=float, default=None, help="replay rate in fps (default: the video's, real time)")
    p.add_argument("--max-frames", type=int, default=None, help="replay only the first N frames")
    p.add_argument(
        "--every-frame",
        action="store_true",
        help="process every frame in order (the lossless path; the replay waits for inference when it falls "
        "behind) instead of the newest frame in real time: live and offline then see the same frames",
    )
    p.add_argument("--no-viewer", action="store_true", help="do not open the viewer even with a display")
    p.add_argument(
        "--viewer-png", action="store_true", help="headless: run the live viewer offscreen and save <out>/viewer.png"
    )
    p.add_argument("override", nargs="*", metavar="KEY=VALUE", help="training config overrides for train-all")
    args = p.parse_args(argv)
    if args.quick:
        args.preset = args.preset or "tiny"
        args.sessions = args.sessions or 5
        args.max_frames = args.max_frames or 150
        if "--out" not in (argv if argv is not None else sys.argv[1:]):
            args.out = str(Path(args.out) / "quick")
    args.preset_given = args.preset is not None
    args.preset = args.preset or "live_cpu_hour"
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns the exit status."""
    args = parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    procs = Processes()

    def on_sigterm(signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        bundle_dir = out / "bundle"
        state = read_state(out)
        why = bundle_ok(bundle_dir)
        project = Path(args.project) if args.project else out / "project"
        if why is None and not state.get("held_out") and (project / "DATA" / "split.yaml").exists():
            held_out, test = choose_held_out(project)  # a bundle exported by hand from the project
            state = {"bundle": str(bundle_dir), "held_out": held_out, "test": test}
        other_preset = args.preset_given and state.get("preset") not in (None, args.preset)
        if why is None and state.get("held_out") and not args.retrain and not other_preset:
            say(
                f"== found a trained bundle ({state.get('preset', 'preset unknown')}) in {bundle_dir}; skipping "
                "training (--retrain to train again)"
            )
        else:
            if other_preset and not args.retrain:
                say(f"== the bundle there was trained with preset {state['preset']}: training {args.preset}")
            elif why and not args.retrain:
                say(f"== {why}: training one")
            state = train(args, procs, out)
        result = replay(args, procs, out, bundle_dir, state["held_out"])
        try:
            result["offline"] = offline_reference(procs, out, result["bundle"], result["video"])
        except (DemoError, UserFacingError, OSError) as err:  # the live report stands on its own
            say(f"== the offline reference failed, so the live figure is reported alone: {err}")
            result["offline"] = None
        report(result, out, state["held_out"])
        session_dir = result["session_dir"]
        if has_display() and not args.no_viewer:
            say(
                f"== reviewing the recording in the viewer (close its window or press Ctrl-C to finish): "
                f"deg-live view --session {session_dir}"
            )
            viewer = procs.start(
                "deg-live view",
                [*CLI["deg-live"], "view", "--session", str(session_dir)],
                log=out / "logs" / "viewer.log",
                env=viewer_env(),
            )
            try:
                viewer.wait()
            except KeyboardInterrupt:  # the expected way to finish here
                say()
        else:
            say(
                f"   no display here: open {out / 'ethogram.png'}, or on a machine with a display run "
                f"`deg-live view --session {session_dir}`"
            )
        return 0
    except KeyboardInterrupt:
        say("\n== interrupted: stopping every process the demo started")
        return 130
    except (DemoError, UserFacingError) as err:
        say(f"demo: error: {err}")
        return 1
    finally:
        procs.stop_all()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
