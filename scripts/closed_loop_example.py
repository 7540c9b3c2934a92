"""Closed loop in 30 lines: pulse a serial line's DTR when deg-live decides a behaviour starts.

Needs only pyzmq (and pyserial for the TTL): run `deg-live run ...` elsewhere, then
    python scripts/closed_loop_example.py tcp://127.0.0.1:5560 grooming [/dev/ttyUSB0]
"""

import json
import sys
import time

import zmq

endpoint, behaviour = sys.argv[1], sys.argv[2]
port = None
if len(sys.argv) > 3:
    import serial  # pip install pyserial

    port = serial.serial_for_url(sys.argv[3])  # e.g. /dev/ttyUSB0, COM3, or loop:// to try it
sock = zmq.Context().socket(zmq.SUB)
sock.connect(endpoint)
sock.setsockopt(zmq.SUBSCRIBE, b"events/")  # every camera; b"events/cam0" for one
while True:
    topic, body = sock.recv_multipart()
    now = time.time_ns()  # same clock as capture_time_ns (CLOCK_REALTIME)
    ev = json.loads(body)
    if ev["schema_version"] > 1:
        sys.exit("newer event format: upgrade this script")
    if ev["behaviour"] == behaviour and ev["kind"] == "onset":
        if port is not None:
            port.dtr = True  # TTL high ...
            time.sleep(0.010)  # ... for 10 ms
            port.dtr = False
        latency_ms = (now - ev["capture_time_ns"]) / 1e6
        print(f"{behaviour} onset at frame {ev['frame_index']}: {latency_ms:.1f} ms after capture", flush=True)
