"""End to end over real sockets on loopback: TCP and IPC, live (newest frame) and lossless paths, bad input."""

import itertools
import json
import logging
import threading
import time

import numpy as np
import pytest
import zmq

from camera_adapters.publisher import EndpointError, FramePublisher, check_endpoint, stream
from camera_adapters.sources import SourceError, create_source
from camera_adapters.sources.synthetic import read_barcode
from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver
from camera_adapters.wire import EndOfStream, Frame, encode_frame


def _endpoints(kind, tmp_path):
    if kind == "tcp":
        return "tcp://127.0.0.1:*", "tcp://127.0.0.1:*"
    return f"ipc://{tmp_path}/live.sock", f"ipc://{tmp_path}/rec.sock"


def _run_stream(source, publisher, **kw):
    result = {}

    def target():
        try:
            result.update(stream(source, publisher, **kw))
        except Exception as err:
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("kind", ["tcp", "ipc"])
def test_end_to_end_live_and_lossless(kind, tmp_path):
    live, rec = _endpoints(kind, tmp_path)
    n = 120
    source = create_source("synthetic", ["width=160", "height=96", "fps=200", f"max_frames={n}"], camera_id="rig1")
    with FramePublisher(live, lossless=rec, camera_id="rig1") as pub:
        rx = LosslessReceiver(pub.lossless_endpoint, camera_id="rig1")
        sub = FrameSubscriber(pub.endpoint, camera_id="rig1", queue_size=256)
        time.sleep(0.3)  # let the SUB connect (PUB/SUB slow joiner)
        thread, result = _run_stream(source, pub)
        recorded = list(rx)  # until the end-of-stream message
        thread.join(10)
        live_frames = []
        with pytest.raises(EndOfStream):
            while True:
                frame = sub.recv(timeout=5)
                assert frame is not None
                live_frames.append(frame)
        stats = pub.stats()
    assert "error" not in result
    # Lossless: every frame, in order, pixels intact, header and barcode agree.
    assert [f.index for f in recorded] == list(range(n))
    assert all(read_barcode(f.pixels) == f.index for f in recorded)
    assert all(f.truth and f.stream_id == pub.stream_id and f.camera_id == "rig1" for f in recorded)
    assert all(f.capture_time_ns <= f.publish_time_ns <= f.receive_time_ns for f in recorded)
    assert rx.stats() == {"received": n, "gaps": 0, "rejected": 0, "oversize": 0, "errors": 0, "restarts": 0}
    assert stats.lossless_sent == n and stats.lossless_dropped == 0
    # Live: in order, consistent, and everything it did not get is accounted for as a gap.
    indices = [f.index for f in live_frames]
    assert indices == sorted(indices) and len(indices) > n // 2
    assert all(read_barcode(f.pixels) == f.index for f in live_frames)
    assert sub.gaps == indices[-1] - indices[0] + 1 - len(indices)
    assert sub.rejected == 0 and sub.restarts == 0
    rx.close()
    sub.close()
    sub.close()


def test_slow_consumer_gets_the_newest_frame_not_a_backlog():
    fps, period = 100, 0.01
    source = create_source("synthetic", ["width=320", "height=240", f"fps={fps}", "max_frames=150"])
    with FramePublisher("tcp://127.0.0.1:*") as pub, FrameSubscriber(pub.endpoint) as sub:
        time.sleep(0.3)
        thread, _ = _run_stream(source, pub)
        ages, indices = [], []
        try:
            while True:
                frame = sub.latest(timeout=5)
                ages.append((time.time_ns() - frame.capture_time_ns) / 1e9)
                indices.append(frame.index)
                time.sleep(4 * period)  # a consumer 4x slower than the camera
        except EndOfStream:
            pass
        thread.join(5)
    ages = np.array(ages[3:])
    assert len(ages) > 10
    # The newest frame is at most about a period old when taken, and the age does not grow over time.
    assert np.median(ages) < 3 * period, ages
    assert ages[-10:].mean() < 3 * period
    assert sub.skipped + sub.gaps > 100  # most frames were skipped, and counted
    assert all(b > a for a, b in itertools.pairwise(indices))


def test_malformed_messages_are_rejected_and_counted_and_the_receiver_goes_on(caplog):
    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    router = ctx.socket(zmq.ROUTER)  # the lossless path's socket type: the receiver announces itself
    push_port = router.bind_to_random_port("tcp://127.0.0.1")
    good = Frame(index=0, pixels=np.zeros((8, 8, 3), np.uint8), camera_id="cam0", capture_time_ns=1)
    header_ok = encode_frame(good)
    bad_messages = [
        [b"frames/cam0", b"{garbage", b"x"],
        [b"frames/cam0", header_ok[1]],  # a part missing
        [b"frames/cam0", header_ok[1], b"\x00" * 10],  # truncated pixels
        [b"frames/cam0", json.dumps({**json.loads(header_ok[1]), "shape": [10**9, 10**9, 3]}).encode(), b"1"],
    ]
    with (
        caplog.at_level(logging.WARNING),
        FrameSubscriber(f"tcp://127.0.0.1:{port}", queue_size=64) as sub,
        LosslessReceiver(f"tcp://127.0.0.1:{push_port}") as rx,
    ):
        time.sleep(0.3)
        assert router.poll(5000)
        receiver = router.recv_multipart()[0]  # its announcement (ZMQ_PROBE_ROUTER)
        for i in range(3):
            for bad in bad_messages:
                pub.send_multipart(bad)
                router.send_multipart([receiver, *bad])
            good.index = i
            parts = encode_frame(good)
            pub.send_multipart(parts)
            router.send_multipart([receiver, *parts])
        got = [sub.recv(timeout=3).index for _ in range(3)]
        got_rx = [rx.recv(timeout=3).index for _ in range(3)]
        assert got == got_rx == [0, 1, 2]
        assert sub.rejected == rx.rejected == 12
    assert "rejected a malformed frame message" in caplog.text
    pub.close(0)
    router.close(0)


def test_restart_and_camera_filter_are_counted():
    with FramePublisher("tcp://127.0.0.1:*", camera_id="a") as pub:
        with FrameSubscriber(pub.endpoint, camera_id="a", queue_size=64) as sub:
            time.sleep(0.3)
            for i in [0, 1, 5, 6, 2]:  # a gap of 3, then the index goes back: a restart
                pub.publish(Frame(index=i, pixels=np.zeros((4, 4, 3), np.uint8), capture_time_ns=1))
                time.sleep(0.02)
            frames = [sub.recv(timeout=2) for _ in range(5)]
            assert [f.index for f in frames] == [0, 1, 5, 6, 2]
            assert (sub.gaps, sub.restarts, sub.received) == (3, 1, 5)


def test_lossless_block_loses_nothing_with_a_slow_receiver():
    n = 200
    source = create_source("synthetic", ["width=64", "height=48", "fps=0", f"max_frames={n}"])
    with FramePublisher(
        "tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_buffer=8, lossless_block=True
    ) as pub:
        thread, result = _run_stream(source, pub)
        time.sleep(0.3)  # the receiver connects late: the publisher waits for it
        indices = []
        with LosslessReceiver(pub.lossless_endpoint) as rx:
            for frame in rx:
                indices.append(frame.index)
                time.sleep(0.002)
        thread.join(10)
        assert pub.stats().lossless_dropped == 0
    assert indices == list(range(n))
    assert result["frames"] == n


def test_lossless_overflow_is_loud_and_counted(caplog):
    source = create_source("synthetic", ["width=64", "height=48", "fps=0", "max_frames=100"])
    with caplog.at_level(logging.ERROR):
        pub = FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_buffer=8)
        stream(source, pub)  # nobody receives: the buffer fills, the camera never waits
        t0 = time.monotonic()
        pub.close(drain_timeout_s=0.5)
        assert time.monotonic() - t0 < 3
    assert pub.stats().lossless_dropped >= 90
    assert "LOSSLESS PATH DROPPING FRAMES" in caplog.text


def test_publisher_never_hangs_when_the_camera_dies():
    source = create_source("synthetic", ["width=64", "height=48", "fps=200", "disconnect_after=30"])
    pub = FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*")  # nobody on the lossless path
    with FrameSubscriber(pub.endpoint) as sub:
        time.sleep(0.3)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="disconnected"):
            stream(source, pub)
        with pytest.raises(EndOfStream, match="camera failed"):
            while sub.latest(timeout=3) is not None:
                pass
        pub.close(drain_timeout_s=1.0)
    assert time.monotonic() - t0 < 5
    assert pub.stats().lossless_dropped == 30  # said loudly, never waited for


def test_endpoints_are_checked():
    assert check_endpoint("tcp://127.0.0.1:5555") and check_endpoint("ipc:///tmp/x") and check_endpoint("tcp://[::1]:1")
    for bad in ["tcp://0.0.0.0:5555", "tcp://*:5555", "tcp://10.0.0.2:5555"]:
        with pytest.raises(EndpointError, match="allow-remote"):
            check_endpoint(bad)
        assert check_endpoint(bad, allow_remote=True)
    for bad in ["127.0.0.1:5555", "udp://127.0.0.1:1", "tcp://127.0.0.1"]:
        with pytest.raises(EndpointError, match="expected"):
            check_endpoint(bad)
    with FramePublisher("tcp://127.0.0.1:*") as pub:
        with pytest.raises(EndpointError, match="cannot bind"):
            FramePublisher(pub.endpoint)


def test_lossless_close_waits_for_a_slow_receiver_to_read_everything(tmp_path):
    """ZeroMQ drops unread frames when the binding side closes; the publisher waits for the receiver to leave."""
    import threading
    import time

    from camera_adapters.publisher import FramePublisher, stream
    from camera_adapters.sources import create_source
    from camera_adapters.subscriber import LosslessReceiver
    from camera_adapters.wire import EndOfStream

    endpoint = f"ipc://{tmp_path}/all"
    got = []

    def receive():
        with LosslessReceiver(endpoint) as rx:
            try:
                while (frame := rx.recv(timeout=10)) is not None:
                    got.append(frame.index)
                    time.sleep(0.005)  # slower than the camera
            except EndOfStream:
                got.append("end")

    thread = threading.Thread(target=receive)
    thread.start()
    time.sleep(0.2)
    with create_source("synthetic", ["width=64", "height=48", "fps=0"]) as source:
        publisher = FramePublisher(f"ipc://{tmp_path}/live", lossless=endpoint, camera_id="cam0", lossless_block=True)
        stream(source, publisher, max_frames=80)
        publisher.end("done")
        publisher.close()
    thread.join(timeout=20)
    assert got == [*range(80), "end"]
