"""deg_train.inference.extract / deg_train.inference.predict on a real rat video with tiny models.

Causal windows (the window for frame t is frames t-T+1..t, frame 0 repeated), causality of the encoder outputs,
outputs files in DeepEthogram's layout, sharding, and infer_video == stepping the sequence model frame by frame.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from camera_adapters.video import VideoReader
from deg_live.outputs import read_outputs
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings
from deg_live.windows import iter_causal_windows
from deg_train.inference.extract import (
    ExtractError,
    encode_frames,
    encode_video,
    encoder_from_model,
    extract_features,
    parse_shard,
    select_shard,
)
from deg_train.inference.predict import LoadedSequence, infer_video, predictions_path_for, write_predictions_csv
from deg_train.models.frame_encoder import SequenceStep
from deg_train.models.registry import create_model

RAT_DATA = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
SIZE = (32, 32)
T = 3
BEHAVIOURS = [
    "background",
    "face_washing",
    "genital_licking",
    "grooming",
    "head_raising",
    "rearing",
    "wall_supported_rearing",
]
VIDEO = "cage1_6_23_17_5"  # 144 frames


def rat_video(name):
    return RAT_DATA / name / f"{name}.mp4"


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = create_model(
        "two_stream",
        "hidden_two_stream",
        num_classes=len(BEHAVIOURS),
        flow_generator="tinymotionnet",
        backbone="resnet18",
        num_frames=T,
        width=0.25,
        flow_generator_kwargs={"width": 0.25},
    )
    return encoder_from_model(model, BEHAVIOURS, SIZE, latent_name="resnet18")


@pytest.fixture(scope="module")
def frames():
    with VideoReader(rat_video(VIDEO), size=SIZE) as reader:
        return np.stack([f for _, f in reader.iter_frames()])


def _reference_window(frames, t, n):
    return frames[np.clip(np.arange(t - n + 1, t + 1), 0, None)]


def test_encode_video_matches_windows_built_by_hand(encoder, frames):
    result = encode_video(rat_video(VIDEO), encoder, batch_size=16)
    n = len(frames)
    assert result.features.shape == (n, encoder.feature_size) and result.logits.shape == (n, len(BEHAVIOURS))
    assert result.features.dtype == np.float32
    ts = [0, 1, 2, 3, 17, n - 1]
    windows = torch.from_numpy(np.stack([_reference_window(frames, t, T) for t in ts]))
    with torch.inference_mode():
        f, z = encoder.encoder(windows)
    np.testing.assert_allclose(result.features[ts], f.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.logits[ts], z.numpy(), rtol=1e-4, atol=1e-4)


def test_windows_are_causal(encoder, frames):
    """Changing frames after t never changes the outputs at frames <= t."""
    t = 60
    changed = frames.copy()
    changed[t + 1 :] = np.random.default_rng(0).integers(0, 255, changed[t + 1 :].shape, dtype=np.uint8)

    def run(x):
        chunks = iter([x[:50], x[50:100], x[100:]])  # chunk edges must not matter either
        return encode_frames(encoder.encoder, iter_causal_windows(chunks, T), len(x), batch_size=8)[0]

    a, b = run(frames), run(changed)
    np.testing.assert_array_equal(a[: t + 1], b[: t + 1])
    assert not np.allclose(a[t + 1 :], b[t + 1 :])


def test_shards_cover_every_video_once(rat_project):
    names = [r.name for r in rat_project.videos]
    for n in (1, 2, 3, 5):
        shards = [select_shard(list(reversed(names)), f"{i}/{n}") for i in range(n)]
        flat = [x for s in shards for x in s]
        assert sorted(flat) == sorted(names) and len(flat) == len(set(flat))
        assert shards == [select_shard(names, (i, n)) for i in range(n)]  # independent of the input order
    for bad in ("1/1", "-1/2", "a/b", "3"):
        with pytest.raises(ExtractError):
            parse_shard(bad)


def test_extract_features_writes_outputs_and_skips_done(fresh_rat_project, encoder):
    project = fresh_rat_project
    paths = extract_features(project, encoder, [VIDEO], progress=False)
    assert paths == [project.video(VIDEO).outputs_path]
    out = read_outputs(paths[0], "resnet18")
    assert out.behaviours == BEHAVIOURS and out.n_frames == 144
    assert out.features.shape == (144, encoder.feature_size)
    with h5py.File(paths[0], "r") as f:
        assert {"P", "logits", "thresholds", "class_names", "spatial_features", "flow_features"} <= set(f["resnet18"])
    mtime = paths[0].stat().st_mtime_ns
    extract_features(project, encoder, [VIDEO], progress=False)
    assert paths[0].stat().st_mtime_ns == mtime  # already done: not redone


def test_infer_video_equals_streaming(encoder, tmp_path):
    torch.manual_seed(1)
    model = create_model(
        "sequence",
        "tgm",
        input_dim=encoder.feature_size,
        num_classes=len(BEHAVIOURS),
        filter_length=5,
        num_layers=2,
        num_features=16,
    ).eval()
    thresholds = np.full(len(BEHAVIOURS), 0.5, np.float32)
    settings = PostprocessSettings(min_duration_frames=2, background_index=0, exclusive_background=True)
    seq = LoadedSequence(model, BEHAVIOURS, thresholds, settings, True, "resnet18", "tgm", None)
    result = infer_video(rat_video(VIDEO), encoder, seq)
    n = result.n_frames
    assert n == 144 and result.probabilities.shape == (n, len(BEHAVIOURS))
    # live: the sequence step frame by frame from the initial state, on the same features
    step = SequenceStep(model).eval()
    state = step.initial_state(1)
    live = []
    with torch.inference_mode():
        for t in range(n):
            probs, *state = step(torch.from_numpy(result.features[t : t + 1]), *state)
            live.append(probs[0].numpy())
    np.testing.assert_allclose(np.stack(live), result.probabilities, atol=1e-5)
    decisions, transitions = CausalPostprocessor(thresholds, settings).run(np.stack(live))
    np.testing.assert_array_equal(decisions, result.decisions)

    def strip(ts):
        return [(t.behaviour, t.kind, t.frame_index, t.bout_start_frame) for t in ts]

    assert strip(transitions) == strip(result.transitions) and len(transitions) > 0
    csv = write_predictions_csv(predictions_path_for(tmp_path / "x.mp4"), result.decisions, BEHAVIOURS)
    text = csv.read_text().splitlines()
    assert text[0] == "," + ",".join(BEHAVIOURS) and len(text) == n + 1 and text[1].startswith("0,")


def test_frame_cache_path_gives_identical_features(encoder, tmp_path):
    """Reading frames from a built FrameCache (same resize) gives exactly the features of decoding the video."""
    from deg_train.project.frame_cache import FrameCache

    FrameCache.open(rat_video(VIDEO), tmp_path, size=SIZE, progress=False)
    decoded = encode_video(rat_video(VIDEO), encoder, batch_size=16)
    cached = encode_video(rat_video(VIDEO), encoder, batch_size=16, frame_cache_dir=tmp_path)
    assert cached.timings["decode"] == 0.0  # nothing decoded
    np.testing.assert_array_equal(decoded.features, cached.features)


def test_a_run_configs_postprocess_section_is_checked_key_by_key():
    """A misspelt key (``background_exclusive``) used to be ignored, silently running the default instead."""
    from camera_adapters.settings import ConfigError
    from deg_train.inference.predict import postprocess_from_config

    with pytest.raises(ConfigError, match=r"run/x\.pt: postprocess: background_exclusive: unknown key.*exclusive_bac"):
        postprocess_from_config({"postprocess": {"background_exclusive": False}}, ["background", "a"], "run/x.pt")
    settings = postprocess_from_config(
        {"postprocess": {"exclusive_background": False, "hysteresis": 0.1}}, ["background", "a"]
    )
    assert (settings.exclusive_background, settings.hysteresis, settings.background_index) == (False, 0.1, 0)
    settings = postprocess_from_config({"postprocess": {"exclusive": True, "min_duration_frames": 3}}, ["a", "b"])
    assert settings.exclusive and settings.background_index is None and settings.min_duration_frames == 3
