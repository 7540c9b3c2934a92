"""``deg-camera`` as a user runs it: a real process, real sockets, clear errors."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver
from camera_adapters.wire import EndOfStream

RAT_VIDEO = Path("tests/data/rat_behavior/cage1_6_20_22_56/cage1_6_20_22_56.mp4")


def _cli(*args, timeout=30):
    return subprocess.run(
        [sys.executable, "-m", "camera_adapters.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _popen(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "camera_adapters.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_list_says_what_runs_here():
    out = _cli("list")
    assert out.returncode == 0, out.stderr
    for name in ["synthetic", "video", "ffmpeg", "basler", "genicam"]:
        assert name in out.stdout
    assert "GENICAM_GENTL64_PATH" in out.stdout or "producers:" in out.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["webcam9000"], "invalid choice: 'webcam9000' (choose from"),
        (["synthetic", "colour=red"], "colour: unknown key (known keys here:"),
        (["synthetic", "fps=fast"], "fps: expected a number"),
        (["synthetic", "--bind", "tcp://0.0.0.0:5599"], "--allow-remote"),
        (["video", "path=/nonexistent.mp4"], "not found"),
        (["ffmpeg", "url=/dev/video97"], "does not exist"),
    ],
)
def test_user_errors_are_one_line_exit_2(args, message):
    out = _cli(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_camera_dying_mid_stream_exits_with_a_clear_message(tmp_path):
    t0 = time.monotonic()
    out = _cli(
        "synthetic",
        "fps=200",
        "disconnect_after=40",
        "--bind",
        f"ipc://{tmp_path}/a",
        "--lossless",
        f"ipc://{tmp_path}/b",
        "--drain-timeout",
        "0.5",
    )
    assert time.monotonic() - t0 < 15
    assert out.returncode == 2
    assert "disconnected" in out.stderr and "Traceback" not in out.stderr
    assert "never reached a receiver" in out.stderr  # the lossless path said what it lost


def test_replay_a_video_as_fast_as_the_consumer_takes_it(tmp_path):
    live, rec = f"ipc://{tmp_path}/live", f"ipc://{tmp_path}/rec"
    proc = _popen(
        "video",
        f"path={RAT_VIDEO}",
        "rate=0",
        "--bind",
        live,
        "--lossless",
        rec,
        "--lossless-block",
        "--max-frames",
        "60",
        "--camera-id",
        "rat",
    )
    try:
        frames = []
        with LosslessReceiver(rec, camera_id="rat") as rx, pytest.raises(EndOfStream):
            while True:
                frame = rx.recv(timeout=20)
                assert frame is not None, proc.stderr.read()
                frames.append(frame)
        assert proc.wait(20) == 0, proc.stderr.read()
    finally:
        proc.kill()
    assert [f.index for f in frames] == list(range(60)) and [f.source_frame for f in frames] == list(range(60))
    assert frames[0].pixels.shape == (180, 320, 3)
    assert "max_frames=60 reached" in proc.stderr.read()


def test_sigterm_ends_cleanly_with_the_end_message(tmp_path):
    live = f"ipc://{tmp_path}/live"
    proc = _popen("synthetic", "fps=100", "--bind", live)
    try:
        with FrameSubscriber(live) as sub:
            assert sub.latest(timeout=10) is not None
            proc.send_signal(signal.SIGTERM)
            with pytest.raises(EndOfStream, match="stopped"):
                while sub.latest(timeout=5) is not None:
                    pass
        assert proc.wait(10) == 0
    finally:
        proc.kill()
