"""Offline == online, end to end: a real rat video replayed through the ``video`` camera adapter at full speed
(lossless, flow-controlled: nothing skipped) into the live pipeline over real sockets gives the per-frame
probabilities of offline inference (``deg_train.inference.predict.infer_video``) on the same video and weights, and the
events the causal postprocessor decides on the offline probabilities."""

from __future__ import annotations

import numpy as np
import pytest
from live_support import (
    BEHAVIOURS,
    SHORT_VIDEO,
    CameraThread,
    free_endpoint,
    offline_probabilities,
    tiny_bundle,
)

from camera_adapters.sources import create_source
from camera_adapters.video import probe
from camera_adapters.wire import EndOfStream
from deg_live.events import EventMessage, EventSubscriber, StateMessage
from deg_live.pipeline import LivePipeline
from deg_live.postprocess import CausalPostprocessor


@pytest.fixture(scope="session")
def tiny(cache_dir):
    return tiny_bundle(cache_dir("deg_live_tiny_bundle"))


@pytest.fixture(scope="session")
def offline(tiny):
    return offline_probabilities(tiny)


def _key(t):
    """What must be equal exactly between live and offline transitions (the probability is float-close)."""
    return (t.behaviour, t.kind, t.frame_index, t.bout_start_frame, t.change_frame)


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_live_equals_offline_on_a_real_video(tiny, offline, tmp_path, backend):
    n_frames = probe(SHORT_VIDEO).n_frames
    assert offline.probabilities.shape == (n_frames, len(BEHAVIOURS))
    frames_ep, lossless_ep = free_endpoint(tmp_path, "live"), free_endpoint(tmp_path, "all")
    events_ep = free_endpoint(tmp_path, "events")
    source = create_source("video", {"path": str(SHORT_VIDEO), "rate": 0})  # as fast as the consumer takes it

    pipeline = LivePipeline(tiny.path, lossless_ep, backend=backend, events_endpoint=events_ep, every_frame=True)
    listener = EventSubscriber(events_ep)
    live_probs, indices, transitions, received = [], [], [], []
    try:
        pipeline.warmup(3)
        with CameraThread(source, frames_ep, lossless=lossless_ep, lossless_block=True) as camera:
            while True:
                try:
                    result = pipeline.step(timeout=10.0)
                except EndOfStream:
                    break
                assert result is not None, "no frame within 10 s"
                live_probs.append(result.probs.copy())
                indices.append(result.frame_index)
                transitions.extend(result.transitions)
            stats = camera.join()
        while (msg := listener.recv(timeout=0.5)) is not None:
            received.append(msg)
    finally:
        listener.close()
        pipeline.close()

    # Every frame, in order, nothing skipped or lost, none dropped by the camera adapter.
    assert indices == list(range(n_frames))
    assert stats["lossless_dropped"] == 0
    counters = pipeline.telemetry.counters
    assert counters["processed"] == n_frames
    assert counters["skipped"] == 0 and counters["lost"] == 0 and counters["restarts"] == 0

    # Probabilities: float tolerance (same weights, ONNX Runtime / torch.export vs eager torch).
    live_probs = np.stack(live_probs)
    np.testing.assert_allclose(live_probs, offline.probabilities, rtol=1e-4, atol=2e-5)

    # Events: exactly the causal postprocessor's decisions on the OFFLINE probabilities. (Guard: no offline
    # probability of a thresholded behaviour sits closer to a threshold than live and offline differ, so the
    # comparison is meaningful.)
    settings = offline_settings(tiny)
    pp = CausalPostprocessor(offline.thresholds, settings)
    _, expected = pp.run(offline.probabilities)
    assert expected == offline.transitions
    thresholded = [k for k in range(len(BEHAVIOURS)) if k != settings.background_index]
    p = offline.probabilities[:, thresholded]
    on = np.asarray(offline.thresholds)[thresholded]
    margin = np.minimum(np.abs(p - on), np.abs(p - (on - settings.hysteresis))).min()
    assert margin > 10 * np.abs(live_probs - offline.probabilities).max()
    assert len(expected) >= 3, "the test bundle should produce some onsets/offsets on this video"
    assert [_key(t) for t in transitions] == [_key(t) for t in expected]
    np.testing.assert_allclose([t.probability for t in transitions], [t.probability for t in expected], atol=2e-5)

    # The same events went out on the wire, and a state message per frame (the subscriber joined first).
    events = [m for m in received if isinstance(m, EventMessage)]
    states = [m for m in received if isinstance(m, StateMessage)]
    assert [(BEHAVIOURS.index(e.behaviour), e.kind, e.frame_index) for e in events] == [
        (t.behaviour, t.kind, t.frame_index) for t in expected
    ]
    assert [s.frame_index for s in states] == list(range(n_frames))
    assert all(s.skipped == 0 and s.lost == 0 for s in states)


def offline_settings(tiny):
    from deg_live.bundle import read_bundle

    return read_bundle(tiny.path).postprocess_settings()
