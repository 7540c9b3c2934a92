"""The lossless path has one receiver: a second one is noticed by the camera side, and its theft by the recorder.

Real sockets on loopback, a real Recorder; the second receiver is a plain ZeroMQ PULL socket, as a stray
script would connect one.
"""

import json
import logging
import time

import numpy as np
import pytest
import zmq

from camera_adapters.publisher import FramePublisher
from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver
from camera_adapters.wire import Frame

pytestmark = pytest.mark.timeout(60)


def _frame(i: int) -> Frame:
    return Frame(index=i, pixels=np.full((16, 16, 3), i % 256, np.uint8), camera_id="cam0", capture_time_ns=i + 1)


def _wait(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_second_lossless_receiver_is_reported_by_the_camera_and_its_gaps_by_the_recorder(tmp_path, caplog):
    from deg_live.recorder import Recorder, read_recording

    ctx = zmq.Context.instance()
    with (
        caplog.at_level(logging.ERROR),
        FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_block=True) as pub,
    ):
        recorder = Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="s", ballast_bytes=0)
        recorder.start(LosslessReceiver(pub.lossless_endpoint, "cam0"))
        _wait(lambda: pub.stats().lossless_receivers == 1, "the recorder to connect")
        assert "SECOND RECEIVER" not in caplog.text
        thief = ctx.socket(zmq.PULL)
        thief.connect(pub.lossless_endpoint)
        try:
            _wait(lambda: pub.stats().lossless_receivers == 2, "the publisher to notice the second receiver")
            assert "SECOND RECEIVER on the lossless endpoint" in caplog.text
            for i in range(60):
                pub.publish(_frame(i))
            _wait(lambda: pub.stats().lossless_sent == 60, "the frames to go out")
            stolen = []
            while thief.poll(1000) and len(stolen) < 60:
                stolen.append(thief.recv_multipart())
            assert stolen  # the second receiver did take frames: that is what PUSH does
            _wait(lambda: recorder.frames_written + len(recorder._pending) >= 60 - len(stolen), "the recording")
        finally:
            thief.close(0)
        recorder.close()
        stats = pub.stats()
    assert stats.lossless_receivers_max == 2 and stats.lossless_dropped == 0  # "0 dropped", yet frames are gone
    info = read_recording(tmp_path / "s")["info"]
    assert info["frames_written"] == 60 - len(stolen)
    # Every stolen frame before the last recorded one is a counted gap (one after it cannot be seen as missing).
    taken = [json.loads(parts[1])["frame_index"] for parts in stolen]
    last = max(set(range(60)) - set(taken))
    assert info["frames_missing"] == sum(i < last for i in taken) > 0 and info["index_gaps"] > 0
    assert "second receiver" in info["warnings"][0]
    assert "frames missing before frame" in caplog.text


def test_one_receiver_and_reconnects_are_not_reported(caplog):
    with (
        caplog.at_level(logging.ERROR),
        FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*") as pub,
    ):
        for _ in range(3):  # the recorder restarts: one receiver at a time
            with LosslessReceiver(pub.lossless_endpoint, "cam0"):
                _wait(lambda: pub.stats().lossless_receivers == 1, "the receiver to connect")
            _wait(lambda: pub.stats().lossless_receivers == 0, "the receiver to leave")
        assert pub.stats().lossless_receivers_max == 1
    assert "SECOND RECEIVER" not in caplog.text


def test_a_frame_that_cannot_be_sent_does_not_stop_the_sender_threads(caplog):
    """A source handing out a broken frame once: logged loudly and counted; the next frames go out."""
    with (
        caplog.at_level(logging.ERROR),
        FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_block=True) as pub,
        FrameSubscriber(pub.endpoint, "cam0", queue_size=64) as sub,
        LosslessReceiver(pub.lossless_endpoint, "cam0") as rx,
    ):
        _wait(lambda: pub.stats().lossless_receivers == 1, "the receiver to connect")
        bad = Frame(index=0, pixels=np.zeros((4, 4, 3), np.uint8), camera_id="cam0", pixel_format="gray8")
        pub.publish(bad)  # gray8 needs 2-D pixels: encoding fails in both sender threads
        got = []
        i = 1
        while not got:  # the live path: keep publishing until the subscriber has joined (slow joiner)
            pub.publish(_frame(i))
            i += 1
            frame = sub.recv(timeout=0.05)
            got += [] if frame is None else [frame.index]
        assert [rx.recv(timeout=5).index for _ in range(1, i)] == list(range(1, i))
        stats = pub.stats()
    assert stats.send_errors == 2 and stats.lossless_dropped == 1
    assert "UNEXPECTED ERROR sending frame 0 on the live path" in caplog.text
    assert "UNEXPECTED ERROR sending frame 0 on the lossless path" in caplog.text
