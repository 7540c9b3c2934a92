"""Publishing frames over ZeroMQ: a live path that never backs up and a lossless path for recorders.

``FramePublisher`` owns two sockets, each driven by its own thread, so the camera's grab loop never waits on
the network:

- **live** (PUB, bound at ``endpoint``): only the newest frames matter. ``publish()`` drops the frame into a
  2-slot queue (older unsent frames are replaced and counted in ``live_replaced``) and the PUB socket has a
  send high-water mark of 2, so a slow subscriber gets the newest frame, never a backlog. Subscribers drain
  with :class:`camera_adapters.subscriber.FrameSubscriber`.
- **lossless** (ROUTER, bound at ``lossless``, optional): every frame, in order, flow-controlled, to ONE
  receiver. Frames wait in a bounded queue (``lossless_buffer`` frames) while the receiver is slow or not yet
  connected. If the queue is full the publisher either drops the frame and says so loudly
  (``lossless_dropped``, an ERROR log line), or with ``lossless_block=True`` makes ``publish()`` wait: then the
  source runs exactly as fast as the receiver takes frames (replaying a file through a model with nothing
  skipped). Receive with
  :class:`camera_adapters.subscriber.LosslessReceiver` (a DEALER that announces itself when it connects). The
  first receiver takes the stream and keeps it across reconnects; any other is refused while it is there
  (it gets a refusal message and raises :class:`~camera_adapters.subscriber.ReceiverRefused`; the publisher logs
  an ERROR and counts ``lossless_refused``), so no second consumer can take a share of the frames. A plain
  PULL socket cannot connect at all (ZeroMQ refuses the socket-type pair). The recorder also counts any gap in
  the frame indices it writes.

:func:`stream` is the grab loop used by ``deg-camera``: it reads a source, publishes every frame, sends the
end-of-stream message when the source ends or fails, and gives up on a camera that stays silent.

Endpoints bind to loopback unless ``allow_remote=True`` (``tcp://0.0.0.0:5555`` or ``tcp://*:5555`` are
refused otherwise; :func:`camera_adapters.network.check_endpoint`). With ``curve`` (a
:class:`camera_adapters.network.CurveServer`) both sockets authenticate and encrypt: only the listed clients'
keys get frames.

The sender threads never die silently: an unexpected error with one frame is logged with its traceback at
ERROR, counted (``send_errors``), and the thread goes on with the next frame.
"""

from __future__ import annotations

import collections
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from camera_adapters.network import CurveServer, EndpointError, check_endpoint, secure_server, warn_if_open
from camera_adapters.sources.base import FrameSource, SourceError, SourceTimeout
from camera_adapters.wire import CONTROL_PING, CONTROL_REFUSED, EndOfStream, Frame, encode_end, encode_frame

__all__ = ["EndpointError", "FramePublisher", "PublisherStats", "check_endpoint", "stream"]

log = logging.getLogger(__name__)

_END = object()  # queue sentinel
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)
_PEER_EVENTS = zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED | _HANDSHAKE_FAILED


class _Peers:
    """The peers connected to a bound socket, from its monitor events.

    A connection counts as a receiver once its ZeroMQ handshake succeeded (so a port scan, or a client that
    CURVE refuses, is not a receiver). The monitor tells which connection (file descriptor) was accepted and
    which disconnected, but not which one finished its handshake; connections finish in the order they were
    accepted, which is what ZeroMQ's single I/O thread does in practice.
    """

    def __init__(self):
        self.pending: list[int] = []  # accepted, handshake not finished
        self.verified: set[int] = set()
        self.most = 0  # the most receivers seen at once

    def update(self, event: int, value: int) -> None:
        if event == zmq.EVENT_ACCEPTED:
            self.pending.append(value)
        elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            if self.pending:
                self.verified.add(self.pending.pop(0))
        elif event & _HANDSHAKE_FAILED:
            if self.pending:
                self.pending.pop(0)
        elif event == zmq.EVENT_DISCONNECTED:
            if value in self.pending:
                self.pending.remove(value)
            self.verified.discard(value)
        self.most = max(self.most, len(self.verified))

    @property
    def receivers(self) -> int:
        """Connections whose handshake succeeded."""
        return len(self.verified)

    @property
    def connections(self) -> int:
        """Every open connection (handshake finished or not)."""
        return len(self.verified) + len(self.pending)


def _bind(sock: zmq.Socket, endpoint: str) -> str:
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as err:
        sock.close(linger=0)
        raise EndpointError(f"cannot bind {endpoint}: {err} (is another publisher using it?)") from None
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


@dataclass
class PublisherStats:
    """A snapshot of a publisher's counters.

    Attributes:
        published: frames handed to ``publish()``.
        live_sent: frames sent on the live path.
        live_replaced: frames replaced by newer ones before the live thread could send them.
        lossless_sent: frames sent on the lossless path.
        lossless_dropped: frames the lossless path had to drop (receiver too slow or absent); should be 0.
        lossless_queued: frames waiting for the lossless receiver now.
        latency_ms_median: capture -> live send, median over the last 1000 frames (ms).
        latency_ms_p99: the same, 99th percentile.
        lossless_receivers: connections to the lossless endpoint now (1: the receiver).
        lossless_receivers_max: the most connections seen at once.
        lossless_refused: receivers refused because another one already takes the stream.
        send_errors: unexpected errors in the sender threads (logged with a traceback; the frame was skipped).
    """

    published: int
    live_sent: int
    live_replaced: int
    lossless_sent: int
    lossless_dropped: int
    lossless_queued: int
    latency_ms_median: float | None
    latency_ms_p99: float | None
    lossless_receivers: int = 0
    lossless_receivers_max: int = 0
    lossless_refused: int = 0
    send_errors: int = 0


class FramePublisher:
    """Publishes frames on a live PUB endpoint and, optionally, a lossless ROUTER endpoint (one receiver).

    Args:
        endpoint: live endpoint to bind (``tcp://127.0.0.1:5555``, ``ipc:///tmp/cam0.sock``).
        lossless: lossless endpoint to bind, or None.
        camera_id: stamped on every frame (overrides the source's).
        stream_id: identifies this publisher run in every header (random when None).
        lossless_buffer: frames the lossless queue holds before dropping (or blocking).
        lossless_block: block ``publish()`` instead of dropping when the lossless queue is full.
        allow_remote: allow binding non-loopback TCP addresses.
        live_hwm: send high-water mark of the live PUB socket (messages per subscriber).
        curve: CURVE keys and allowed clients for both endpoints (None: no authentication).

    Raises:
        EndpointError: an endpoint is refused or cannot be bound.
        camera_adapters.network.CurveError: CURVE keys missing or unreadable.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        lossless: str | None = None,
        camera_id: str = "cam0",
        stream_id: str | None = None,
        lossless_buffer: int = 256,
        lossless_block: bool = False,
        allow_remote: bool = False,
        live_hwm: int = 2,
        curve: CurveServer | None = None,
    ):
        check_endpoint(endpoint, allow_remote=allow_remote, what="frames endpoint")
        warn_if_open(endpoint, curve, "frames endpoint")
        if lossless is not None:
            check_endpoint(lossless, allow_remote=allow_remote, what="lossless endpoint")
            warn_if_open(lossless, curve, "lossless endpoint")
        if lossless_block and lossless is None:
            raise EndpointError("lossless_block needs a lossless endpoint (--lossless ENDPOINT)")
        self.camera_id = camera_id
        self.stream_id = stream_id or secrets.token_hex(8)
        self.lossless_block = lossless_block
        self._ctx = zmq.Context()
        self._closed = False
        self._stop = threading.Event()
        self._unblock = threading.Event()
        self._lock = threading.Lock()
        self._latencies: collections.deque[int] = collections.deque(maxlen=1000)
        self._published = self._live_sent = self._live_replaced = 0
        self._lossless_sent = self._lossless_dropped = 0
        self._lossless_refused = 0
        self._send_errors = 0
        self._last_drop_log = 0.0
        self._last_error_log: dict[str, float] = {}  # per path: one traceback a second at most
        self._auth = []  # CURVE authenticator handles, closed before the context

        self._live = self._ctx.socket(zmq.PUB)
        self._live.setsockopt(zmq.SNDHWM, live_hwm)
        self._live.setsockopt(zmq.LINGER, 200)
        try:
            self._auth.append(secure_server(self._live, curve))
            self.endpoint = _bind(self._live, endpoint)
        except BaseException:
            self._live.close(linger=0)
            self._close_auth()
            self._ctx.term()
            raise
        self._live_slot: collections.deque = collections.deque(maxlen=2)
        self._live_cond = threading.Condition()
        self._live_thread = threading.Thread(
            target=self._run_thread, args=(self._live_loop, "live"), name=f"pub-live-{camera_id}", daemon=True
        )

        self._lossless = None
        self.lossless_endpoint = None
        self._lossless_queue: queue.Queue = queue.Queue(maxsize=max(1, lossless_buffer))
        self._lossless_abort = threading.Event()
        if lossless is not None:
            # ROUTER: frames go to one receiver, the first that announced itself; others are refused.
            self._lossless = self._ctx.socket(zmq.ROUTER)
            self._lossless.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a full or vanished receiver is an error, not a drop
            self._lossless.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a receiver that reconnects keeps its place
            self._lossless.setsockopt(zmq.SNDHWM, 16)
            self._lossless.setsockopt(zmq.SNDTIMEO, 100)
            self._lossless.setsockopt(zmq.LINGER, 0)
            self._lossless_owner: bytes | None = None
            try:
                self._auth.append(secure_server(self._lossless, curve))
                self.lossless_endpoint = _bind(self._lossless, lossless)
            except BaseException:
                self._lossless.close(linger=0)
                self._live.close(linger=0)
                self._close_auth()
                self._ctx.term()
                raise
            # Watch receivers connect and go: a second receiver would take a share of the frames (said loudly),
            # and on close we wait for them to leave (they do after the end message), because ZeroMQ drops
            # whatever a receiver has not read yet when the binding side closes.
            self._lossless_monitor = self._lossless.get_monitor_socket(_PEER_EVENTS)
            self._lossless_peers = _Peers()
            self._lossless_thread = threading.Thread(
                target=self._run_thread,
                args=(self._lossless_loop, "lossless"),
                name=f"pub-lossless-{camera_id}",
                daemon=True,
            )
            self._lossless_thread.start()
        self._live_thread.start()

    # -- producer side (the grab loop) --------------------------------------------------------------------------

    def publish(self, frame: Frame) -> None:
        """Hand a frame to both paths; returns at once (unless ``lossless_block`` and the receiver is behind).

        The frame's ``camera_id`` and ``stream_id`` are set to the publisher's. Do not modify ``frame.pixels``
        afterwards: they are sent without copying.
        """
        if self._closed:
            raise RuntimeError("publisher is closed")
        frame.camera_id = self.camera_id
        frame.stream_id = self.stream_id
        with self._lock:
            self._published += 1
        with self._live_cond:
            if len(self._live_slot) == self._live_slot.maxlen:
                with self._lock:
                    self._live_replaced += 1
            self._live_slot.append(frame)
            self._live_cond.notify()
        if self._lossless is not None:
            self._enqueue_lossless(frame)

    def stop_waiting(self) -> None:
        """Make a ``publish()`` blocked on the lossless path return (the frame is counted as dropped).

        Safe to call from a signal handler or another thread; later frames are dropped rather than waited for.
        """
        self._unblock.set()

    def _enqueue_lossless(self, item: Any) -> None:
        if self.lossless_block or isinstance(item, tuple):
            # Frames in blocking mode wait for the receiver as long as it takes; the end message waits a little
            # (the receiver may be gone) so that ending never hangs.
            deadline = time.monotonic() + (2.0 if isinstance(item, tuple) else float("inf"))
            while not (self._stop.is_set() or self._unblock.is_set()) and time.monotonic() < deadline:
                try:
                    self._lossless_queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue
            try:
                self._lossless_queue.put_nowait(item)
                return
            except queue.Full:
                pass
            if not isinstance(item, tuple):
                with self._lock:
                    self._lossless_dropped += 1
            return
        try:
            self._lossless_queue.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._lossless_dropped += 1
                dropped = self._lossless_dropped
            now = time.monotonic()
            if now - self._last_drop_log > 1.0:
                self._last_drop_log = now
                log.error(
                    "LOSSLESS PATH DROPPING FRAMES: the recorder at %s is too slow or not connected; %d frames "
                    "dropped so far (frame %d). Use a faster recorder, a larger lossless buffer, or lossless_block",
                    self.lossless_endpoint,
                    dropped,
                    item.index,
                )

    def end(self, reason: str = "end of stream") -> None:
        """Send the end-of-stream message on both paths, after every frame already published."""
        if self._closed:
            return
        with self._live_cond:
            self._live_slot.append((_END, reason))
            self._live_cond.notify()
        if self._lossless is not None:
            self._enqueue_lossless((_END, reason))

    # -- sender threads -----------------------------------------------------------------------------------------

    def _send_error(self, path: str, item: Any) -> None:
        """Count an unexpected error of a sender thread (call from ``except``: the traceback is logged)."""
        with self._lock:
            self._send_errors += 1
            errors = self._send_errors
        now = time.monotonic()
        if now - self._last_error_log.get(path, 0.0) > 1.0:
            self._last_error_log[path] = now
            log.exception(
                "UNEXPECTED ERROR sending frame %s on the %s path (%d so far); the frame is skipped, sending goes on",
                getattr(item, "index", "?"),
                path,
                errors,
            )

    def _run_thread(self, loop: Callable[[], None], path: str) -> None:
        """Run a sender loop; if it ever stops on an error, say so loudly (the publisher cannot send any more)."""
        try:
            loop()
        except BaseException:
            if not self._stop.is_set() and not self._closed:
                log.critical("the %s sender thread of %s STOPPED; frames are no longer sent", path, self.camera_id)
                log.exception("the error that stopped it")
            raise

    def _live_loop(self) -> None:
        while True:
            with self._live_cond:
                while not self._live_slot and not self._stop.is_set():
                    self._live_cond.wait(0.1)
                if not self._live_slot:
                    return  # stopped and nothing left
                items = list(self._live_slot)
                self._live_slot.clear()
            for item in items:
                try:
                    self._send_live(item)
                except zmq.ZMQError as err:
                    if err.errno in (zmq.ETERM, zmq.ENOTSOCK):
                        return  # closed under us
                    self._send_error("live", item)
                except Exception:
                    self._send_error("live", item)

    def _send_live(self, item: Any) -> None:
        if isinstance(item, tuple) and item[0] is _END:
            parts = encode_end(self.camera_id, stream_id=self.stream_id, frame_count=self._published, reason=item[1])
            self._live.send_multipart(parts)
            return
        parts = encode_frame(item)
        try:
            self._live.send_multipart(parts, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:  # PUB normally drops silently at the high-water mark; be safe
            return
        with self._lock:
            self._live_sent += 1
            self._latencies.append(item.publish_time_ns - item.capture_time_ns)

    def _watch_lossless_peers(self) -> None:
        """Count the connections of the lossless socket from its monitor events (for the stats and close)."""
        while self._lossless_monitor.poll(0):
            event = recv_monitor_message(self._lossless_monitor)
            self._lossless_peers.update(event["event"], event["value"])

    def _serve_lossless_receivers(self) -> None:
        """Read the receivers' announcements: the first is served, any other is refused while it is there.

        A receiver announces itself on every (re)connection (``ZMQ_PROBE_ROUTER``) with its routing id. The
        owner keeps the stream across reconnects (same id); a newcomer is served only once the owner is gone,
        which a ping tells at once (ROUTER_MANDATORY: EHOSTUNREACH for a peer that left).
        """
        self._watch_lossless_peers()
        while True:
            try:
                parts = self._lossless.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            identity = parts[0]
            if identity == self._lossless_owner:
                continue
            if self._lossless_owner is not None and self._owner_alive():
                self._refuse(identity)
                continue
            if self._lossless_owner is not None:
                log.warning("lossless path: the receiver left; a new receiver takes the stream")
            self._lossless_owner = identity
            log.info("lossless path: a receiver connected to %s", self.lossless_endpoint)

    def _owner_alive(self) -> bool:
        try:
            self._lossless.send_multipart([self._lossless_owner, CONTROL_PING], flags=zmq.NOBLOCK)
        except zmq.Again:
            return True  # its queue is full: it is there, just busy
        except zmq.ZMQError as err:
            if err.errno == zmq.EHOSTUNREACH:
                self._lossless_owner = None
                return False
            raise
        return True

    def _refuse(self, identity: bytes) -> None:
        with self._lock:
            self._lossless_refused += 1
            refused = self._lossless_refused
        log.error(
            "REFUSED A SECOND RECEIVER on the lossless endpoint %s (%d so far): one recorder per stream, and the "
            "first one keeps it. Stop the other receiver",
            self.lossless_endpoint,
            refused,
        )
        reason = f"camera {self.camera_id!r}'s lossless endpoint already serves a receiver"
        try:
            self._lossless.send_multipart([identity, CONTROL_REFUSED, reason.encode()], flags=zmq.NOBLOCK)
        except zmq.ZMQError:
            pass  # it left already

    def _wait_for_owner(self, since: float, warned: list[float]) -> bool:
        """Wait up to 0.1 s for a receiver to take the stream; False when told to abort."""
        if self._lossless_abort.is_set():
            return False
        if self._lossless.poll(100, zmq.POLLIN):
            self._serve_lossless_receivers()
        self._warn_waiting(since, warned)
        return True

    def _warn_waiting(self, since: float, warned: list[float]) -> None:
        now = time.monotonic()
        if now - since > 2.0 and now - warned[0] > 5.0:
            warned[0] = now
            log.warning(
                "lossless path: no receiver has taken a frame for %.0f s (%s); %d frames waiting",
                now - since,
                self.lossless_endpoint,
                self._lossless_queue.qsize(),
            )

    def _lossless_loop(self) -> None:
        warned = [0.0]
        while not self._lossless_abort.is_set():
            try:
                self._serve_lossless_receivers()
            except Exception:
                self._send_error("lossless (receivers)", None)
            try:
                item = self._lossless_queue.get(timeout=0.1)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            is_frame = not isinstance(item, tuple)
            try:
                if is_frame:
                    parts = encode_frame(item)
                else:
                    parts = encode_end(
                        self.camera_id, stream_id=self.stream_id, frame_count=self._published, reason=item[1]
                    )
            except Exception:
                self._send_error("lossless", item)
                with self._lock:
                    self._lossless_dropped += 1
                continue
            if not self._send_lossless(parts, is_frame, warned):
                with self._lock:
                    self._lossless_dropped += is_frame
                if self._lossless_abort.is_set():
                    return

    def _send_lossless(self, parts: list, is_frame: bool, warned: list[float]) -> bool:
        """Send one message to the receiver that owns the stream, waiting for it as long as it takes.

        Returns False when the message could not be sent (told to abort, or an unexpected error, logged).
        """
        since = time.monotonic()
        while True:
            if self._lossless_owner is None:
                if not self._wait_for_owner(since, warned):
                    return False
                continue
            try:
                self._lossless.send_multipart([self._lossless_owner, *parts], copy=False)
                if is_frame:
                    with self._lock:
                        self._lossless_sent += 1
                return True
            except zmq.Again:  # the receiver is slow (its queue is full): wait for it
                if self._lossless_abort.is_set():
                    return False
                try:
                    self._serve_lossless_receivers()
                except Exception:
                    self._send_error("lossless (receivers)", None)
                self._warn_waiting(since, warned)
            except zmq.ZMQError as err:
                if err.errno == zmq.EHOSTUNREACH:  # the receiver left: wait for it (or another) to come back
                    log.warning("lossless path: the receiver at %s left; waiting for one", self.lossless_endpoint)
                    self._lossless_owner = None
                    continue
                if err.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return False
                self._send_error("lossless", None)
                return False

    # -- status and shutdown ------------------------------------------------------------------------------------

    def stats(self) -> PublisherStats:
        """A snapshot of the counters and the capture -> send latency."""
        with self._lock:
            lat = np.array(self._latencies, dtype=np.float64) / 1e6
            return PublisherStats(
                published=self._published,
                live_sent=self._live_sent,
                live_replaced=self._live_replaced,
                lossless_sent=self._lossless_sent,
                lossless_dropped=self._lossless_dropped,
                lossless_queued=self._lossless_queue.qsize(),
                latency_ms_median=float(np.median(lat)) if lat.size else None,
                latency_ms_p99=float(np.percentile(lat, 99)) if lat.size else None,
                lossless_receivers=self._lossless_peers.receivers if self._lossless is not None else 0,
                lossless_receivers_max=self._lossless_peers.most if self._lossless is not None else 0,
                lossless_refused=self._lossless_refused,
                send_errors=self._send_errors,
            )

    def close(self, drain_timeout_s: float = 5.0) -> None:
        """Stop the threads and close the sockets; safe to call twice; never blocks much longer than the timeout.

        Frames still waiting for the lossless receiver get up to ``drain_timeout_s`` to go out; whatever is left
        then is counted in ``lossless_dropped`` and logged as an error.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + drain_timeout_s
        if self._lossless is not None:
            while self._lossless_queue.qsize() and time.monotonic() < deadline:
                time.sleep(0.01)
        self._stop.set()
        with self._live_cond:
            self._live_cond.notify_all()
        self._live_thread.join(timeout=2.0)
        if self._lossless is not None:
            self._lossless_thread.join(timeout=max(0.1, deadline - time.monotonic()))
            self._lossless_abort.set()
            self._lossless_thread.join(timeout=1.0)
            left = 0
            while True:
                try:
                    item = self._lossless_queue.get_nowait()
                except queue.Empty:
                    break
                left += not isinstance(item, tuple)
            if left:
                with self._lock:
                    self._lossless_dropped += left
            if self._lossless_dropped:
                log.error(
                    "lossless path: %d frames never reached a receiver at %s",
                    self._lossless_dropped,
                    self.lossless_endpoint,
                )
            self._wait_for_lossless_receivers(deadline)
            self._lossless.disable_monitor()
            self._lossless_monitor.close(linger=0)
            self._lossless.close(linger=int(max(0.0, deadline - time.monotonic()) * 1000))
        self._live.close(linger=200)
        self._close_auth()
        self._ctx.term()

    def _close_auth(self) -> None:
        for handle in self._auth:
            if handle is not None:
                handle.close()
        self._auth = []

    def _wait_for_lossless_receivers(self, deadline: float) -> None:
        """Keep the lossless socket open until every receiver has disconnected, or until ``deadline``.

        Frames handed to ZeroMQ may still be in flight (its queues, the kernel's socket buffer) when the publisher
        is done; closing the binding socket then would lose them silently. A receiver disconnects once it has read
        the end-of-stream message, so its leaving proves it has everything.
        """
        peers = self._lossless_peers
        while True:
            timeout_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
            if not self._lossless_monitor.poll(timeout_ms if peers.connections > 0 else 0):
                break
            event = recv_monitor_message(self._lossless_monitor)
            peers.update(event["event"], event["value"])
        if peers.connections > 0:
            log.warning(
                "lossless path: a receiver on %s was still connected when the drain time ran out; "
                "frames it had not read yet may be lost (raise --drain-timeout)",
                self.lossless_endpoint,
            )

    def __enter__(self) -> FramePublisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def stream(
    source: FrameSource,
    publisher: FramePublisher,
    *,
    max_frames: int | None = None,
    duration_s: float | None = None,
    stall_timeout_s: float | None = 10.0,
    on_second: Callable[[dict], None] | None = None,
    stop: threading.Event | None = None,
) -> dict:
    """The grab loop: read ``source`` (opened here if needed), publish every frame, end the stream cleanly.

    Args:
        source: the frame source.
        publisher: where frames go.
        max_frames: stop after this many frames.
        duration_s: stop after this many seconds.
        stall_timeout_s: give up when no frame arrives for this long (None: wait forever, for rare triggers).
        on_second: called about once a second with the live statistics (for the CLI's status line).
        stop: set it from another thread to stop the loop.

    Returns:
        The final statistics (``frames``, ``lost_at_camera``, ``reason`` and the publisher's counters).

    Raises:
        SourceError: the camera failed or stalled; the end-of-stream message was sent first (with the reason).
    """
    source.open()
    t0 = last_report = time.monotonic()
    last_frame_time = t0
    frames = reported_frames = 0
    reason = "stopped"

    def summary() -> dict:
        now = time.monotonic()
        stats = publisher.stats()
        return {
            "frames": frames,
            "elapsed_s": now - t0,
            "lost_at_camera": source.lost_frames,
            **stats.__dict__,
        }

    try:
        while True:
            if stop is not None and stop.is_set():
                reason = "stopped"
                break
            if max_frames is not None and frames >= max_frames:
                reason = f"max_frames={max_frames} reached"
                break
            if duration_s is not None and time.monotonic() - t0 >= duration_s:
                reason = f"duration {duration_s} s reached"
                break
            try:
                frame = source.read(timeout=1.0)
            except SourceTimeout:
                silent = time.monotonic() - last_frame_time
                if stall_timeout_s is not None and silent > stall_timeout_s:
                    raise SourceError(
                        f"{source.name} camera {source.camera_id!r} sent no frame for {silent:.0f} s; giving up "
                        "(check the camera and its trigger, or raise --stall-timeout)"
                    ) from None
                continue
            except EndOfStream as end:
                reason = end.reason
                break
            last_frame_time = time.monotonic()
            publisher.publish(frame)
            frames += 1
            now = time.monotonic()
            if on_second is not None and now - last_report >= 1.0:
                info = summary()
                info["rate_fps"] = (frames - reported_frames) / (now - last_report)
                reported_frames, last_report = frames, now
                on_second(info)
    except SourceError as err:
        publisher.end(f"camera failed: {err}")
        raise
    except KeyboardInterrupt:
        publisher.end("interrupted")
        raise
    publisher.end(reason)
    info = summary()
    info["reason"] = reason
    info["rate_fps"] = frames / info["elapsed_s"] if info["elapsed_s"] > 0 else 0.0
    return info
