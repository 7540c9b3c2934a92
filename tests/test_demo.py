"""``scripts/demo.py`` (``make demo``): the live replay and report on an existing bundle, Ctrl-C stopping every
process it started, and (slow) the quick demo trained from scratch.

The replay tests reuse the tiny bundle the live tests export (cached by pytest, see tests/deg_live/live_support.py)
and run the real processes: ``deg-camera video``, ``deg-live run`` and an offscreen ``deg-live view``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pytest puts tests/ first on sys.path, where tests/deg_live/ and tests/deg_train/ would shadow the real packages
# as namespace packages: the repository root must come first.
sys.path.insert(0, str(REPO))
DEMO = REPO / "scripts" / "demo.py"
SHORT_SESSION = "cage1_6_23_17_5"  # 144 frames at 25 fps


def _live_support():
    if "live_support" in sys.modules:  # imported already by the live tests
        return sys.modules["live_support"]
    spec = importlib.util.spec_from_file_location("live_support", REPO / "tests" / "deg_live" / "live_support.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["live_support"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return _live_support().tiny_bundle(cache_dir("deg_live_tiny_bundle"))


def headless_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYTHONUNBUFFERED")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    return env


def prepared(tmp_path: Path, tiny) -> Path:
    """An output folder holding a trained bundle, as a previous demo run leaves it."""
    out = tmp_path / "demo_out"
    shutil.copytree(tiny.path, out / "bundle")
    (out / "demo.json").write_text(json.dumps({"held_out": SHORT_SESSION}))
    return out


def leftovers(marker: str) -> list[str]:
    """Command lines of processes still running whose arguments mention ``marker``."""
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
    return [line for line in ps[1:] if marker in line and int(line.split()[0]) != os.getpid()]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` in the process tree (children are in their own process groups)."""
    rows = subprocess.run(["ps", "-eo", "pid,ppid"], capture_output=True, text=True).stdout.split()[2:]
    children: dict[int, list[int]] = {}
    for child, parent in zip(rows[::2], rows[1::2], strict=True):
        children.setdefault(int(parent), []).append(int(child))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting to be reaped does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_offline_reported(result: dict, replayed: int) -> None:
    """demo_result.json holds the offline figure for the replayed session and the event counts; with every
    replayed frame processed live, the live F1 is the offline F1 (same frames, same models, same postprocessing).

    "Every frame": nothing skipped by inference; the live path may miss the stream's first frame or two, sent
    before its subscription was up (ZeroMQ's slow joiner), so its history starts a frame later than offline."""
    for key in ("macro_f1_offline", "macro_f1_live_minus_offline", "events_live", "events_offline"):
        assert result[key] is not None, key
    assert set(result["onsets_live"]) == set(result["onsets_offline"]) == set(result["labelled_bouts"])
    live, offline = result["macro_f1"], result["macro_f1_offline"]
    if math.isnan(live) or math.isnan(offline):  # no behaviour with a defined F1 in these frames
        assert math.isnan(live) and math.isnan(offline), result
    else:
        assert result["macro_f1_live_minus_offline"] == pytest.approx(live - offline)
    if result["processed_frames"] >= replayed - 2 and result["skipped"] == 0 and not math.isnan(live):
        assert abs(live - offline) <= 0.05, result


def test_default_preset_is_live_cpu_hour_on_the_live_cpu_models():
    from deg_train.training.config import load_config
    from deg_train.training.presets import get_preset

    demo = _demo_module()
    args = demo.parse_args([])
    assert args.preset == "live_cpu_hour" and not args.preset_given
    assert demo.parse_args(["--preset", "demo_fast"]).preset_given
    assert demo.parse_args(["--quick"]).preset == "tiny"
    # One engine thread on a CPU-only machine (two threads on two shared cores stalled for seconds); the user's wins.
    from deg_live.engines.registry import cuda_device_count

    assert demo.engine_options(args) == ([] if cuda_device_count() else ["threads=1"])
    assert demo.engine_options(demo.parse_args(["--engine-option", "threads=2"])) == ["threads=2"]
    # The demo trains the live CPU preset's models (so the replay keeps up in real time), only for less long; demo_fast
    # is the same models trained for even less.
    live, ref = load_config("deg_live_cpu"), get_preset("deg_live_cpu")
    for name in ("live_cpu_hour", "demo_fast"):
        short = load_config(name)
        assert short.preset == name
        assert short.data == live.data and short.data.size == tuple(ref["input_size"])
        assert short.flow.params == live.flow.params and short.feature.width == ref["feature"]["width"]
        assert short.sequence.model_params() == live.sequence.model_params()
        assert short.train.amp
        assert short.flow.epochs * short.flow.steps_per_epoch < live.flow.epochs * live.flow.steps_per_epoch / 10
        assert (
            short.feature.epochs * short.feature.steps_per_epoch
            < live.feature.epochs * live.feature.steps_per_epoch / 10
        )
    hour, fast = load_config("live_cpu_hour"), load_config("demo_fast")
    assert hour.feature.epochs * hour.feature.steps_per_epoch > 2 * fast.feature.epochs * fast.feature.steps_per_epoch


def test_demo_replays_a_held_out_session_and_reports(tmp_path, tiny):
    out = prepared(tmp_path, tiny)
    done = subprocess.run(
        # --every-frame: the replay waits for inference, so every frame is processed (however busy the machine) and
        # the live F1 must match the offline one.
        [sys.executable, str(DEMO), "--out", str(out), "--max-frames", "75", "--every-frame", "--viewer-png"],
        env=headless_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    assert "skipping training" in log
    assert "F1 of the live decisions" in log and "macro F1" in log
    assert "latency (camera capture -> decision published)" in log
    assert "no display here" in log
    result = json.loads((out / "demo_result.json").read_text())
    assert result["processed_frames"] == 75 and result["skipped"] == 0
    # The fair reference: the same session offline, the same bundle (its runs are not here: its own graphs).
    assert "live vs offline on the same 75 frames" in log and "labelled bouts" in log
    assert_offline_reported(result, replayed=75)
    assert result["offline_source"].startswith("the bundle offline")
    assert result["latency_ms_p50"] is not None and result["latency_ms_p50"] > 0
    assert (out / "ethogram.png").stat().st_size > 10_000
    assert (out / "viewer.png").stat().st_size > 10_000  # the live viewer ran (offscreen) on the real stream
    session = Path(result["recording"])
    assert (session / f"{session.name}.mp4").exists()
    recording = json.loads((session / f"{session.name}_recording.json").read_text())
    assert recording["status"] == "complete"
    assert leftovers(str(out)) == []


def test_ctrl_c_stops_every_process_the_demo_started(tmp_path, tiny):
    out = prepared(tmp_path, tiny)
    proc = subprocess.Popen(
        [sys.executable, str(DEMO), "--out", str(out), "--no-viewer"],
        env=headless_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "events as they happen" in line or not line:
                break
        assert "events as they happen" in lines[-1], "".join(lines)
        time.sleep(1.5)
        children = descendants(proc.pid)
        assert len(children) >= 2, children  # deg-live run, deg-camera video (and their helpers)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, "".join(lines) + rest
    assert "interrupted: stopping every process" in rest
    assert [pid for pid in children if alive(pid)] == []
    sessions = list((out / "live").glob("replay_*"))
    assert len(sessions) == 1
    recording = json.loads((sessions[0] / f"{sessions[0].name}_recording.json").read_text())
    assert recording["status"] in ("interrupted", "complete")  # finalised, not left "recording"


@pytest.mark.slow
def test_quick_demo_trains_exports_and_replays_from_scratch(tmp_path):
    out = tmp_path / "quick"
    done = subprocess.run(
        [sys.executable, str(DEMO), "--quick", "--out", str(out)],
        env=headless_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "training took" in log and "macro F1" in log
    state = json.loads((out / "demo.json").read_text())
    assert (out / "bundle" / "manifest.json").exists()
    result = json.loads((out / "demo_result.json").read_text())
    assert result["offline_source"].startswith("deg-train infer")  # with the runs the bundle was exported from
    assert_offline_reported(result, replayed=150)
    assert state["held_out"] in state["test"]
    assert (out / "ethogram.png").exists()
    assert leftovers(str(out)) == []
