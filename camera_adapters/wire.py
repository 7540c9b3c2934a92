"""The frame wire format: one ZeroMQ multipart message ``[topic, header JSON, pixels]`` per frame.

- ``topic``: ``frames/<camera_id>`` (UTF-8), so a SUB socket can subscribe to one camera.
- ``header``: a UTF-8 JSON object (fields below), at most :data:`MAX_HEADER_BYTES`.
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
:class:`WireError`; it never allocates from an unchecked shape. Decoded pixels are a read-only view of the
received buffer (no copy): copy them if you must write.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera_adapters.errors import UserFacingError

WIRE_SCHEMA_VERSION = 1
TOPIC_PREFIX = "frames/"
MAX_HEADER_BYTES = 65536
MAX_DIMENSION = 65536

# pixel_format -> (channels or None for 2-D, dtype name)
PIXEL_FORMATS: dict[str, tuple[int | None, str]] = {
    "rgb24": (3, "uint8"),
    "bgr24": (3, "uint8"),
    "gray8": (None, "uint8"),
    "gray16": (None, "uint16"),
}


class WireError(UserFacingError, ValueError):
    """A message on the wire is malformed, truncated or of an unknown schema; the message says which field."""


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
        return memoryview(buf)
    except TypeError:
        raise WireError(f"message part of type {type(part).__name__} is not a byte buffer") from None


def _int(header: dict, key: str, *, minimum: int | None = 0, nullable: bool = False) -> int | None:
    value = header.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"header field {key!r} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise WireError(f"header field {key!r} must be >= {minimum}, got {value}")
    return value


def _str(header: dict, key: str, *, nullable: bool = False, max_len: int = 256) -> str | None:
    value = header.get(key)
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise WireError(f"header field {key!r} must be a non-empty string of at most {max_len} characters")
    return value


def _parse_header(parts: list[Any]) -> tuple[str, dict]:
    if not isinstance(parts, (list, tuple)) or len(parts) != 3:
        n = len(parts) if isinstance(parts, (list, tuple)) else "?"
        raise WireError(f"a frame message has 3 parts [topic, header, pixels], got {n}")
    topic_buf, header_buf = _buffer(parts[0]), _buffer(parts[1])
    if topic_buf.nbytes > 512:
        raise WireError("topic longer than 512 bytes")
    try:
        topic = bytes(topic_buf).decode("utf-8")
    except UnicodeDecodeError:
        raise WireError("topic is not UTF-8") from None
    if not topic.startswith(TOPIC_PREFIX):
        raise WireError(f"topic {topic!r} does not start with {TOPIC_PREFIX!r}")
    if header_buf.nbytes > MAX_HEADER_BYTES:
        raise WireError(f"header of {header_buf.nbytes} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(header_buf).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"header is not UTF-8 JSON ({err})") from None
    if not isinstance(header, dict):
        raise WireError("header must be a JSON object")
    version = header.get("schema_version")
    if version != WIRE_SCHEMA_VERSION:
        raise WireError(f"unsupported schema_version {version!r} (this reader understands {WIRE_SCHEMA_VERSION})")
    camera_id = _str(header, "camera_id")
    if topic != TOPIC_PREFIX + camera_id:
        raise WireError(f"topic {topic!r} does not match camera_id {camera_id!r}")
    return camera_id, header


def decode_message(parts: list[Any]) -> Frame | EndOfStream:
    """Decode a frame message, or an end-of-stream message (returned as an :class:`EndOfStream`, not raised).

    Args:
        parts: the three received parts (``bytes`` or ``zmq.Frame``).

    Raises:
        WireError: anything malformed; the message names the field.
    """
    camera_id, header = _parse_header(parts)
    kind = header.get("kind", "frame")
    if kind == "end":
        count = _int(header, "frame_count", nullable=True)
        reason = header.get("reason") or "end of stream"
        return EndOfStream(str(reason)[:500], camera_id=camera_id, frame_count=count)
    if kind != "frame":
        raise WireError(f"unknown message kind {kind!r} (known: frame, end)")

    pixel_format = _str(header, "pixel_format")
    if pixel_format not in PIXEL_FORMATS:
        raise WireError(f"unknown pixel_format {pixel_format!r} (known: {', '.join(PIXEL_FORMATS)})")
    channels, dtype_name = PIXEL_FORMATS[pixel_format]
    if header.get("dtype") != dtype_name:
        raise WireError(f"dtype {header.get('dtype')!r} does not match pixel_format {pixel_format!r} ({dtype_name})")
    shape = header.get("shape")
    want_ndim = 2 if channels is None else 3
    if (
        not isinstance(shape, list)
        or len(shape) != want_ndim
        or not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s <= MAX_DIMENSION for s in shape)
        or (channels is not None and shape[2] != channels)
    ):
        raise WireError(f"shape {shape!r} is not a valid {want_ndim}-D shape for pixel_format {pixel_format!r}")
    itemsize = np.dtype(dtype_name).itemsize
    expected = math.prod(shape) * itemsize  # Python ints: no overflow
    pixel_buf = _buffer(parts[2])
    if pixel_buf.nbytes != expected:
        raise WireError(f"pixel part has {pixel_buf.nbytes} bytes, shape {shape} {dtype_name} needs {expected}")

    index = _int(header, "frame_index")
    capture = _int(header, "capture_time_ns")
    publish = _int(header, "publish_time_ns")
    camera_ts = _int(header, "camera_timestamp_ns", minimum=None, nullable=True)
    stream_id = _str(header, "stream_id", nullable=True, max_len=64)
    source_frame = _int(header, "source_frame", nullable=True)
    fps = header.get("fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 <= fps < 1e6):
        raise WireError(f"header field 'fps' must be a non-negative number or null, got {fps!r}")
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


def decode_frame(parts: list[Any]) -> Frame:
    """Decode a frame message; an end-of-stream message raises :class:`EndOfStream`.

    Raises:
        WireError: the message is malformed (wrong part count, bad JSON, unknown schema, bad or missing field,
            pixel byte count not matching the shape).
        EndOfStream: the message is the publisher's end-of-stream message.
    """
    message = decode_message(parts)
    if isinstance(message, EndOfStream):
        raise message
    return message
