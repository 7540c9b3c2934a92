"""Behaviour events and per-frame state on ZeroMQ: the message formats, a publisher and a subscriber.

deg_live publishes on ONE ZeroMQ PUB socket (default ``tcp://127.0.0.1:5560``, loopback; bind
``tcp://*:5560`` with ``allow_remote``, better with CURVE, to serve other machines) two kinds of two-part
messages ``[topic, json]``:

- ``events/<camera_id>``: a behaviour's onset or offset, decided causally (for closed-loop experiments);
- ``state/<camera_id>``: every processed frame's probabilities and decisions (for viewers and loggers).

A consumer in any language needs only a ZeroMQ SUB socket (connect, subscribe to the prefix ``events/`` or
``state/`` or an exact topic) and a JSON parser: part 0 is the topic as UTF-8, part 1 a UTF-8 JSON object.
Unknown keys must be ignored (they may be added without a version change); a larger ``schema_version``
means an incompatible change. Times are integers, nanoseconds since the Unix epoch from the host's
``CLOCK_REALTIME`` (Python ``time.time_ns()``), the same clock as the camera frames' ``capture_time_ns``;
JavaScript readers should parse them as BigInt or use the ``*_ms`` fields. ``null`` stands for "not
available" (a probability that was not finite).

Event message (``events/<camera_id>``), schema_version 1::

    {
      "schema_version": 1,
      "type": "event",
      "camera_id": "cam0",
      "stream_id": "5f0c…",          # changes when the pipeline restarts (frame indices may restart too)
      "seq": 17,                     # per publisher and topic, +1 per message: a gap means messages were lost
      "behaviour": "grooming",
      "behaviour_index": 3,          # column in the bundle's behaviour list
      "kind": "onset",               # "onset" or "offset"
      "frame_index": 1234,           # the camera frame at which the change was decided
      "bout_start_frame": 1232,      # first frame of the bout (offsets repeat their onset's value)
      "change_frame": 1232,          # where the change began (onset: = bout_start_frame; offset: first frame below)
      "probability": 0.83,           # the behaviour's probability at frame_index
      "capture_time_ns": 1763935200123456789,    # when frame_index was captured (camera host)
      "decision_time_ns": 1763935200135456789,   # when deg_live decided
      "publish_time_ns": 1763935200135556789,    # when this message was sent
      "latency_ms": 12.1,            # publish - capture
      "decision_latency_ms": 12.0    # decision - capture
    }

State message (``state/<camera_id>``), schema_version 1::

    {
      "schema_version": 1, "type": "state", "camera_id": "cam0", "stream_id": "5f0c…", "seq": 1234,
      "frame_index": 1234, "capture_time_ns": …, "decision_time_ns": …, "publish_time_ns": …,
      "behaviours": ["background", "grooming", …],   # K names
      "probabilities": [0.01, 0.83, …],              # K numbers (or null)
      "decisions": [false, true, …],                 # K booleans after causal postprocessing
      "skipped": 0,        # frames inference skipped so far in this stream (overload; never recorded as missing)
      "lost": 0,           # frames missing from the camera's numbering so far (transport or camera drops)
      "latency_ms": 12.1, "decision_latency_ms": 12.0,
      "telemetry": {"fps": 30.0, …}                  # optional, free-form numbers
    }

Decoding (:func:`decode_message`) turns any malformed input into :class:`MessageError` and nothing else (a
fuzz test holds this): bodies above ``max_bytes`` (default 256 KiB) raise :class:`MessageTooLarge` before they
are parsed, the JSON is parsed with bounded nesting and integers (:mod:`camera_adapters.bounded_json`), frame
numbers must lie in ``-1 .. 2**53-1`` and times in int64. :class:`EventSubscriber` raises it, or with
``skip_malformed=True`` (``deg-live listen``, the viewer) logs, counts (``rejected``) and goes on.

Endpoints: publishers bind loopback unless ``allow_remote=True``
(:func:`camera_adapters.network.check_endpoint`); with ``curve`` both sides authenticate and encrypt
(:class:`camera_adapters.network.CurveServer` for the publisher, :class:`~camera_adapters.network.CurveClient`
for subscribers; see docs/security.md).

A consumer in 15 lines of Python (no deg_live needed)::

    import json, zmq
    sock = zmq.Context().socket(zmq.SUB)
    sock.connect("tcp://127.0.0.1:5560")
    sock.setsockopt(zmq.SUBSCRIBE, b"events/")
    while True:
        topic, body = sock.recv_multipart()
        msg = json.loads(body)
        if msg["schema_version"] > 1:
            raise SystemExit("newer message format; upgrade this consumer")
        print(msg["camera_id"], msg["behaviour"], msg["kind"], msg["frame_index"], f"{msg['latency_ms']:.1f} ms")

This module imports no torch and no deg_train.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import zmq

from camera_adapters import bounded_json
from camera_adapters.errors import UserFacingError
from camera_adapters.network import (
    CurveClient,
    CurveServer,
    EndpointError,
    check_endpoint,
    secure_client,
    secure_server,
    warn_if_open,
)

__all__ = [
    "DEFAULT_EVENTS_ENDPOINT",
    "EndpointError",
    "EventMessage",
    "EventPublisher",
    "EventSubscriber",
    "MessageError",
    "MessageTooLarge",
    "StateMessage",
    "decode_message",
    "encode_message",
]

logger = logging.getLogger(__name__)

EVENTS_SCHEMA_VERSION = 1
DEFAULT_EVENTS_ENDPOINT = "tcp://127.0.0.1:5560"
EVENT_TOPIC_PREFIX = "events/"
STATE_TOPIC_PREFIX = "state/"
EVENT_KINDS = ("onset", "offset")
MAX_MESSAGE_BYTES = 256 * 1024  # a state message of 100 behaviours with telemetry is ~10 KB
MAX_TOPIC_BYTES = 512
MAX_FRAME_NUMBER = 2**53 - 1  # exact in every JSON reader
MAX_NAME_LENGTH = 256
MAX_BEHAVIOURS = 4096


class MessageError(UserFacingError, ValueError):
    """An event or state message that cannot be decoded: wrong topic, bad JSON, missing fields, newer schema."""


class MessageTooLarge(MessageError):
    """An event or state message above the size limit; refused before it is parsed."""


def event_topic(camera_id: str) -> str:
    """``events/<camera_id>``."""
    return EVENT_TOPIC_PREFIX + _check_camera_id(camera_id)


def state_topic(camera_id: str) -> str:
    """``state/<camera_id>``."""
    return STATE_TOPIC_PREFIX + _check_camera_id(camera_id)


def _check_camera_id(camera_id: str) -> str:
    if not isinstance(camera_id, str) or not camera_id or "/" in camera_id or any(c.isspace() for c in camera_id):
        raise MessageError(f"camera id {camera_id!r}: must be a non-empty name without '/' or spaces")
    return camera_id


def _ms(later_ns: int, earlier_ns: int) -> float:
    return (later_ns - earlier_ns) / 1e6


# ---------------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class EventMessage:
    """A behaviour onset or offset (see the module docstring for the JSON)."""

    camera_id: str
    behaviour: str
    kind: str
    frame_index: int
    bout_start_frame: int
    probability: float | None
    capture_time_ns: int
    decision_time_ns: int
    behaviour_index: int = -1
    change_frame: int = -1
    publish_time_ns: int = 0
    latency_ms: float = 0.0
    decision_latency_ms: float = 0.0
    stream_id: str = ""
    seq: int = 0
    schema_version: int = EVENTS_SCHEMA_VERSION

    TYPE = "event"

    def __post_init__(self) -> None:
        for name in (
            "frame_index",
            "bout_start_frame",
            "capture_time_ns",
            "decision_time_ns",
            "behaviour_index",
            "change_frame",
            "publish_time_ns",
            "seq",
        ):
            setattr(self, name, int(getattr(self, name)))  # numpy integers are not JSON
        self.probability = _finite_or_none(self.probability)
        if self.change_frame < 0:
            self.change_frame = self.bout_start_frame if self.kind == "onset" else self.frame_index
        if not self.decision_latency_ms:
            self.decision_latency_ms = _ms(self.decision_time_ns, self.capture_time_ns)
        if not self.latency_ms:
            self.latency_ms = self.decision_latency_ms

    @property
    def topic(self) -> str:
        """``events/<camera_id>``."""
        return event_topic(self.camera_id)

    @classmethod
    def from_transition(
        cls,
        camera_id: str,
        behaviours: Sequence[str],
        transition: Any,
        capture_time_ns: int,
        decision_time_ns: int | None = None,
        stream_id: str = "",
    ) -> EventMessage:
        """Build an event from a :class:`deg_live.postprocess.Transition` (or anything with its fields).

        Args:
            camera_id: the camera.
            behaviours: the bundle's behaviour names (the transition holds an index).
            transition: has behaviour, kind, frame_index, bout_start_frame, probability, change_frame.
            capture_time_ns: capture time of the frame at ``transition.frame_index``.
            decision_time_ns: when it was decided (default: now).
            stream_id: the pipeline run's id.
        """
        return cls(
            camera_id=camera_id,
            behaviour=behaviours[transition.behaviour],
            behaviour_index=int(transition.behaviour),
            kind=transition.kind,
            frame_index=int(transition.frame_index),
            bout_start_frame=int(transition.bout_start_frame),
            change_frame=int(getattr(transition, "change_frame", -1)),
            probability=float(transition.probability),
            capture_time_ns=int(capture_time_ns),
            decision_time_ns=int(time.time_ns() if decision_time_ns is None else decision_time_ns),
            stream_id=stream_id,
        )


@dataclass
class StateMessage:
    """One processed frame's probabilities and decisions (see the module docstring for the JSON)."""

    camera_id: str
    frame_index: int
    capture_time_ns: int
    decision_time_ns: int
    behaviours: list[str]
    probabilities: list[float | None]
    decisions: list[bool]
    skipped: int = 0
    lost: int = 0
    publish_time_ns: int = 0
    latency_ms: float = 0.0
    decision_latency_ms: float = 0.0
    telemetry: dict[str, Any] = field(default_factory=dict)
    stream_id: str = ""
    seq: int = 0
    schema_version: int = EVENTS_SCHEMA_VERSION

    TYPE = "state"

    def __post_init__(self) -> None:
        for name in ("frame_index", "capture_time_ns", "decision_time_ns", "skipped", "lost", "publish_time_ns", "seq"):
            setattr(self, name, int(getattr(self, name)))  # numpy integers are not JSON
        self.probabilities = [_finite_or_none(p) for p in self.probabilities]
        self.decisions = [bool(d) for d in self.decisions]
        self.behaviours = list(self.behaviours)
        if not self.decision_latency_ms:
            self.decision_latency_ms = _ms(self.decision_time_ns, self.capture_time_ns)
        if not self.latency_ms:
            self.latency_ms = self.decision_latency_ms

    @property
    def topic(self) -> str:
        """``state/<camera_id>``."""
        return state_topic(self.camera_id)


Message = EventMessage | StateMessage


def _finite_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _to_json_dict(msg: Message) -> dict[str, Any]:
    data = dataclasses.asdict(msg)
    out = {"schema_version": data.pop("schema_version"), "type": msg.TYPE}
    out.update(data)
    if isinstance(msg, EventMessage):
        out["probability"] = _finite_or_none(out["probability"])
    return out


def _json_default(value: Any) -> Any:
    """Numpy scalars and arrays (e.g. in telemetry) as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_message(msg: Message) -> list[bytes]:
    """Encode a message as ZeroMQ parts ``[topic, json]`` (both bytes).

    Raises:
        MessageError: the message is not well formed (bad camera id or kind, lengths that disagree).
    """
    if isinstance(msg, EventMessage):
        if msg.kind not in EVENT_KINDS:
            raise MessageError(f"event kind {msg.kind!r}: expected one of {EVENT_KINDS}")
    elif isinstance(msg, StateMessage):
        if not (len(msg.behaviours) == len(msg.probabilities) == len(msg.decisions)):
            raise MessageError(
                f"state message: {len(msg.behaviours)} behaviours, {len(msg.probabilities)} probabilities and "
                f"{len(msg.decisions)} decisions; they must have the same length"
            )
    else:
        raise TypeError(f"cannot encode {type(msg).__name__}: expected EventMessage or StateMessage")
    try:
        body = json.dumps(_to_json_dict(msg), separators=(",", ":"), allow_nan=False, default=_json_default)
    except ValueError as err:  # NaN or infinity in telemetry
        raise MessageError(f"{msg.topic}: cannot encode as JSON ({err})") from None
    return [msg.topic.encode("utf-8"), body.encode("utf-8")]


encode_event = encode_message
encode_state = encode_message

# Field name -> accepted JSON types, for decoding. bool is excluded from int explicitly below.
_EVENT_FIELDS: dict[str, tuple[type, ...]] = {
    "camera_id": (str,),
    "behaviour": (str,),
    "kind": (str,),
    "frame_index": (int,),
    "bout_start_frame": (int,),
    "probability": (int, float, type(None)),
    "capture_time_ns": (int,),
    "decision_time_ns": (int,),
}
_EVENT_OPTIONAL: dict[str, tuple[type, ...]] = {
    "behaviour_index": (int,),
    "change_frame": (int,),
    "publish_time_ns": (int,),
    "latency_ms": (int, float),
    "decision_latency_ms": (int, float),
    "stream_id": (str,),
    "seq": (int,),
}
_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "camera_id": (str,),
    "frame_index": (int,),
    "capture_time_ns": (int,),
    "decision_time_ns": (int,),
    "behaviours": (list,),
    "probabilities": (list,),
    "decisions": (list,),
}
_STATE_OPTIONAL: dict[str, tuple[type, ...]] = {
    "skipped": (int,),
    "lost": (int,),
    "publish_time_ns": (int,),
    "latency_ms": (int, float),
    "decision_latency_ms": (int, float),
    "telemetry": (dict,),
    "stream_id": (str,),
    "seq": (int,),
}


# Integer fields' ranges (inclusive); the JSON parser already keeps every integer within int64.
_INT_RANGES: dict[str, tuple[int, int]] = {
    "frame_index": (0, MAX_FRAME_NUMBER),
    "bout_start_frame": (-1, MAX_FRAME_NUMBER),
    "change_frame": (-1, MAX_FRAME_NUMBER),
    "behaviour_index": (-1, MAX_BEHAVIOURS),
    "seq": (0, bounded_json.INT64_MAX),
    "skipped": (0, bounded_json.INT64_MAX),
    "lost": (0, bounded_json.INT64_MAX),
}
_STR_LIMITS = {"behaviour": MAX_NAME_LENGTH, "kind": 16, "stream_id": 128, "camera_id": MAX_NAME_LENGTH}


def _short(value: Any) -> str:
    """A value for an error message, cut short (a hostile message may hold anything)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _typed(data: dict, key: str, types: tuple[type, ...], where: str, required: bool) -> Any:
    if key not in data:
        if required:
            raise MessageError(f"{where}: missing field {key!r}")
        return None
    value = data[key]
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise MessageError(f"{where}: field {key!r} should be {names}, got {_short(value)}")
    if isinstance(value, int) and not isinstance(value, bool) and key in _INT_RANGES:
        low, high = _INT_RANGES[key]
        if not low <= value <= high:
            raise MessageError(f"{where}: field {key!r} must lie in {low} .. {high}, got {value}")
    if isinstance(value, str) and key in _STR_LIMITS and len(value) > _STR_LIMITS[key]:
        raise MessageError(f"{where}: field {key!r} is longer than {_STR_LIMITS[key]} characters")
    return value


def _part_bytes(part: Any, where: str) -> bytes:
    if isinstance(part, zmq.Frame):
        return part.bytes
    try:
        return memoryview(part).tobytes()
    except TypeError:
        raise MessageError(f"{where}: a message part of type {type(part).__name__} is not bytes") from None


def decode_message(parts: Sequence[bytes | zmq.Frame | memoryview], *, max_bytes: int = MAX_MESSAGE_BYTES) -> Message:
    """Decode ZeroMQ parts ``[topic, json]`` into an :class:`EventMessage` or :class:`StateMessage`.

    Args:
        parts: the two received parts.
        max_bytes: the largest JSON body accepted.

    Raises:
        MessageTooLarge: the body is larger than ``max_bytes`` (checked before parsing).
        MessageError: anything else malformed: wrong number of parts, unknown topic, bad UTF-8 or JSON, missing,
            mistyped or out-of-range fields, a type or camera id that disagrees with the topic, or a newer
            ``schema_version``. Nothing else is raised, whatever the bytes.
    """
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        n = len(parts) if isinstance(parts, (list, tuple)) else type(parts).__name__
        raise MessageError(f"event/state message: expected 2 parts [topic, json], got {n}")
    raw_topic = _part_bytes(parts[0], "event/state message")
    if len(raw_topic) > MAX_TOPIC_BYTES:
        raise MessageError(f"event/state message: topic longer than {MAX_TOPIC_BYTES} bytes")
    body = parts[1].buffer if isinstance(parts[1], zmq.Frame) else parts[1]
    try:
        body_size = memoryview(body).nbytes
    except TypeError:
        raise MessageError(f"event/state message: a body of type {type(body).__name__} is not bytes") from None
    if body_size > max_bytes:
        raise MessageTooLarge(f"event/state message: body of {body_size} bytes exceeds the limit of {max_bytes}")
    try:
        topic = raw_topic.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("event/state message: topic is not UTF-8") from None
    if topic.startswith(EVENT_TOPIC_PREFIX):
        cls, fields, optional, prefix = EventMessage, _EVENT_FIELDS, _EVENT_OPTIONAL, EVENT_TOPIC_PREFIX
    elif topic.startswith(STATE_TOPIC_PREFIX):
        cls, fields, optional, prefix = StateMessage, _STATE_FIELDS, _STATE_OPTIONAL, STATE_TOPIC_PREFIX
    else:
        raise MessageError(f"topic {_short(topic)}: expected events/<camera_id> or state/<camera_id>")
    where = f"message on {_short(topic)}"
    data = bounded_json.loads(body, max_bytes=max_bytes, error=MessageError, what=f"{where}: body", max_depth=8)
    if not isinstance(data, dict):
        raise MessageError(f"{where}: body must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise MessageError(f"{where}: schema_version must be a positive integer, got {_short(version)}")
    if version > EVENTS_SCHEMA_VERSION:
        raise MessageError(
            f"{where}: schema_version {version} is newer than this deg-live understands ({EVENTS_SCHEMA_VERSION}); "
            "upgrade deg-live on the receiving side"
        )
    if data.get("type") != cls.TYPE:
        raise MessageError(f"{where}: type is {_short(data.get('type'))} but the topic says {cls.TYPE!r}")
    kwargs: dict[str, Any] = {"schema_version": version}
    for key, types in fields.items():
        kwargs[key] = _typed(data, key, types, where, required=True)
    for key, types in optional.items():
        value = _typed(data, key, types, where, required=False)
        if value is not None:
            kwargs[key] = value
    if kwargs["camera_id"] != topic[len(prefix) :]:
        raise MessageError(f"{where}: camera_id {_short(kwargs['camera_id'])} does not match the topic")
    try:
        _check_camera_id(kwargs["camera_id"])
    except MessageError as err:
        raise MessageError(f"{where}: {err}") from None
    if cls is EventMessage:
        if kwargs["kind"] not in EVENT_KINDS:
            raise MessageError(f"{where}: kind {_short(kwargs['kind'])} is not one of {EVENT_KINDS}")
    else:
        k = len(kwargs["behaviours"])
        if k > MAX_BEHAVIOURS:
            raise MessageError(f"{where}: more than {MAX_BEHAVIOURS} behaviours")
        if len(kwargs["probabilities"]) != k or len(kwargs["decisions"]) != k:
            raise MessageError(f"{where}: behaviours, probabilities and decisions must have the same length")
        if not all(isinstance(b, str) and len(b) <= MAX_NAME_LENGTH for b in kwargs["behaviours"]):
            raise MessageError(f"{where}: behaviours must be strings of at most {MAX_NAME_LENGTH} characters")
        if not all(
            p is None or (isinstance(p, (int, float)) and not isinstance(p, bool)) for p in kwargs["probabilities"]
        ):
            raise MessageError(f"{where}: probabilities must be numbers or null")
        if not all(isinstance(d, bool) for d in kwargs["decisions"]):
            raise MessageError(f"{where}: decisions must be true or false")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, OverflowError) as err:  # the dataclass's own conversions
        raise MessageError(f"{where}: {err}") from None


# ---------------------------------------------------------------------------------------------------------------
# Sockets
# ---------------------------------------------------------------------------------------------------------------


class EventPublisher:
    """Publishes event and state messages of one camera on a PUB socket it binds. Sending never blocks.

    A message that cannot be queued (the high-water mark is reached because subscribers are slow) is dropped
    and counted in ``dropped``; ``sent`` counts the others. Each message gets ``publish_time_ns``, ``latency_ms``,
    a per-topic ``seq`` and, if it has none, this publisher's ``stream_id``.

    Args:
        endpoint: where to bind, e.g. ``tcp://127.0.0.1:5560`` (loopback, the default), ``tcp://*:5560``,
            ``ipc:///tmp/deg-events``.
        camera_id: the camera whose messages this publisher sends.
        stream_id: identifies this run (default: a fresh random id).
        sndhwm: messages queued per subscriber before new ones are dropped.
        context: a ZeroMQ context (default: the process-wide one).
        allow_remote: allow binding an address other machines can reach (``tcp://*:5560``); refused otherwise.
        curve: CURVE keys and allowed clients (None: no authentication; warned about beyond loopback).

    Raises:
        EndpointError: the endpoint is malformed, remote without ``allow_remote``, or already in use.
        camera_adapters.network.CurveError: CURVE keys missing or unreadable.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        camera_id: str = "cam0",
        *,
        stream_id: str | None = None,
        sndhwm: int = 1000,
        context: zmq.Context | None = None,
        allow_remote: bool = False,
        curve: CurveServer | None = None,
    ):
        self._socket: zmq.Socket | None = None
        self._auth = None
        self.endpoint = endpoint
        self.camera_id = _check_camera_id(camera_id)
        check_endpoint(endpoint, allow_remote=allow_remote, what="events endpoint")
        warn_if_open(endpoint, curve, "events endpoint")
        self.stream_id = stream_id or uuid.uuid4().hex
        self.sent = 0
        self.dropped = 0
        self._seq: dict[str, int] = {}
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, sndhwm)
        try:
            self._auth = secure_server(sock, curve)
            sock.bind(endpoint)
        except zmq.ZMQError as err:
            sock.close(0)
            self._close_auth()
            raise EndpointError(f"cannot bind events endpoint {endpoint!r}: {err}; pick another port or path") from None
        except BaseException:
            sock.close(0)
            self._close_auth()
            raise
        self._socket = sock
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, msg: Message) -> bool:
        """Send one message without blocking; returns False (and counts a drop) if it could not be queued."""
        if self._socket is None:
            raise RuntimeError("EventPublisher is closed")
        if msg.camera_id != self.camera_id:
            raise ValueError(f"message for camera {msg.camera_id!r} on the publisher of {self.camera_id!r}")
        if not msg.stream_id:
            msg.stream_id = self.stream_id
        topic = msg.topic
        msg.seq = self._seq.get(topic, 0)
        msg.publish_time_ns = time.time_ns()
        msg.latency_ms = _ms(msg.publish_time_ns, msg.capture_time_ns)
        parts = encode_message(msg)
        try:
            self._socket.send_multipart(parts, flags=zmq.NOBLOCK)
        except zmq.Again:
            self.dropped += 1
            return False
        self._seq[topic] = msg.seq + 1
        self.sent += 1
        return True

    def publish_transitions(
        self,
        behaviours: Sequence[str],
        transitions: Iterable[Any],
        capture_time_ns: int,
        decision_time_ns: int | None = None,
    ) -> list[tuple[EventMessage, bool]]:
        """Publish one event per :class:`deg_live.postprocess.Transition` (what the live pipeline sends).

        Returns:
            ``(message, sent)`` per transition, in order; ``sent`` is False where it was dropped (queue full).
        """
        decided = time.time_ns() if decision_time_ns is None else decision_time_ns
        out = []
        for tr in transitions:
            msg = EventMessage.from_transition(self.camera_id, behaviours, tr, capture_time_ns, decided, self.stream_id)
            out.append((msg, self.publish(msg)))
        return out

    def close(self) -> None:
        """Close the socket (idempotent; unsent messages are discarded)."""
        if self._socket is not None:
            self._socket.close(0)
            self._socket = None
        self._close_auth()

    def _close_auth(self) -> None:
        auth, self._auth = getattr(self, "_auth", None), None
        if auth is not None:
            auth.close()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self.close()


class EventSubscriber:
    """Receives event and state messages from a deg_live publisher (SUB socket, connects).

    Args:
        endpoint: the publisher's endpoint, e.g. ``tcp://127.0.0.1:5560``.
        topics: topics to receive: an exact topic (``events/cam0``) or a prefix ending in ``/`` (``events/``,
            ``state/``). Default: every event and state message.
        rcvhwm: messages queued before ZeroMQ drops new ones.
        context: a ZeroMQ context (default: the process-wide one).
        curve: CURVE keys: take messages only from the publisher holding the server key.
        skip_malformed: log, count (``rejected``) and skip malformed messages instead of raising.
        max_bytes: the largest message body accepted (larger ones are malformed: :class:`MessageTooLarge`).

    Raises:
        EndpointError: the endpoint is malformed.
        camera_adapters.network.CurveError: CURVE keys missing or unreadable.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        topics: Iterable[str] = (EVENT_TOPIC_PREFIX, STATE_TOPIC_PREFIX),
        *,
        rcvhwm: int = 10000,
        context: zmq.Context | None = None,
        curve: CurveClient | None = None,
        skip_malformed: bool = False,
        max_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self._socket: zmq.Socket | None = None
        self.endpoint = endpoint
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        if not self.topics:
            raise ValueError("EventSubscriber needs at least one topic")
        self.skip_malformed = skip_malformed
        self.max_bytes = max_bytes
        self.rejected = 0
        self._last_reject_log = 0.0
        ctx = context or zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, rcvhwm)
        sock.setsockopt(zmq.MAXMSGSIZE, 4 * max_bytes)  # far larger parts never reach memory
        try:
            secure_client(sock, curve)
            sock.connect(endpoint)
        except zmq.ZMQError as err:
            sock.close(0)
            raise EndpointError(f"cannot connect to events endpoint {endpoint!r}: {err}") from None
        except BaseException:
            sock.close(0)
            raise
        for topic in self.topics:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
        self._socket = sock
        self._poller = zmq.Poller()
        self._poller.register(sock, zmq.POLLIN)

    def _wanted(self, topic: bytes) -> bool:
        text = topic.decode("utf-8", errors="replace")
        # ZeroMQ matches prefixes, so "events/cam1" would also deliver "events/cam10": check exact topics here.
        return any(text == t or (t.endswith("/") and text.startswith(t)) for t in self.topics)

    def recv(self, timeout: float | None = None) -> Message | None:
        """Wait for the next message on the subscribed topics.

        Args:
            timeout: seconds to wait; None waits forever.

        Returns:
            The decoded message, or None if the timeout passed first.

        Raises:
            MessageError: a malformed message arrived (unless ``skip_malformed``: then it is logged, counted in
                ``rejected`` and skipped).
        """
        if self._socket is None:
            raise RuntimeError("EventSubscriber is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = dict(self._poller.poll(None if remaining is None else int(remaining * 1000)))
            if self._socket not in ready:
                return None
            parts = self._socket.recv_multipart()
            if parts and self._wanted(parts[0]):
                try:
                    return decode_message(parts, max_bytes=self.max_bytes)
                except MessageError as err:
                    if not self.skip_malformed:
                        raise
                    self._reject(err)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _reject(self, err: MessageError) -> None:
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_reject_log > 1.0:
            self._last_reject_log = now
            logger.warning("rejected a malformed event/state message (%d so far): %s", self.rejected, err)

    def __iter__(self) -> Iterator[Message]:
        """Yield messages forever (stop with KeyboardInterrupt or by breaking out)."""
        while True:
            msg = self.recv()
            if msg is not None:
                yield msg

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._socket is not None:
            self._poller.unregister(self._socket)
            self._socket.close(0)
            self._socket = None

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_socket", None) is not None:
            self.close()
