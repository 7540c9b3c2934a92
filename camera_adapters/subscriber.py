"""Receiving frames: :class:`FrameSubscriber` (live, newest frame) and :class:`LosslessReceiver` (every frame).

``FrameSubscriber`` connects a SUB socket to a publisher's live endpoint and runs a receiver thread that
always drains the socket, so the consumer never works on a stale backlog::

    with FrameSubscriber("tcp://127.0.0.1:5555", camera_id="cam0") as sub:
        while True:
            frame = sub.latest(timeout=1.0)      # newest frame not yet returned, or None after 1 s
            if frame is None:
                continue
            ...                                  # frame.index, frame.pixels (read-only view), frame.capture_time_ns
    # sub.received, sub.skipped, sub.gaps, sub.rejected, sub.restarts

Counters (all ints, read any time):

- ``received``: valid frames decoded.
- ``skipped``: frames received but overwritten by newer ones before the consumer took them (consumer too slow).
- ``gaps``: frames missing from the index sequence (lost at the camera, or dropped by ZeroMQ's high-water
  mark on the way); each jump of k counts k-1.
- ``rejected``: malformed messages (bad header, wrong byte count, unknown schema); logged, then ignored.
- ``oversize``: messages larger than the receiver's :class:`~camera_adapters.wire.FrameLimits` (also counted in
  ``rejected``), dropped before their header was parsed.
- ``errors``: unexpected errors in the receiving code itself (a bug): logged with their traceback at ERROR,
  counted, and the receiver goes on with the next message. It never dies silently.
- ``restarts``: the index went back or the stream id changed: the camera or publisher restarted.

Both take ``limits`` (:class:`~camera_adapters.wire.FrameLimits`, the largest frame accepted) and ``curve``
(:class:`~camera_adapters.network.CurveClient`: talk only to the publisher holding that server key).

When the publisher ends its stream (a replayed file ran out), :meth:`FrameSubscriber.latest` and
:meth:`FrameSubscriber.recv` raise :class:`~camera_adapters.wire.EndOfStream` once the frames before it are
consumed. Subscribers that join late miss the first frames (ZeroMQ's PUB/SUB "slow joiner"); the live path is
lossy by design: use :class:`LosslessReceiver` on the publisher's lossless endpoint to get every frame.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time

import zmq

from camera_adapters.errors import UserFacingError
from camera_adapters.network import CurveClient, EndpointError, secure_client
from camera_adapters.wire import (
    CONTROL_PING,
    CONTROL_REFUSED,
    DEFAULT_LIMITS,
    TOPIC_PREFIX,
    EndOfStream,
    Frame,
    FrameLimits,
    FrameTooLarge,
    WireError,
    decode_message,
    restart_reason,
    topic_for,
)

log = logging.getLogger(__name__)


class ReceiverRefused(UserFacingError):
    """The lossless endpoint already serves another receiver: it refused this one (one recorder per stream).

    ``fatal`` tells loops that catch user errors to stop rather than retry.
    """

    fatal = True


class _SequenceCounters:
    """Counts received frames, index gaps, restarts and rejected messages of one stream."""

    def __init__(self, camera_id: str | None):
        self.camera_id = camera_id
        self.received = 0
        self.gaps = 0
        self.rejected = 0
        self.oversize = 0
        self.errors = 0
        self.restarts = 0
        self._last: tuple[str | None, int] | None = None
        self._last_reject_log = 0.0
        self._last_error_log = 0.0

    def reject(self, err: Exception) -> None:
        self.rejected += 1
        if isinstance(err, FrameTooLarge):
            self.oversize += 1
        now = time.monotonic()
        if now - self._last_reject_log > 1.0:
            self._last_reject_log = now
            log.warning("rejected a malformed frame message (%d so far): %s", self.rejected, err)

    def error(self, where: str) -> None:
        """Count an unexpected error (call from an ``except`` block: its traceback is logged)."""
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log > 1.0:
            self._last_error_log = now
            log.exception(
                "UNEXPECTED ERROR in the %s (%d so far); skipping the message and going on", where, self.errors
            )

    def stats(self) -> dict[str, int]:
        return {
            "received": self.received,
            "gaps": self.gaps,
            "rejected": self.rejected,
            "oversize": self.oversize,
            "errors": self.errors,
            "restarts": self.restarts,
        }

    def accept(self, message: Frame | EndOfStream) -> bool:
        """Update the counters; False for messages of another camera (ignored)."""
        if self.camera_id is not None and message.camera_id != self.camera_id:
            return False
        if isinstance(message, EndOfStream):
            return True
        self.received += 1
        if self._last is not None:
            stream, index = self._last
            if restart_reason(stream, index, message.stream_id, message.index) is not None:
                self.restarts += 1
            elif message.index > index + 1:
                self.gaps += message.index - index - 1
        self._last = (message.stream_id, message.index)
        return True


def _connect(
    ctx: zmq.Context,
    kind: int,
    endpoint: str,
    rcvhwm: int,
    limits: FrameLimits,
    curve: CurveClient | None,
    options: dict[int, int | bytes] | None = None,
) -> zmq.Socket:
    """A receiving socket with the size ceiling, CURVE and ``options`` set, connected to ``endpoint``."""
    sock = ctx.socket(kind)
    try:
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, limits.max_part_bytes)
        for option, value in (options or {}).items():
            sock.setsockopt(option, value)
        secure_client(sock, curve)
        sock.connect(endpoint)
    except zmq.ZMQError as err:
        sock.close(0)
        raise EndpointError(f"cannot connect to {endpoint}: {err}") from None
    except BaseException:
        sock.close(0)
        raise
    return sock


class FrameSubscriber:
    """Live frames from a publisher: a receiver thread drains the socket and keeps only the newest frames.

    Args:
        endpoint: the publisher's live endpoint (``tcp://127.0.0.1:5555``, ``ipc:///tmp/cam0.sock``).
        camera_id: only this camera's frames (None: every camera on the endpoint).
        queue_size: frames kept for the consumer; 1 (default) means :meth:`latest` and :meth:`recv` both give
            the newest. Older frames pushed out count as ``skipped``.
        context: a ZeroMQ context to use (a private one when None).
        limits: the largest frame accepted (larger ones are dropped and counted as ``oversize``).
        curve: CURVE keys: accept frames only from the publisher holding the server key.

    Raises:
        EndpointError: the endpoint is malformed.
        camera_adapters.network.CurveError: CURVE keys missing or unreadable.
    """

    def __init__(
        self,
        endpoint: str,
        camera_id: str | None = None,
        *,
        queue_size: int = 1,
        context: zmq.Context | None = None,
        limits: FrameLimits = DEFAULT_LIMITS,
        curve: CurveClient | None = None,
    ):
        self.endpoint = endpoint
        self.camera_id = camera_id
        self.limits = limits
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        try:
            self._sock = _connect(self._ctx, zmq.SUB, endpoint, 4, limits, curve)
        except BaseException:
            if self._own_ctx:
                self._ctx.term()
            raise
        self._sock.setsockopt(zmq.SUBSCRIBE, topic_for(camera_id) if camera_id else TOPIC_PREFIX.encode())
        self._counters = _SequenceCounters(camera_id)
        self._failure: BaseException | None = None
        self._queue: collections.deque[Frame] = collections.deque(maxlen=max(1, queue_size))
        self._ended: EndOfStream | None = None
        self.skipped = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"frame-subscriber-{camera_id}", daemon=True)
        self._thread.start()

    # -- counters -----------------------------------------------------------------------------------------------

    @property
    def received(self) -> int:
        """Valid frames decoded."""
        return self._counters.received

    @property
    def gaps(self) -> int:
        """Frames missing from the index sequence."""
        return self._counters.gaps

    @property
    def rejected(self) -> int:
        """Malformed messages ignored."""
        return self._counters.rejected

    @property
    def restarts(self) -> int:
        """Times the stream restarted (index went back or new stream id)."""
        return self._counters.restarts

    @property
    def oversize(self) -> int:
        """Messages larger than the limits, dropped before parsing (also counted in ``rejected``)."""
        return self._counters.oversize

    @property
    def errors(self) -> int:
        """Unexpected errors in the receiver (logged with a traceback; the receiver went on)."""
        return self._counters.errors

    def stats(self) -> dict[str, int]:
        """All counters in one dict."""
        return {**self._counters.stats(), "skipped": self.skipped}

    # -- receiver thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._receive_loop()
        except BaseException as err:  # never die silently: the consumer's next call raises it
            if not self._stop.is_set():
                log.exception("the frame receiver thread of %s stopped", self.endpoint)
                with self._cond:
                    self._failure = err
                    self._cond.notify_all()

    def _receive_loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            while True:  # drain everything that is waiting
                try:
                    parts = self._sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                except zmq.ZMQError:
                    if self._stop.is_set():
                        return  # socket closed under us by close()
                    raise
                try:
                    self._deliver(parts)
                except Exception:  # a bug, not bad input (that is WireError): say so loudly, count, go on
                    self._counters.error("frame receiver")

    def _deliver(self, parts: list) -> None:
        try:
            message = decode_message(parts, self.limits)
        except WireError as err:
            self._counters.reject(err)
            return
        with self._cond:
            if not self._counters.accept(message):
                return
            if isinstance(message, EndOfStream):
                self._ended = message
            else:
                self._ended = None
                if len(self._queue) == self._queue.maxlen:
                    self.skipped += 1
                self._queue.append(message)
            self._cond.notify_all()

    # -- consumer side ------------------------------------------------------------------------------------------

    def _take(self, timeout: float | None, newest: bool) -> Frame | None:
        if self._closed:
            raise RuntimeError("subscriber is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._queue:
                if self._failure is not None:
                    raise WireError(f"the frame receiver of {self.endpoint} stopped: {self._failure!r}")
                if self._ended is not None:
                    raise self._ended
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(0.1 if remaining is None else min(remaining, 0.1))
            if newest:
                self.skipped += len(self._queue) - 1
                frame = self._queue[-1]
                self._queue.clear()
                return frame
            return self._queue.popleft()

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not returned before; older waiting frames count as ``skipped``.

        Args:
            timeout: seconds to wait for a frame (None: forever).

        Returns:
            The frame, or None on timeout.

        Raises:
            EndOfStream: the publisher ended its stream and every frame before the end was taken.
        """
        return self._take(timeout, newest=True)

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The oldest waiting frame (in order; with ``queue_size=1`` the same as :meth:`latest`).

        Raises:
            EndOfStream: as in :meth:`latest`.
        """
        return self._take(timeout, newest=False)

    def close(self) -> None:
        """Stop the receiver thread and close the socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> FrameSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LosslessReceiver:
    """Every frame from a publisher's lossless endpoint, in order, flow-controlled (for recorders).

    The publisher waits (or, without ``lossless_block``, buffers and then drops loudly) while this receiver is
    slow, so nothing is lost silently. One receiver per lossless endpoint: a DEALER socket that announces itself
    when it connects (``ZMQ_PROBE_ROUTER``, with a fixed routing id so a reconnect is recognised); the
    publisher's ROUTER serves the first one and refuses any other, which then raises :class:`ReceiverRefused`.

    Args:
        endpoint: the publisher's lossless endpoint.
        camera_id: only this camera's frames (None: any).
        context: a ZeroMQ context to use (a private one when None).
        limits: the largest frame accepted (larger ones are dropped and counted as ``oversize``).
        curve: CURVE keys: accept frames only from the publisher holding the server key.

    Example:
        >>> with LosslessReceiver("tcp://127.0.0.1:5556") as rx:
        ...     for frame in rx:          # stops at the publisher's end of stream
        ...         recorder.write(frame)
    """

    def __init__(
        self,
        endpoint: str,
        camera_id: str | None = None,
        *,
        context: zmq.Context | None = None,
        limits: FrameLimits = DEFAULT_LIMITS,
        curve: CurveClient | None = None,
    ):
        self.endpoint = endpoint
        self.camera_id = camera_id
        self.limits = limits
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        options = {zmq.PROBE_ROUTER: 1, zmq.ROUTING_ID: b"rx-" + secrets.token_hex(8).encode()}
        try:
            self._sock = _connect(self._ctx, zmq.DEALER, endpoint, 16, limits, curve, options)
        except BaseException:
            if self._own_ctx:
                self._ctx.term()
            raise
        self._counters = _SequenceCounters(camera_id)
        self._closed = False
        self._refused: ReceiverRefused | None = None

    received = property(lambda self: self._counters.received, doc="Valid frames decoded.")
    gaps = property(lambda self: self._counters.gaps, doc="Frames missing from the index sequence.")
    rejected = property(lambda self: self._counters.rejected, doc="Malformed messages ignored.")
    restarts = property(lambda self: self._counters.restarts, doc="Times the stream restarted.")
    oversize = property(lambda self: self._counters.oversize, doc="Messages over the limits (also rejected).")
    errors = property(lambda self: self._counters.errors, doc="Unexpected errors (logged loudly, skipped).")

    def stats(self) -> dict[str, int]:
        """All counters in one dict."""
        return self._counters.stats()

    def recv(self, timeout: float | None = None) -> Frame | None:
        """The next frame in order, or None after ``timeout`` seconds (None: wait forever).

        Raises:
            EndOfStream: the publisher ended the stream (every frame before it has been returned).
            ReceiverRefused: the publisher serves another receiver (raised again by every later call).
        """
        if self._closed:
            raise RuntimeError("receiver is closed")
        if self._refused is not None:
            raise self._refused
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            wait_ms = 100 if remaining is None else int(min(remaining, 0.1) * 1000)
            if not self._sock.poll(wait_ms):
                if remaining is not None and remaining <= 0:
                    return None
                continue
            parts = self._sock.recv_multipart(copy=False)
            if len(parts) <= 2 and parts[0].bytes in (CONTROL_PING, CONTROL_REFUSED):
                if parts[0].bytes == CONTROL_REFUSED:
                    self._refuse(parts)
                continue  # a ping: the publisher checks that this receiver is still there
            try:
                message = decode_message(parts, self.limits)
                if not self._counters.accept(message):
                    continue
            except WireError as err:
                self._counters.reject(err)
                continue
            except Exception:  # a bug, not bad input: say so loudly, count, go on with the next message
                self._counters.error("lossless receiver")
                continue
            if isinstance(message, EndOfStream):
                raise message
            return message

    def _refuse(self, parts: list) -> None:
        reason = parts[1].bytes.decode("utf-8", "replace")[:300] if len(parts) > 1 else ""
        self._refused = ReceiverRefused(
            f"the lossless endpoint {self.endpoint} refused this receiver: {reason or 'another receiver is served'}. "
            "Only one recorder per lossless endpoint: stop the other one, or give this one its own endpoint"
        )
        log.error("%s", self._refused)
        self._sock.close(linger=0)  # leave at once: the publisher must not wait for us at its end
        raise self._refused

    def __iter__(self):
        """Frames until the publisher's end of stream."""
        while True:
            try:
                frame = self.recv()
            except EndOfStream:
                return
            if frame is not None:
                yield frame

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if not self._sock.closed:
            self._sock.close(linger=0)
        if self._own_ctx:
            self._ctx.term()

    def __enter__(self) -> LosslessReceiver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
