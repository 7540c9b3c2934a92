"""``deg-live listen``: an example closed-loop consumer of ``events/<camera>`` messages.

It subscribes to a ``deg-live run`` events endpoint and reacts to each onset: it prints it, or toggles a serial
port's DTR or RTS line as a TTL pulse to an Arduino-class board (pyserial, optional: ``pip install pyserial``).
It reports its own latency for every event: *receive* (this process got the message) minus the message's
``publish_time_ns`` (the ZeroMQ hop), and receive minus ``capture_time_ns`` (camera to here, the figure a
closed loop cares about); with a serial line, also when the line went up. A summary (median and p99) is
printed at the end. All times are ``time.time_ns()`` (CLOCK_REALTIME): compare them on one machine, or across
machines only as well as their clocks are synchronised (PTP/chrony).

Examples::

    deg-live listen --events tcp://127.0.0.1:5560
    deg-live listen --events tcp://127.0.0.1:5560 --behaviour grooming --serial /dev/ttyUSB0 --line dtr --pulse-ms 10
    # from another machine, authenticated and encrypted (docs/security.md):
    deg-live listen --events tcp://10.0.0.5:5560 --curve-keys keys/stim.key_secret --curve-server-key keys/live.key

A malformed message (from a broken or hostile sender) is logged, counted and skipped; it never stops the
listener. The summary reports how many there were.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import TextIO

import numpy as np

from deg_live.events import DEFAULT_EVENTS_ENDPOINT, EVENT_TOPIC_PREFIX, EventMessage, EventSubscriber


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``listen``."""
    p = subparsers.add_parser(
        "listen",
        help="print behaviour events (or pulse a serial line on onsets) and report receive latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--events", default=DEFAULT_EVENTS_ENDPOINT, metavar="ENDPOINT", help="deg-live run's endpoint")
    p.add_argument("--camera", help="only this camera's events (default: every camera)")
    p.add_argument("--behaviour", action="append", default=[], help="react only to this behaviour (repeatable)")
    p.add_argument("--offsets", action="store_true", help="print offsets too (onsets always)")
    p.add_argument("--serial", metavar="PORT", help="serial port (or pyserial URL) whose line to pulse on onsets")
    p.add_argument("--line", choices=("dtr", "rts"), default="dtr", help="which line (default dtr)")
    p.add_argument("--pulse-ms", type=float, default=10.0, help="pulse length in ms (default 10)")
    p.add_argument("--count", type=int, help="exit after this many onsets")
    p.add_argument("--timeout", type=float, help="exit after this many seconds")
    p.add_argument("--json", action="store_true", help="print each event as one JSON line (with latencies)")
    p.add_argument("--curve-keys", metavar="FILE", help="CURVE: this listener's key pair (NAME.key_secret)")
    p.add_argument(
        "--curve-server-key",
        metavar="FILE",
        help="CURVE: deg-live run's public key (NAME.key); events from anyone else are refused",
    )
    p.set_defaults(func=run)


class Listener:
    """Receives events and reacts to onsets; the logic of ``deg-live listen`` (usable from Python).

    Args:
        endpoint: the events endpoint.
        camera: only this camera (None: all).
        behaviours: react only to these (empty: every behaviour but background).
        trigger: a :class:`deg_live.processors.SerialTrigger` to pulse on onsets, or None.
        out: where to print.
        offsets: print offsets too.
        as_json: print JSON lines.
        curve: CURVE keys (a :class:`camera_adapters.network.CurveClient`), or None.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        camera: str | None = None,
        behaviours: list[str] | None = None,
        trigger=None,
        out: TextIO | None = None,
        offsets: bool = False,
        as_json: bool = False,
        curve=None,
    ):
        topic = f"{EVENT_TOPIC_PREFIX}{camera}" if camera else EVENT_TOPIC_PREFIX
        # A malformed message is logged, counted and skipped: one bad sender must not stop the closed loop.
        self.subscriber = EventSubscriber(endpoint, [topic], curve=curve, skip_malformed=True)
        self.behaviours = set(behaviours or [])
        self.trigger = trigger
        self.out = out if out is not None else sys.stdout
        self.offsets = offsets
        self.as_json = as_json
        self.onsets = 0
        self.events = 0
        self.missed = 0  # gaps in the publisher's seq numbers
        self.receive_ms: list[float] = []  # receive - publish
        self.capture_ms: list[float] = []  # receive - capture
        self.trigger_ms: list[float] = []  # line up - capture
        self._last_seq: dict[str, int] = {}

    def _wanted(self, ev: EventMessage) -> bool:
        if self.behaviours:
            return ev.behaviour in self.behaviours
        return ev.behaviour != "background"

    def handle(self, ev: EventMessage, received_ns: int) -> None:
        """React to one event received at ``received_ns``."""
        self.events += 1
        last = self._last_seq.get(ev.camera_id)
        if last is not None and ev.seq > last + 1:
            self.missed += ev.seq - last - 1
        self._last_seq[ev.camera_id] = ev.seq
        if not self._wanted(ev):
            return
        fired_ns = None
        if ev.kind == "onset":
            self.onsets += 1
            if self.trigger is not None:
                self.trigger.pulse()
                fired_ns = time.time_ns()
        elif not self.offsets:
            return
        receive_ms = (received_ns - ev.publish_time_ns) / 1e6
        capture_ms = (received_ns - ev.capture_time_ns) / 1e6
        self.receive_ms.append(receive_ms)
        self.capture_ms.append(capture_ms)
        if fired_ns is not None:
            self.trigger_ms.append((fired_ns - ev.capture_time_ns) / 1e6)
        if self.as_json:
            record = {
                "camera_id": ev.camera_id,
                "behaviour": ev.behaviour,
                "kind": ev.kind,
                "frame_index": ev.frame_index,
                "probability": ev.probability,
                "publish_to_receive_ms": round(receive_ms, 3),
                "capture_to_receive_ms": round(capture_ms, 3),
            }
            if fired_ns is not None:
                record["capture_to_trigger_ms"] = round(self.trigger_ms[-1], 3)
            self.out.write(json.dumps(record) + "\n")
        else:
            p = "nan" if ev.probability is None else f"{ev.probability:.2f}"
            line = (
                f"{ev.camera_id} {ev.behaviour:>16} {ev.kind:<6} frame {ev.frame_index:>8}  p={p}  "
                f"camera->here {capture_ms:7.2f} ms  (publish->receive {receive_ms:6.3f} ms)"
            )
            if fired_ns is not None:
                line += f"  {self.trigger.line.upper()} pulse at +{self.trigger_ms[-1]:.2f} ms"
            self.out.write(line + "\n")
        self.out.flush()

    def listen(self, *, count: int | None = None, timeout: float | None = None, stop: threading.Event | None = None):
        """Receive until ``count`` onsets, ``timeout`` seconds, or ``stop`` is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (stop is not None and stop.is_set()):
            if count is not None and self.onsets >= count:
                break
            remaining = 0.2 if deadline is None else min(0.2, deadline - time.monotonic())
            if remaining <= 0:
                break
            msg = self.subscriber.recv(timeout=remaining)
            received = time.time_ns()
            if isinstance(msg, EventMessage):
                self.handle(msg, received)

    def summary(self) -> str:
        """Latency summary (median and p99 in ms) of the events reacted to."""

        def stats(values: list[float]) -> str:
            if not values:
                return "n/a"
            a = np.asarray(values)
            return f"median {np.median(a):.3f} ms, p99 {np.percentile(a, 99):.3f} ms"

        lines = [
            f"{self.events} events received ({self.onsets} onsets reacted to, {self.missed} missed by seq gaps, "
            f"{self.subscriber.rejected} malformed messages ignored)",
            f"publish -> receive: {stats(self.receive_ms)}",
            f"capture -> receive: {stats(self.capture_ms)}",
        ]
        if self.trigger is not None:
            lines.append(f"capture -> serial line up: {stats(self.trigger_ms)} ({self.trigger.pulses} pulses)")
        return "\n".join(lines)

    def close(self) -> None:
        """Close the subscriber and the serial line (idempotent)."""
        self.subscriber.close()
        if self.trigger is not None:
            self.trigger.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(args: argparse.Namespace) -> int:
    """Execute ``deg-live listen``."""
    from camera_adapters.network import curve_client_from_args
    from deg_live.processors import SerialTrigger

    curve = curve_client_from_args(args.curve_keys, args.curve_server_key)
    trigger = SerialTrigger(args.serial, args.line, args.pulse_ms) if args.serial else None
    stop = threading.Event()

    def on_signal(signum, _frame):
        stop.set()

    try:
        listener = Listener(
            args.events,
            camera=args.camera,
            behaviours=args.behaviour,
            trigger=trigger,
            offsets=args.offsets,
            as_json=args.json,
            curve=curve,
        )
    except BaseException:
        if trigger is not None:
            trigger.close()
        raise
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with listener:
            what = f"serial {args.serial} {args.line.upper()}" if trigger else "print only"
            print(f"listening on {args.events} ({what}); Ctrl-C stops", file=sys.stderr)
            listener.listen(count=args.count, timeout=args.timeout, stop=stop)
            print(listener.summary(), file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0
