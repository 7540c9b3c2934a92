"""Live telemetry: per-stage latency, rates, skipped and lost frames; a calm terminal line; files to keep.

What is measured, per processed frame (seconds; all stages of one frame sum to about its end to end):

=================  ==========================================================================================
stage              from → to
=================  ==========================================================================================
``wire``           the publisher's ``publish_time_ns`` → the receiver thread decoded the message (both
                   ``time.time_ns()``, CLOCK_REALTIME, comparable across processes on one machine)
``wait``           decoded → the main loop took it as the newest frame (time spent in the receiver's slot)
``resize``         :func:`camera_adapters.video.resize_rgb` to the bundle's input size (0 when already there)
``upload``         the engine copying the frame into its device ring buffer (``StepResult.timings``)
``encoder``        the frame encoder on the window ending at this frame
``sequence``       the sequence step with the carried state
``postprocess``    :class:`deg_live.postprocess.CausalPostprocessor.step`
``publish``        encoding and sending the state message (and events, on transitions)
``end_to_end``     the frame's ``capture_time_ns`` (host clock at grab) → its state message was sent
=================  ==========================================================================================

Counters (monotonic over the run): ``received`` (frames decoded by the receiver), ``processed``, ``skipped``
(overwritten in the receiver's slot before the main loop took them: inference fell behind, on purpose not
queued), ``lost`` (gaps in frame indices: lost at the camera or on the wire), ``rejected`` (malformed messages),
``wrong_size`` (frames whose shape or pixel format did not fit and were dropped), ``restarts`` (a new stream:
indices went back or the stream id changed), ``events`` (onset/offset messages sent), ``publish_dropped``
(state/event messages the PUB socket refused), and, with a recording, ``recorded`` and ``record_dropped``.

Two views of the same numbers:

- a rolling window (the last ``window`` frames) for the live line and the ``telemetry`` field of state messages:
  exact median and p99;
- a whole-run log-spaced histogram per stage (100 bins per decade, 1 µs … 100 s: percentiles within 2.3 %)
  plus exact count/mean/min/max, so a day-long run costs a few kilobytes.

Files (saved with a recording, or wherever ``save`` is pointed): ``telemetry.json`` (:meth:`Telemetry.summary`:
``schema_version``, counters, rates, per-stage ``{count, mean_ms, p50_ms, p90_ms, p99_ms, max_ms}``) and
``telemetry.csv`` (one row per second of the run: time, rates, counters and each stage's p50/p99 over that
second).
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from camera_adapters.files import atomic_write_text

TELEMETRY_SCHEMA_VERSION = 1

STAGES = (
    "wire",
    "wait",
    "resize",
    "upload",
    "encoder",
    "sequence",
    "postprocess",
    "publish",
    "end_to_end",
)
COUNTERS = (
    "received",
    "processed",
    "skipped",
    "lost",
    "rejected",
    "wrong_size",
    "restarts",
    "events",
    "publish_dropped",
    "recorded",
    "record_dropped",
)

# Whole-run histogram: 100 log-spaced bins per decade from 1 µs to 100 s.
_BINS_PER_DECADE = 100
_LOG_MIN, _LOG_MAX = -6.0, 2.0
_N_BINS = int((_LOG_MAX - _LOG_MIN) * _BINS_PER_DECADE)


class LatencyHistogram:
    """Whole-run latency distribution of one stage in constant memory.

    Values are seconds. Percentiles are the geometric centre of the bin holding them (within 2.3 %); count, mean,
    min and max are exact. Values below 1 µs land in the first bin, above 100 s in the last.
    """

    def __init__(self) -> None:
        self.counts = np.zeros(_N_BINS, dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, seconds: float) -> None:
        """Record one value (seconds; negative values, from clock skew, count as 0)."""
        value = max(float(seconds), 0.0)
        self.count += 1
        self.total += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        if value <= 0.0:
            b = 0
        else:
            b = int((math.log10(value) - _LOG_MIN) * _BINS_PER_DECADE)
        self.counts[min(max(b, 0), _N_BINS - 1)] += 1

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0–100) in seconds, NaN when empty."""
        if self.count == 0:
            return math.nan
        rank = q / 100.0 * self.count
        b = int(np.searchsorted(np.cumsum(self.counts), max(rank, 1e-9), side="left"))
        b = min(b, _N_BINS - 1)
        centre = 10.0 ** (_LOG_MIN + (b + 0.5) / _BINS_PER_DECADE)
        return float(min(max(centre, self.min), self.max))

    @property
    def mean(self) -> float:
        """Mean in seconds, NaN when empty."""
        return self.total / self.count if self.count else math.nan


def _stats_ms(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"count": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    p50, p99 = np.percentile(values, [50, 99])
    return {
        "count": int(values.size),
        "p50_ms": float(p50) * 1e3,
        "p99_ms": float(p99) * 1e3,
        "max_ms": float(values.max()) * 1e3,
    }


def _finite(x: float) -> float | None:
    """JSON has no NaN: missing numbers are written as null."""
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


class Telemetry:
    """Counters and per-stage latencies of one live run (single writer: the pipeline's main loop).

    Args:
        window: how many recent frames the rolling (live) statistics cover.
        clock: monotonic clock in seconds, replaceable in tests.

    Example:
        >>> t = Telemetry()
        >>> t.record_frame({"encoder": 0.004, "end_to_end": 0.011})
        >>> t.count("skipped", 2)
        >>> t.line()        # 'deg-live  30.0 fps | e2e p50 11.0 ms p99 ...'
        >>> t.save(Path("rec/session"))   # telemetry.json + telemetry.csv
    """

    def __init__(self, *, window: int = 600, clock=time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.started_unix = time.time()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.histograms = {s: LatencyHistogram() for s in STAGES}
        self._recent = {s: deque(maxlen=window) for s in STAGES}
        self._recent_times: deque[float] = deque(maxlen=window)
        # Per-second rows for telemetry.csv.
        self.rows: list[dict[str, Any]] = []
        self._second_start = self.started
        self._second_values: dict[str, list[float]] = {s: [] for s in STAGES}
        self._second_counters = dict(self.counters)
        self.info: dict[str, Any] = {}
        self.gauges: dict[str, float] = {}

    # -- recording --------------------------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` (one of :data:`COUNTERS`, or a new name of your own)."""
        self.counters[name] = self.counters.get(name, 0) + int(n)

    def set_counter(self, name: str, value: int) -> None:
        """Set a counter that another component keeps (e.g. the receiver's ``received``)."""
        self.counters[name] = int(value)

    def set_gauge(self, name: str, value: float) -> None:
        """Set a current value shown in snapshots and the summary (e.g. ``effective_stride``)."""
        self.gauges[name] = float(value)

    def record_frame(self, stages: Mapping[str, float]) -> None:
        """Record one processed frame's stage latencies (seconds) and count it as processed."""
        now = self._clock()
        self.counters["processed"] += 1
        self._recent_times.append(now)
        for name, value in stages.items():
            if value is None or not math.isfinite(value):
                continue
            if name not in self.histograms:
                self.histograms[name] = LatencyHistogram()
                self._recent[name] = deque(maxlen=self._recent_times.maxlen)
                self._second_values[name] = []
            self.histograms[name].add(value)
            self._recent[name].append(value)
            self._second_values[name].append(value)
        self._roll_second(now)

    def _roll_second(self, now: float) -> None:
        if now - self._second_start < 1.0:
            return
        elapsed = now - self._second_start
        row: dict[str, Any] = {"t_s": round(now - self.started, 3)}
        row["processed_fps"] = round((self.counters["processed"] - self._second_counters["processed"]) / elapsed, 2)
        row["received_fps"] = round((self.counters["received"] - self._second_counters.get("received", 0)) / elapsed, 2)
        for name in COUNTERS:
            row[name] = self.counters.get(name, 0)
        for name in STAGES:
            values = np.asarray(self._second_values.get(name, []), dtype=np.float64)
            stats = _stats_ms(values)
            row[f"{name}_p50_ms"] = _finite(stats["p50_ms"])
            row[f"{name}_p99_ms"] = _finite(stats["p99_ms"])
        self.rows.append(row)
        self._second_start = now
        self._second_values = {s: [] for s in self._second_values}
        self._second_counters = dict(self.counters)

    # -- reading ----------------------------------------------------------------------------------------------
    def rate(self) -> float:
        """Processed frames per second over the rolling window (0 before two frames)."""
        if len(self._recent_times) < 2:
            return 0.0
        span = self._recent_times[-1] - self._recent_times[0]
        return (len(self._recent_times) - 1) / span if span > 0 else 0.0

    def recent_values(self, stage: str) -> np.ndarray:
        """The rolling window's raw values of ``stage`` (seconds, oldest first)."""
        return np.asarray(self._recent.get(stage, ()), dtype=np.float64)

    def recent(self, stage: str) -> dict[str, float]:
        """Exact ``{count, p50_ms, p99_ms, max_ms}`` of ``stage`` over the rolling window."""
        return _stats_ms(np.asarray(self._recent.get(stage, ()), dtype=np.float64))

    def snapshot(self) -> dict[str, Any]:
        """A compact dict for the ``telemetry`` field of state messages (JSON-safe)."""
        e2e = self.recent("end_to_end")
        return {
            "fps": round(self.rate(), 2),
            "e2e_p50_ms": _finite(e2e["p50_ms"]),
            "e2e_p99_ms": _finite(e2e["p99_ms"]),
            **{k: v for k, v in self.counters.items() if v},
            **{k: _finite(v) for k, v in self.gauges.items()},
        }

    def line(self) -> str:
        """One calm human line: rate, end-to-end latency, where the time goes, what was skipped or lost."""
        e2e = self.recent("end_to_end")
        parts = [f"{self.rate():6.1f} fps", f"e2e p50 {e2e['p50_ms']:6.1f} ms p99 {e2e['p99_ms']:6.1f} ms"]
        stage_parts = []
        for name in ("wire", "wait", "resize", "upload", "encoder", "sequence", "postprocess", "publish"):
            values = self._recent.get(name)
            if values:
                stage_parts.append(f"{name} {np.median(np.asarray(values)) * 1e3:.1f}")
        if stage_parts:
            parts.append("median ms: " + " ".join(stage_parts))
        c = self.counters
        parts.append(f"skipped {c['skipped']} lost {c['lost']}")
        stride = self.gauges.get("effective_stride")
        if stride is not None and stride > 1.005:
            parts.append(f"stride {stride:.2f}")
        extra = [f"{k} {c[k]}" for k in ("rejected", "wrong_size", "restarts", "publish_dropped") if c.get(k)]
        if c.get("recorded") or c.get("record_dropped"):
            extra.append(f"recorded {c['recorded']}")
            if c.get("record_dropped"):
                extra.append(f"RECORD DROPPED {c['record_dropped']}")
        parts.extend(extra)
        return " | ".join(parts)

    def summary(self) -> dict[str, Any]:
        """The whole run as a JSON-safe dict (what ``telemetry.json`` holds)."""
        duration = self._clock() - self.started
        stages = {}
        for name, hist in self.histograms.items():
            if hist.count == 0:
                continue
            stages[name] = {
                "count": hist.count,
                "mean_ms": _finite(hist.mean * 1e3),
                "min_ms": _finite(hist.min * 1e3),
                "p50_ms": _finite(hist.percentile(50) * 1e3),
                "p90_ms": _finite(hist.percentile(90) * 1e3),
                "p99_ms": _finite(hist.percentile(99) * 1e3),
                "max_ms": _finite(hist.max * 1e3),
            }
        processed = self.counters["processed"]
        return {
            "schema_version": TELEMETRY_SCHEMA_VERSION,
            "started_unix": self.started_unix,
            "duration_s": round(duration, 3),
            "mean_processed_fps": round(processed / duration, 3) if duration > 0 else 0.0,
            "counters": dict(self.counters),
            "gauges": {k: _finite(v) for k, v in self.gauges.items()},
            "stages": stages,
            "info": self.info,
        }

    def save(self, directory: str | Path, *, prefix: str = "") -> tuple[Path, Path]:
        """Write ``<prefix>telemetry.json`` and ``<prefix>telemetry.csv`` into ``directory`` (atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / f"{prefix}telemetry.json"
        csv_path = directory / f"{prefix}telemetry.csv"
        atomic_write_text(json_path, json.dumps(self.summary(), indent=2, allow_nan=False) + "\n")
        atomic_write_text(csv_path, rows_to_csv(self.rows))
        return json_path, csv_path


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """Per-second telemetry rows as CSV text (header from the first row; empty text when no rows)."""
    rows = list(rows)
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0].keys()), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


class TelemetryPrinter:
    """Prints :meth:`Telemetry.line` calmly.

    On a terminal the line is rewritten in place once a second; otherwise a log line is written every
    ``log_every_s`` seconds (so redirected output stays readable).

    Args:
        telemetry: what to print.
        stream: where (stderr by default).
        every_s: refresh period on a terminal.
        log_every_s: period when ``stream`` is not a terminal.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        stream: TextIO | None = None,
        *,
        every_s: float = 1.0,
        log_every_s: float = 10.0,
        prefix: str = "deg-live",
    ) -> None:
        self.telemetry = telemetry
        self.stream = stream if stream is not None else sys.stderr
        is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._tty = is_tty
        self.period = every_s if is_tty else log_every_s
        self.prefix = prefix
        self._last = time.monotonic()
        self._dirty = False

    def maybe_print(self, message: str | None = None) -> bool:
        """Print if a period has passed (or ``message`` is given, e.g. "waiting for frames"); True if printed."""
        now = time.monotonic()
        if message is None and now - self._last < self.period:
            return False
        self._last = now
        text = f"{self.prefix} {message if message is not None else self.telemetry.line()}"
        if self._tty:
            self.stream.write("\r\x1b[2K" + text)
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        return True

    def finish(self) -> None:
        """End the in-place line (call before other output and at exit)."""
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
