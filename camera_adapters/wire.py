"""The frame wire format: one ZeroMQ multipart message ``[topic, header JSON, pixels]`` per frame.

- ``topic``: ``frames/<camera_id>`` (UTF-8), so a SUB socket can subscribe to one camera.
- ``header``: a UTF-8 JSON object (fields below), at most :data:`MAX_HEADER_BYTES` (settable, :class:`FrameLimits`).
- ``pixels``: the raw C-contiguous pixel buffer, sent without copying (``send_multipart(parts, copy=False)``).

Header fields (``schema_version`` 1):

==================== =========================================================================================
``schema_version``   1
``kind``             ``"frame"``, or ``"end"`` for the end-of-stream message (empty pixel part)
``camera_id``        the camera's name, the same as in the topic
``frame_index``      monotonic per stream; from the camera's own counter where it has one (gaps = lost frames)
``camera_timestamp_ns`` the camera's own clock in ns, or null where it has none (file replay: presentation time)
``capture_time_ns``  host wall clock (``time.time_ns()``, CLOCK_REALTIME) when the frame was grabbed
``publish_time_ns``  host wall clock when the frame was handed to ZeroMQ
``shape``            ``[H, W, C]`` or ``[H, W]``
``dtype``            ``"uint8"`` or ``"uint16"``
``pixel_format``     ``"rgb24"``, ``"bgr24"`` (``[H, W, 3]`` uint8), ``"gray8"`` (``[H, W]`` uint8), ``"gray16"``
``stream_id``        optional: random hex per publisher start, so a restarted camera is recognisable
``fps``              optional: the nominal frame rate
``source_frame``     optional: the frame's index in the replayed file (``video`` source)
``truth``            optional: ground truth of a scripted source (``synthetic``: ``{"behaviour": name}``)
==================== =========================================================================================

Times are ``time.time_ns()`` so that they compare across processes on one machine (and across machines only as
well as their clocks are synchronised); intervals inside one process use the monotonic clock.

Decoding checks every field and the pixel byte count against the shape *before* touching the buffer and raises
:class:`WireError` for anything malformed, whatever the bytes are (a fuzz test holds this): the header is parsed
by :func:`camera_adapters.bounded_json.loads` (nesting, integer size, NaN refused), integers are bounded (frame
indices ``0 .. 2**53-1``, times within int64). A message larger than the :class:`FrameLimits` (header bytes,
pixel bytes, width x height) raises :class:`FrameTooLarge` *before* its header is parsed where the byte counts
already tell: receivers drop and count it (``oversize``). The default limit, :data:`DEFAULT_MAX_PIXELS`
(4096 x 4096 = 16.8 MP, 48 MiB as RGB), covers real machine-vision cameras (5 MP, 12 MP 4096 x 3000); raise it
for larger sensors (``--max-frame-pixels``). Decoded pixels are a read-only view of the received buffer (no
copy): copy them if you must write.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera_adapters import bounded_json
from camera_adapters.errors import UserFacingError

WIRE_SCHEMA_VERSION = 1
TOPIC_PREFIX = "frames/"
MAX_HEADER_BYTES = 16384  # a real header is ~400 bytes
MAX_DIMENSION = 65536
MAX_TOPIC_BYTES = 512
DEFAULT_MAX_PIXELS = 4096 * 4096
MAX_FRAME_INDEX = 2**53 - 1  # exact in every JSON reader (JavaScript's numbers too)
# Control messages of the lossless path (publisher -> receiver), never confused with a frame's "frames/" topic:
CONTROL_PING = b"control/ping"  # [CONTROL_PING]: is the receiver still there? (ignored by receivers)
CONTROL_REFUSED = b"control/refused"  # [CONTROL_REFUSED, reason]: another receiver already takes this stream

# pixel_format -> (channels or None for 2-D, dtype name)
PIXEL_FORMATS: dict[str, tuple[int | None, str]] = {
    "rgb24": (3, "uint8"),
    "bgr24": (3, "uint8"),
    "gray8": (None, "uint8"),
    "gray16": (None, "uint16"),
}


class WireError(UserFacingError, ValueError):
    """A message on the wire is malformed, truncated or of an unknown schema; the message says which field."""


class FrameTooLarge(WireError):
    """A message is larger than the receiver's :class:`FrameLimits` allow; dropped (and counted as ``oversize``)."""


@dataclass(frozen=True)
class FrameLimits:
    """The largest frame message a receiver accepts; anything larger is refused before it is parsed.

    Attributes:
        max_pixels: width x height of the largest frame (default 4096 x 4096).
        max_header_bytes: the largest JSON header.
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_header_bytes: int = MAX_HEADER_BYTES

    def __post_init__(self) -> None:
        for name in ("max_pixels", "max_header_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise WireError(f"frame limit {name} must be a positive integer, got {value!r}")

    @property
    def max_pixel_bytes(self) -> int:
        """The largest pixel part: ``max_pixels`` x 3 bytes (rgb24, the widest pixel format)."""
        return self.max_pixels * 3

    @property
    def max_part_bytes(self) -> int:
        """ZeroMQ's own per-part ceiling for receiving sockets (``ZMQ_MAXMSGSIZE``), about twice the limits.

        Parts between the limits and this ceiling are received, refused and counted (``oversize``); parts beyond
        it never reach memory: ZeroMQ drops the connection as it reads the part's length, and reconnects.
        """
        return 2 * self.max_pixel_bytes + self.max_header_bytes + (1 << 20)


DEFAULT_LIMITS = FrameLimits()


class EndOfStream(Exception):
    """The stream ended normally (a replayed file ran out, ``--max-frames`` reached, the publisher stopped).

    Attributes:
        camera_id: the camera whose stream ended (None if unknown).
        frame_count: how many frames the publisher sent, when it said so.
        reason: a short human-readable reason.
    """

    def __init__(self, reason: str = "end of stream", *, camera_id: str | None = None, frame_count: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.camera_id = camera_id
        self.frame_count = frame_count


@dataclass
class Frame:
    """One frame, as a source produces it and as a subscriber decodes it.

    Attributes:
        index: frame index, monotonic per stream (from the camera's counter where it has one).
        pixels: ``(H, W, 3)`` uint8 for rgb24/bgr24, ``(H, W)`` for gray8/gray16.
        camera_id: the camera's name.
        capture_time_ns: host ``time.time_ns()`` at grab.
        camera_timestamp_ns: the camera's own timestamp in ns, or None.
        publish_time_ns: host ``time.time_ns()`` when published (None before publishing).
        pixel_format: see :data:`PIXEL_FORMATS`.
        stream_id: random id of the publisher run (None if not set).
        fps: nominal frame rate, or None.
        source_frame: index in the replayed file, or None.
        truth: ground truth of a scripted source, or None.
        receive_time_ns: set by subscribers: host ``time.time_ns()`` when the message was decoded.
    """

    index: int
    pixels: np.ndarray
    camera_id: str = "cam0"
    capture_time_ns: int = 0
    camera_timestamp_ns: int | None = None
    publish_time_ns: int | None = None
    pixel_format: str = "rgb24"
    stream_id: str | None = None
    fps: float | None = None
    source_frame: int | None = None
    truth: dict[str, Any] | None = None
    receive_time_ns: int | None = field(default=None, compare=False)

    def to_rgb(self) -> np.ndarray:
        """The pixels as ``(H, W, 3) uint8`` RGB (a view for rgb24, converted otherwise)."""
        if self.pixel_format == "rgb24":
            return self.pixels
        if self.pixel_format == "bgr24":
            return np.ascontiguousarray(self.pixels[..., ::-1])
        if self.pixel_format == "gray8":
            return np.repeat(self.pixels[..., None], 3, axis=-1)
        if self.pixel_format == "gray16":
            return np.repeat((self.pixels >> 8).astype(np.uint8)[..., None], 3, axis=-1)
        raise WireError(f"unknown pixel_format {self.pixel_format!r}")


def restart_reason(last_stream_id: str | None, last_index: int | None, stream_id: str | None, index: int) -> str | None:
    """The one rule for "the camera stream restarted": why a message starts a new stream, or None.

    A stream restarted when its ``stream_id`` changed (a new publisher start) or its index did not go forward
    (the camera's counter was reset). Used by the subscriber's counters, the live pipeline (which resets its
    history) and the viewer's timeline (which clears it); ``last_index`` None means no message yet.
    """
    if last_index is None:
        return None
    if stream_id != last_stream_id:
        return f"stream id {last_stream_id} -> {stream_id}"
    if index <= last_index:
        return f"frame index went back from {last_index} to {index}"
    return None


def check_pixels(pixels: np.ndarray, pixel_format: str) -> None:
    """Raise :class:`WireError` unless ``pixels`` has the shape and dtype ``pixel_format`` announces."""
    if pixel_format not in PIXEL_FORMATS:
        raise WireError(f"unknown pixel_format {pixel_format!r} (known: {', '.join(PIXEL_FORMATS)})")
    channels, dtype = PIXEL_FORMATS[pixel_format]
    want_ndim = 2 if channels is None else 3
    if pixels.ndim != want_ndim or (channels is not None and pixels.shape[2] != channels):
        raise WireError(f"pixel_format {pixel_format!r} needs {want_ndim}-D pixels, got shape {pixels.shape}")
    if pixels.dtype != np.dtype(dtype):
        raise WireError(f"pixel_format {pixel_format!r} needs dtype {dtype}, got {pixels.dtype}")


def topic_for(camera_id: str) -> bytes:
    """The topic bytes of a camera's frames: ``frames/<camera_id>``."""
    return (TOPIC_PREFIX + camera_id).encode("utf-8")


def encode_frame(frame: Frame, *, publish_time_ns: int | None = None) -> list[Any]:
    """The parts of ``frame``'s message, for ``socket.send_multipart(parts, copy=False)``.

    The pixel part is the frame's own (contiguous) array, not a copy: do not write to it until ZeroMQ has sent it
    (sources hand out a fresh array per frame, so this holds).

    Args:
        frame: the frame; ``frame.publish_time_ns`` is set to ``publish_time_ns`` or now.
        publish_time_ns: the publish time to stamp (``time.time_ns()`` when None).

    Raises:
        WireError: the pixels do not match the pixel format.
    """
    pixels = frame.pixels
    check_pixels(pixels, frame.pixel_format)
    if not pixels.flags.c_contiguous:
        pixels = np.ascontiguousarray(pixels)
    published = time.time_ns() if publish_time_ns is None else publish_time_ns
    frame.publish_time_ns = published
    header = {
        "schema_version": WIRE_SCHEMA_VERSION,
        "kind": "frame",
        "camera_id": frame.camera_id,
        "frame_index": int(frame.index),
        "camera_timestamp_ns": None if frame.camera_timestamp_ns is None else int(frame.camera_timestamp_ns),
        "capture_time_ns": int(frame.capture_time_ns),
        "publish_time_ns": int(published),
        "shape": list(pixels.shape),
        "dtype": str(pixels.dtype),
        "pixel_format": frame.pixel_format,
    }
    for key in ("stream_id", "fps", "source_frame", "truth"):
        value = getattr(frame, key)
        if value is not None:
            header[key] = value
    return [topic_for(frame.camera_id), json.dumps(header, separators=(",", ":")).encode("utf-8"), pixels]


def encode_end(camera_id: str, *, stream_id: str | None = None, frame_count: int = 0, reason: str = "") -> list[bytes]:
    """The end-of-stream message: subscribers raise :class:`EndOfStream` when they receive it."""
    header = {
        "schema_version": WIRE_SCHEMA_VERSION,
        "kind": "end",
        "camera_id": camera_id,
        "stream_id": stream_id,
        "frame_count": int(frame_count),
        "reason": reason,
        "publish_time_ns": time.time_ns(),
    }
    return [topic_for(camera_id), json.dumps(header).encode("utf-8"), b""]


def _buffer(part: Any) -> memoryview:
    """A memoryview of one received part (``bytes``, ``zmq.Frame`` or anything with the buffer protocol)."""
    buf = getattr(part, "buffer", part)
    try:
        view = memoryview(buf)
    except TypeError:
        raise WireError(f"message part of type {type(part).__name__} is not a byte buffer") from None
    if not view.c_contiguous:
        raise WireError("message part is not a contiguous byte buffer")
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _int(
    header: dict, key: str, *, minimum: int | None = 0, maximum: int = bounded_json.INT64_MAX, nullable: bool = False
) -> int | None:
    value = header.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"header field {key!r} must be an integer, got {_short(value)}")
    if minimum is not None and value < minimum:
        raise WireError(f"header field {key!r} must be >= {minimum}, got {value}")
    if value > maximum:
        raise WireError(f"header field {key!r} must be <= {maximum}, got {value}")
    return value


def _str(header: dict, key: str, *, nullable: bool = False, max_len: int = 256) -> str | None:
    value = header.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or not value.isprintable():
        raise WireError(
            f"header field {key!r} must be a non-empty printable string of at most {max_len} characters, "
            f"got {_short(value)}"
        )
    return value


def _short(value: Any) -> str:
    """A value for an error message, cut short (a hostile header may hold anything)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_header(parts: list[Any], limits: FrameLimits) -> tuple[str, dict]:
    if not isinstance(parts, (list, tuple)) or len(parts) != 3:
        n = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise WireError(f"a frame message has 3 parts [topic, header, pixels], got {n}")
    topic_buf, header_buf, pixel_buf = _buffer(parts[0]), _buffer(parts[1]), _buffer(parts[2])
    # Sizes first: an oversize message is dropped before a byte of it is parsed.
    if header_buf.nbytes > limits.max_header_bytes:
        raise FrameTooLarge(f"header of {header_buf.nbytes} bytes exceeds the limit of {limits.max_header_bytes}")
    if pixel_buf.nbytes > limits.max_pixel_bytes:
        raise FrameTooLarge(
            f"pixel part of {pixel_buf.nbytes} bytes exceeds the limit of {limits.max_pixel_bytes} "
            f"({limits.max_pixels} pixels; raise --max-frame-pixels for a larger camera)"
        )
    if topic_buf.nbytes > MAX_TOPIC_BYTES:
        raise WireError(f"topic longer than {MAX_TOPIC_BYTES} bytes")
    try:
        topic = topic_buf.tobytes().decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("topic is not UTF-8") from None
    if not topic.startswith(TOPIC_PREFIX):
        raise WireError(f"topic {_short(topic)} does not start with {TOPIC_PREFIX!r}")
    header = bounded_json.loads(header_buf, max_bytes=limits.max_header_bytes, error=WireError, what="header")
    if not isinstance(header, dict):
        raise WireError(f"header must be a JSON object, got {type(header).__name__}")
    version = header.get("schema_version")
    if version != WIRE_SCHEMA_VERSION or isinstance(version, bool):
        raise WireError(f"unsupported schema_version {_short(version)} (this reader understands {WIRE_SCHEMA_VERSION})")
    camera_id = _str(header, "camera_id")
    if topic != TOPIC_PREFIX + camera_id:
        raise WireError(f"topic {_short(topic)} does not match camera_id {camera_id!r}")
    return camera_id, header


def decode_message(parts: list[Any], limits: FrameLimits = DEFAULT_LIMITS) -> Frame | EndOfStream:
    """Decode a frame message, or an end-of-stream message (returned as an :class:`EndOfStream`, not raised).

    Args:
        parts: the three received parts (``bytes`` or ``zmq.Frame``).
        limits: the largest message accepted (default :data:`DEFAULT_LIMITS`).

    Raises:
        FrameTooLarge: the message exceeds ``limits`` (checked before parsing where the sizes tell).
        WireError: anything else malformed; the message names the field. Nothing else is raised.
    """
    camera_id, header = _parse_header(parts, limits)
    kind = header.get("kind", "frame")
    if kind == "end":
        count = _int(header, "frame_count", nullable=True)
        reason = header.get("reason") or "end of stream"
        if not isinstance(reason, str):
            reason = "end of stream"
        return EndOfStream(reason[:500], camera_id=camera_id, frame_count=count)
    if kind != "frame":
        raise WireError(f"unknown message kind {_short(kind)} (known: frame, end)")

    pixel_format = _str(header, "pixel_format")
    if pixel_format not in PIXEL_FORMATS:
        raise WireError(f"unknown pixel_format {pixel_format!r} (known: {', '.join(PIXEL_FORMATS)})")
    channels, dtype_name = PIXEL_FORMATS[pixel_format]
    dtype = header.get("dtype")
    if not isinstance(dtype, str) or dtype != dtype_name:
        raise WireError(f"dtype {_short(dtype)} does not match pixel_format {pixel_format!r} ({dtype_name})")
    shape = header.get("shape")
    want_ndim = 2 if channels is None else 3
    if (
        not isinstance(shape, list)
        or len(shape) != want_ndim
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_DIMENSION for s in shape)
        or (channels is not None and shape[2] != channels)
    ):
        raise WireError(f"shape {_short(shape)} is not a valid {want_ndim}-D shape for pixel_format {pixel_format!r}")
    if shape[0] * shape[1] > limits.max_pixels:
        raise FrameTooLarge(
            f"a {shape[1]}x{shape[0]} frame exceeds the limit of {limits.max_pixels} pixels "
            "(raise --max-frame-pixels for a larger camera)"
        )
    itemsize = np.dtype(dtype_name).itemsize
    expected = math.prod(shape) * itemsize  # Python ints: no overflow
    pixel_buf = _buffer(parts[2])
    if pixel_buf.nbytes != expected:
        raise WireError(f"pixel part has {pixel_buf.nbytes} bytes, shape {shape} {dtype_name} needs {expected}")

    index = _int(header, "frame_index", maximum=MAX_FRAME_INDEX)
    capture = _int(header, "capture_time_ns")
    publish = _int(header, "publish_time_ns")
    camera_ts = _int(header, "camera_timestamp_ns", minimum=bounded_json.INT64_MIN, nullable=True)
    stream_id = _str(header, "stream_id", nullable=True, max_len=64)
    source_frame = _int(header, "source_frame", maximum=MAX_FRAME_INDEX, nullable=True)
    fps = header.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 <= fps < 1e6):
        raise WireError(f"header field 'fps' must be a non-negative number or null, got {_short(fps)}")
    truth = header.get("truth")
    if truth is not None and not isinstance(truth, dict):
        raise WireError("header field 'truth' must be a JSON object or null")

    pixels = np.frombuffer(pixel_buf, dtype=np.dtype(dtype_name)).reshape(shape)
    return Frame(
        index=index,
        pixels=pixels,
        camera_id=camera_id,
        capture_time_ns=capture,
        camera_timestamp_ns=camera_ts,
        publish_time_ns=publish,
        pixel_format=pixel_format,
        stream_id=stream_id,
        fps=None if fps is None else float(fps),
        source_frame=source_frame,
        truth=truth,
        receive_time_ns=time.time_ns(),
    )


def decode_frame(parts: list[Any], limits: FrameLimits = DEFAULT_LIMITS) -> Frame:
    """Decode a frame message; an end-of-stream message raises :class:`EndOfStream`.

    Raises:
        FrameTooLarge: the message exceeds ``limits``.
        WireError: the message is malformed (wrong part count, bad JSON, unknown schema, bad or missing field,
            pixel byte count not matching the shape).
        EndOfStream: the message is the publisher's end-of-stream message.
    """
    message = decode_message(parts, limits)
    if isinstance(message, EndOfStream):
        raise message
    return message
