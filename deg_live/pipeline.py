"""The causal streaming pipeline: ZeroMQ frames in, behaviour probabilities, decisions and events out.

Lifecycle (DeepLabCut-live's four calls)::

    pipeline = LivePipeline("bundle/", "tcp://127.0.0.1:5555")   # 1. construct: bundle, engine, then sockets
    pipeline.warmup()                                           # 2. warm up the engine on the real code path
    while running:
        result = pipeline.step(timeout=0.5)                     # 3. per frame: newest frame -> FrameResult
    pipeline.close()                                            # 4. close (idempotent; context manager)

or simply ``pipeline.run()``, which loops, prints a calm telemetry line and stops on Ctrl-C/SIGTERM.

Per processed frame, in the main thread:

1. *take*: the receiver thread (:class:`camera_adapters.subscriber.FrameSubscriber`) always drains the socket
   and keeps only the newest frame; the main loop takes it. Frames that arrived while inference was busy were
   overwritten on purpose (``skipped``, never queued: no growing delay). Frames missing from the camera's
   numbering were lost before deg_live (``lost``). With ``every_frame=True`` the frames come instead in order
   from a publisher's lossless endpoint (:class:`camera_adapters.subscriber.LosslessReceiver`), nothing is
   skipped and the camera adapter waits for inference (``deg-camera ... --lossless-block``): for rehearsals on
   recorded video and for the offline==online test.
2. *check*: a frame of another camera stream (new ``stream_id``, or an index that went back: the camera adapter
   restarted) resets the engine's window and sequence state and the postprocessor, and is logged. A frame whose
   size differs from the stream's (set by the first frame, or by ``frame_size``) is dropped and counted
   (``wrong_size``); a pixel format that cannot be read is counted as ``rejected``.
3. *resize* with :func:`camera_adapters.video.resize_rgb` (the same resize offline uses) to the bundle's size.
4. *infer*: :meth:`deg_live.engines.base.FrameStream.push` uploads the frame once into the engine's ring buffer
   of the last T frames, runs the frame encoder on the window ending at this frame, then the sequence step.
5. *decide*: :class:`deg_live.postprocess.CausalPostprocessor` (the one used offline too).
6. *publish*: an ``events/<camera>`` message per onset/offset (:mod:`deg_live.events`), then the processors
   (:mod:`deg_live.processors`), then the ``state/<camera>`` message; with a recording, the outputs and events
   are handed to the :class:`deg_live.recorder.Recorder`.

How the window treats skipped frames (honestly): the window holds the frames actually processed. When
inference keeps up (the goal) they are consecutive camera frames, exactly as offline; when frames are skipped,
the window spans more time than in training, and the telemetry reports the *effective stride* (mean index step
between processed frames; 1.0 = nothing skipped) and the state messages carry the ``skipped`` count so that a
consumer can tell. A single jump of more than ``max_gap`` frames that is also more than 4x the effective
stride (a long stall, a burst of lost frames; not the steady stride of an overloaded pipeline) resets the
window and the sequence state instead: features from far apart in time would mislead the sequence model.
Postprocessing durations (``min_duration_frames``) count processed frames.

Frames that never come: the loop says so (a WARNING after ``idle_warn_s``, again every 10 s) and keeps waiting.
A stream's end (a replayed file ran out) is logged; ``run(exit_at_end=True)`` stops there, otherwise it waits
for a new stream.

Faults fail early: the bundle is read and verified, and the engine created, before any socket opens, so a bad
bundle is one clear error and no half-open endpoints.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.network import CurveClient, CurveServer
from camera_adapters.video import resize_rgb
from camera_adapters.wire import DEFAULT_LIMITS, EndOfStream, Frame, FrameLimits, restart_reason
from deg_live.bundle import Bundle, read_bundle
from deg_live.events import DEFAULT_EVENTS_ENDPOINT, EventMessage, EventPublisher, StateMessage
from deg_live.postprocess import CausalPostprocessor, Transition
from deg_live.processors import Processor
from deg_live.recorder import Recorder
from deg_live.telemetry import Telemetry, TelemetryPrinter

logger = logging.getLogger(__name__)

DEFAULT_FRAMES_ENDPOINT = "tcp://127.0.0.1:5555"


class PipelineError(UserFacingError, RuntimeError):
    """The pipeline cannot start or run as asked (inconsistent options, a recorder without a frame source)."""


@dataclass
class FrameResult:
    """What the pipeline made of one processed frame (handed to processors, returned by :meth:`step`).

    Attributes:
        frame_index: the camera's frame index.
        capture_time_ns: the frame's host capture time (``time.time_ns()`` clock).
        decision_time_ns: when the decisions were made.
        behaviours: K behaviour names.
        probs: ``(K,) float32`` probabilities.
        logits: ``(K,) float32`` the frame encoder's logits.
        decisions: ``(K,) bool`` after causal postprocessing.
        transitions: the onsets/offsets decided at this frame.
        events: the :class:`deg_live.events.EventMessage` sent for them (``publish_time_ns`` set).
        stream_id: the camera stream's id.
        frame: the received :class:`camera_adapters.wire.Frame` (pixels are a read-only view).
        timings: seconds per stage (see :mod:`deg_live.telemetry`).
        published_ns: when the state message was sent (0 if none was sent for this frame).
    """

    frame_index: int
    capture_time_ns: int
    decision_time_ns: int
    behaviours: list[str]
    probs: np.ndarray
    logits: np.ndarray
    decisions: np.ndarray
    transitions: list[Transition]
    events: list[EventMessage]
    stream_id: str | None
    frame: Frame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    published_ns: int = 0


class _QueueSource:
    """Frames handed over in-process to the recorder's thread (``every_frame`` mode): a bounded queue."""

    def __init__(self, maxsize: int = 256):
        self._queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self._ended: str | None = None

    def put(self, frame: Frame, timeout: float = 5.0) -> bool:
        try:
            self._queue.put(frame, timeout=timeout)
            return True
        except queue.Full:
            return False

    def end(self, reason: str) -> None:
        try:
            self._queue.put(EndOfStream(reason), timeout=5.0)
        except queue.Full:
            logger.error("recorder: its frame queue stayed full; the recording may miss the last frames")

    def recv(self, timeout: float | None = None) -> Frame | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, EndOfStream):
            raise item
        return item

    def close(self) -> None:
        pass


class LivePipeline:
    """A bundle running causally on one camera's frames; see the module docstring.

    Args:
        bundle: a bundle directory or an opened :class:`deg_live.bundle.Bundle` (read and verified first).
        frames_endpoint: the camera adapter's live endpoint (or its lossless endpoint with ``every_frame``).
        engine: an engine to use (not closed by the pipeline), or None to create one with ``backend``.
        backend: engine name or ``"auto"`` (see :func:`deg_live.engines.create_engine`).
        engine_options: passed to ``create_engine`` (``device``, ``precision`` ...).
        events_endpoint: where events (and, without ``state_endpoint``, state messages) are published.
        state_endpoint: a separate endpoint for state messages, or None to use ``events_endpoint``.
        camera_id: the camera whose frames to take (``frames/<camera_id>``) and whose topics to publish.
        every_frame: take every frame in order from a lossless endpoint instead of the newest.
        recorder: a :class:`deg_live.recorder.Recorder` to feed, or None.
        lossless_endpoint: the camera adapter's lossless endpoint for the recorder (required with a recorder,
            unless ``every_frame``: then the processed frames, which are all of them, are recorded).
        telemetry: where to count (a new :class:`deg_live.telemetry.Telemetry` if None).
        processors: closed-loop actions run per frame (closed by the pipeline).
        max_gap: a jump of more than this many frames (and more than 4x the effective stride) between processed
            frames resets the history.
        frame_size: ``(height, width)`` frames must have; None: the first frame of each stream sets it.
        idle_warn_s: warn when no frame arrived for this long.
        state_every: publish a state message every this many processed frames (1 = every frame).
        frame_limits: the largest frame accepted (:class:`camera_adapters.wire.FrameLimits`); larger ones are
            dropped before parsing and counted (``oversize``).
        allow_remote: allow the events/state endpoints to bind addresses other machines can reach.
        curve_server: CURVE keys and allowed clients for the events/state endpoints, or None.
        curve_frames: CURVE keys and the camera adapter's public key for the frame endpoints, or None.

    Raises:
        deg_live.bundle.BundleError: the bundle cannot be read (before any socket is opened).
        deg_live.engines.base.EngineError: no engine can run it here.
        PipelineError: inconsistent options.
    """

    def __init__(
        self,
        bundle: str | os.PathLike | Bundle,
        frames_endpoint: str = DEFAULT_FRAMES_ENDPOINT,
        *,
        engine: Any = None,
        backend: str = "auto",
        engine_options: dict[str, Any] | None = None,
        events_endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        state_endpoint: str | None = None,
        camera_id: str = "cam0",
        every_frame: bool = False,
        recorder: Recorder | None = None,
        lossless_endpoint: str | None = None,
        telemetry: Telemetry | None = None,
        processors: Sequence[Processor] = (),
        max_gap: int = 30,
        frame_size: tuple[int, int] | None = None,
        idle_warn_s: float = 2.0,
        state_every: int = 1,
        frame_limits: FrameLimits = DEFAULT_LIMITS,
        allow_remote: bool = False,
        curve_server: CurveServer | None = None,
        curve_frames: CurveClient | None = None,
    ) -> None:
        self._closed = False
        self._opened: list[Any] = []  # what close() must close, in reverse order
        self.processors = list(processors)
        if recorder is not None and lossless_endpoint is None and not every_frame:
            raise PipelineError(
                "recording needs every frame: give the camera adapter's lossless endpoint (--lossless ENDPOINT, "
                "started with deg-camera ... --lossless ENDPOINT), or use --every-frame"
            )
        # 1. The bundle and the engine, before any socket: a bad bundle is one clear error.
        self.bundle = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
        self.behaviours = self.bundle.behaviours
        self.postprocessor = CausalPostprocessor(self.bundle.thresholds, self.bundle.postprocess_settings())
        self.input_size = (int(self.bundle.input.height), int(self.bundle.input.width))
        self._own_engine = engine is None
        if engine is None:
            from deg_live.engines import create_engine  # lazy: backends import their frameworks

            engine = create_engine(self.bundle, backend, **(engine_options or {}))
        self.engine = engine
        try:
            self._stream = engine.stream()
        except Exception:
            if self._own_engine:
                engine.close()
            raise

        self.camera_id = camera_id
        self.frames_endpoint = frames_endpoint
        self.every_frame = every_frame
        self.max_gap = int(max_gap)
        self.frame_size = tuple(frame_size) if frame_size else None
        self.idle_warn_s = float(idle_warn_s)
        self.state_every = max(1, int(state_every))
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.telemetry.info.update(
            {
                "camera_id": camera_id,
                "bundle": str(self.bundle.directory),
                "preset": self.bundle.manifest.preset,
                "input_size": list(self.input_size),
                "frames_per_window": int(self.bundle.input.frames_per_window),
                "engine": _describe(engine),
                "every_frame": every_frame,
            }
        )
        self.recorder = recorder

        # Per-stream state.
        self._stream_id: str | None = None
        self._last_index: int | None = None
        self._stream_shape: tuple[int, int] | None = None
        self._stride_steps = 0
        self._stride_sum = 0
        self._base = {"skipped": 0, "lost": 0}
        self._last_frame_time = time.monotonic()
        self._last_idle_log = 0.0
        self._idle_logged = False
        self._wrong_size_logged = 0.0
        self._ended: EndOfStream | None = None
        self._record_queue: _QueueSource | None = None

        # 2. Sockets.
        try:
            from camera_adapters.subscriber import FrameSubscriber, LosslessReceiver

            remote = {"allow_remote": allow_remote, "curve": curve_server}
            self.publisher = EventPublisher(events_endpoint, camera_id, **remote)
            self._opened.append(self.publisher)
            self.state_publisher = self.publisher
            if state_endpoint and state_endpoint != events_endpoint:
                self.state_publisher = EventPublisher(
                    state_endpoint, camera_id, stream_id=self.publisher.stream_id, **remote
                )
                self._opened.append(self.state_publisher)
            receive = {"limits": frame_limits, "curve": curve_frames}
            if every_frame:
                self.frames = LosslessReceiver(frames_endpoint, camera_id, **receive)
            else:
                self.frames = FrameSubscriber(frames_endpoint, camera_id, **receive)
            self._opened.append(self.frames)
            if recorder is not None:
                if every_frame:
                    self._record_queue = _QueueSource()
                    recorder.start(self._record_queue)
                else:
                    recorder.start(LosslessReceiver(lossless_endpoint, camera_id, **receive))
        except BaseException:
            self._close_opened()
            if self._own_engine:
                engine.close()
            raise
        logger.info(
            "deg-live: %s (%s, %dx%d, T=%d) on %s; frames from %s%s; events on %s%s",
            self.bundle.directory.name,
            self.bundle.manifest.preset,
            self.input_size[1],
            self.input_size[0],
            self.bundle.input.frames_per_window,
            self.telemetry.info["engine"].get("backend", getattr(engine, "name", "?")),
            frames_endpoint,
            " (every frame, in order)" if every_frame else "",
            self.publisher.bound_endpoint,
            f", state on {self.state_publisher.bound_endpoint}" if self.state_publisher is not self.publisher else "",
        )

    # ------------------------------------------------------------------------------------------ lifecycle
    def warmup(self, iterations: int = 10) -> float:
        """Run the real per-frame path ``iterations`` times on blank frames, then reset; returns seconds taken."""
        t0 = time.perf_counter()
        blank = np.zeros((*self.input_size, 3), np.uint8)
        for i in range(max(1, iterations)):
            self._stream.push(blank, index=i)
        self._stream.reset()
        self.postprocessor.reset()
        seconds = time.perf_counter() - t0
        logger.info("warm-up: %d frames in %.2f s", iterations, seconds)
        return seconds

    def _take(self, timeout: float) -> Frame | None:
        if self.every_frame:
            return self.frames.recv(timeout=timeout)
        return self.frames.latest(timeout=timeout)

    def step(self, timeout: float = 0.5) -> FrameResult | None:
        """Take the newest frame (or the next one, with ``every_frame``) and process it.

        Args:
            timeout: seconds to wait for a frame.

        Returns:
            the :class:`FrameResult`, or None when no frame came in time or the frame was dropped (wrong size).

        Raises:
            camera_adapters.wire.EndOfStream: the camera adapter ended its stream (raised once per end).
        """
        self._check_open()
        try:
            frame = self._take(timeout)
        except EndOfStream as end:
            self._on_end(end)
            raise
        self._sync_counters()
        if frame is None:
            self._on_idle()
            return None
        self._ended = None
        return self.process_frame(frame)

    def _on_end(self, end: EndOfStream) -> None:
        if self._ended is None:
            logger.info("camera stream ended: %s (frame count %s)", end.reason, end.frame_count)
        self._ended = end  # a recording goes on: a new stream continues the same video (its rows say which)

    def _on_idle(self) -> None:
        now = time.monotonic()
        silent = now - self._last_frame_time
        if silent >= self.idle_warn_s and now - self._last_idle_log >= (10.0 if self._idle_logged else 0.0):
            self._last_idle_log = now
            self._idle_logged = True
            logger.warning(
                "no frames from %s (camera %r) for %.0f s; waiting (is the camera adapter running, with the same "
                "--camera id and endpoint?)",
                self.frames_endpoint,
                self.camera_id,
                silent,
            )

    def _sync_counters(self) -> None:
        t, f = self.telemetry, self.frames
        t.set_counter("received", f.received)
        t.set_counter("lost", f.gaps)
        t.set_counter("rejected", f.rejected)
        t.set_counter("oversize", f.oversize)
        t.set_counter("receiver_errors", f.errors)
        t.set_counter("skipped", getattr(f, "skipped", 0))
        if self.recorder is not None:
            t.set_counter("recorded", self.recorder.frames_written)
            t.set_counter("record_dropped", self.recorder.frames_dropped)

    # -------------------------------------------------------------------------------------------- a frame
    def _reset_stream(self, reason: str) -> None:
        self._stream.reset()
        self.postprocessor.reset()
        self._stride_steps = self._stride_sum = 0
        self._base = {"skipped": getattr(self.frames, "skipped", 0), "lost": self.frames.gaps}
        logger.warning("history reset: %s", reason)

    def process_frame(self, frame: Frame) -> FrameResult | None:
        """Process one received frame; returns None if it was dropped (wrong size, unreadable pixel format).

        :meth:`step` calls this; call it yourself to drive the pipeline with frames from elsewhere.
        """
        taken_ns = time.time_ns()
        if self._last_frame_time and self._idle_logged:
            logger.info("frames are arriving again")
        self._idle_logged = False
        self._last_frame_time = time.monotonic()
        timings: dict[str, float] = {}
        if frame.publish_time_ns and frame.receive_time_ns:
            timings["wire"] = (frame.receive_time_ns - frame.publish_time_ns) / 1e9
        if frame.receive_time_ns:
            timings["wait"] = (taken_ns - frame.receive_time_ns) / 1e9

        # Stream bookkeeping: a restart resets the history; a long gap too.
        if self._last_index is not None:
            why = restart_reason(self._stream_id, self._last_index, frame.stream_id, frame.index)
            if why is not None:
                self.telemetry.count("restarts")
                self._reset_stream(f"the camera stream restarted ({why})")
                self._stream_shape = None
                self._last_index = None
            else:
                jump = frame.index - self._last_index
                # Steady overload makes every step jump by the stride; only a jump well beyond it is a gap.
                stride = self._stride_sum / self._stride_steps if self._stride_steps else 1.0
                if jump - 1 > max(self.max_gap, 4 * stride):
                    self.telemetry.count("gap_resets")
                    self._reset_stream(f"{jump - 1} frames missing before frame {frame.index} (more than max_gap)")
                else:
                    self._stride_steps += 1
                    self._stride_sum += jump
                    self.telemetry.set_gauge("effective_stride", self._stride_sum / self._stride_steps)

        # Pixels: RGB at the stream's size.
        try:
            rgb = frame.to_rgb()
        except UserFacingError as err:
            self.telemetry.count("rejected")
            logger.warning("frame %d rejected: %s", frame.index, err)
            return None
        shape = rgb.shape[:2]
        want = self.frame_size or self._stream_shape
        if want is not None and shape != want:
            self.telemetry.count("wrong_size")
            now = time.monotonic()
            if now - self._wrong_size_logged > 5.0:
                self._wrong_size_logged = now
                logger.warning(
                    "frame %d is %dx%d but this stream's frames are %dx%d; dropped (%d so far)",
                    frame.index,
                    shape[1],
                    shape[0],
                    want[1],
                    want[0],
                    self.telemetry.counters["wrong_size"],
                )
            return None
        if self._stream_shape is None:
            self._stream_shape = shape
            self._stream_id = frame.stream_id
        self._last_index = frame.index

        if self._record_queue is not None and not self._record_queue.put(frame):
            self.telemetry.count("record_queue_full")

        # Resize (THE resize, as offline), infer, decide.
        t0 = time.perf_counter()
        if shape != self.input_size:
            rgb = resize_rgb(rgb, self.input_size)
        t1 = time.perf_counter()
        out = self._stream.push(rgb, index=frame.index)
        t2 = time.perf_counter()
        decisions, transitions = self.postprocessor.step(out.probs, frame.index)
        t3 = time.perf_counter()
        decision_ns = time.time_ns()
        timings["resize"] = t1 - t0
        for key in ("upload", "encoder", "sequence"):
            if key in out.timings:
                timings[key] = out.timings[key]
        timings["postprocess"] = t3 - t2

        # Publish: events first (the closed loop waits for them), then processors, then state.
        events = []
        for ev, sent in self.publisher.publish_transitions(
            self.behaviours, transitions, frame.capture_time_ns, decision_ns
        ):
            self.telemetry.count("events" if sent else "publish_dropped")
            events.append(ev)
        result = FrameResult(
            frame_index=frame.index,
            capture_time_ns=frame.capture_time_ns,
            decision_time_ns=decision_ns,
            behaviours=self.behaviours,
            probs=out.probs,
            logits=out.logits,
            decisions=decisions,
            transitions=transitions,
            events=events,
            stream_id=frame.stream_id,
            frame=frame,
            timings=timings,
        )
        for processor in self.processors:
            try:
                processor.process(result)
            except Exception:
                logger.exception("processor %s failed on frame %d", type(processor).__name__, frame.index)
        processed = self.telemetry.counters["processed"]
        if processed % self.state_every == 0:
            state = StateMessage(
                camera_id=self.camera_id,
                frame_index=frame.index,
                capture_time_ns=frame.capture_time_ns,
                decision_time_ns=decision_ns,
                behaviours=self.behaviours,
                probabilities=out.probs.tolist(),
                decisions=decisions.tolist(),
                skipped=getattr(self.frames, "skipped", 0) - self._base["skipped"],
                lost=self.frames.gaps - self._base["lost"],
                telemetry=self.telemetry.snapshot() if processed % 30 == 0 else {},
            )
            if not self.state_publisher.publish(state):
                self.telemetry.count("publish_dropped")
        done_ns = time.time_ns()
        result.published_ns = done_ns
        timings["publish"] = time.perf_counter() - t3
        if frame.capture_time_ns:
            timings["end_to_end"] = (done_ns - frame.capture_time_ns) / 1e9
        self.telemetry.record_frame(timings)

        if self.recorder is not None:
            self.recorder.write_outputs(
                frame.index,
                out.probs,
                decisions,
                out.logits,
                capture_time_ns=frame.capture_time_ns,
                decision_time_ns=decision_ns,
                stream_id=frame.stream_id,
            )
            for ev in events:
                self.recorder.write_event(ev)
        return result

    # ---------------------------------------------------------------------------------------------- loop
    def run(
        self,
        *,
        max_frames: int | None = None,
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        exit_at_end: bool = False,
        printer: TelemetryPrinter | None = None,
    ) -> dict[str, Any]:
        """Process frames until told to stop; returns the telemetry summary.

        Stops when ``stop`` is set, ``max_frames`` were processed, ``duration_s`` passed, or (with ``exit_at_end``)
        the camera stream ended. The pipeline is not closed: call :meth:`close` (or use ``with``).
        """
        stop = stop or threading.Event()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        start_count = self.telemetry.counters["processed"]
        while not stop.is_set():
            if max_frames is not None and self.telemetry.counters["processed"] - start_count >= max_frames:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                self.step(timeout=0.2)
            except EndOfStream:
                if exit_at_end:
                    break
                time.sleep(0.2)  # wait for a new stream
            if printer is not None:
                if self._idle_logged and time.monotonic() - self._last_frame_time >= self.idle_warn_s:
                    printer.maybe_print(f"waiting for frames from {self.frames_endpoint} ...")
                else:
                    printer.maybe_print()
        return self.telemetry.summary()

    # ---------------------------------------------------------------------------------------------- close
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise PipelineError("the pipeline is closed")

    def _close_opened(self) -> None:
        while self._opened:
            thing = self._opened.pop()
            try:
                thing.close()
            except Exception as err:
                logger.debug("closing %r: %s", thing, err)

    def close(self, status: str | None = None, telemetry_dir: str | Path | None = None) -> None:
        """Close everything (idempotent).

        Closes the frame input, the recorder (finalised, with the telemetry), publishers, processors, and the
        engine if the pipeline created it.

        Args:
            status: the recording's final status (``"complete"`` or ``"interrupted"``).
            telemetry_dir: also save ``telemetry.json``/``.csv`` here.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._sync_counters()
        except Exception as err:  # a half-constructed pipeline
            logger.debug("final counters: %s", err)
        if self._record_queue is not None:
            self._record_queue.end("pipeline closed")
            self._record_queue = None
        frames = getattr(self, "frames", None)
        if frames is not None and frames in self._opened:
            self._opened.remove(frames)
            frames.close()
        if self.recorder is not None:
            self.recorder.close(status, telemetry=self.telemetry)
        for processor in self.processors:
            try:
                processor.close()
            except Exception:
                logger.exception("closing processor %s", type(processor).__name__)
        self._close_opened()
        if telemetry_dir is not None:
            self.telemetry.save(telemetry_dir)
        if self._own_engine:
            self.engine.close()

    def __enter__(self) -> LivePipeline:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        self.close("interrupted" if exc_type is KeyboardInterrupt else None)


def _describe(engine: Any) -> dict[str, Any]:
    try:
        return dict(engine.describe())
    except Exception as err:  # describe() is informative only
        return {"backend": getattr(engine, "name", type(engine).__name__), "describe_error": str(err)}
