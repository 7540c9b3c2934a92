"""Poison messages between valid frames, sent to a real ``deg-live run`` process over real sockets.

The test plays the camera adapter with raw ZeroMQ sockets (XPUB for the live path, so it knows when deg-live has
subscribed; ROUTER for the lossless path, serving deg-live's receiver) and sends, before every valid frame, the
messages that once made the receiver deaf or the recorder stop: a header nested 30,000 deep, a 5,000-digit
integer, a frame index of 2**70, an oversize frame, garbage bytes, a missing part, a header that is not an
object. Every valid frame after
them must still be processed (its state message comes out) and recorded (the recording has every one, in order,
nothing missing), the poison counted, and the process must exit 0 with the right status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq
from live_support import REPO, tiny_bundle

from camera_adapters.wire import Frame, encode_end, encode_frame
from deg_live.events import EventSubscriber, StateMessage
from deg_live.recorder import read_recording

ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'tests' / 'deg_live'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
MAX_PIXELS = 64 * 64  # --max-frame-pixels: the valid frames (48x64) fit, a 128x128 frame is oversize
N = 12  # valid frames after poison


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


def _frame(i: int) -> list:
    pixels = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = Frame(index=i, pixels=pixels, camera_id="cam0", capture_time_ns=time.time_ns(), stream_id="s1", fps=25)
    return encode_frame(frame)


def _poison(i: int) -> list[list[bytes]]:
    topic, header, pixels = _frame(i)
    pixels = bytes(pixels)
    h = json.loads(header)
    return [
        [topic, b"[" * 30000 + b"]" * 30000, pixels],
        [topic, json.dumps({**h, "frame_index": "X"}).replace('"X"', "1" * 5000).encode(), pixels],
        [topic, json.dumps({**h, "frame_index": 2**70}).encode(), pixels],
        [topic, json.dumps({**h, "shape": [128, 128, 3]}).encode(), bytes(128 * 128 * 3)],  # oversize
        [topic, b"\xff\xfe\x00 not json", b"x"],
        [topic, header],  # a part missing
        [topic, b"[1, 2]", pixels],  # not an object
        [topic, os.urandom(200), os.urandom(17)],
    ]


class _LosslessCamera:
    """The camera side of the lossless path: a ROUTER that serves the receiver once it has announced itself."""

    def __init__(self, ctx: zmq.Context, endpoint: str):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.bind(endpoint)
        self.receiver: bytes | None = None

    def send_multipart(self, parts: list) -> None:
        if self.receiver is None:  # wait for deg-live's receiver to connect and announce itself
            assert self.sock.poll(120_000), "deg-live's lossless receiver never connected"
            self.receiver = self.sock.recv_multipart()[0]
        self.sock.send_multipart([self.receiver, *parts])

    def close(self, linger: int = 0) -> None:
        self.sock.close(linger)


def _deg_live(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "deg_live.cli", "run", *args, "--quiet", "--warmup", "2", "--backend", "onnxruntime"],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_state(states: EventSubscriber, index: int, runner: subprocess.Popen, timeout: float = 60.0) -> None:
    """Read state messages until the one of frame ``index`` (fail if deg-live died or never processed it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert runner.poll() is None, runner.communicate()[1][-3000:]
        msg = states.recv(timeout=0.5)
        if isinstance(msg, StateMessage) and msg.frame_index >= index:
            assert msg.frame_index == index
            return
    raise AssertionError(f"frame {index} was never processed")


@pytest.mark.timeout(240)
def test_poison_between_live_frames_leaves_deg_live_hearing_and_recording(tiny, tmp_path):
    live, lossless, events = (f"ipc://{tmp_path}/{name}" for name in ("live", "all", "events"))
    ctx = zmq.Context()
    xpub = ctx.socket(zmq.XPUB)
    xpub.bind(live)
    push = _LosslessCamera(ctx, lossless)
    record = tmp_path / "rec"
    runner = _deg_live(
        ["--bundle", str(tiny.path), "--frames", live, "--lossless", lossless, "--record", str(record),
         "--session", "poison", "--events", events, "--record-reserve-mb", "1", "--telemetry", str(tmp_path / "tel"),
         "--max-frame-pixels", str(MAX_PIXELS)]
    )  # fmt: skip
    try:
        assert xpub.poll(120_000), runner.communicate(timeout=5)[1][-3000:] if runner.poll() is not None else "no sub"
        assert xpub.recv() == b"\x01frames/cam0"  # deg-live subscribed to the live path
        with EventSubscriber(events, ["state/"]) as states:
            # Warm-up frames until a state message arrives (our own subscriber's slow joiner).
            i = 0
            while True:
                parts = _frame(i)
                xpub.send_multipart(parts)
                push.send_multipart(parts)  # waits for the recorder's receiver to connect
                i += 1
                msg = states.recv(timeout=0.3)
                if msg is not None:
                    break
                assert runner.poll() is None, runner.communicate()[1][-3000:]
            first = i
            for i in range(first, first + N):
                for bad in _poison(i):
                    xpub.send_multipart(bad)
                    push.send_multipart(bad)
                parts = _frame(i)
                xpub.send_multipart(parts)
                push.send_multipart(parts)
                _wait_state(states, i, runner)  # processed although poison came first
        sent = first + N
        # SIGTERM: the recorder writes the frames captured before it that are still on their way, then stops.
        runner.send_signal(signal.SIGTERM)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
        xpub.close(0)
        push.close(0)
        ctx.term()
    assert runner.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "UNEXPECTED" not in err, err[-3000:]
    data = read_recording(record / "poison")
    info = data["info"]
    assert info["status"] == "interrupted" and info["failure"] is None
    assert list(data["frames"]["frame_index"]) == list(range(sent))
    assert info["frames_missing"] == 0 and info["warnings"] == []
    telemetry = json.loads((tmp_path / "tel" / "telemetry.json").read_text())
    counters = telemetry["counters"]
    assert counters["processed"] >= N + 1
    assert counters["rejected"] >= N * len(_poison(0)) and counters["oversize"] >= 2 * N
    assert counters.get("receiver_errors", 0) == 0


@pytest.mark.timeout(240)
def test_poison_on_the_every_frame_path_neither_crashes_nor_marks_a_bad_recording_complete(tiny, tmp_path):
    lossless, events = f"ipc://{tmp_path}/all", f"ipc://{tmp_path}/events"
    ctx = zmq.Context()
    push = _LosslessCamera(ctx, lossless)
    record = tmp_path / "rec"
    runner = _deg_live(
        ["--bundle", str(tiny.path), "--frames", lossless, "--every-frame", "--exit-at-end", "--record", str(record),
         "--session", "every", "--events", events, "--record-reserve-mb", "1", "--telemetry", str(tmp_path / "tel"),
         "--max-frame-pixels", str(MAX_PIXELS)]
    )  # fmt: skip
    try:
        for i in range(N):
            for bad in _poison(i):
                push.send_multipart(bad)  # the first send waits for deg-live to connect
            push.send_multipart(_frame(i))
        push.send_multipart(encode_end("cam0", stream_id="s1", frame_count=N, reason="done"))
        _, err = runner.communicate(timeout=180)
    finally:
        if runner.poll() is None:
            runner.kill()
        push.close(0)
        ctx.term()
    assert runner.returncode == 0, err[-3000:]
    data = read_recording(record / "every")
    assert data["info"]["status"] == "complete" and data["info"]["failure"] is None
    assert list(data["frames"]["frame_index"]) == list(range(N))
    assert list(data["outputs"]["frame_index"]) == list(range(N))  # every frame processed, in order
    counters = json.loads((tmp_path / "tel" / "telemetry.json").read_text())["counters"]
    # Refused, each one; the 128x128 frame and the 60 kB header are over the limits (counted as oversize too).
    assert counters["rejected"] == N * len(_poison(0)) and counters["oversize"] == 2 * N
