"""The recorder: every frame of the lossless path, plus predictions and events, as a project video folder.

``deg-live run --record DIR`` writes one *session* (default name ``<camera>_<YYYYmmdd_HHMMSS>``, UTC) laid out
like a DeepEthogram project video folder, so the session can be labelled and trained on later
(``deg-train add DIR/<session>/<session>.mp4``):

=================================  ==========================================================================
file                               contents
=================================  ==========================================================================
``<session>.mp4``                  every frame received on the lossless path, in arrival order, RGB.
                                   ``codec="lossless"`` (default): H.264 RGB (``libx264rgb``, ``qp=0``), every
                                   pixel exact; ``codec="high"``: H.264 yuv420p ``crf=15``, much smaller,
                                   plays anywhere. Fragmented MP4 (a fragment every 0.5 s, packets flushed
                                   as written), so a file cut short by a crash or a full disk is still
                                   readable up to its last fragment. Row ``i`` of the video = ``video_frame i``.
``<session>_frames.csv``           one row per video frame: ``video_frame, frame_index, source_frame,
                                   camera_timestamp_ns, capture_time_ns, publish_time_ns, receive_time_ns,
                                   stream_id`` (flushed once a second).
``<session>_outputs.h5``           group ``deg_live`` (DeepEthogram's outputs layout, one row per PROCESSED
                                   frame — equal to the video's rows when inference skipped nothing):
                                   ``P`` (M, K) float32 probabilities, ``decisions`` (M, K) uint8,
                                   ``logits`` (M, K) float32, ``frame_index`` (M,) int64,
                                   ``capture_time_ns`` / ``decision_time_ns`` (M,) int64, ``stream`` (M,)
                                   int32 (index into the group's ``stream_ids`` attribute), ``thresholds``
                                   (K,), ``class_names`` (K,); on finalising also ``video_frame`` (M,) int64,
                                   the video row holding each processed frame (-1 if it never reached the
                                   recorder). Appended and flushed once a second: after a crash the file is
                                   readable up to the last flush. Written and read through
                                   :mod:`deg_live.outputs` (:class:`~deg_live.outputs.OutputsAppender`).
``<session>_events.csv``           one row per onset/offset: ``camera_id, behaviour, kind, frame_index,
                                   bout_start_frame, probability, capture_time_ns, decision_time_ns,
                                   publish_time_ns, latency_ms, stream_id`` (flushed per event).
``<session>_telemetry.json/.csv``  the run's telemetry (:mod:`deg_live.telemetry`), written when it ends.
``<session>_recording.json``       what was recorded: schema_version, camera, bundle, behaviours, start/end
                                   times, frames written, status (``recording`` while running, then
                                   ``complete``, ``interrupted`` or ``failed``) and the failure message;
                                   ``frames_missing``/``index_gaps``: frames absent from the camera's
                                   numbering between recorded frames (lost at the camera or on the lossless
                                   path, or taken by a second receiver), also said in ``warnings``.
=================================  ==========================================================================

Threads: the video and the frames CSV are written by the recorder's own thread, which takes frames from the
lossless receiver (its own socket, flow-controlled by the camera adapter: nothing is dropped when inference is
overloaded, and if the recorder itself cannot keep up the camera adapter says so loudly). Predictions and events
are handed over by the pipeline's main loop and written there (buffered, an HDF5 append once a second).

A recording whose process was killed (SIGKILL, a power cut) stays at ``status: recording`` with its ballast
file behind. Whatever opens it next notices that the writer recorded in the summary (host, pid, process start
time) is gone: :func:`read_recording_info` (and :func:`read_recording`, the viewer's review) reports it as
``interrupted`` and removes the stale ballast; a tool that writes there (a new :class:`Recorder` in the same
directory, i.e. the next ``deg-live run --record``) also rewrites its summary as ``interrupted``
(:func:`repair_interrupted_recordings`). A summary from another host, or without a writer, is left as it is.

Faults: free space below ``min_free_bytes`` (checked before each frame and each HDF5 flush, so that HDF5 never
meets a full disk: it does not survive one) or any ``OSError`` while writing (ENOSPC, EFBIG, a vanished drive)
stops the recording loudly (an ERROR log line naming the file and what was kept) and leaves every file valid up
to what was written; inference and events go on. :meth:`Recorder.close` finalises everything and is idempotent; the run
command calls it from its SIGINT/SIGTERM handlers' path, so Ctrl-C and ``kill`` leave complete files.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as _dt
import errno
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text
from camera_adapters.wire import EndOfStream, Frame
from deg_live.outputs import OutputsAppender, OutputsError, RowColumn, read_group

logger = logging.getLogger(__name__)

RECORDING_SCHEMA_VERSION = 1
OUTPUTS_GROUP = "deg_live"
FRAME_COLUMNS = (
    "video_frame",
    "frame_index",
    "source_frame",
    "camera_timestamp_ns",
    "capture_time_ns",
    "publish_time_ns",
    "receive_time_ns",
    "stream_id",
)
EVENT_COLUMNS = (
    "camera_id",
    "behaviour",
    "kind",
    "frame_index",
    "bout_start_frame",
    "probability",
    "capture_time_ns",
    "decision_time_ns",
    "publish_time_ns",
    "latency_ms",
    "stream_id",
)
# codec name -> (FFmpeg encoder, pixel format, encoder options)
VIDEO_CODECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "lossless": ("libx264rgb", "rgb24", {"qp": "0", "preset": "ultrafast"}),
    "high": ("libx264", "yuv420p", {"crf": "15", "preset": "veryfast"}),
}
# Fragmented MP4 written as it goes: readable after a crash up to the last fragment.
_MP4_OPTIONS = {
    "movflags": "frag_every_frame+empty_moov+default_base_moof",
    "flush_packets": "1",
}
# The per-row datasets of the deg_live group, in the order of a buffered row.
_OUTPUT_DATASETS = (
    RowColumn("P", np.float32, per_behaviour=True),
    RowColumn("logits", np.float32, per_behaviour=True),
    RowColumn("decisions", np.uint8, per_behaviour=True),
    RowColumn("frame_index", np.int64),
    RowColumn("capture_time_ns", np.int64),
    RowColumn("decision_time_ns", np.int64),
    RowColumn("stream", np.int32),
)
_SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_MAX_CONSECUTIVE_ERRORS = 50  # unexpected errors in a row before the frame thread gives up (recording failed)


class RecorderError(UserFacingError, RuntimeError):
    """The recording cannot start (bad directory or session name, session exists, unknown codec)."""


class LosslessSource(Protocol):
    """What the recorder's thread reads frames from (:class:`camera_adapters.subscriber` lossless receiver)."""

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The next frame in order, None on timeout; raises EndOfStream when the publisher ended."""

    def close(self) -> None:
        """Release the socket."""


def default_session_name(camera_id: str) -> str:
    """``<camera>_<YYYYmmdd_HHMMSS>`` in UTC, with characters unsafe in file names replaced."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d_%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", camera_id) or "camera"
    return f"{safe}_{stamp}"


class _LowSpace(OSError):
    """Free space fell below the recorder's reserve: stop before a writer (HDF5 above all) hits ENOSPC."""


def _describe_os_error(err: BaseException) -> str:
    if isinstance(err, _LowSpace):
        return f"the disk is full ({err.strerror})"
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        return "the disk is full (ENOSPC)"
    if code == errno.EFBIG:
        return "a file size limit was reached (EFBIG)"
    if code == errno.EDQUOT:
        return "the disk quota is exceeded (EDQUOT)"
    return f"{type(err).__name__}: {err}"


class _VideoWriter:
    """One fragmented MP4 written frame by frame with PyAV; pts = video frame number at the nominal rate.

    ``on_disk`` counts the frames 0..n-1 whose packets are surely in the file: the encoder holds a few frames
    back (and with B-frames emits them out of order), and the MP4 muxer writes a packet's fragment only when the
    next packet arrives, so the last muxed packet is not yet on disk (nor, after a write error, the one whose
    fragment write failed). The frame table is written only up to ``on_disk``, so it never lists a frame the
    file lacks, even after a crash or a full disk.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, codec: str):
        encoder, pix_fmt, options = VIDEO_CODECS[codec]
        if pix_fmt == "yuv420p" and (width % 2 or height % 2):
            pix_fmt = "yuv444p"  # 4:2:0 needs even sizes
        self.path = path
        self.shape = (height, width, 3)
        self._container = av.open(str(path), mode="w", format="mp4", options=dict(_MP4_OPTIONS))
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self._rate = rate
            self._stream = self._container.add_stream(encoder, rate=rate)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
            self._stream.options = dict(options)
        except Exception:
            self._container.close()
            raise
        self.frames = 0  # frames handed to the encoder
        self.complete = 0  # frames 0..complete-1 were handed to the muxer
        self._muxed: set[int] = set()
        self._last: int | None = None  # frame number of the last muxed packet (its fragment is not written yet)

    def _mux(self, packets) -> None:
        for packet in packets:
            number = None
            if packet.pts is not None:  # in 1/rate units before muxing: the frame number
                number = round(float(packet.pts * packet.time_base * self._rate))
            self._container.mux(packet)
            if number is not None:
                self._muxed.add(number)
                self._last = number
        while self.complete in self._muxed:
            self._muxed.discard(self.complete)
            self.complete += 1

    @property
    def on_disk(self) -> int:
        """Frames 0..on_disk-1 are in the file."""
        return self.complete if self._last is None else min(self.complete, self._last)

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.frames
        self.frames += 1
        self._mux(self._stream.encode(frame))

    def close(self) -> None:
        container = self._container
        if container is None:
            return
        try:
            self._mux(self._stream.encode())
        finally:
            self._container = None
            container.close()
        self._last = None  # closed cleanly: every muxed packet is written

    def abandon(self) -> None:
        """Close without flushing the encoder (after a write error): keep what is on disk, write little more."""
        container, self._container = self._container, None
        if container is not None:
            try:
                container.close()
            except Exception as err:  # the disk is full: closing may fail too; what is there stays
                logger.debug("closing %s after a write error: %s", self.path, err)


class Recorder:
    """One recording session: video + frame table (from a lossless receiver), outputs HDF5, events CSV.

    Lifecycle: construct (creates the session folder and the outputs/events files), :meth:`start` with a
    lossless receiver (starts the frame thread), then from the pipeline :meth:`write_outputs` per processed frame
    and :meth:`write_event` per transition, and finally :meth:`close` (idempotent; also a context manager).

    Two writers, each owning its files: the frame thread owns the video and the frame table; the caller of
    ``write_outputs``/``write_event`` (the pipeline's main loop) owns the outputs HDF5 and the events CSV.

    A full disk: the recorder keeps a *ballast* file (``.<session>.ballast``, ``ballast_bytes`` of zeros) and
    deletes it at the first write error, so that every file can still be finalised properly (the video's last
    packets, the HDF5 metadata, the summary JSON) although the disk was full. Each writer then finishes its own
    files and drops (and counts) whatever comes later.

    Args:
        directory: the recording root; the session folder is created inside it.
        camera_id: the camera's name (for the session name and the metadata).
        behaviours: K behaviour names (from the bundle), ``background`` first.
        thresholds: (K,) thresholds (stored with the outputs).
        session: folder and file stem; default :func:`default_session_name`.
        codec: ``"lossless"`` or ``"high"`` (see the module docstring).
        fps: nominal frame rate for the video container when frames do not announce one.
        flush_s: how often buffered rows are written and flushed.
        ballast_bytes: space reserved for finalising after a full disk (0 = none).
        min_free_bytes: stop recording when the disk has less free space than this (default: ``ballast_bytes``),
            so that the HDF5 library never meets a full disk (it does not survive one well).
        metadata: extra JSON-safe facts kept in ``<session>_recording.json`` (bundle path, backend ...).

    Raises:
        RecorderError: unknown codec, bad session name, the session folder already holds a recording, or the
            disk has not even room for the ballast.
    """

    def __init__(
        self,
        directory: str | Path,
        camera_id: str,
        behaviours: Sequence[str],
        thresholds: Sequence[float] | np.ndarray,
        *,
        session: str | None = None,
        codec: str = "lossless",
        fps: float = 30.0,
        flush_s: float = 1.0,
        ballast_bytes: int = 8 << 20,
        min_free_bytes: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if codec not in VIDEO_CODECS:
            raise RecorderError(f"unknown recording codec {codec!r}; choose one of {', '.join(VIDEO_CODECS)}")
        session = session or default_session_name(camera_id)
        if not _SESSION_RE.match(session):
            raise RecorderError(
                f"session name {session!r} must be letters, digits, '.', '_' or '-' (at most 128 characters)"
            )
        self.camera_id = camera_id
        self.session = session
        self.behaviours = list(behaviours)
        self.thresholds = np.asarray(thresholds, dtype=np.float32)
        self.codec = codec
        self.fps = float(fps)
        self.flush_s = float(flush_s)
        self.min_free_bytes = int(ballast_bytes if min_free_bytes is None else min_free_bytes)
        self.folder = Path(directory) / session
        if Path(directory).is_dir():  # sessions left at "recording" by a killed process: mark them interrupted
            repair_interrupted_recordings(directory)
        if (self.folder / f"{session}_recording.json").exists():
            raise RecorderError(f"{self.folder} already holds a recording; choose another --session or directory")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RecorderError(f"cannot create the recording folder {self.folder}: {err}") from None
        self.video_path = self.folder / f"{session}.mp4"
        self.frames_path = self.folder / f"{session}_frames.csv"
        self.outputs_path = self.folder / f"{session}_outputs.h5"
        self.events_path = self.folder / f"{session}_events.csv"
        self.info_path = self.folder / f"{session}_recording.json"
        self.ballast_path = self.folder / f".{session}.ballast"

        self._lock = threading.Lock()
        self._closed = False
        self.failed: str | None = None  # set once when recording stops on an error
        self.frames_written = 0
        self.frames_dropped = 0  # frames after the recording had to stop, or of another size
        self.frames_missing = 0  # frames missing from the camera's numbering between recorded frames
        self.index_gaps = 0  # places where frames were missing
        self.thread_errors = 0  # unexpected errors in the frame thread (logged with a traceback, survived)
        self._last_recorded: tuple[str, int] | None = None  # (stream id, frame index) of the last frame written
        self._last_gap_log = 0.0
        self.outputs_written = 0
        self.events_written = 0
        self.started_unix = time.time()
        self._metadata = dict(metadata or {})
        self._status = "recording"

        self._video: _VideoWriter | None = None
        self._thread: threading.Thread | None = None
        self._source: LosslessSource | None = None
        self._stop = threading.Event()
        self._drain_deadline = 0.0
        self._stop_time_ns = 0
        self.source_ended: str | None = None
        self._frame_side_done = False
        self._main_side_done = False
        self._video_broken = False
        self._pending: collections.deque[tuple] = collections.deque()  # frame rows not yet complete in the video

        # Buffered outputs rows (main thread), flushed to HDF5 once a second.
        self._rows: list[tuple] = []
        self._stream_ids: list[str] = []
        self._last_flush = time.monotonic()
        self._frames_file = self._events_file = None
        self._h5: OutputsAppender | None = None

        try:
            if ballast_bytes > 0:
                with open(self.ballast_path, "wb") as f:
                    f.truncate(0)
                    chunk = b"\0" * min(ballast_bytes, 1 << 20)
                    left = ballast_bytes
                    while left > 0:
                        left -= f.write(chunk[: min(left, len(chunk))])
                    f.flush()
            self._frames_file = open(self.frames_path, "w", newline="", encoding="utf-8")
            self._frames_csv = csv.writer(self._frames_file)
            self._frames_csv.writerow(FRAME_COLUMNS)
            self._frames_file.flush()
            self._frames_last_flush = time.monotonic()
            self._events_file = open(self.events_path, "w", newline="", encoding="utf-8")
            self._events_csv = csv.writer(self._events_file)
            self._events_csv.writerow(EVENT_COLUMNS)
            self._events_file.flush()
            self._h5 = self._create_outputs()
            self._write_info()
        except (OSError, OutputsError) as err:
            self._finish_frame_side()
            self._finish_main_side()
            self._remove_ballast()
            why = str(err) if isinstance(err, OutputsError) else _describe_os_error(err)
            raise RecorderError(f"cannot start the recording in {self.folder}: {why}") from None

    # ------------------------------------------------------------------------------------------------ setup
    def _create_outputs(self) -> OutputsAppender:
        """The outputs file with an empty ``deg_live`` group; :mod:`deg_live.outputs` owns its layout."""
        return OutputsAppender(
            self.outputs_path,
            OUTPUTS_GROUP,
            behaviours=self.behaviours,
            thresholds=self.thresholds,
            columns=_OUTPUT_DATASETS,
            schema_version=RECORDING_SCHEMA_VERSION,
            producer="deg_live",
            # stream_ids: a JSON list as a plain string (recordings have always stored it so)
            attrs={
                "rows": "processed frames (see frame_index); equal to video rows when nothing was skipped",
                "stream_ids": "[]",
            },
        )

    def _write_info(self) -> None:
        info = {
            "schema_version": RECORDING_SCHEMA_VERSION,
            "session": self.session,
            "camera_id": self.camera_id,
            "behaviours": self.behaviours,
            "thresholds": [float(x) for x in self.thresholds],
            "codec": self.codec,
            "started": _dt.datetime.fromtimestamp(self.started_unix, _dt.timezone.utc).isoformat(timespec="seconds"),
            "finished": None,
            "status": self._status,
            "failure": self.failed,
            "frames_written": self.frames_written,
            "frames_dropped": self.frames_dropped,
            "frames_missing": self.frames_missing,
            "index_gaps": self.index_gaps,
            "thread_errors": self.thread_errors,
            "warnings": self._warnings(),
            "outputs_written": self.outputs_written,
            "events_written": self.events_written,
            "source_ended": self.source_ended,
            "writer": _writer_identity(),
            "files": {
                "video": self.video_path.name,
                "frames": self.frames_path.name,
                "outputs": self.outputs_path.name,
                "events": self.events_path.name,
            },
            **self._metadata,
        }
        if self._status != "recording":
            info["finished"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write_text(self.info_path, json.dumps(info, indent=2) + "\n")

    # ------------------------------------------------------------------------------------------- frames
    def start(self, source: LosslessSource) -> None:
        """Start the frame thread reading ``source`` (the lossless receiver; the recorder closes it)."""
        if self._thread is not None:
            raise RuntimeError("the recorder is already started")
        self._source = source
        self._thread = threading.Thread(target=self._frame_loop, name="deg-live-recorder", daemon=True)
        self._thread.start()

    def _warnings(self) -> list[str]:
        """What a reader of the summary must know about frames this recording lacks."""
        out = []
        if self.frames_missing:
            out.append(
                f"{self.frames_missing} frames are missing from the camera's numbering in {self.index_gaps} places: "
                "lost at the camera, dropped on the lossless path, or taken by a second receiver on the lossless "
                "endpoint (see the frame table's frame_index)"
            )
        if self.thread_errors:
            out.append(f"{self.thread_errors} unexpected errors in the recorder's frame thread (see the log)")
        return out

    def _note_recorded(self, frame: Frame) -> None:
        """Count the frames missing between this recorded frame and the previous one of the same stream."""
        stream = frame.stream_id or ""
        last = self._last_recorded
        if last is not None and last[0] == stream and frame.index > last[1] + 1:
            missing = frame.index - last[1] - 1
            self.frames_missing += missing
            self.index_gaps += 1
            now = time.monotonic()
            if now - self._last_gap_log > 1.0:
                self._last_gap_log = now
                logger.error(
                    "recorder: %d frames missing before frame %d (%d missing so far in %d places); the recording's "
                    "summary says so. Is a second receiver connected to the lossless endpoint?",
                    missing,
                    frame.index,
                    self.frames_missing,
                    self.index_gaps,
                )
        self._last_recorded = (stream, frame.index)

    def _frame_loop(self) -> None:
        """The frame thread: never dies silently; an error that stops it marks the recording failed."""
        try:
            self._receive_and_write()
        except BaseException as err:
            logger.exception("recorder: the frame thread STOPPED")
            self._fail(err, self.video_path)
            try:
                self._finish_frame_side()
            except Exception:
                logger.exception("recorder: finalising the video after the frame thread stopped")

    def _thread_error(self, what: str, frame: Frame | None) -> None:
        """An unexpected error in the frame thread (call from ``except``): logged with its traceback, counted."""
        self.thread_errors += 1
        logger.exception(
            "RECORDER: UNEXPECTED ERROR %s%s (%d so far); the frame thread goes on",
            what,
            "" if frame is None else f" frame {frame.index}",
            self.thread_errors,
        )

    def _receive_and_write(self) -> None:
        """Write every frame the source gives, across stream ends and restarts, until :meth:`close`.

        On close, the frames captured before the stop request that are still on their way are written too (up to
        a deadline): the lossless path may lag behind inference. An unexpected error is logged, counted and
        survived; ``_MAX_CONSECUTIVE_ERRORS`` in a row stop the recording (marked failed).
        """
        source = self._source
        consecutive = 0
        while True:
            if consecutive >= _MAX_CONSECUTIVE_ERRORS:
                raise RuntimeError(f"{consecutive} unexpected errors in a row in the recorder's frame thread")
            stopping = self._stop.is_set()
            if stopping and time.monotonic() > self._drain_deadline:
                logger.warning("recorder: stopped draining after the deadline; later frames were not recorded")
                break
            try:
                frame = source.recv(timeout=0.2)
            except EndOfStream as end:
                self.source_ended = end.reason
                logger.info("recorder: the frame stream ended (%s); %d frames", end.reason, self.frames_written)
                if stopping or self._stop.is_set():
                    break
                continue  # a new stream may follow (the camera adapter restarted): keep recording
            except UserFacingError as err:
                if getattr(err, "fatal", False):  # refused by the camera: another receiver records this stream
                    self._fail(err, self.video_path)
                    break
                logger.warning("recorder: %s", err)  # a malformed message: the receiver counts it; keep going
                continue
            except Exception as err:
                if self._stop.is_set():  # the receiver was closed under us by close()
                    logger.debug("recorder: receiver stopped: %s", err)
                    break
                consecutive += 1
                self._thread_error("receiving", None)
                time.sleep(0.05)  # an error that repeats at once must not spin
                continue
            if frame is None:
                if self._stop.is_set():
                    break  # nothing more on its way
                if self.failed is not None:
                    self._finish_frame_side()
                continue
            if self._stop.is_set() and frame.capture_time_ns > self._stop_time_ns:
                break  # captured after the stop request: not part of this recording
            try:
                self.write_frame(frame)
                consecutive = 0
            except Exception:
                consecutive += 1
                self.frames_dropped += 1
                self._thread_error("writing", frame)
        self._flush_frames(force=True)

    def write_frame(self, frame: Frame) -> bool:
        """Append one frame to the video and the frame table (the frame thread calls this; public for tests).

        Returns:
            True if written; False if the recording has stopped or the frame does not fit the video's size.
        """
        if self.failed is not None or self._frame_side_done:
            self.frames_dropped += 1
            self._finish_frame_side()
            return False
        try:
            rgb = np.ascontiguousarray(frame.to_rgb())
        except UserFacingError as err:
            logger.warning("recorder: frame %d not recorded: %s", frame.index, err)
            self.frames_dropped += 1
            return False
        try:
            self._check_space()
            if self._video is None:
                fps = frame.fps if frame.fps else self.fps
                self._video = _VideoWriter(self.video_path, rgb.shape[1], rgb.shape[0], fps, self.codec)
            if rgb.shape != self._video.shape:
                if self.frames_dropped == 0:
                    logger.error(
                        "recorder: frame %d is %s but the video is %s; frames of another size are not recorded",
                        frame.index,
                        rgb.shape,
                        self._video.shape,
                    )
                self.frames_dropped += 1
                return False
            self._pending.append(
                (
                    self._video.frames,
                    frame.index,
                    "" if frame.source_frame is None else frame.source_frame,
                    "" if frame.camera_timestamp_ns is None else frame.camera_timestamp_ns,
                    frame.capture_time_ns,
                    "" if frame.publish_time_ns is None else frame.publish_time_ns,
                    "" if frame.receive_time_ns is None else frame.receive_time_ns,
                    frame.stream_id or "",
                )
            )
            self._video.write(rgb)
            self._note_recorded(frame)
            self._write_complete_rows()
            self._flush_frames()
        except OSError as err:
            if not isinstance(err, _LowSpace):
                self._video_broken = True  # a write into the video failed: do not write to it again
            self._fail(err, self.video_path)
            self._finish_frame_side()
            return False
        return True

    def _check_space(self) -> None:
        """Raise :class:`_LowSpace` when free space is below ``min_free_bytes``."""
        if self.min_free_bytes <= 0:
            return
        free = shutil.disk_usage(self.folder).free
        if free < self.min_free_bytes:
            raise _LowSpace(
                errno.ENOSPC, f"{free / 1e6:.2f} MB free, below the {self.min_free_bytes / 1e6:.2f} MB reserve"
            )

    def _write_complete_rows(self) -> None:
        """Frame-table rows of the frames now completely in the video file."""
        complete = self._video.on_disk if self._video is not None else 0
        while self._pending and self._pending[0][0] < complete:
            self._frames_csv.writerow(self._pending.popleft())
            self.frames_written += 1

    def _flush_frames(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._frames_last_flush < self.flush_s:
            return
        self._frames_last_flush = now
        f = self._frames_file
        if self.failed is None and f is not None and not f.closed:
            try:
                f.flush()
            except OSError as err:
                self._fail(err, self.frames_path)
                self._finish_frame_side()

    def _finish_frame_side(self) -> None:
        """Finalise the video and the frame table (frame thread, or close() after the thread ended)."""
        if self._frame_side_done:
            return
        self._frame_side_done = True
        if self._video is not None:
            if not self._video_broken:
                try:
                    self._video.close()  # flushes the encoder: its last frames go in
                except OSError as err:
                    self._fail(err, self.video_path)
            # After a write error in the video itself: no encoder flush, just close what is there.
            self._video.abandon()
        try:
            if self._frames_file is not None and self._video is not None:
                self._write_complete_rows()
        except OSError as err:
            self._fail(err, self.frames_path)
        self.frames_dropped += len(self._pending)
        self._pending.clear()
        f, self._frames_file = self._frames_file, None
        if f is not None:
            try:
                f.close()
            except OSError as err:
                self._fail(err, self.frames_path)

    # ------------------------------------------------------------------------------------ predictions
    def write_outputs(
        self,
        frame_index: int,
        probs: np.ndarray,
        decisions: np.ndarray,
        logits: np.ndarray | None = None,
        *,
        capture_time_ns: int = 0,
        decision_time_ns: int = 0,
        stream_id: str | None = None,
    ) -> None:
        """Buffer one processed frame's outputs (written to HDF5 at most ``flush_s`` later).

        Args:
            frame_index: the camera's frame index.
            probs: ``(K,)`` probabilities.
            decisions: ``(K,)`` bool decisions after postprocessing.
            logits: ``(K,)`` the encoder's logits, or None (stored as NaN).
            capture_time_ns: the frame's capture time (host clock).
            decision_time_ns: when the decision was made (host clock).
            stream_id: the camera stream the frame came from.
        """
        if self.failed is not None or self._main_side_done:
            self._finish_main_side()
            return
        sid = stream_id or ""
        if sid not in self._stream_ids:
            self._stream_ids.append(sid)
        k = len(self.behaviours)
        self._rows.append(
            (
                np.asarray(probs, np.float32),
                np.full(k, np.nan, np.float32) if logits is None else np.asarray(logits, np.float32),
                np.asarray(decisions, np.uint8),
                int(frame_index),
                int(capture_time_ns),
                int(decision_time_ns),
                self._stream_ids.index(sid),
            )
        )
        self.maybe_flush()

    def write_event(self, event: Any) -> None:
        """Append one onset/offset to the events CSV (an :class:`deg_live.events.EventMessage` or a mapping)."""
        if self.failed is not None or self._main_side_done:
            self._finish_main_side()
            return
        data = dataclasses.asdict(event) if dataclasses.is_dataclass(event) else dict(event)
        try:
            self._events_csv.writerow(["" if data.get(c) is None else data.get(c) for c in EVENT_COLUMNS])
            self._events_file.flush()
            self.events_written += 1
        except OSError as err:
            self._fail(err, self.events_path)
            self._finish_main_side()

    def maybe_flush(self, force: bool = False) -> None:
        """Write buffered outputs to HDF5 and flush it if ``flush_s`` has passed (or ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.flush_s:
            return
        self._last_flush = now
        if self.failed is not None:
            self._finish_main_side()
            return
        try:
            self._check_space()
            self._write_rows()
        except OSError as err:
            self._fail(err, self.outputs_path)
            self._finish_main_side()

    def _write_rows(self) -> None:
        if not self._rows or self._h5 is None:
            return
        rows, self._rows = self._rows, []
        n = self._h5.append(rows)
        self._h5.set_attr("stream_ids", json.dumps(self._stream_ids))
        self._h5.flush()
        self.outputs_written += n

    def _finish_main_side(self) -> None:
        """Finalise the outputs (the rows still buffered included) and the events CSV (pipeline thread)."""
        if self._main_side_done:
            return
        self._main_side_done = True
        try:
            self._write_rows()  # after a failure the ballast's room keeps these
        except OSError as err:
            self._fail(err, self.outputs_path)
        h5, self._h5 = self._h5, None
        if h5 is not None:
            try:
                h5.close()
            except Exception as err:  # h5py raises RuntimeError/OSError on a failed metadata write
                self._fail(err, self.outputs_path)
        f, self._events_file = self._events_file, None
        if f is not None:
            try:
                f.close()
            except OSError as err:
                self._fail(err, self.events_path)

    # ------------------------------------------------------------------------------------------ faults
    def _fail(self, err: BaseException, path: Path) -> None:
        """Stop recording (once): free the ballast, say so loudly, mark the summary ``failed``."""
        with self._lock:
            if self.failed is not None:
                return
            self.failed = f"writing {path.name}: {_describe_os_error(err)}"
        self._remove_ballast()
        logger.error(
            "RECORDING STOPPED: %s. Kept %d video frames and %d output rows in %s (valid up to there); "
            "inference and events go on. Free space and start a new recording.",
            self.failed,
            self.frames_written,
            self.outputs_written,
            self.folder,
        )
        self._status = "failed"
        try:
            self._write_info()
        except OSError as info_err:
            logger.error("recorder: could not update %s: %s", self.info_path, _describe_os_error(info_err))

    def _remove_ballast(self) -> None:
        try:
            self.ballast_path.unlink(missing_ok=True)
        except OSError as err:
            logger.debug("removing the ballast file: %s", err)

    # --------------------------------------------------------------------------------------- finalise
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    @property
    def status(self) -> str:
        """``recording``, then ``complete``, ``interrupted`` or ``failed``."""
        return self._status

    def close(self, status: str | None = None, telemetry: Any = None, timeout: float = 30.0) -> None:
        """Finalise every file (idempotent).

        Stops the frame thread (after it wrote what it had), flushes the video, writes the last outputs,
        ``video_frame``, telemetry and the recording summary.

        Args:
            status: ``"complete"`` (default), or ``"interrupted"`` (Ctrl-C/SIGTERM); ``"failed"`` is set for you
                after a write error.
            telemetry: a :class:`deg_live.telemetry.Telemetry` to save beside the recording, or None.
            timeout: seconds to wait for the frame thread to write the frames captured before this call that are
                still on their way (the lossless path may lag behind inference).
        """
        if self._closed:
            return
        self._closed = True
        self._drain_deadline = time.monotonic() + max(timeout - 2.0, 1.0)
        self._stop_time_ns = time.time_ns()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("recorder: the frame thread did not stop within %.0f s", timeout)
        if self._source is not None:
            try:
                self._source.close()
            except Exception as err:
                logger.debug("closing the lossless receiver: %s", err)
        if self._thread is None or not self._thread.is_alive():
            self._finish_frame_side()
        if self.failed is None:
            try:
                self._write_rows()
                self._write_video_frame_column()
            except OSError as err:
                self._fail(err, self.outputs_path)
        self._finish_main_side()
        self._status = "failed" if self.failed else (status or "complete")
        try:
            if telemetry is not None:
                telemetry.save(self.folder, prefix=f"{self.session}_")
            self._write_info()
        except OSError as err:
            logger.error(
                "recorder: could not write the recording summary in %s: %s", self.folder, _describe_os_error(err)
            )
        self._remove_ballast()
        for warning in self._warnings():
            logger.error("recording %s: %s", self.session, warning)
        logger.info(
            "recording %s: %s, %d frames, %d output rows, %d events in %s",
            self.session,
            self._status,
            self.frames_written,
            self.outputs_written,
            self.events_written,
            self.folder,
        )

    def _write_video_frame_column(self) -> None:
        """Add ``video_frame`` to the outputs: which video row holds each processed frame (-1: not recorded)."""
        if self._h5 is None:
            return
        lookup: dict[tuple[str, int], int] = {}
        with open(self.frames_path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if len(row) == len(FRAME_COLUMNS):
                    lookup[(row[7], int(row[1]))] = int(row[0])
        index = self._h5.column("frame_index")
        stream = self._h5.column("stream")
        ids = self._stream_ids
        video_frame = np.array(
            [lookup.get((ids[s] if 0 <= s < len(ids) else "", int(i)), -1) for i, s in zip(index, stream)], np.int64
        )
        self._h5.put("video_frame", video_frame)
        self._h5.flush()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        self.close("interrupted" if exc_type is KeyboardInterrupt else None)


# ---------------------------------------------------------------------------------------------------------------
# Recordings whose process was killed
# ---------------------------------------------------------------------------------------------------------------


def _process_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of process ``pid`` from Linux's /proc; None elsewhere."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on; the name may hold spaces
        return fields[0], int(fields[19])  # state, starttime (the 22nd field)
    except (OSError, ValueError, IndexError):
        return None


def _writer_identity() -> dict[str, Any]:
    """Who writes this recording: enough to tell later whether that process still runs (pid reuse included)."""
    pid = os.getpid()
    stat = _process_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "process_start": stat[1] if stat else None}


def writer_alive(writer: Any) -> bool | None:
    """Whether the process recorded as a recording's ``writer`` still runs here.

    Returns:
        True or False; None when it cannot be told (no writer recorded, or it ran on another host).
    """
    if not isinstance(writer, dict) or writer.get("host") != socket.gethostname():
        return None
    pid, start = writer.get("pid"), writer.get("process_start")
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid < 2**22:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process of that pid exists; its start time below tells whether it is ours
    except OSError:
        return None
    stat = _process_stat(pid)
    if stat is None:
        return True  # no /proc: the pid exists, assume it is the writer
    state, started = stat
    if state in ("Z", "X"):
        return False  # killed, not yet reaped by its parent
    return start is None or started == start  # a different start time: the pid was reused


def read_recording_info(folder: str | Path, *, repair: bool = False) -> dict[str, Any]:
    """A session's summary (``<session>_recording.json``), with a killed recording reported as interrupted.

    A summary at ``status: recording`` whose writer process is gone (see :func:`writer_alive`) comes back with
    ``status: interrupted`` and an ``interruption`` message; its stale ballast file is removed. With ``repair``
    (tools that write there) the summary file is rewritten so.

    Raises:
        RecorderError: no summary, or it is not a JSON object.
    """
    folder = Path(folder)
    path = folder / f"{folder.name}_recording.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise RecorderError(f"{path}: cannot read the recording summary ({str(err)[:200]})") from None
    if not isinstance(info, dict):
        raise RecorderError(f"{path}: the recording summary is not a JSON object")
    if info.get("status") != "recording" or writer_alive(info.get("writer")) is not False:
        return info
    writer = info["writer"]
    info["status"] = "interrupted"
    info["interruption"] = (
        f"the recording process (pid {writer['pid']} on {writer['host']}) ended without finalising it (killed or "
        "crashed); every file is readable up to its last flush"
    )
    ballast = folder / f".{folder.name}.ballast"
    try:
        ballast.unlink(missing_ok=True)
    except OSError as err:
        logger.warning("could not remove the stale ballast file %s: %s", ballast, err)
    if repair:
        try:
            atomic_write_text(path, json.dumps(info, indent=2) + "\n")
            logger.warning("recording %s was interrupted (%s); its summary now says so", folder, info["interruption"])
        except OSError as err:
            logger.warning("could not mark %s as interrupted: %s", path, _describe_os_error(err))
    return info


def repair_interrupted_recordings(directory: str | Path) -> list[Path]:
    """Mark every session under ``directory`` whose writer is gone as ``interrupted``; returns those sessions.

    See :func:`read_recording_info`. Unreadable summaries are skipped with a warning.
    """
    repaired = []
    for info_path in sorted(Path(directory).glob("*/*_recording.json")):
        folder = info_path.parent
        if info_path.name != f"{folder.name}_recording.json":
            continue
        try:
            before = json.loads(info_path.read_text(encoding="utf-8")).get("status")
            if before == "recording" and read_recording_info(folder, repair=True).get("status") == "interrupted":
                repaired.append(folder)
        except (OSError, ValueError, AttributeError, RecursionError, RecorderError) as err:
            logger.warning("skipping %s: %s", info_path, str(err)[:200])
    return repaired


def read_recording(folder: str | Path) -> dict[str, Any]:
    """Load a recording's summary, frame table, outputs and events (for tests and quick looks).

    A recording left at ``status: recording`` by a process that is gone is reported as ``interrupted`` (see
    :func:`read_recording_info`).

    Returns:
        dict with ``info`` (the summary JSON), ``frames`` (dict of column -> array), ``outputs`` (dict of
        dataset -> array) and ``events`` (list of row dicts).
    """
    folder = Path(folder)
    session = folder.name
    info = read_recording_info(folder)
    frames: dict[str, list] = {c: [] for c in FRAME_COLUMNS}
    with open(folder / f"{session}_frames.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for c in FRAME_COLUMNS:
                frames[c].append(row[c])
    frame_arrays = {
        c: (np.array([int(v) if v != "" else -1 for v in values], np.int64) if c != "stream_id" else values)
        for c, values in frames.items()
    }
    outputs, attrs = read_group(folder / f"{session}_outputs.h5", OUTPUTS_GROUP)
    outputs["stream_ids"] = json.loads(attrs["stream_ids"])
    with open(folder / f"{session}_events.csv", newline="", encoding="utf-8") as f:
        events = list(csv.DictReader(f))
    return {"info": info, "frames": frame_arrays, "outputs": outputs, "events": events}
