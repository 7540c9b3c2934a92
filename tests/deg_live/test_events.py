"""Event and state messages: encoding, real PUB/SUB over tcp loopback and ipc, and every malformed message."""

import json
import time

import pytest
import zmq

from deg_live.events import (
    EVENTS_SCHEMA_VERSION,
    EndpointError,
    EventMessage,
    EventPublisher,
    EventSubscriber,
    MessageError,
    StateMessage,
    decode_message,
    encode_message,
)
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings, Transition

BEHAVIOURS = ["background", "grooming", "rearing"]


def make_event(**kw) -> EventMessage:
    now = time.time_ns()
    args = dict(
        camera_id="cam0",
        behaviour="grooming",
        behaviour_index=1,
        kind="onset",
        frame_index=120,
        bout_start_frame=118,
        probability=0.83,
        capture_time_ns=now - 12_000_000,
        decision_time_ns=now,
    )
    args.update(kw)
    return EventMessage(**args)


def make_state(**kw) -> StateMessage:
    now = time.time_ns()
    args = dict(
        camera_id="cam0",
        frame_index=120,
        capture_time_ns=now - 5_000_000,
        decision_time_ns=now,
        behaviours=BEHAVIOURS,
        probabilities=[0.1, 0.8, 0.05],
        decisions=[False, True, False],
        skipped=2,
        lost=1,
        telemetry={"fps": 29.9},
    )
    args.update(kw)
    return StateMessage(**args)


def test_round_trip_event_and_state():
    ev = make_event()
    parts = encode_message(ev)
    assert parts[0] == b"events/cam0"
    body = json.loads(parts[1])
    assert body["schema_version"] == EVENTS_SCHEMA_VERSION and body["type"] == "event"
    assert body["latency_ms"] == pytest.approx(12.0)
    assert decode_message(parts) == ev
    st = make_state(probabilities=[0.1, float("nan"), 0.05])
    parts = encode_message(st)
    assert parts[0] == b"state/cam0"
    assert json.loads(parts[1])["probabilities"] == [0.1, None, 0.05]  # plain JSON: no NaN
    assert decode_message(parts) == st


def test_numpy_values_are_encoded_as_plain_json():
    import numpy as np

    st = make_state(
        frame_index=np.int64(7),
        probabilities=np.array([0.1, 0.2, 0.3], np.float32),
        decisions=np.array([False, True, False]),
        telemetry={"fps": np.float32(30.0), "queue": np.int64(2)},
    )
    got = decode_message(encode_message(st))
    assert got.frame_index == 7 and got.decisions == [False, True, False]
    assert got.probabilities == pytest.approx([0.1, 0.2, 0.3]) and got.telemetry == {"fps": 30.0, "queue": 2}
    with pytest.raises(MessageError, match="JSON"):
        encode_message(make_state(telemetry={"fps": float("nan")}))


def test_event_from_transition():
    tr = Transition(2, "offset", 50, 40, 0.1, 48)
    ev = EventMessage.from_transition("cam0", BEHAVIOURS, tr, capture_time_ns=1000, decision_time_ns=3_001_000)
    assert (ev.behaviour, ev.kind, ev.frame_index, ev.bout_start_frame, ev.change_frame) == (
        "rearing",
        "offset",
        50,
        40,
        48,
    )
    assert ev.decision_latency_ms == pytest.approx(3.0)


def good_event_body() -> dict:
    return json.loads(encode_message(make_event())[1])


def parts_with(edit) -> list[bytes]:
    body = good_event_body()
    edit(body)
    return [b"events/cam0", json.dumps(body).encode()]


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([b"events/cam0"], "2 parts"),
        ([b"events/cam0", b"{}", b"x"], "2 parts"),
        ([b"frames/cam0", b"{}"], "topic"),
        ([b"\xff\xfe", b"{}"], "UTF-8"),
        ([b"events/cam0", b"{oops"], "JSON"),
        ([b"events/cam0", b"[1, 2]"], "JSON object"),
        (parts_with(lambda b: b.update(schema_version=EVENTS_SCHEMA_VERSION + 1)), "upgrade"),
        (parts_with(lambda b: b.pop("schema_version")), "schema_version"),
        (parts_with(lambda b: b.pop("frame_index")), "missing field 'frame_index'"),
        (parts_with(lambda b: b.update(frame_index="12")), "frame_index"),
        (parts_with(lambda b: b.update(frame_index=True)), "frame_index"),
        (parts_with(lambda b: b.update(kind="start")), "kind"),
        (parts_with(lambda b: b.update(type="state")), "type"),
        (parts_with(lambda b: b.update(camera_id="cam1")), "camera_id"),
        (parts_with(lambda b: b.update(probability="high")), "probability"),
        (
            [b"state/cam0", json.dumps({**json.loads(encode_message(make_state())[1]), "decisions": [True]}).encode()],
            "same length",
        ),
        (
            [
                b"state/cam0",
                json.dumps({**json.loads(encode_message(make_state())[1]), "decisions": [1, 0, 0]}).encode(),
            ],
            "true or false",
        ),
    ],
)
def test_malformed_messages_raise_message_error(parts, match):
    with pytest.raises(MessageError, match=match):
        decode_message(parts)


def test_unknown_fields_are_ignored():
    body = good_event_body()
    plain = decode_message([b"events/cam0", json.dumps(body).encode()])
    body["future_field"] = [1, 2]
    assert decode_message([b"events/cam0", json.dumps(body).encode()]) == plain


def test_encode_refuses_bad_messages():
    with pytest.raises(MessageError, match="kind"):
        encode_message(make_event(kind="begin"))
    with pytest.raises(MessageError, match="same length"):
        encode_message(make_state(decisions=[True]))
    with pytest.raises(MessageError, match="camera id"):
        encode_message(make_event(camera_id="a/b"))


def recv_until(pub: EventPublisher, sub: EventSubscriber, msg, timeout: float = 5.0):
    """PUB/SUB drops messages until the subscription has propagated: resend until one arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pub.publish(msg)
        got = sub.recv(timeout=0.05)
        if got is not None:
            return got
    raise AssertionError("nothing received")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
def test_publish_and_subscribe(transport, tmp_path):
    endpoint = "tcp://127.0.0.1:*" if transport == "tcp" else f"ipc://{tmp_path}/events"
    with EventPublisher(endpoint, "cam0") as pub, EventSubscriber(pub.bound_endpoint) as sub:
        got = recv_until(pub, sub, make_event())
        assert isinstance(got, EventMessage) and got.behaviour == "grooming"
        assert got.stream_id == pub.stream_id and got.publish_time_ns >= got.decision_time_ns
        assert got.latency_ms >= 12.0
        # events then state, in order, seq counting per topic
        first_seq = got.seq
        pub.publish(make_event(kind="offset", frame_index=130))
        pub.publish(make_state())
        a, b = sub.recv(timeout=2), sub.recv(timeout=2)
        assert (a.kind, a.seq) == ("offset", first_seq + 1)
        assert isinstance(b, StateMessage) and b.decisions == [False, True, False] and b.telemetry == {"fps": 29.9}
        assert sub.recv(timeout=0.05) is None  # timeout, nothing left
        assert pub.sent >= 3 and pub.dropped == 0


@pytest.mark.timeout(30)
def test_causal_postprocessor_events_end_to_end():
    """The live path in miniature: probabilities -> CausalPostprocessor -> publisher -> subscriber."""
    pp = CausalPostprocessor([0.5, 0.5, 0.5], PostprocessSettings(min_duration_frames=2))
    probs = [[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]
    with (
        EventPublisher("tcp://127.0.0.1:*", "cam7") as pub,
        EventSubscriber(pub.bound_endpoint, ["events/cam7"]) as sub,
    ):
        recv_until(pub, sub, make_event(camera_id="cam7"))  # wait for the subscription
        expected = []
        for t, p in enumerate(probs):
            _, transitions = pp.step(p, 1000 + t)
            pub.publish_transitions(BEHAVIOURS, transitions, capture_time_ns=time.time_ns())
            expected += [(BEHAVIOURS[x.behaviour], x.kind, x.frame_index) for x in transitions]
        got = []
        while (msg := sub.recv(timeout=0.5)) is not None:
            got.append((msg.behaviour, msg.kind, msg.frame_index))
    assert got == expected
    assert ("grooming", "onset", 1002) in got and ("grooming", "offset", 1003) in got


@pytest.mark.timeout(30)
def test_exact_topics_and_a_plain_zmq_consumer():
    with EventPublisher("tcp://127.0.0.1:*", "cam1") as pub1, EventPublisher("tcp://127.0.0.1:*", "cam10") as pub10:
        sub = EventSubscriber(pub1.bound_endpoint, ["events/cam1"])
        sub._socket.connect(pub10.bound_endpoint)  # one subscriber, two cameras
        recv_until(pub1, sub, make_event(camera_id="cam1"))
        for _ in range(20):
            pub10.publish(make_event(camera_id="cam10"))  # prefix of the topic matches, must be filtered out
            pub1.publish(make_state(camera_id="cam1"))  # other topic
            time.sleep(0.005)
        assert sub.recv(timeout=0.3) is None
        sub.close()
        sub.close()  # idempotent

        # the module docstring's consumer: only zmq and json
        raw = zmq.Context.instance().socket(zmq.SUB)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(pub1.bound_endpoint)
        raw.setsockopt(zmq.SUBSCRIBE, b"events/")
        raw.setsockopt(zmq.RCVTIMEO, 50)
        deadline = time.monotonic() + 5
        body = None
        while body is None and time.monotonic() < deadline:
            pub1.publish(make_event(camera_id="cam1"))
            try:
                topic, body = raw.recv_multipart()
            except zmq.Again:
                continue
        raw.close()
        msg = json.loads(body)
        assert topic == b"events/cam1" and msg["behaviour"] == "grooming" and msg["kind"] == "onset"


@pytest.mark.timeout(30)
def test_publishing_never_blocks_on_a_slow_or_absent_subscriber():
    with EventPublisher("tcp://127.0.0.1:*", "cam0", sndhwm=10) as pub:
        sub = EventSubscriber(pub.bound_endpoint, rcvhwm=10)  # connected but never reads
        recv_until(pub, sub, make_event())
        start = time.perf_counter()
        for _ in range(5000):
            pub.publish(make_state())
        assert time.perf_counter() - start < 5.0
        assert pub.sent + pub.dropped >= 5000
        sub.close()


def test_bind_conflict_and_close_twice():
    pub = EventPublisher("tcp://127.0.0.1:*", "cam0")
    with pytest.raises(EndpointError, match="cannot bind"):
        EventPublisher(pub.bound_endpoint, "cam0")
    with pytest.raises(EndpointError):
        EventPublisher("nonsense://x", "cam0")
    pub.close()
    pub.close()
    with pytest.raises(RuntimeError, match="closed"):
        pub.publish(make_event())
    with pytest.raises(MessageError, match="camera id"):
        EventPublisher("tcp://127.0.0.1:*", "")


@pytest.mark.timeout(30)
def test_subscriber_raises_message_error_for_a_malformed_message_on_the_wire():
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    port = raw.bind_to_random_port("tcp://127.0.0.1")
    try:
        with EventSubscriber(f"tcp://127.0.0.1:{port}", ["events/"]) as sub:
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                raw.send_multipart([b"events/cam0", b"{broken"])
                try:
                    if sub.recv(timeout=0.05) is not None:
                        raise AssertionError("a malformed message was decoded")
                except MessageError as err:
                    assert "JSON" in str(err)
                    break
            else:
                raise AssertionError("nothing received")
    finally:
        raw.close()
