"""Fuzzing the event/state decoder: 10,000 seeded mutations of valid messages; only MessageError may come out.

Each case starts from a valid event or state message and breaks it one way (a field replaced by a hostile
value, bytes flipped or cut, parts dropped or swapped, the topic garbled). The real decoder must return a
message that can be encoded again and whose numbers fit the documented bounds, or raise MessageError
(MessageTooLarge above the size limit) -- never RecursionError, OverflowError, a bare ValueError or TypeError.
"""

import json
import random

import numpy as np
import pytest

from deg_live.events import (
    MAX_FRAME_NUMBER,
    EventMessage,
    MessageError,
    MessageTooLarge,
    StateMessage,
    decode_message,
    encode_message,
)

CASES = 10_000
MAX_BYTES = 8192

HOSTILE = [
    "1" * 5000,
    str(2**70),
    str(2**63),
    str(-(2**63) - 1),
    str(2**53),
    "-2",
    "-1",
    "0",
    "1e999",
    "NaN",
    "-Infinity",
    "0.5",
    "true",
    "null",
    '""',
    '"onset"',
    '"offset"',
    '"event"',
    '"state"',
    '"cam0"',
    '"cam 0"',
    '"\\ud800"',
    '"' + "b" * 2000 + '"',
    "[]",
    "{}",
    "[" * 3000 + "]" * 3000,
    '{"a":' * 30 + "1" + "}" * 30,
    '["background","grooming","rearing"]',
    "[0.1,0.2,0.3]",
    "[true,false,true]",
    "[null,1,2]",
    '[1,"a",null]',
]
EVENT_FIELDS = [*EventMessage.__dataclass_fields__, "type", "extra"]
STATE_FIELDS = [*StateMessage.__dataclass_fields__, "type", "extra"]


def _valid(rng: random.Random) -> list[bytes]:
    if rng.random() < 0.5:
        msg = EventMessage(
            "cam0",
            rng.choice(["grooming", "rearing"]),
            rng.choice(["onset", "offset"]),
            rng.randint(0, 10**6),
            rng.randint(0, 10**6),
            rng.random(),
            1_700_000_000_000_000_000,
            1_700_000_000_010_000_000,
            seq=rng.randint(0, 100),
            stream_id="s1",
        )
    else:
        msg = StateMessage(
            "cam0",
            rng.randint(0, 10**6),
            1_700_000_000_000_000_000,
            1_700_000_000_010_000_000,
            ["background", "grooming", "rearing"],
            [rng.random() for _ in range(3)],
            [rng.random() < 0.5 for _ in range(3)],
            telemetry=rng.choice([{}, {"fps": 30.0, "stages": {"encoder": 1.5}}]),
        )
    return encode_message(msg)


def _replace_field(rng: random.Random, topic: bytes, body: bytes) -> bytes:
    data = json.loads(body)
    fields = EVENT_FIELDS if topic.startswith(b"events/") else STATE_FIELDS
    data[rng.choice(fields)] = "__HOSTILE__"
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


def _mutate(rng: random.Random, parts: list[bytes]) -> list:
    topic, body = parts
    choice = rng.randrange(9)
    if choice <= 4:
        return [topic, _replace_field(rng, topic, body)]
    if choice == 5:
        return [topic, _mutate_bytes(rng, body)]
    if choice == 6:
        return [rng.choice([_mutate_bytes(rng, topic), b"state/cam0", b"events/cam0", b"events/", b"\xff"]), body]
    if choice == 7:
        junk = [b"", b"{}", b"[]", bytes(MAX_BYTES + 1), "text", None, 3, memoryview(body)]
        return rng.choice([[topic], [topic, body, b""], [body, topic], [topic, rng.choice(junk)], []])
    return [topic, rng.choice([b"[" * 30000 + b"]" * 30000, b"{" * 5000, body + b" " * MAX_BYTES])]


def _check_decoded(msg) -> None:
    assert isinstance(msg, (EventMessage, StateMessage))
    assert 0 <= msg.frame_index <= MAX_FRAME_NUMBER
    np.int64(msg.capture_time_ns), np.int64(msg.decision_time_ns)  # fit int64 columns
    encode_message(msg)  # what was accepted can be sent on (no NaN, no lone surrogate)


@pytest.mark.timeout(60)
def test_ten_thousand_mutated_event_and_state_messages_raise_only_message_errors():
    rng = random.Random(20261203)
    outcomes = {"decoded": 0, "MessageError": 0, "MessageTooLarge": 0}
    for case in range(CASES):
        parts = _mutate(rng, _valid(rng))
        try:
            msg = decode_message(parts, max_bytes=MAX_BYTES)
        except MessageTooLarge:
            outcomes["MessageTooLarge"] += 1
            continue
        except MessageError:
            outcomes["MessageError"] += 1
            continue
        except BaseException as err:  # anything else is the bug this test exists for
            pytest.fail(f"case {case}: {type(err).__name__}: {err!s:.200} from parts {[repr(p)[:120] for p in parts]}")
        _check_decoded(msg)
        outcomes["decoded"] += 1
    assert all(n > 100 for n in outcomes.values()), outcomes


def test_the_known_poison_events_are_named_errors():
    topic, body = _valid(random.Random(3))
    data = json.loads(body)
    for bad in (
        b"[" * 30000 + b"]" * 30000,
        json.dumps({**data, "frame_index": "X"}).replace('"X"', "1" * 5000).encode(),
        json.dumps({**data, "frame_index": 2**70}).encode(),
        b"[1]",
    ):
        with pytest.raises(MessageError):
            decode_message([topic, bad])
    with pytest.raises(MessageTooLarge):
        decode_message([topic, b" " * (256 * 1024 + 1)])


@pytest.mark.timeout(60)
def test_listen_skips_poison_events_and_still_fires_on_the_valid_onsets():
    """One bad message used to crash ``deg-live listen``; now it is counted and the next onset still fires."""
    import io

    import zmq

    from deg_live.commands.listen import Listener

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    onset = EventMessage("cam0", "grooming", "onset", 7, 7, 0.9, 1, 2, seq=0)
    poison = [[b"events/cam0", b"[" * 30000 + b"]" * 30000], [b"events/cam0", b'{"frame_index": ' + b"9" * 5000 + b"}"]]
    try:
        with Listener(f"tcp://127.0.0.1:{port}", out=io.StringIO()) as listener:
            while listener.onsets == 0:  # until our subscription is through (slow joiner)
                for bad in poison:
                    pub.send_multipart(bad)
                pub.send_multipart(encode_message(onset))
                listener.listen(timeout=0.1)
            assert listener.subscriber.rejected >= 2
            assert "malformed messages ignored" in listener.summary()
    finally:
        pub.close(0)
