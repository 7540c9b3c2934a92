"""Endpoint exposure and CURVE over real ZeroMQ sockets on loopback: who may bind, who gets frames and events.

"Refused" is shown against a positive control: an authenticated peer, connected for the same time to the same
endpoint, receives messages, so the refused one had every chance and got none.
"""

import os
import stat
import threading

import numpy as np
import pytest
import zmq

from camera_adapters.network import (
    CurveClient,
    CurveError,
    CurveServer,
    EndpointError,
    check_endpoint,
    create_keys,
    curve_client_from_args,
    curve_server_from_args,
)
from camera_adapters.publisher import FramePublisher
from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver
from camera_adapters.wire import Frame

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def keys(tmp_path):
    """Key pairs of a server, an allowed client, a stranger and a rogue server; the allowed-clients directory."""
    made = {name: create_keys(tmp_path / "keys", name) for name in ("server", "client", "stranger", "rogue")}
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "client.key").write_bytes(made["client"][0].read_bytes())
    return {name: {"public": pub, "secret": sec} for name, (pub, sec) in made.items()} | {"allowed": allowed}


def _frame(i: int) -> Frame:
    return Frame(index=i, pixels=np.full((8, 8, 3), i % 256, np.uint8), camera_id="cam0", capture_time_ns=1)


class _Feeder:
    """Publishes frames continuously in a thread until stopped (slow joiners and handshakes take their time)."""

    def __init__(self, publisher: FramePublisher):
        self.publisher = publisher
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while not self.stop.wait(0.005):
            self.publisher.publish(_frame(i))
            i += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)


def _wait_for(control: FrameSubscriber, n: int = 20) -> None:
    """Take ``n`` frames from the positive control (the others were connected at least as long)."""
    for _ in range(n):
        assert control.recv(timeout=10) is not None, "the positive control got nothing"


def test_one_endpoint_error_and_one_loopback_check():
    import camera_adapters.publisher
    import deg_live.events

    assert camera_adapters.publisher.EndpointError is deg_live.events.EndpointError is EndpointError
    assert camera_adapters.publisher.check_endpoint is check_endpoint
    for remote in ("tcp://*:5560", "tcp://0.0.0.0:5560", "tcp://10.1.2.3:5560"):
        with pytest.raises(EndpointError, match="allow-remote"):
            deg_live.events.EventPublisher(remote, "cam0")
        with pytest.raises(EndpointError, match="allow-remote"):
            FramePublisher(remote)
    with deg_live.events.EventPublisher("tcp://*:*", "cam0", allow_remote=True) as pub:
        assert pub.bound_endpoint.startswith("tcp://0.0.0.0:")


def test_keys_are_zeromq_certificates_with_a_private_secret(keys, tmp_path):
    import zmq.auth

    public, secret = zmq.auth.load_certificate(keys["server"]["secret"])
    assert len(public) == len(secret) == 40
    assert zmq.auth.load_certificate(keys["server"]["public"]) == (public, None)
    assert stat.S_IMODE(os.stat(keys["server"]["secret"]).st_mode) == 0o600
    with pytest.raises(CurveError, match="exists"):
        create_keys(tmp_path / "keys", "server")
    with pytest.raises(CurveError, match="both"):
        curve_server_from_args(str(keys["server"]["secret"]), None)
    with pytest.raises(CurveError, match="both"):
        curve_client_from_args(None, str(keys["server"]["public"]))
    with pytest.raises(CurveError, match="no secret key"):
        FramePublisher("tcp://127.0.0.1:*", curve=CurveServer(keys["server"]["public"], keys["allowed"]))
    with pytest.raises(CurveError, match="does not exist"):
        FramePublisher("tcp://127.0.0.1:*", curve=CurveServer(keys["server"]["secret"], tmp_path / "nowhere"))


def test_curve_frames_reach_only_listed_clients_and_come_only_from_the_real_camera(keys):
    server = CurveServer(keys["server"]["secret"], keys["allowed"])
    client = CurveClient(keys["client"]["secret"], keys["server"]["public"])
    stranger = CurveClient(keys["stranger"]["secret"], keys["server"]["public"])
    with FramePublisher("tcp://127.0.0.1:*", curve=server) as pub:
        with (
            FrameSubscriber(pub.endpoint, "cam0", curve=client, queue_size=64) as good,
            FrameSubscriber(pub.endpoint, "cam0", queue_size=64) as plain,
            FrameSubscriber(pub.endpoint, "cam0", curve=stranger, queue_size=64) as unlisted,
            _Feeder(pub),
        ):
            _wait_for(good)
            assert plain.received == 0  # no CURVE: the handshake is refused
            assert unlisted.received == 0  # a key the server does not list: refused by the ZAP handler
    # A rogue publisher (no keys, or other keys) on the address: the real camera's clients take nothing from it.
    rogue_curve = CurveServer(keys["rogue"]["secret"], keys["allowed"])
    for rogue_server in (None, rogue_curve):
        with FramePublisher("tcp://127.0.0.1:*", curve=rogue_server) as rogue:
            victim_of = CurveClient(keys["client"]["secret"], keys["rogue"]["public"]) if rogue_server else None
            with (
                FrameSubscriber(rogue.endpoint, "cam0", curve=client, queue_size=64) as careful,
                FrameSubscriber(rogue.endpoint, "cam0", curve=victim_of, queue_size=64) as control,
                _Feeder(rogue),
            ):
                _wait_for(control)
                assert careful.received == 0


def test_curve_lossless_path(keys):
    server = CurveServer(keys["server"]["secret"], keys["allowed"])
    client = CurveClient(keys["client"]["secret"], keys["server"]["public"])
    with FramePublisher("tcp://127.0.0.1:*", lossless="tcp://127.0.0.1:*", lossless_block=True, curve=server) as pub:
        with LosslessReceiver(pub.lossless_endpoint, "cam0", curve=client) as rx:
            for i in range(30):
                pub.publish(_frame(i))
            assert [rx.recv(timeout=10).index for _ in range(30)] == list(range(30))


def test_curve_events_reach_only_listed_listeners_and_forged_events_are_refused(keys):
    from deg_live.commands.listen import Listener
    from deg_live.events import EventMessage, EventPublisher, EventSubscriber

    server = CurveServer(keys["server"]["secret"], keys["allowed"])
    client = CurveClient(keys["client"]["secret"], keys["server"]["public"])

    def onset(i):
        return EventMessage("cam0", "grooming", "onset", i, i, 0.9, 1, 2)

    def feed(pub, stop):
        i = 0
        while not stop.wait(0.005):
            pub.publish(onset(i))
            i += 1

    with EventPublisher("tcp://127.0.0.1:*", "cam0", curve=server) as pub:
        stop = threading.Event()
        with (
            EventSubscriber(pub.bound_endpoint, ["events/"], curve=client) as good,
            EventSubscriber(pub.bound_endpoint, ["events/"], skip_malformed=True) as plain,
        ):
            thread = threading.Thread(target=feed, args=(pub, stop), daemon=True)
            thread.start()
            try:
                for _ in range(20):
                    assert good.recv(timeout=10) is not None
                assert plain.recv(timeout=0) is None
            finally:
                stop.set()
                thread.join(5)
    # A rogue publisher forging onsets: the listener that knows the real server's key never fires.
    with EventPublisher("tcp://127.0.0.1:*", "cam0") as rogue:
        stop = threading.Event()
        with Listener(rogue.bound_endpoint, curve=client) as listener, EventSubscriber(rogue.bound_endpoint) as control:
            thread = threading.Thread(target=feed, args=(rogue, stop), daemon=True)
            thread.start()
            try:
                for _ in range(20):
                    assert control.recv(timeout=10) is not None
                listener.listen(timeout=0.05)
                assert listener.onsets == listener.events == 0
            finally:
                stop.set()
                thread.join(5)


def test_unauthenticated_client_is_refused_at_the_handshake(keys):
    """The server's own monitor shows the refusal (not just silence): a ZAP authentication failure."""
    from zmq.utils.monitor import recv_monitor_message

    server = CurveServer(keys["server"]["secret"], keys["allowed"])
    stranger = CurveClient(keys["stranger"]["secret"], keys["server"]["public"])
    with FramePublisher("tcp://127.0.0.1:*", curve=server) as pub:
        monitor = pub._live.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        try:
            with FrameSubscriber(pub.endpoint, "cam0", curve=stranger):
                assert monitor.poll(10_000), "no handshake outcome within 10 s"
                assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        finally:
            pub._live.disable_monitor()
            monitor.close(0)


def test_command_lines_refuse_remote_binds_and_speak_curve(keys, tmp_path, capsys):
    """``deg-live run`` refuses a remote --events without --allow-remote (before loading anything);
    ``deg-live keys`` and ``deg-camera --curve-keys/--curve-clients`` make a stream only a listed client reads."""
    import subprocess
    import sys
    from pathlib import Path

    from deg_live.cli import main as deg_live

    assert (
        deg_live(["run", "--bundle", str(tmp_path / "none"), "--frames", "ipc:///x", "--events", "tcp://*:5560"]) == 2
    )
    assert "--allow-remote" in capsys.readouterr().err
    assert deg_live(["keys", str(tmp_path / "cli-keys"), "--name", "cam"]) == 0
    cam_public, cam_secret = tmp_path / "cli-keys" / "cam.key", tmp_path / "cli-keys" / "cam.key_secret"
    assert stat.S_IMODE(os.stat(cam_secret).st_mode) == 0o600
    repo = Path(__file__).resolve().parents[2]
    camera = subprocess.Popen(
        [sys.executable, "-m", "camera_adapters.cli", "synthetic", "width=32", "height=32", "fps=100",
         "--bind", f"ipc://{tmp_path}/cam", "--curve-keys", str(cam_secret), "--curve-clients", str(keys["allowed"]),
         "--quiet", "--duration", "60"],
        cwd=repo, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        client = CurveClient(keys["client"]["secret"], cam_public)
        with (
            FrameSubscriber(f"ipc://{tmp_path}/cam", "cam0", curve=client, queue_size=64) as good,
            FrameSubscriber(f"ipc://{tmp_path}/cam", "cam0", queue_size=64) as plain,
        ):
            _wait_for(good)
            assert plain.received == 0
    finally:
        camera.terminate()
        camera.communicate(timeout=30)
    assert camera.returncode == 0
