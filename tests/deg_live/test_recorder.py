"""The recorder: a project video folder that is complete after a clean stop, SIGTERM, a full disk, or SIGKILL.

End-to-end tests run real processes: ``deg-camera`` (the synthetic or video source) and ``deg-live run``."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from live_support import REPO, SHORT_VIDEO, CameraThread, tiny_bundle

from camera_adapters.sources import create_source
from camera_adapters.sources.synthetic import read_barcode
from camera_adapters.video import VideoReader, probe
from camera_adapters.wire import Frame
from deg_live.recorder import (
    Recorder,
    RecorderError,
    read_recording,
    read_recording_info,
    repair_interrupted_recordings,
    writer_alive,
)
from deg_live.telemetry import Telemetry
from deg_live.viewer.review import load_session

ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'tests' / 'deg_live'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


def _frame(i: int, h: int = 48, w: int = 64, smooth: bool = False) -> Frame:
    if smooth:  # what a lossy codec keeps: gradients and a moving block
        y, x = np.mgrid[0:h, 0:w]
        pixels = np.stack([x * 255 // w, y * 255 // h, np.full_like(x, 128)], axis=-1).astype(np.uint8)
        pixels[8:24, (2 * i) % (w - 16) :][:, :16] = 250
    else:
        pixels = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Frame(index=i, pixels=pixels, capture_time_ns=1_000 + i, publish_time_ns=2_000 + i, stream_id="s1", fps=25)


@pytest.mark.parametrize("codec", ["lossless", "high"])
def test_recorder_writes_a_project_video_folder(tmp_path, codec):
    behaviours = ["background", "grooming", "rearing"]
    telemetry = Telemetry()
    telemetry.record_frame({"encoder": 0.002, "end_to_end": 0.01})
    with Recorder(tmp_path, "cam0", behaviours, [0.5, 0.4, 0.6], session="s1", codec=codec, flush_s=0.0) as rec:
        for i in range(30):
            assert rec.write_frame(_frame(i, smooth=codec == "high"))
            if i % 2 == 0:  # inference processed every other frame
                rec.write_outputs(i, np.full(3, i / 30), [False, i > 10, False], np.zeros(3), stream_id="s1")
        rec.write_event({"camera_id": "cam0", "behaviour": "grooming", "kind": "onset", "frame_index": 12})
        assert rec.write_frame(_frame(30, 32, 32)) is False  # another size: not recorded, counted
        rec.close(telemetry=telemetry)
    folder = tmp_path / "s1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "s1.mp4",
        "s1_events.csv",
        "s1_frames.csv",
        "s1_outputs.h5",
        "s1_recording.json",
        "s1_telemetry.csv",
        "s1_telemetry.json",
    ]
    data = read_recording(folder)
    assert data["info"]["status"] == "complete" and data["info"]["frames_written"] == 30
    assert data["info"]["frames_dropped"] == 1
    assert list(data["frames"]["frame_index"]) == list(range(30))
    assert list(data["frames"]["video_frame"]) == list(range(30))
    assert list(data["frames"]["capture_time_ns"]) == [1_000 + i for i in range(30)]
    out = data["outputs"]
    assert out["P"].shape == (15, 3) and list(out["frame_index"]) == list(range(0, 30, 2))
    assert list(out["video_frame"]) == list(range(0, 30, 2))
    assert out["decisions"][6:, 1].all() and not out["decisions"][:5, 1].any()
    assert [n.decode() for n in out["class_names"]] == behaviours
    assert data["events"][0]["behaviour"] == "grooming" and data["events"][0]["frame_index"] == "12"
    assert json.loads((folder / "s1_telemetry.json").read_text())["counters"]["processed"] == 1
    assert not (folder / ".s1.ballast").exists()
    # The video: every frame, at its index; lossless means every pixel.
    assert probe(folder / "s1.mp4").n_frames == 30
    with VideoReader(folder / "s1.mp4") as video:
        for i in (0, 17, 29):
            if codec == "lossless":
                np.testing.assert_array_equal(video[i], _frame(i).pixels)
            else:
                assert np.abs(video[i].astype(int) - _frame(i, smooth=True).pixels).mean() < 3
    # A second recording into the same session is refused (nothing is overwritten).
    with pytest.raises(RecorderError, match="already holds a recording"):
        Recorder(tmp_path, "cam0", behaviours, [0.5] * 3, session="s1")


def _camera(args, endpoint_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "camera_adapters.cli", *args, "--quiet"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deg_live.cli", "run", *args, "--quiet", "--warmup", "2", "--backend", "onnxruntime"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_records_every_frame_while_inference_skips_and_sigterm_finalises(tiny, tmp_path):
    """Inference is held to ~25 fps on a 60 fps camera: it skips frames, the recording loses none; SIGTERM
    leaves complete files."""
    live, lossless = f"ipc://{tmp_path}/live", f"ipc://{tmp_path}/all"
    record = tmp_path / "rec"
    runner = _run(
        [
            "--bundle",
            str(tiny.path),
            "--frames",
            live,
            "--lossless",
            lossless,
            "--record",
            str(record),
            "--session",
            "rat1",
            "--events",
            f"ipc://{tmp_path}/events",
            "--record-reserve-mb",
            "1",
            "--processor",
            "live_support:SlowProcessor delay_ms=40",
            "--telemetry",
            str(tmp_path / "tel"),
        ]
    )
    camera = _camera(["synthetic", "width=64", "height=48", "fps=60", "--bind", live, "--lossless", lossless], tmp_path)
    try:
        folder = record / "rat1"
        _wait_for(lambda: (folder / "rat1_frames.csv").exists(), 60, "the recording to start")
        _wait_for(lambda: len((folder / "rat1_frames.csv").read_text().splitlines()) > 120, 60, "frames")
        runner.send_signal(signal.SIGTERM)
        stdout, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
        camera.send_signal(signal.SIGINT)
        try:
            camera.wait(timeout=30)
        finally:
            if camera.poll() is None:  # never leave a camera publishing behind the next tests
                camera.kill()
    assert runner.returncode == 0, err
    data = read_recording(folder)
    assert data["info"]["status"] == "interrupted"
    indices = data["frames"]["frame_index"]
    n = len(indices)
    assert n >= 120 and data["info"]["frames_written"] == n
    # Lossless: consecutive camera frames, nothing missing, pixels as sent (the synthetic frame's barcode).
    assert list(indices) == list(range(indices[0], indices[0] + n))
    assert probe(folder / "rat1.mp4").n_frames == n
    with VideoReader(folder / "rat1.mp4") as video:
        for row in (0, n // 2, n - 1):
            assert read_barcode(video[row]) == indices[row]
    # Inference skipped frames (counted), the outputs hold the processed ones, mapped to their video rows.
    telemetry = json.loads((folder / "rat1_telemetry.json").read_text())
    assert telemetry["counters"]["skipped"] > 0
    out = data["outputs"]
    assert 0 < len(out["frame_index"]) < n
    assert np.all(np.diff(out["frame_index"]) >= 1) and np.diff(out["frame_index"]).max() > 1
    recorded = out["video_frame"] >= 0
    assert recorded.mean() > 0.9
    np.testing.assert_array_equal(indices[out["video_frame"][recorded]], out["frame_index"][recorded])
    assert (tmp_path / "tel" / "telemetry.json").exists()
    assert "recording:" in stdout and "status interrupted" in stdout


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return proc.returncode == 0


def _full_disk_run(tiny, tmp_path: Path, record: Path, preexec=None, reserve_mb: str = "0.25"):
    """Replay the rat video, every frame, through ``deg-live run --record`` onto a disk that fills up.

    The camera adapter runs in this process (a thread) and is closed only after deg-live has exited: it must
    outlive the transfer of its last frames (see the report on FramePublisher.close's linger)."""
    live, lossless = f"ipc://{tmp_path}/live", f"ipc://{tmp_path}/all"
    runner = _run(
        [
            "--bundle", str(tiny.path), "--frames", lossless, "--every-frame", "--exit-at-end",
            "--record", str(record), "--session", "full", "--events", f"ipc://{tmp_path}/events",
            "--record-reserve-mb", reserve_mb, "--telemetry", str(tmp_path / "tel"),
        ],
        preexec_fn=preexec,
    )  # fmt: skip
    source = create_source("video", {"path": str(SHORT_VIDEO), "rate": 0})
    with CameraThread(source, live, lossless=lossless, lossless_block=True, start_delay_s=0.0):
        try:
            out, err = runner.communicate(timeout=120)
        finally:
            if runner.poll() is None:
                runner.kill()
    return runner.returncode, out, err


def _check_full_disk(rc, out, err, folder: Path, why: str):
    n_video = probe(SHORT_VIDEO).n_frames
    assert rc == 0, err
    assert "RECORDING STOPPED" in err and why in err  # loudly, once
    assert "RECORDING FAILED" in out
    telemetry = json.loads((folder.parent.parent / "tel" / "telemetry.json").read_text())
    assert telemetry["counters"]["processed"] == n_video  # inference went on to the last frame
    info = json.loads((folder / "full_recording.json").read_text())
    assert info["status"] == "failed" and why in info["failure"]
    assert 0 < info["frames_written"] < n_video
    data = read_recording(folder)  # everything that was written is readable
    kept = probe(folder / "full.mp4").n_frames
    # The frame table lists the frames the video holds (never one it lacks): every frame from the first, in
    # order; after a write error in the video, its last fragment may still have made it without its row.
    written = info["frames_written"]
    assert len(data["frames"]["frame_index"]) == written <= kept <= written + 1
    assert list(data["frames"]["frame_index"]) == list(range(written))
    with VideoReader(folder / "full.mp4") as video:
        video[kept - 1]
    return info


def test_disk_full_on_a_real_filesystem_stops_recording_keeps_inference(tiny, tmp_path):
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    if not _mount_tmpfs(mount, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root); test_disk_full_file_size_limit covers the rest")
    try:
        rc, out, err = _full_disk_run(tiny, tmp_path, mount)
        _check_full_disk(rc, out, err, mount / "full", "disk is full")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_full_file_size_limit_stops_recording_keeps_inference(tiny, tmp_path):
    """Without root: the kernel refuses writes past RLIMIT_FSIZE (EFBIG) -- a real write failure, no mocks."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    rc, out, err = _full_disk_run(tiny, tmp_path, tmp_path / "rec", preexec=limit, reserve_mb="0")
    _check_full_disk(rc, out, err, tmp_path / "rec" / "full", "file size limit")


def test_files_are_readable_after_sigkill(tmp_path):
    script = f"""
import sys, time, numpy as np
sys.path.insert(0, {str(REPO / "tests" / "deg_live")!r})
from deg_live.recorder import Recorder
from test_recorder import _frame
r = Recorder({str(tmp_path)!r}, "cam0", ["background", "a"], [0.5, 0.5], session="k", flush_s=0.05,
             ballast_bytes=1 << 20)
i = 0
while True:
    r.write_frame(_frame(i))
    r.write_outputs(i, np.full(2, 0.3), [True, False], capture_time_ns=1, decision_time_ns=2)
    if i % 5 == 0:
        r.write_event({{"camera_id": "cam0", "behaviour": "a", "kind": "onset", "frame_index": i}})
    if i == 150:
        print("go", flush=True)
    i += 1
    time.sleep(0.002)
"""
    folder = tmp_path / "k"
    summary, ballast = folder / "k_recording.json", folder / ".k.ballast"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "go"
        time.sleep(0.3)
        # While its writer runs, a recording is "recording" for every reader, and nothing is touched.
        assert read_recording_info(folder)["status"] == "recording" and ballast.stat().st_size == 1 << 20
        assert repair_interrupted_recordings(tmp_path) == []
        proc.kill()
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead but not reaped: a zombie, still a pid
        assert writer_alive(json.loads(summary.read_text())["writer"]) is False
    finally:
        proc.kill()
        proc.wait()
    # What SIGKILL leaves: the summary still says "recording", and the 1 MiB ballast is still there.
    assert json.loads(summary.read_text())["status"] == "recording" and ballast.exists()
    data = read_recording(folder)
    assert data["info"]["status"] == "interrupted"  # it never finished, and readers say so ...
    assert f"pid {proc.pid}" in data["info"]["interruption"] and "killed" in data["info"]["interruption"]
    assert not ballast.exists()  # ... and the stale ballast is gone
    assert json.loads(summary.read_text())["status"] == "recording"  # reading does not rewrite the summary
    assert load_session(folder).title == "session k (interrupted)"
    # The next recording into the same directory (what `deg-live run --record` makes) rewrites it.
    with pytest.raises(RecorderError, match="already holds a recording"):
        Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="k")
    on_disk = json.loads(summary.read_text())
    assert on_disk["status"] == "interrupted" and on_disk["interruption"] == data["info"]["interruption"]
    n_rows = len(data["frames"]["frame_index"])
    assert n_rows >= 140 and data["outputs"]["P"].shape[0] >= 140  # ... but everything flushed is readable
    assert len(data["events"]) >= 28
    n_video = probe(tmp_path / "k" / "k.mp4").n_frames
    assert n_video >= n_rows - 10
    with VideoReader(tmp_path / "k" / "k.mp4") as video:
        np.testing.assert_array_equal(video[100], _frame(100).pixels)


def test_a_killed_recording_is_marked_interrupted_when_the_next_one_starts(tmp_path):
    """The sweep at the start of a recording: a summary of a dead writer is rewritten, a live or foreign one
    (another host, or no writer recorded: an older recording) is left as it is."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    alive = {"host": socket.gethostname(), "pid": child.pid, "process_start": None}
    child.kill()
    child.wait()
    dead = dict(alive)
    live = {"host": socket.gethostname(), "pid": os.getpid(), "process_start": None}
    reused = dict(live, process_start=-1)  # this pid, but another process's start time: the pid was reused
    cases = {"dead": dead, "reused": reused, "live": live, "elsewhere": dict(dead, host="other-host"), "old": None}
    for name, writer in cases.items():
        (tmp_path / name).mkdir()
        info = {"session": name, "status": "recording", **({"writer": writer} if writer else {})}
        (tmp_path / name / f"{name}_recording.json").write_text(json.dumps(info))
        (tmp_path / name / f".{name}.ballast").write_bytes(b"\0" * 1000)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "broken_recording.json").write_text("{not json")
    with Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="new", ballast_bytes=0):
        pass
    status = {n: json.loads((tmp_path / n / f"{n}_recording.json").read_text())["status"] for n in cases}
    assert status == {"dead": "interrupted", "reused": "interrupted", "live": "recording", "elsewhere": "recording",
                      "old": "recording"}  # fmt: skip
    assert {n for n in cases if (tmp_path / n / f".{n}.ballast").exists()} == {"live", "elsewhere", "old"}
    assert read_recording_info(tmp_path / "new")["status"] == "complete"
