"""``deg-live run`` with CURVE, as docs/live.md shows it: a real process, real sockets, real keys.

The camera (a CURVE server in this process) accepts only deg-live's key; deg-live's events/state endpoint
accepts only the listener's key. The listed listener gets state messages; an unauthenticated one, connected
as long, gets none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from live_support import REPO, tiny_bundle

from camera_adapters.network import CurveClient, CurveServer, create_keys
from camera_adapters.publisher import FramePublisher
from camera_adapters.wire import Frame
from deg_live.events import EventSubscriber, StateMessage

ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'tests' / 'deg_live'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


@pytest.mark.timeout(240)
def test_deg_live_run_with_curve_keys_end_to_end(tiny, tmp_path):
    keys = {name: create_keys(tmp_path / "keys", name) for name in ("camera", "live", "stim")}
    camera_allows, live_allows = tmp_path / "camera_allows", tmp_path / "live_allows"
    for folder, name in ((camera_allows, "live"), (live_allows, "stim")):
        folder.mkdir()
        (folder / f"{name}.key").write_bytes(keys[name][0].read_bytes())
    frames, events = f"ipc://{tmp_path}/frames", f"ipc://{tmp_path}/events"
    stop = threading.Event()
    with FramePublisher(frames, curve=CurveServer(keys["camera"][1], camera_allows)) as camera:

        def feed():
            i = 0
            while not stop.wait(0.02):
                pixels = np.full((48, 64, 3), i % 256, np.uint8)
                camera.publish(Frame(index=i, pixels=pixels, capture_time_ns=time.time_ns(), fps=50))
                i += 1

        runner = subprocess.Popen(
            [sys.executable, "-m", "deg_live.cli", "run", "--bundle", str(tiny.path), "--frames", frames,
             "--events", events, "--curve-keys", str(keys["live"][1]), "--curve-clients", str(live_allows),
             "--curve-camera-key", str(keys["camera"][0]), "--quiet", "--warmup", "2", "--backend", "onnxruntime"],
            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        thread = threading.Thread(target=feed, daemon=True)
        thread.start()
        try:
            stim = CurveClient(keys["stim"][1], keys["live"][0])
            with (
                EventSubscriber(events, ["state/"], curve=stim) as listed,
                EventSubscriber(events, ["state/"], skip_malformed=True) as plain,
            ):
                got = 0
                deadline = time.monotonic() + 120
                while got < 10:
                    assert time.monotonic() < deadline and runner.poll() is None, runner.communicate()[1][-3000:]
                    got += isinstance(listed.recv(timeout=0.5), StateMessage)
                assert plain.recv(timeout=0) is None  # connected as long, refused at the handshake
        finally:
            stop.set()
            thread.join(5)
            runner.terminate()
            _, err = runner.communicate(timeout=60)
    assert runner.returncode == 0, err[-3000:]
