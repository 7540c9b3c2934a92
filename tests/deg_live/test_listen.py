"""Closed-loop consumers: ``deg-live listen`` (print / serial DTR-RTS pulse, its own receive latency), the serial
processor, and the 30-line example script, against real event publishers on loopback sockets."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from live_support import REPO, free_endpoint

from deg_live.commands.listen import Listener
from deg_live.events import EventMessage, EventPublisher
from deg_live.pipeline import FrameResult
from deg_live.processors import ProcessorError, SerialProcessor, SerialTrigger, create_processor

BEHAVIOURS = ["background", "grooming", "rearing"]


def _event(behaviour: str, kind: str, frame: int) -> EventMessage:
    now = time.time_ns()
    return EventMessage(
        camera_id="cam0",
        behaviour=behaviour,
        behaviour_index=BEHAVIOURS.index(behaviour),
        kind=kind,
        frame_index=frame,
        bout_start_frame=frame - 2,
        probability=0.9,
        capture_time_ns=now - 5_000_000,  # captured 5 ms ago
        decision_time_ns=now,
    )


def _publish_when_ready(publisher: EventPublisher, events, ready: threading.Event, delay: float = 0.3):
    """Publish ``events`` after subscribers had time to connect (ZeroMQ's slow joiner)."""

    def go():
        ready.wait(10)
        time.sleep(delay)
        for ev in events:
            publisher.publish(ev)
            time.sleep(0.02)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_listener_pulses_the_serial_line_on_onsets_and_reports_latency(tmp_path):
    endpoint = free_endpoint(tmp_path, "events")
    out = io.StringIO()
    with EventPublisher(endpoint, "cam0") as publisher:
        trigger = SerialTrigger("loop://", line="rts", pulse_ms=30)
        with Listener(endpoint, behaviours=["grooming"], trigger=trigger, out=out, offsets=True) as listener:
            ready = threading.Event()
            events = [
                _event("background", "offset", 10),
                _event("grooming", "onset", 10),
                _event("rearing", "onset", 20),  # not ours: ignored
                _event("grooming", "offset", 30),
                _event("grooming", "onset", 40),
            ]
            thread = _publish_when_ready(publisher, events, ready)
            ready.set()
            # The line goes up at the onset and comes back down after pulse_ms.
            listener.listen(count=1, timeout=10)
            assert trigger.level is True
            time.sleep(0.1)
            assert trigger.level is False
            listener.listen(count=2, timeout=10)
            thread.join()
            summary = listener.summary()
    assert trigger.pulses == 2
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "grooming onset" in lines[0] and "RTS pulse" in lines[0]
    assert "offset" in lines[1] and "frame       30" in lines[1]
    assert listener.events == 5 and listener.missed == 0
    # Receive latency is its own (publish -> here) and the loop's (capture -> here, >= the 5 ms before publish).
    assert all(0 <= ms < 1000 for ms in listener.receive_ms)
    assert all(ms >= 5 for ms in listener.capture_ms)
    assert "publish -> receive: median" in summary and "serial line up" in summary


def test_listen_command_json_lines_and_summary(tmp_path):
    endpoint = free_endpoint(tmp_path, "events")
    with EventPublisher(endpoint, "cam0") as publisher:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deg_live.cli", "listen", "--events", endpoint, "--count", "2", "--timeout", "60",
             "--json", "--serial", "loop://", "--line", "dtr", "--pulse-ms", "5"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            sent = 0
            while proc.poll() is None and time.monotonic() < deadline:
                # Keep publishing until the listener has its two onsets (it may join late).
                publisher.publish(_event("grooming", "onset", 100 + sent))
                sent += 1
                time.sleep(0.2)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert len(records) == 2
    assert records[0]["behaviour"] == "grooming" and records[0]["kind"] == "onset"
    assert records[1]["frame_index"] == records[0]["frame_index"] + 1
    assert records[0]["capture_to_receive_ms"] >= 5 and "capture_to_trigger_ms" in records[0]
    assert "2 onsets reacted to" in err and "capture -> serial line up" in err


def test_closed_loop_example_script(tmp_path):
    endpoint = free_endpoint(tmp_path, "events")
    script = REPO / "scripts" / "closed_loop_example.py"
    assert len(script.read_text().splitlines()) <= 40
    # As in CI (and as a user runs it with its output piped to a file or a logger): stdout block-buffered, so
    # the line arrives only if the script flushes it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    with EventPublisher(endpoint, "cam0") as publisher:
        proc = subprocess.Popen(
            [sys.executable, str(script), endpoint, "rearing", "loop://"], stdout=subprocess.PIPE, text=True, env=env
        )
        try:
            line = []
            reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
            reader.start()
            deadline = time.monotonic() + 30
            while reader.is_alive() and time.monotonic() < deadline:
                publisher.publish(_event("grooming", "onset", 7))
                publisher.publish(_event("rearing", "onset", 8))
                time.sleep(0.2)
            reader.join(1)
        finally:
            proc.kill()
            proc.wait()
    assert line and line[0].startswith("rearing onset at frame 8:") and "ms after capture" in line[0]


def _result(decisions, events=()) -> FrameResult:
    k = len(BEHAVIOURS)
    return FrameResult(
        frame_index=0,
        capture_time_ns=0,
        decision_time_ns=0,
        behaviours=BEHAVIOURS,
        probs=np.zeros(k, np.float32),
        logits=np.zeros(k, np.float32),
        decisions=np.asarray(decisions, bool),
        transitions=[],
        events=list(events),
        stream_id="s",
    )


def test_serial_processor_level_and_pulse_modes():
    level = create_processor("serial port=loop:// line=dtr behaviour=grooming mode=level")
    assert isinstance(level, SerialProcessor)
    with level:
        level.process(_result([False, True, False]))
        assert level.trigger.level is True
        level.process(_result([False, False, True]))  # rearing is not ours
        assert level.trigger.level is False
    pulse = create_processor("serial port=loop:// pulse_ms=20")
    with pulse:
        pulse.process(_result([False, True, False], [_event("rearing", "onset", 3)]))
        assert pulse.trigger.level is True and pulse.trigger.pulses == 1
        time.sleep(0.08)
        assert pulse.trigger.level is False
        pulse.process(_result([True, False, False], [_event("background", "onset", 4)]))  # background: no pulse
        assert pulse.trigger.pulses == 1


def test_processor_and_serial_errors():
    known = "unknown processor 'nope'; known processors: print, serial, or package.module:ClassName"
    with pytest.raises(ProcessorError, match=re.escape(known)):
        create_processor("nope")
    with pytest.raises(ProcessorError, match="must be key=value"):
        create_processor("serial loop://")
    with pytest.raises(ProcessorError, match="choose one of dtr, rts"):
        SerialTrigger("loop://", line="cts")
    with pytest.raises(ProcessorError, match="cannot open serial port"):
        SerialTrigger("/dev/does-not-exist-ttyUSB9")
    # Without pyserial installed: a clear message with the install command.
    code = (
        "import sys; sys.modules['serial'] = None\n"
        "from deg_live.processors import SerialTrigger, ProcessorError\n"
        "try:\n    SerialTrigger('loop://')\nexcept ProcessorError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60).stdout
    assert "pip install pyserial" in out
