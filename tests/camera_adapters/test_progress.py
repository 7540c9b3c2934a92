"""Progress off a terminal is log lines, on a terminal a bar; never silent, never both."""

from __future__ import annotations

import io
import logging

from camera_adapters.progress import progress_bar

LOG = logging.getLogger("test.progress")


def test_off_a_terminal_progress_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="test.progress")
    for _ in progress_bar(range(5), desc="caching rat1.mp4", unit="frame", terminal=False, every_s=0, logger=LOG):
        pass
    lines = [r.getMessage() for r in caplog.records if r.name == "test.progress"]
    assert lines, "no progress line was logged"
    assert all(line.startswith("caching rat1.mp4:") for line in lines)
    assert lines[-1].endswith("(done)") and "5/5" in lines[-1]
    assert "█" not in "".join(lines)  # numbers, no bar characters in a log file


def test_log_lines_are_rate_limited(caplog):
    caplog.set_level(logging.INFO, logger="test.progress")
    with progress_bar(total=1000, desc="extract", terminal=False, every_s=3600, logger=LOG) as bar:
        for _ in range(1000):
            bar.update(1)
    assert [r for r in caplog.records if r.name == "test.progress"] == []  # quick work: nothing to say


def test_on_a_terminal_it_is_a_bar_and_nothing_is_logged(caplog):
    caplog.set_level(logging.INFO, logger="test.progress")
    out = io.StringIO()
    for _ in progress_bar(range(5), desc="encode", terminal=True, every_s=0, logger=LOG, file=out, mininterval=0):
        pass
    assert "encode" in out.getvalue() and "5/5" in out.getvalue()
    assert [r for r in caplog.records if r.name == "test.progress"] == []


def test_disabled_is_silent(caplog):
    caplog.set_level(logging.INFO, logger="test.progress")
    for _ in progress_bar(range(5), desc="encode", terminal=False, every_s=0, logger=LOG, disable=True):
        pass
    assert [r for r in caplog.records if r.name == "test.progress"] == []
