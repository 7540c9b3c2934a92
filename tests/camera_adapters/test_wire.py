"""The frame wire format: round trips, and every malformed message rejected with WireError."""

import json

import numpy as np
import pytest

from camera_adapters.wire import (
    MAX_HEADER_BYTES,
    WIRE_SCHEMA_VERSION,
    EndOfStream,
    Frame,
    WireError,
    decode_frame,
    decode_message,
    encode_end,
    encode_frame,
    restart_reason,
)


def _frame(pixel_format="rgb24", shape=(48, 64, 3), dtype=np.uint8, **kw):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    return Frame(index=7, pixels=pixels, camera_id="cam0", capture_time_ns=123, pixel_format=pixel_format, **kw)


def _bytes(parts):
    return [bytes(p) if not isinstance(p, np.ndarray) else p.tobytes() for p in parts]


@pytest.mark.parametrize(
    "pixel_format,shape,dtype",
    [
        ("rgb24", (48, 64, 3), np.uint8),
        ("bgr24", (5, 7, 3), np.uint8),
        ("gray8", (48, 64), np.uint8),
        ("gray16", (9, 4), np.uint16),
    ],
)
def test_round_trip(pixel_format, shape, dtype):
    frame = _frame(
        pixel_format,
        shape,
        dtype,
        camera_timestamp_ns=99,
        stream_id="abc",
        fps=30.0,
        source_frame=3,
        truth={"behaviour": "walk"},
    )
    parts = encode_frame(frame, publish_time_ns=456)
    assert parts[2] is frame.pixels  # no copy on the way out
    out = decode_frame(_bytes(parts))
    np.testing.assert_array_equal(out.pixels, frame.pixels)
    assert out.pixels.dtype == dtype and out.pixels.shape == shape
    assert (out.index, out.camera_id, out.capture_time_ns, out.publish_time_ns) == (7, "cam0", 123, 456)
    assert (out.camera_timestamp_ns, out.stream_id, out.fps, out.source_frame) == (99, "abc", 30.0, 3)
    assert out.truth == {"behaviour": "walk"} and out.receive_time_ns > 0
    assert out.to_rgb().shape == (*shape[:2], 3)
    header = json.loads(parts[1])
    assert header["schema_version"] == WIRE_SCHEMA_VERSION and header["pixel_format"] == pixel_format


def test_bgr_to_rgb_and_noncontiguous():
    frame = _frame("bgr24")
    np.testing.assert_array_equal(frame.to_rgb(), frame.pixels[..., ::-1])
    frame.pixels = frame.pixels[:, ::2]  # not contiguous: encoded as a contiguous copy
    out = decode_frame(_bytes(encode_frame(frame)))
    np.testing.assert_array_equal(out.pixels, frame.pixels)


def test_end_message():
    message = decode_message(encode_end("cam0", stream_id="s", frame_count=12, reason="file ended"))
    assert isinstance(message, EndOfStream) and message.frame_count == 12 and message.reason == "file ended"
    with pytest.raises(EndOfStream):
        decode_frame(encode_end("cam0"))


def _parts(**changes):
    parts = _bytes(encode_frame(_frame()))
    header = json.loads(parts[1])
    for key, value in changes.items():
        if value is KeyError:
            header.pop(key)
        else:
            header[key] = value
    parts[1] = json.dumps(header).encode()
    return parts


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"schema_version": 2}, "schema_version"),
        ({"schema_version": KeyError}, "schema_version"),
        ({"frame_index": -1}, "frame_index"),
        ({"frame_index": "7"}, "frame_index"),
        ({"frame_index": True}, "frame_index"),
        ({"capture_time_ns": KeyError}, "capture_time_ns"),
        ({"shape": [48, 64]}, "shape"),
        ({"shape": [48, 64, 4]}, "shape"),
        ({"shape": [48, -64, 3]}, "shape"),
        ({"shape": "48x64"}, "shape"),
        ({"shape": [2**40, 2**40, 3]}, "shape"),  # would be exabytes: never allocated
        ({"shape": [64, 48, 3]}, None),  # same byte count, different shape: allowed (bytes match)
        ({"shape": [48, 63, 3]}, "bytes"),
        ({"dtype": "uint16"}, "dtype"),
        ({"pixel_format": "yuv420p"}, "pixel_format"),
        ({"camera_id": "cam1"}, "does not match"),
        ({"camera_id": ""}, "camera_id"),
        ({"kind": "hello"}, "kind"),
        ({"fps": "fast"}, "fps"),
        ({"truth": [1]}, "truth"),
        ({"stream_id": 5}, "stream_id"),
    ],
)
def test_malformed_header_fields(changes, match):
    parts = _parts(**changes)
    if match is None:
        assert decode_frame(parts).pixels.shape == (64, 48, 3)
        return
    with pytest.raises(WireError, match=match):
        decode_frame(parts)


def test_malformed_messages():
    good = _bytes(encode_frame(_frame()))
    with pytest.raises(WireError, match="3 parts"):
        decode_frame(good[:2])
    with pytest.raises(WireError, match="3 parts"):
        decode_frame([*good, b""])
    with pytest.raises(WireError, match="bytes"):
        decode_frame([good[0], good[1], good[2][:-1]])  # truncated pixels
    with pytest.raises(WireError, match="JSON"):
        decode_frame([good[0], b"{not json", good[2]])
    with pytest.raises(WireError, match="JSON object"):
        decode_frame([good[0], b"[1, 2]", good[2]])
    with pytest.raises(WireError, match="UTF-8"):
        decode_frame([good[0], b"\xff\xfe", good[2]])
    with pytest.raises(WireError, match="exceeds"):
        decode_frame([good[0], b" " * (MAX_HEADER_BYTES + 1), good[2]])
    with pytest.raises(WireError, match="topic"):
        decode_frame([b"events/cam0", good[1], good[2]])
    with pytest.raises(WireError):
        decode_frame("not a list")


def test_encode_checks_pixels():
    with pytest.raises(WireError, match="3-D"):
        encode_frame(Frame(index=0, pixels=np.zeros((4, 4), np.uint8), pixel_format="rgb24"))
    with pytest.raises(WireError, match="dtype"):
        encode_frame(Frame(index=0, pixels=np.zeros((4, 4, 3), np.float32), pixel_format="rgb24"))
    with pytest.raises(WireError, match="unknown pixel_format"):
        encode_frame(Frame(index=0, pixels=np.zeros((4, 4, 3), np.uint8), pixel_format="rgba"))


def test_the_one_restart_rule():
    """A new stream id, or an index that does not go forward, is a restart; a forward jump is a gap, not one."""
    assert restart_reason(None, None, "a", 0) is None  # the first message
    assert restart_reason("a", 5, "a", 6) is None
    assert restart_reason("a", 5, "a", 90) is None
    assert restart_reason("a", 5, "a", 5) == "frame index went back from 5 to 5"
    assert restart_reason("a", 5, "a", 0) == "frame index went back from 5 to 0"
    assert restart_reason("a", 5, "b", 6) == "stream id a -> b"
    assert restart_reason(None, 5, "b", 6) == "stream id None -> b"
