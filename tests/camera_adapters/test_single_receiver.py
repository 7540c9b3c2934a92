"""The lossless path has one receiver: a second one is refused (and fails loudly); gaps are counted anyway.

Real sockets on loopback, a real Recorder; the second receivers are another LosslessReceiver and a plain
ZeroMQ PULL socket, as a stray script would connect one.
"""

import logging
import time

import numpy as np
import pytest
import zmq

from camera_adapters.publisher import FramePublisher
from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver, ReceiverRefused
from camera_adapters.wire import Frame, encode_frame

pytestmark = pytest.mark.timeout(60)


def _frame(i: int) -> Frame:
    return Frame(index=i, pixels=np.full((16, 16, 3), i % 256, np.uint8), camera_id="cam0", capture_time_ns=i + 1)


def _wait(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_a_second_lossless_receiver_is_refused_and_the_recording_stays_whole(tmp_path, caplog):
    from deg_live.recorder import Recorder, read_recording

    ctx = zmq.Context.instance()
    with (
        caplog.at_level(logging.ERROR),
        FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_block=True) as pub,
    ):
        recorder = Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="s", ballast_bytes=0)
        recorder.start(LosslessReceiver(pub.lossless_endpoint, "cam0"))
        pub.publish(_frame(0))  # sent once the recorder has announced itself: it owns the stream
        _wait(lambda: pub.stats().lossless_sent == 1, "the recorder to take the stream")
        second = LosslessReceiver(pub.lossless_endpoint, "cam0")
        thief = ctx.socket(zmq.PULL)  # a plain PULL cannot even complete the handshake with the ROUTER
        thief.connect(pub.lossless_endpoint)
        try:
            with pytest.raises(ReceiverRefused, match="refused this receiver"):
                second.recv(timeout=10)
            with pytest.raises(ReceiverRefused):  # and stays refused
                second.recv(timeout=0)
            assert pub.stats().lossless_refused == 1
            assert "REFUSED A SECOND RECEIVER" in caplog.text
            for i in range(1, 60):
                pub.publish(_frame(i))
            _wait(lambda: pub.stats().lossless_sent == 60, "the frames to go out")
            assert not thief.poll(200)
        finally:
            second.close()
            thief.close(0)
        _wait(lambda: recorder.frames_written + len(recorder._pending) >= 60, "the recording")
        recorder.close()
    info = read_recording(tmp_path / "s")["info"]
    assert info["frames_written"] == 60 and info["frames_missing"] == 0 and info["warnings"] == []


def test_a_refused_recorder_fails_loudly(tmp_path):
    from deg_live.recorder import Recorder, read_recording

    with FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*") as pub:
        with LosslessReceiver(pub.lossless_endpoint, "cam0") as first:
            pub.publish(_frame(0))
            assert first.recv(timeout=10).index == 0
            recorder = Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="s", ballast_bytes=0)
            recorder.start(LosslessReceiver(pub.lossless_endpoint, "cam0"))
            _wait(lambda: recorder.failed is not None, "the second recorder to be refused")
            recorder.close()
    info = read_recording(tmp_path / "s")["info"]
    assert info["status"] == "failed" and "refused this receiver" in info["failure"]


def test_gaps_in_the_recorded_indices_are_counted_in_the_summary(tmp_path, caplog):
    """Frames lost before the recorder (at the camera, or on the way) are counted, logged and summarised."""
    from deg_live.recorder import Recorder, read_recording

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    recorder = Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="s", ballast_bytes=0)
    try:
        with caplog.at_level(logging.ERROR):
            recorder.start(LosslessReceiver(f"tcp://127.0.0.1:{port}", "cam0"))
            assert router.poll(10_000)
            receiver = router.recv_multipart()[0]
            sent = [*range(10), *range(15, 20), *range(22, 30)]  # 5 + 2 frames missing, in 2 places
            for i in sent:
                router.send_multipart([receiver, *encode_frame(_frame(i))])
            _wait(lambda: recorder.frames_written + len(recorder._pending) >= len(sent), "the recording")
            recorder.close()
    finally:
        router.close(0)
    info = read_recording(tmp_path / "s")["info"]
    assert info["frames_written"] == len(sent)
    assert info["frames_missing"] == 7 and info["index_gaps"] == 2
    assert "7 frames are missing" in info["warnings"][0]
    assert "frames missing before frame 10" not in caplog.text and "frames missing before frame 15" in caplog.text


def test_a_recorder_that_restarts_takes_the_stream_again(caplog):
    """One receiver at a time is never refused: the next one takes over once the previous one left."""
    with (
        caplog.at_level(logging.ERROR),
        FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*") as pub,
    ):
        for i in range(3):
            with LosslessReceiver(pub.lossless_endpoint, "cam0") as rx:
                pub.publish(_frame(i))
                assert rx.recv(timeout=10).index == i
            _wait(lambda: pub.stats().lossless_receivers == 0, "the receiver to leave")
        assert pub.stats().lossless_refused == 0 and pub.stats().lossless_receivers_max == 1
    assert "REFUSED" not in caplog.text


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
