"""The live pipeline over real ZeroMQ sockets: faults (malformed and wrong-size frames, a camera restart, a long
gap, silence, a bundle that fails to load), overload (frames skipped, never queued), state/event messages and
processors."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq
from live_support import REPO, CameraThread, free_endpoint, tiny_bundle

from camera_adapters.sources import create_source
from camera_adapters.video import resize_rgb
from camera_adapters.wire import Frame, encode_frame
from deg_live.bundle import BundleError, read_bundle
from deg_live.engines import create_engine
from deg_live.events import EventPublisher, EventSubscriber, StateMessage
from deg_live.pipeline import LivePipeline
from deg_live.processors import Processor
from deg_live.telemetry import Telemetry, TelemetryPrinter


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


class Collect(Processor):
    """Records what the pipeline hands to processors; optionally slow (to overload the pipeline)."""

    name = "collect"

    def __init__(self, delay_s: float = 0.0):
        self.results = []
        self.delay_s = delay_s
        self.closed = 0

    def process(self, result):
        self.results.append(result)
        if self.delay_s:
            time.sleep(self.delay_s)

    def close(self):
        self.closed += 1


def _frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)


class RawCamera:
    """A bare PUB socket sending hand-made frame messages (and garbage)."""

    def __init__(self, endpoint: str):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)

    def send(self, index: int, pixels: np.ndarray, stream_id: str = "aaaa") -> None:
        frame = Frame(index=index, pixels=pixels, camera_id="cam0", capture_time_ns=time.time_ns(), stream_id=stream_id)
        self.sock.send_multipart(encode_frame(frame), copy=False)

    def send_raw(self, parts) -> None:
        self.sock.send_multipart(parts)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


def _step_until(pipeline, index, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = pipeline.step(timeout=0.2)
        if result is not None and result.frame_index == index:
            return result
    raise AssertionError(f"frame {index} was not processed")


def test_faults_malformed_wrong_size_restart_gap_and_silence(tiny, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    frames_ep, events_ep = free_endpoint(tmp_path, "frames"), free_endpoint(tmp_path, "events")
    camera = RawCamera(frames_ep)
    collect = Collect()
    pipeline = LivePipeline(
        tiny.path,
        frames_ep,
        backend="onnxruntime",
        events_endpoint=events_ep,
        processors=[collect],
        idle_warn_s=0.3,
        max_gap=5,
    )
    reference = create_engine(read_bundle(tiny.path), "onnxruntime")
    frames = _frames(8)
    size = pipeline.input_size
    try:
        # The SUB socket needs a moment to subscribe (ZeroMQ's slow joiner): resend frame 0 until it is taken.
        deadline = time.monotonic() + 5
        first = None
        while first is None and time.monotonic() < deadline:
            camera.send(0, frames[0])
            first = pipeline.step(timeout=0.1)
        assert first is not None and first.frame_index == 0
        for i in (1, 2):
            camera.send(i, frames[i])
            _step_until(pipeline, i)

        # Malformed messages: rejected, counted, the pipeline keeps going.
        camera.send_raw([b"frames/cam0", b"{not json", b"xx"])
        camera.send_raw([b"frames/cam0", b'{"schema_version": 1, "camera_id": "cam0", "kind": "frame"}', b"x"])
        camera.send_raw([b"frames/cam0", b"two parts only"])
        good_header = encode_frame(Frame(index=3, pixels=frames[3], camera_id="cam0", capture_time_ns=1))[1]
        camera.send_raw([b"frames/cam0", good_header, b"truncated pixels"])
        # A frame of the wrong size in the middle of the stream: dropped and counted.
        camera.send(3, _frames(1, 32, 32)[0])
        assert pipeline.step(timeout=1.0) is None
        camera.send(4, frames[4])
        r4 = _step_until(pipeline, 4)
        assert pipeline.telemetry.counters["rejected"] == 4
        assert pipeline.telemetry.counters["wrong_size"] == 1
        assert pipeline.telemetry.counters["restarts"] == 0

        # The camera adapter restarts (new stream id, indices from 0): the history is reset and it is logged;
        # the new stream's probabilities are those of a fresh stream on the same frames.
        fresh = reference.stream()
        for i in range(3):
            camera.send(i, frames[5 + i], stream_id="bbbb")
            r = _step_until(pipeline, i)
            want = fresh.push(resize_rgb(frames[5 + i], size)).probs
            np.testing.assert_allclose(r.probs, want, rtol=1e-5, atol=1e-6)
        assert pipeline.telemetry.counters["restarts"] == 1
        assert "camera stream restarted" in caplog.text

        # A gap longer than max_gap: lost frames counted, history reset.
        camera.send(20, frames[0], stream_id="bbbb")
        _step_until(pipeline, 20)
        assert pipeline.telemetry.counters["lost"] == 17
        assert pipeline.telemetry.counters["gap_resets"] == 1

        # Silence: step returns None, and it says so.
        caplog.clear()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.8:
            assert pipeline.step(timeout=0.2) is None
        assert "no frames from" in caplog.text and "waiting" in caplog.text

        # Processors saw every processed frame, in order.
        assert [r.frame_index for r in collect.results] == [0, 1, 2, 4, 0, 1, 2, 20]
        assert r4.decisions.dtype == bool and r4.probs.shape == (3,)
    finally:
        pipeline.close()
        pipeline.close()  # idempotent
        reference.close()
        camera.close()
    assert collect.closed == 1


def test_overload_skips_frames_instead_of_queueing(tiny, tmp_path):
    """A camera at 100 fps, inference held to ~25 fps: frames are skipped and counted, the delay does not grow."""
    frames_ep, events_ep = free_endpoint(tmp_path, "frames"), free_endpoint(tmp_path, "events")
    state_ep = free_endpoint(tmp_path, "state")
    source = create_source("synthetic", {"width": 64, "height": 48, "fps": 100})
    pipeline = LivePipeline(
        tiny.path,
        frames_ep,
        backend="onnxruntime",
        events_endpoint=events_ep,
        state_endpoint=state_ep,  # state on its own socket
        processors=[Collect(delay_s=0.04)],
    )
    states = EventSubscriber(state_ep, ["state/"])
    received = []
    try:
        with CameraThread(source, frames_ep, start_delay_s=0.3):
            pipeline.run(duration_s=2.5)
        while (msg := states.recv(timeout=0.3)) is not None:
            received.append(msg)
    finally:
        states.close()
        pipeline.close()
    c = pipeline.telemetry.counters
    assert c["processed"] >= 15
    assert c["skipped"] > c["processed"]  # most frames were skipped on purpose, counted apart from ...
    assert c["lost"] < c["skipped"] / 2  # ... the few the in-process camera's live queue replaced under load
    # Never queued: the newest frame waited at most about one inference period, not a growing backlog.
    wait = pipeline.telemetry.recent_values("wait")
    assert np.median(wait) < 0.06, np.median(wait)
    e2e = pipeline.telemetry.recent_values("end_to_end")
    assert np.percentile(e2e[len(e2e) // 2 :], 90) < 0.25
    assert pipeline.telemetry.gauges["effective_stride"] > 2
    # State messages say how many frames were skipped.
    assert received and all(isinstance(m, StateMessage) for m in received)
    assert received[-1].skipped > 0
    assert "skipped" in pipeline.telemetry.line()


def test_bundle_that_fails_to_load_opens_no_socket(tiny, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny.path, broken)
    data = bytearray((broken / "sequence_step.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "sequence_step.onnx").write_bytes(bytes(data))
    events_ep = free_endpoint(tmp_path, "events")
    with pytest.raises(BundleError, match=r"sequence_step\.onnx"):
        LivePipeline(broken, free_endpoint(tmp_path, "frames"), backend="onnxruntime", events_endpoint=events_ep)
    with EventPublisher(events_ep, "cam0"):  # nothing was left bound
        pass
    # The command line: one clear line, exit status 2, no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "deg_live.cli", "run", "--bundle", str(broken), "--frames", "ipc:///nonexistent"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "sequence_step.onnx" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "deg_live.cli", "run", "--bundle", str(tmp_path / "nope"), "--frames", "ipc:///x"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2 and "no such bundle" in proc.stderr


def test_record_without_lossless_path_is_refused(tiny, tmp_path):
    from deg_live.pipeline import PipelineError
    from deg_live.recorder import Recorder

    bundle = read_bundle(tiny.path)
    with Recorder(tmp_path / "rec", "cam0", bundle.behaviours, bundle.thresholds, ballast_bytes=0) as recorder:
        with pytest.raises(PipelineError, match="lossless"):
            LivePipeline(bundle, free_endpoint(tmp_path, "f"), backend="onnxruntime", recorder=recorder)


def test_telemetry_histogram_summary_files_and_line(tmp_path):
    clock = [0.0]
    telemetry = Telemetry(window=50, clock=lambda: clock[0])
    rng = np.random.default_rng(0)
    values = rng.lognormal(np.log(0.01), 0.5, 2000)  # ~10 ms, heavy tail
    for v in values:
        clock[0] += 1 / 200
        telemetry.record_frame({"encoder": v, "end_to_end": 2 * v})
    telemetry.count("skipped", 3)
    telemetry.set_gauge("effective_stride", 1.5)
    summary = telemetry.summary()
    enc = summary["stages"]["encoder"]
    assert enc["count"] == 2000 and summary["counters"]["processed"] == 2000
    for q in (50, 90, 99):  # the log histogram's percentiles are within its 2.3 % bins
        assert abs(enc[f"p{q}_ms"] / (np.percentile(values, q) * 1e3) - 1) < 0.03
    assert abs(enc["max_ms"] - values.max() * 1e3) < 1e-3
    assert len(telemetry.recent_values("encoder")) == 50
    assert abs(telemetry.rate() - 200) < 1
    line = telemetry.line()
    assert "200.0 fps" in line and "skipped 3" in line and "stride 1.50" in line
    json_path, csv_path = telemetry.save(tmp_path)
    saved = json.loads(json_path.read_text())
    assert saved["schema_version"] == 1 and saved["gauges"]["effective_stride"] == 1.5
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("t_s,processed_fps") and len(rows) == 1 + 9  # one row per second of the run
    # The printer: one log line per period when not on a terminal; messages at once.
    out = io.StringIO()
    printer = TelemetryPrinter(telemetry, out, log_every_s=3600)
    assert printer.maybe_print() is False
    assert printer.maybe_print("waiting for frames") is True
    assert out.getvalue() == "deg-live waiting for frames\n"


def test_bench_command_reports_latency_rates_and_stages(tiny, tmp_path):
    report_path = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "deg_live.cli", "bench", "--bundle", str(tiny.path), "--size", "160x120",
         "--backend", "onnxruntime", "--engine-option", "threads=1", "--rate", "20", "--duration", "2",
         "--json", str(report_path)],
        capture_output=True, text=True, cwd=REPO, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "publish->publish ms" in proc.stdout and "where the time goes" in proc.stdout
    report = json.loads(report_path.read_text())
    trial = report["trials"][0]
    assert trial["rate_fps"] == 20 and trial["processed"] >= 20
    assert 0 < trial["publish_to_publish"]["median_ms"] <= trial["publish_to_publish"]["p99_ms"] < 2000
    assert {"wire", "resize", "encoder", "sequence", "postprocess", "publish"} <= set(trial["stages"])
    assert report["unpaced_fps"] > 20
