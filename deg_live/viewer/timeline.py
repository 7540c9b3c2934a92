"""A bounded, thread-safe ring of the newest state messages, and the snapshot the viewer draws from (no Qt).

The receiver thread calls :meth:`Timeline.add_state` / :meth:`Timeline.add_event`; the GUI thread calls
:meth:`Timeline.snapshot` from its timer. Both take a lock for a few microseconds; nothing else is shared.

Frames are stored by camera frame index (slot ``frame_index % capacity``), so the columns of a snapshot are
consecutive camera frames: a frame that inference skipped holds the decision of the last processed frame before
it (that is what a causal system knew then), and ``processed`` says which columns were really processed. A new
stream (another ``stream_id``, a frame index that went back, other behaviours) clears the ring.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera_adapters.wire import restart_reason
from deg_live.events import EventMessage, StateMessage


@dataclass
class TimelineSnapshot:
    """What the viewer draws, copied out of the ring.

    Attributes:
        behaviours: K names.
        thresholds: ``(K,)`` on-thresholds where known (from the ``thresholds`` telemetry field), else NaN.
        first_frame: camera frame index of column 0.
        probabilities: ``(N, K) float32``, NaN before the first state of the window.
        decisions: ``(N, K) bool``.
        processed: ``(N,) bool``: columns inference really processed (the others are held from the last one).
        valid: ``(N,) bool``: columns at or after the first state in the window.
        newest_frame: the newest processed frame index (``first_frame + N - 1``), or -1 before any state.
        newest_probabilities, newest_decisions: the newest state's values, ``(K,)``.
        fps: the camera frame rate estimated from capture times (frames per second).
        rate: state messages received per second over the last two seconds (the processing rate).
        latency_p50_ms, latency_p99_ms: end-to-end latency (capture to state publish) over the last messages.
        skipped, lost: the newest state's counters.
        missed_messages: state messages this viewer lost (gaps in ``seq``: the viewer was too slow).
        age_s: seconds since the newest state message arrived (inf before any).
        events: the newest events, oldest first.
        telemetry: the newest non-empty telemetry dict.
        stream_id: the stream being drawn.
    """

    behaviours: list[str]
    thresholds: np.ndarray
    first_frame: int
    probabilities: np.ndarray
    decisions: np.ndarray
    processed: np.ndarray
    valid: np.ndarray
    newest_frame: int
    newest_probabilities: np.ndarray
    newest_decisions: np.ndarray
    fps: float
    rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    skipped: int
    lost: int
    missed_messages: int
    age_s: float
    events: list[EventMessage] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)
    stream_id: str = ""


class Timeline:
    """The newest ``capacity`` frames of one camera's state stream.

    Args:
        capacity: frames kept (the longest window that can be drawn).
        latency_window: state messages the latency percentiles are taken over.
        max_events: events kept for the event list.
    """

    def __init__(self, capacity: int = 8192, latency_window: int = 500, max_events: int = 50):
        self.capacity = int(capacity)
        self._lock = threading.Lock()
        self._latency: deque[float] = deque(maxlen=latency_window)
        self._arrivals: deque[float] = deque(maxlen=4096)
        self._events: deque[EventMessage] = deque(maxlen=max_events)
        self.states_received = 0
        self.events_received = 0
        self.missed_messages = 0
        self._behaviours: list[str] = []
        self._preset_thresholds: np.ndarray | None = None
        self._clear(0)

    def _clear(self, k: int) -> None:
        c = self.capacity
        self._frame = np.full(c, -1, dtype=np.int64)
        self._probs = np.full((c, k), np.nan, dtype=np.float32)
        self._dec = np.zeros((c, k), dtype=bool)
        self._capture = np.zeros(c, dtype=np.int64)
        self._newest = -1
        self._stream_id = ""
        self._last_seq: int | None = None
        self._newest_state: StateMessage | None = None
        self._telemetry: dict[str, Any] = {}
        preset = self._preset_thresholds
        self._thresholds = preset.copy() if preset is not None and len(preset) == k else np.full(k, np.nan, np.float32)
        self._latency.clear()

    # ------------------------------------------------------------------------------------------- writers
    def add_state(self, msg: StateMessage) -> None:
        """Store one state message (called by the receiver thread)."""
        now = time.monotonic()
        with self._lock:
            self.states_received += 1
            last = None if self._newest < 0 else self._newest  # None: nothing since the ring was cleared
            if msg.behaviours != self._behaviours:
                self._behaviours = list(msg.behaviours)
                self._clear(len(msg.behaviours))
                self._arrivals.clear()
            elif restart_reason(self._stream_id, last, msg.stream_id, msg.frame_index):  # the one restart rule
                self._clear(len(msg.behaviours))  # a new stream, or the camera restarted under this pipeline run
            self._stream_id = msg.stream_id
            if self._last_seq is not None and msg.seq > self._last_seq + 1:
                self.missed_messages += msg.seq - self._last_seq - 1
            self._last_seq = msg.seq
            slot = msg.frame_index % self.capacity
            self._frame[slot] = msg.frame_index
            self._probs[slot] = np.asarray([np.nan if p is None else p for p in msg.probabilities], np.float32)
            self._dec[slot] = msg.decisions
            self._capture[slot] = msg.capture_time_ns
            self._newest = msg.frame_index
            self._newest_state = msg
            self._latency.append(float(msg.latency_ms))
            self._arrivals.append(now)
            if msg.telemetry:
                self._telemetry = dict(msg.telemetry)
                thresholds = msg.telemetry.get("thresholds")
                if isinstance(thresholds, list) and len(thresholds) == len(self._behaviours):
                    self._thresholds = np.asarray(thresholds, dtype=np.float32)

    def add_event(self, msg: EventMessage) -> None:
        """Store one event message (called by the receiver thread)."""
        with self._lock:
            self.events_received += 1
            self._events.append(msg)

    def set_thresholds(self, thresholds: np.ndarray | list[float]) -> None:
        """Set the on-thresholds drawn on the probability traces (e.g. from the bundle)."""
        with self._lock:
            t = np.asarray(thresholds, dtype=np.float32)
            self._preset_thresholds = t
            if len(t) == len(self._behaviours):
                self._thresholds = t.copy()

    # ------------------------------------------------------------------------------------------- reader
    def snapshot(self, n_frames: int) -> TimelineSnapshot | None:
        """The newest ``n_frames`` camera frames (at most ``capacity``), or None before the first state."""
        now = time.monotonic()
        with self._lock:
            state = self._newest_state
            if state is None:
                return None
            n = max(1, min(int(n_frames), self.capacity))
            first = self._newest - n + 1
            wanted = np.arange(first, self._newest + 1)
            slots = wanted % self.capacity
            processed = (self._frame[slots] == wanted) & (wanted >= 0)
            probs = self._probs[slots].copy()
            dec = self._dec[slots].copy()
            capture = self._capture[slots].copy()
            latency = np.asarray(self._latency, dtype=np.float64)
            arrivals = np.asarray(self._arrivals, dtype=np.float64)
            events = list(self._events)
            telemetry = dict(self._telemetry)
            thresholds = self._thresholds.copy()
            missed = self.missed_messages
            stream_id = self._stream_id
            behaviours = list(self._behaviours)
        # Hold the last processed frame's values over frames inference skipped (outside the lock).
        idx = np.where(processed, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        valid = idx >= 0
        src = np.maximum(idx, 0)
        probs = np.where(valid[:, None], probs[src], np.nan).astype(np.float32)
        dec = np.where(valid[:, None], dec[src], False)
        recent = arrivals[arrivals >= now - 2.0]
        rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 and recent[-1] > recent[0] else 0.0
        return TimelineSnapshot(
            behaviours=behaviours,
            thresholds=thresholds,
            first_frame=int(first),
            probabilities=probs,
            decisions=dec,
            processed=processed,
            valid=valid,
            newest_frame=int(state.frame_index),
            newest_probabilities=np.asarray(
                [np.nan if p is None else p for p in state.probabilities], dtype=np.float32
            ),
            newest_decisions=np.asarray(state.decisions, dtype=bool),
            fps=_estimate_fps(wanted[processed], capture[processed]),
            rate=float(rate),
            latency_p50_ms=float(np.percentile(latency, 50)) if len(latency) else float("nan"),
            latency_p99_ms=float(np.percentile(latency, 99)) if len(latency) else float("nan"),
            skipped=int(state.skipped),
            lost=int(state.lost),
            missed_messages=int(missed),
            age_s=float(now - arrivals[-1]) if len(arrivals) else float("inf"),
            events=events,
            telemetry=telemetry,
            stream_id=stream_id,
        )


def _estimate_fps(frames: np.ndarray, capture_ns: np.ndarray, default: float = 30.0) -> float:
    """Camera frames per second from processed frames' indices and capture times (median of the steps)."""
    if len(frames) < 3:
        return default
    frames, capture_ns = frames[-300:], capture_ns[-300:]
    dt = np.diff(capture_ns).astype(np.float64) / 1e9
    df = np.diff(frames).astype(np.float64)
    ok = (dt > 0) & (df > 0)
    if ok.sum() < 2:
        return default
    period = float(np.median(dt[ok] / df[ok]))
    return 1.0 / period if period > 0 else default
