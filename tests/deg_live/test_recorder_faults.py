"""The recorder's frame thread never dies silently: it survives unexpected errors, or stops marked failed.

The recorder is real (real files, real video encoder); its input is a frame source that fails the way a buggy
receiver would (an exception that is not a user error), between good frames.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from camera_adapters.wire import EndOfStream, Frame
from deg_live.recorder import Recorder, read_recording

pytestmark = pytest.mark.timeout(60)


class FlakySource:
    """Gives frames 0..n-1, raising ``RuntimeError`` before the frames in ``fail_before`` (or always)."""

    def __init__(self, n: int, fail_before: set[int] | None = None, always: bool = False):
        self.n, self.fail_before, self.always = n, fail_before or set(), always
        self.i = 0
        self.failed: set[int] = set()
        self.done = threading.Event()

    def recv(self, timeout=None):
        if self.always:
            raise RuntimeError("the receiver is broken")
        if self.i in self.fail_before and self.i not in self.failed:
            self.failed.add(self.i)
            raise RuntimeError(f"a bug before frame {self.i}")
        if self.i >= self.n:
            self.done.set()
            if self.i == self.n:
                self.i += 1
                raise EndOfStream("done")
            return None
        pixels = np.full((16, 16, 3), self.i, np.uint8)
        frame = Frame(index=self.i, pixels=pixels, capture_time_ns=1, stream_id="s", fps=25)
        self.i += 1
        return frame

    def close(self):
        pass


def _recorder(tmp_path) -> Recorder:
    return Recorder(tmp_path, "cam0", ["background", "a"], [0.5, 0.5], session="s", ballast_bytes=0)


def test_unexpected_errors_are_logged_counted_and_survived(tmp_path, caplog):
    recorder = _recorder(tmp_path)
    source = FlakySource(20, fail_before={3, 11})
    recorder.start(source)
    assert source.done.wait(20)
    recorder.close()
    info = read_recording(tmp_path / "s")["info"]
    assert info["status"] == "complete" and info["frames_written"] == 20
    assert info["thread_errors"] == 2 and "unexpected errors" in info["warnings"][0]
    assert caplog.text.count("RECORDER: UNEXPECTED ERROR receiving") == 2 and "a bug before frame 3" in caplog.text


def test_a_frame_thread_that_keeps_failing_marks_the_recording_failed(tmp_path, caplog):
    recorder = _recorder(tmp_path)
    recorder.start(FlakySource(0, always=True))
    recorder._thread.join(30)  # it gives up by itself
    assert not recorder._thread.is_alive()
    assert recorder.failed and "unexpected errors in a row" in recorder.failed
    recorder.close()
    info = read_recording(tmp_path / "s")["info"]
    assert info["status"] == "failed" and "unexpected errors in a row" in info["failure"]
    assert "the frame thread STOPPED" in caplog.text
