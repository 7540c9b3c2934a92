"""The viewer's ZeroMQ side: a thread that drains state and event messages into a :class:`Timeline` (no Qt).

The viewer must never slow inference: the pipeline's PUB socket never blocks (it drops for a subscriber whose
queue is full), this receiver's SUB sockets keep only a small queue (``rcvhwm``), and this thread drains them
continuously whatever the GUI does. A frozen GUI therefore loses viewer messages (counted from the ``seq``
gaps as ``missed_messages``), never pipeline time. Frames come through
:class:`camera_adapters.subscriber.FrameSubscriber`, whose own thread keeps only the newest frame: the GUI
takes it at its redraw rate, which decimates the camera stream to what is drawn.

Example::

    with StreamReceiver("tcp://127.0.0.1:5560", frames="tcp://127.0.0.1:5555") as rx:
        snap = rx.timeline.snapshot(600)      # newest 600 frames, or None before the first state
        frame = rx.latest_frame()             # newest camera frame not yet drawn, or None
"""

from __future__ import annotations

import logging
import threading

import zmq

from camera_adapters.network import secure_client
from camera_adapters.wire import EndOfStream, Frame
from deg_live.events import (
    EVENT_TOPIC_PREFIX,
    MAX_MESSAGE_BYTES,
    STATE_TOPIC_PREFIX,
    EndpointError,
    EventMessage,
    MessageError,
    StateMessage,
    decode_message,
)
from deg_live.viewer.timeline import Timeline

logger = logging.getLogger(__name__)


class StreamReceiver:
    """Subscribes to a pipeline's state (and events, and optionally camera frames) for the viewer.

    Args:
        state: endpoint publishing ``state/<camera>`` (deg-live run's ``--state``, or its ``--events`` endpoint).
        events: endpoint publishing ``events/<camera>``; None or the same as ``state`` uses one socket for both.
        frames: a camera adapter's live frame endpoint, or None for no picture.
        camera_id: only this camera (None: the first camera whose state arrives is fine, any is accepted).
        capacity: frames the timeline keeps.
        rcvhwm: messages ZeroMQ queues per socket before dropping (small: a slow viewer loses its own messages).
        curve: CURVE keys for the state/events endpoints (:class:`camera_adapters.network.CurveClient`), or None.
        frames_curve: CURVE keys for the frame endpoint (the camera adapter's public key), or None.

    Raises:
        EndpointError: an endpoint is malformed.
    """

    def __init__(
        self,
        state: str,
        events: str | None = None,
        frames: str | None = None,
        *,
        camera_id: str | None = None,
        capacity: int = 8192,
        rcvhwm: int = 100,
        curve=None,
        frames_curve=None,
    ):
        self.state_endpoint = state
        self.events_endpoint = events or state
        self.frames_endpoint = frames
        self.camera_id = camera_id
        self.rcvhwm = rcvhwm
        self.curve = curve
        self.timeline = Timeline(capacity)
        self.rejected = 0
        self.frames_ended: str | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._frames = None
        self._thread = threading.Thread(target=self._run, name="viewer-receiver", daemon=True)
        self._thread.start()
        self._ready.wait(5.0)
        if self._error is not None:
            self._thread.join(1.0)
            raise self._error
        if frames:
            from camera_adapters.subscriber import FrameSubscriber

            try:
                self._frames = FrameSubscriber(frames, camera_id=camera_id, curve=frames_curve)
            except Exception:
                self.close()
                raise

    # ----------------------------------------------------------------------------------------- thread
    def _sockets(self, ctx: zmq.Context) -> list[zmq.Socket]:
        suffix = self.camera_id or ""
        plan: dict[str, list[str]] = {self.state_endpoint: [STATE_TOPIC_PREFIX + suffix]}
        plan.setdefault(self.events_endpoint, []).append(EVENT_TOPIC_PREFIX + suffix)
        sockets = []
        for endpoint, topics in plan.items():
            sock = ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
            sock.setsockopt(zmq.MAXMSGSIZE, 4 * MAX_MESSAGE_BYTES)
            try:
                secure_client(sock, self.curve)
                sock.connect(endpoint)
            except BaseException as err:
                sock.close(0)
                for s in sockets:
                    s.close(0)
                if isinstance(err, zmq.ZMQError):
                    raise EndpointError(f"viewer: cannot connect to {endpoint!r}: {err}") from None
                raise
            for topic in topics:
                sock.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
            sockets.append(sock)
        return sockets

    def _wanted(self, topic: bytes) -> bool:
        if self.camera_id is None:
            return True
        name = topic.decode("utf-8", errors="replace").split("/", 1)[-1]
        return name == self.camera_id  # ZeroMQ matches prefixes: cam1 would also get cam10

    def _run(self) -> None:
        ctx = zmq.Context()
        sockets: list[zmq.Socket] = []
        try:
            try:
                sockets = self._sockets(ctx)
            except BaseException as err:  # reported to the constructor
                self._error = err
                return
            finally:
                self._ready.set()
            poller = zmq.Poller()
            for sock in sockets:
                poller.register(sock, zmq.POLLIN)
            while not self._stop.is_set():
                for sock, _ in poller.poll(100):
                    while True:  # drain: never leave a backlog in the socket
                        try:
                            parts = sock.recv_multipart(flags=zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if not parts or not self._wanted(parts[0]):
                            continue
                        try:
                            msg = decode_message(parts)
                        except MessageError as err:
                            self.rejected += 1
                            if self.rejected == 1 or self.rejected % 100 == 0:
                                logger.warning(
                                    "viewer: ignored a malformed message (%d so far): %s", self.rejected, err
                                )
                            continue
                        if isinstance(msg, StateMessage):
                            self.timeline.add_state(msg)
                        elif isinstance(msg, EventMessage):
                            self.timeline.add_event(msg)
        finally:
            for sock in sockets:
                sock.close(0)
            ctx.term()

    # ----------------------------------------------------------------------------------------- frames
    def latest_frame(self) -> Frame | None:
        """The newest camera frame not returned before (None if none arrived since, or no frame endpoint)."""
        if self._frames is None:
            return None
        try:
            frame = self._frames.latest(timeout=0)
        except EndOfStream as end:
            self.frames_ended = end.reason
            return None
        if frame is not None:
            self.frames_ended = None
        return frame

    # ----------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        """Stop the thread and close every socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(2.0)
        if self._frames is not None:
            self._frames.close()
            self._frames = None

    def __enter__(self) -> StreamReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
