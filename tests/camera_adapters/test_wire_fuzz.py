"""Fuzzing the frame decoder: 10,000 seeded mutations of valid messages; only WireError may come out.

Each case starts from a valid frame message and breaks it one way: a header field replaced by a hostile value
(giant or out-of-range integers, deep nesting, NaN, wrong types, lone surrogates, huge shapes), header bytes
flipped, cut or replaced, parts dropped, repeated or swapped, the pixel part resized, the topic garbled. The
real decoder must either return a frame that obeys the documented bounds, or raise WireError (FrameTooLarge
for sizes above the limits) -- never anything else, never RecursionError, OverflowError or a bare ValueError.
"""

import json
import random

import numpy as np
import pytest

from camera_adapters.wire import (
    MAX_FRAME_INDEX,
    EndOfStream,
    Frame,
    FrameLimits,
    FrameTooLarge,
    WireError,
    decode_message,
    encode_end,
    encode_frame,
)

CASES = 10_000
LIMITS = FrameLimits(max_pixels=64 * 64, max_header_bytes=4096)

# Hostile JSON texts, written raw (json.dumps cannot even write some of them).
HOSTILE = [
    "1" * 5000,
    "-" + "9" * 30,
    str(2**70),
    str(2**63),
    str(-(2**63) - 1),
    str(2**53),
    "-1",
    "0",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "1.5",
    "true",
    "null",
    '""',
    '"x"',
    '"\\ud800"',
    '"' + "a" * 3000 + '"',
    "[]",
    "{}",
    "[" * 3000 + "]" * 3000,
    '{"a":' * 40 + "1" + "}" * 40,
    "[1,2]",
    "[64,64,3]",
    "[65536,65536,3]",
    "[100000,100000,3]",
    "[0,8,3]",
    "[-8,8,3]",
    "[8,8,3,1]",
    "[8.0,8,3]",
    "[true,8,3]",
    '"rgb24"',
    '"gray16"',
    '"uint16"',
    '"frame"',
    '"end"',
    '"cam0"',
    '"cam0 \\n"',
]
FIELDS = [
    "schema_version",
    "kind",
    "camera_id",
    "frame_index",
    "camera_timestamp_ns",
    "capture_time_ns",
    "publish_time_ns",
    "shape",
    "dtype",
    "pixel_format",
    "stream_id",
    "fps",
    "source_frame",
    "truth",
    "frame_count",
    "reason",
    "extra",
]


def _valid(rng: random.Random) -> list:
    fmt = rng.choice(["rgb24", "bgr24", "gray8", "gray16"])
    h, w = rng.randint(1, 16), rng.randint(1, 16)
    shape = (h, w, 3) if fmt in ("rgb24", "bgr24") else (h, w)
    dtype = np.uint16 if fmt == "gray16" else np.uint8
    frame = Frame(
        index=rng.randint(0, 10**6),
        pixels=np.zeros(shape, dtype),
        camera_id="cam0",
        capture_time_ns=1_700_000_000_000_000_000,
        camera_timestamp_ns=rng.choice([None, 5]),
        pixel_format=fmt,
        stream_id="abc123",
        fps=rng.choice([None, 30.0]),
        source_frame=rng.choice([None, 3]),
        truth=rng.choice([None, {"behaviour": "grooming"}]),
    )
    if rng.random() < 0.05:
        return encode_end("cam0", stream_id="abc123", frame_count=10, reason="done")
    return [bytes(p) if not isinstance(p, np.ndarray) else p.tobytes() for p in encode_frame(frame)]


def _replace_field(rng: random.Random, header: bytes) -> bytes:
    data = json.loads(header)
    key = rng.choice(FIELDS)
    data[key] = "__HOSTILE__"
    text = json.dumps(data, separators=(",", ":"))
    return text.replace('"__HOSTILE__"', rng.choice(HOSTILE)).encode("utf-8", "surrogatepass")


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(4)
        if op == 0 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op == 1:
            b.insert(rng.randint(0, len(b)), rng.randrange(256))
        elif op == 2 and b:
            del b[rng.randrange(len(b))]
        else:
            b = b[: rng.randint(0, len(b))]
    return bytes(b)


def _mutate(rng: random.Random, parts: list) -> list:
    topic, header, pixels = parts
    choice = rng.randrange(10)
    if choice <= 3:
        return [topic, _replace_field(rng, header), pixels]
    if choice == 4:
        return [topic, _mutate_bytes(rng, header), pixels]
    if choice == 5:
        return [_mutate_bytes(rng, topic), header, pixels]
    if choice == 6:
        return [topic, header, _mutate_bytes(rng, pixels) + bytes(rng.choice([0, 1, 3, 64 * 64 * 3 + 1]))]
    if choice == 7:
        junk = [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))), b"", b"{}", header, "text", None, 7]
        return [rng.choice(junk) if rng.random() < 0.4 else p for p in (topic, header, pixels)]
    if choice == 8:
        out = list(parts)
        rng.shuffle(out)
        return rng.choice([out, out[:2], [*out, b""], [], out[:1]])
    return [topic, rng.choice([b"[" * 30000 + b"]" * 30000, b" " * 5000 + b"{}", bytes(5000)]), pixels]


def _check_decoded(message) -> None:
    """A message the decoder accepted obeys the documented bounds."""
    if isinstance(message, EndOfStream):
        return
    assert isinstance(message, Frame)
    assert 0 <= message.index <= MAX_FRAME_INDEX
    assert message.pixels.shape[0] * message.pixels.shape[1] <= LIMITS.max_pixels
    message.to_rgb()
    np.int64(message.index), np.int64(message.capture_time_ns)  # fit the recorder's int64 columns


@pytest.mark.timeout(60)
def test_ten_thousand_mutated_frame_messages_raise_only_wire_errors():
    rng = random.Random(20261203)
    outcomes = {"decoded": 0, "WireError": 0, "FrameTooLarge": 0}
    for case in range(CASES):
        parts = _mutate(rng, _valid(rng))
        try:
            message = decode_message(parts, LIMITS)
        except FrameTooLarge:
            outcomes["FrameTooLarge"] += 1
            continue
        except WireError:
            outcomes["WireError"] += 1
            continue
        except BaseException as err:  # anything else is the bug this test exists for
            pytest.fail(f"case {case}: {type(err).__name__}: {err!s:.200} from parts {[repr(p)[:120] for p in parts]}")
        _check_decoded(message)
        outcomes["decoded"] += 1
    # The mutations really reach every outcome (a fuzzer that only makes garbage proves little).
    assert all(n > 100 for n in outcomes.values()), outcomes


def test_the_known_poison_messages_are_named_errors():
    """The messages that once killed the receiver thread or crashed the postprocessor."""
    good = encode_frame(Frame(index=5, pixels=np.zeros((4, 4, 3), np.uint8), camera_id="cam0"))
    header = json.loads(good[1])
    poisons = [
        b"[" * 30000 + b"]" * 30000,  # RecursionError before
        json.dumps({**header, "frame_index": "X"}).replace('"X"', "1" * 5000).encode(),  # ValueError before
        json.dumps({**header, "frame_index": 2**70}).encode(),  # accepted before; OverflowError downstream
        json.dumps({**header, "frame_index": 2**60}).encode(),  # beyond 2**53
        b"[1, 2, 3]",
    ]
    for bad in poisons:
        with pytest.raises(WireError):
            decode_message([good[0], bad, good[2]])
    big = {**header, "shape": [8192, 8192, 3]}
    with pytest.raises(FrameTooLarge, match="max-frame-pixels"):
        decode_message([good[0], json.dumps(big).encode(), b""])
    with pytest.raises(FrameTooLarge, match="pixel part"):  # refused by its size alone, before parsing
        decode_message([good[0], b"not even json", bytes(FrameLimits().max_pixel_bytes + 1)])
    with pytest.raises(FrameTooLarge, match="header"):
        decode_message([good[0], b" " * 16385, good[2]])


def test_limits_are_settable_and_cover_real_cameras():
    five_mp, twelve_mp = 2448 * 2048, 4096 * 3000
    assert FrameLimits().max_pixels >= twelve_mp > five_mp
    assert FrameLimits().max_pixels < 8192 * 8192
    frame = Frame(index=0, pixels=np.zeros((3000, 4096, 3), np.uint8), camera_id="cam0")
    parts = encode_frame(frame)
    assert decode_message(parts).pixels.shape == (3000, 4096, 3)
    with pytest.raises(FrameTooLarge):
        decode_message(parts, FrameLimits(max_pixels=2448 * 2048))
    with pytest.raises(WireError):
        FrameLimits(max_pixels=0)
