"""Contract tests over every registered model (tiny sizes), streaming == whole-sequence, causality, wrappers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from camera_adapters.errors import UserFacingError
from deg_train.models import (
    FrameEncoder,
    SequenceStep,
    TwoStream,
    UnknownModelError,
    create_model,
    list_models,
    upsample_flow,
)
from deg_train.training.presets import PRESETS, get_preset, sequence_kwargs, two_stream_kwargs

torch.set_num_threads(1)

H = W = 32


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------------- registry


def test_registry_lists_every_kind() -> None:
    assert list_models("flow") == ["motionnet", "tinymotionnet", "tinymotionnet3d"]
    assert {"resnet18", "resnet50", "resnet3d_34"} <= set(list_models("feature"))
    assert {"tgm", "tcn", "gru"} <= set(list_models("sequence"))
    assert "two_stream/hidden_two_stream" in list_models()


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match="known flow models: motionnet, tinymotionnet"):
        create_model("flow", "flownet")
    with pytest.raises(UnknownModelError, match="known kinds"):
        list_models("nope")
    with pytest.raises(UserFacingError, match="known presets"):
        get_preset("deg_xl")


# --------------------------------------------------------------------------------------------- flow


@pytest.mark.parametrize("name", list_models("flow"))
@pytest.mark.parametrize("num_frames", [3, 5])
def test_flow_generators_forward_backward(name: str, num_frames: int) -> None:
    model = create_model("flow", name, num_frames=num_frames, width=0.25)
    frames = torch.randn(2, num_frames, 3, H, W)
    flows = model(frames)
    assert [tuple(f.shape) for f in flows] == [(2, 2 * (num_frames - 1), H // s, W // s) for s in model.output_strides]
    sum(f.square().mean() for f in flows).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="expects frames"):
        model(torch.randn(2, num_frames + 1, 3, H, W))


def test_flow_generator_has_normalisation_buffers() -> None:
    model = create_model("flow", "tinymotionnet", mean=(0.4, 0.4, 0.4), std=(0.2, 0.2, 0.2))
    assert torch.allclose(model.input_mean, torch.tensor([0.4] * 3))
    assert "input_std" in model.state_dict()


def test_upsample_flow_rescales_to_pixels_of_the_new_size() -> None:
    flow = torch.zeros(1, 4, 8, 16)
    flow[:, 0::2] = 1.5  # dx
    flow[:, 1::2] = -0.5  # dy
    up = upsample_flow(flow, (32, 32))
    assert up.shape == (1, 4, 32, 32)
    assert torch.allclose(up[:, 0::2], torch.full_like(up[:, 0::2], 3.0))  # x scaled by 32 / 16
    assert torch.allclose(up[:, 1::2], torch.full_like(up[:, 1::2], -2.0))  # y scaled by 32 / 8


# --------------------------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("name", list_models("feature"))
def test_feature_backbones_forward_backward(name: str) -> None:
    model = create_model("feature", name, in_channels=4, width=0.25)
    x = torch.randn(2, 4, 4, H, W) if model.is_3d else torch.randn(2, 4, H, W)
    feats = model(x)
    assert feats.shape == (2, model.num_features)
    feats.sum().backward()
    assert model.conv1.weight.grad is not None


def test_full_width_feature_sizes() -> None:
    assert create_model("feature", "resnet18").num_features == 512
    assert create_model("feature", "resnet50").num_features == 512  # compressed like DeepEthogram
    assert create_model("feature", "resnet50", compress_to=None).num_features == 2048
    assert create_model("feature", "resnet3d_34").num_features == 512
    assert create_model("feature", "resnet18_half").num_features == 256


# --------------------------------------------------------------------------------------------- two-stream


def tiny_two_stream(fusion: str = "average", flow: str = "tinymotionnet", backbone: str = "resnet18") -> TwoStream:
    return TwoStream(
        num_classes=3,
        flow_generator=flow,
        backbone=backbone,
        num_frames=4,
        fusion=fusion,
        width=0.25,
        flow_generator_kwargs={"width": 0.25},
    )


@pytest.mark.parametrize(
    ("fusion", "flow", "backbone"),
    [
        ("average", "tinymotionnet", "resnet18"),
        ("concatenate", "motionnet", "resnet50"),
        ("average", "tinymotionnet3d", "resnet3d_34"),
    ],
)
def test_two_stream_forward_backward_and_frozen_generator(fusion: str, flow: str, backbone: str) -> None:
    model = tiny_two_stream(fusion, flow, backbone)
    model.train()
    assert not model.flow_generator.training  # frozen generator stays in eval mode
    out = model(torch.randn(2, 4, 3, H, W))
    assert out["logits"].shape == (2, 3)
    assert out["spatial_features"].shape == (2, model.spatial_dim)
    assert out["flow_features"].shape == (2, model.flow_dim)
    assert model.num_features == model.spatial_dim + model.flow_dim
    out["logits"].sum().backward()
    assert all(p.grad is None for p in model.flow_generator.parameters())
    assert model.spatial_encoder.conv1.weight.grad is not None
    assert model.flow_encoder.conv1.weight.grad is not None


def test_spatial_stream_sees_only_the_last_frame() -> None:
    model = tiny_two_stream().eval()
    frames = torch.randn(1, 4, 3, H, W)
    changed = frames.clone()
    changed[:, :-1] = torch.randn_like(changed[:, :-1])
    with torch.no_grad():
        s1, f1 = model.forward_features(frames)
        s2, f2 = model.forward_features(changed)
        changed[:, -1] += 1.0
        s3, _ = model.forward_features(changed)
    assert torch.equal(s1, s2)
    assert not torch.allclose(f1, f2)
    assert not torch.allclose(s2, s3)


def test_average_fusion_weights_the_flow_stream() -> None:
    model = tiny_two_stream().eval()
    spatial, flow = torch.randn(2, model.spatial_dim), torch.randn(2, model.flow_dim)
    s_logits, f_logits = model.stream_logits(spatial, flow)
    expected = (s_logits + 1.5 * f_logits) / 2.5
    assert torch.allclose(model.forward_head(spatial, flow), expected, atol=1e-6)


def test_frame_encoder_matches_two_stream_on_normalised_input() -> None:
    model = TwoStream(
        num_classes=2,
        num_frames=3,
        width=0.25,
        mean=(0.3, 0.4, 0.5),
        std=(0.2, 0.25, 0.3),
        flow_generator_kwargs={"width": 0.25},
    ).eval()
    encoder = FrameEncoder(model).eval()
    raw = torch.randint(0, 256, (2, 3, H, W, 3), dtype=torch.uint8)
    with torch.no_grad():
        feats, logits = encoder(raw)
        x = (raw.float() / 255 - torch.tensor([0.3, 0.4, 0.5])) / torch.tensor([0.2, 0.25, 0.3])
        ref = model(x.permute(0, 1, 4, 2, 3))
    assert feats.dtype == torch.float32 and feats.shape == (2, model.num_features)
    assert torch.allclose(logits, ref["logits"], atol=1e-5)
    assert torch.allclose(feats, torch.cat([ref["spatial_features"], ref["flow_features"]], 1), atol=1e-5)


# --------------------------------------------------------------------------------------------- sequence


@pytest.mark.parametrize("name", list_models("sequence"))
def test_sequence_forward_backward(name: str) -> None:
    model = create_model("sequence", name, input_dim=12, num_classes=3)
    logits = model(torch.randn(2, 20, 12))
    assert logits.shape == (2, 20, 3)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def _causal_sequence_models() -> list[str]:
    """Sequence models that can run live (DeepEthogram's imported tgmj is centred: offline only)."""
    return [n for n in list_models("sequence") if create_model("sequence", n, input_dim=4, num_classes=2).causal]


def test_only_deepethogram_tgmj_is_centred() -> None:
    assert set(list_models("sequence")) - set(_causal_sequence_models()) == {"tgmj"}
    model = create_model("sequence", "tgmj", input_dim=8, num_classes=2).eval()
    with pytest.raises(Exception, match=r"(?i)causal|stream|centred"):
        model.step(torch.randn(1, 8), model.init_state(1) if hasattr(model, "init_state") else ())
    features = torch.randn(1, 40, 8)
    future_changed = features.clone()
    future_changed[:, 25:] = torch.randn(1, 15, 8)
    with torch.no_grad():
        assert not torch.allclose(model(features)[:, :25], model(future_changed)[:, :25])  # it looks ahead


@pytest.mark.parametrize("name", _causal_sequence_models())
def test_streaming_equals_whole_sequence(name: str) -> None:
    model = create_model("sequence", name, input_dim=12, num_classes=3).eval()
    features = torch.randn(2, 60, 12)
    state = model.init_state(2)
    shapes = [s.shape for s in state]
    steps = []
    with torch.no_grad():
        whole = model(features)
        for t in range(features.shape[1]):
            logits, state = model.step(features[:, t], state)
            assert [s.shape for s in state] == shapes  # fixed-shape state
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, dim=1), whole, atol=1e-5)


@pytest.mark.parametrize("name", _causal_sequence_models())
def test_causal_models_do_not_look_ahead(name: str) -> None:
    model = create_model("sequence", name, input_dim=8, num_classes=2).eval()
    features = torch.randn(1, 40, 8)
    future_changed = features.clone()
    future_changed[:, 25:] = torch.randn(1, 15, 8)
    with torch.no_grad():
        a, b = model(features), model(future_changed)
    assert torch.equal(a[:, :25], b[:, :25])
    assert not torch.allclose(a[:, 25:], b[:, 25:])


def test_receptive_fields() -> None:
    assert create_model("sequence", "tgm", input_dim=4, num_classes=2).receptive_field == 3 * 14 + 1
    assert create_model("sequence", "tcn", input_dim=4, num_classes=2).receptive_field == 31
    assert create_model("sequence", "gru", input_dim=4, num_classes=2).receptive_field is None


def test_tgm_history_is_bounded_by_its_receptive_field() -> None:
    model = create_model("sequence", "tgm", input_dim=8, num_classes=2, filter_length=5, num_layers=2).eval()
    r = model.receptive_field
    features = torch.randn(1, 30, 8)
    past_changed = features.clone()
    past_changed[:, :10] = torch.randn(1, 10, 8)
    with torch.no_grad():
        a, b = model(features), model(past_changed)
    assert torch.equal(a[:, 10 + r - 1 :], b[:, 10 + r - 1 :])
    assert not torch.allclose(a[:, 10 + r - 2], b[:, 10 + r - 2])


@pytest.mark.parametrize("name", ["tgm", "tcn", "gru"])
def test_centred_mode_looks_ahead_and_cannot_stream(name: str) -> None:
    model = create_model("sequence", name, input_dim=8, num_classes=2, causal=False).eval()
    features = torch.randn(1, 40, 8)
    changed = features.clone()
    changed[:, 25:] = torch.randn(1, 15, 8)
    with torch.no_grad():
        a, b = model(features), model(changed)
    assert a.shape == (1, 40, 2)
    assert not torch.allclose(a[:, 20:25], b[:, 20:25])
    with pytest.raises(RuntimeError, match="causal=False"):
        model.init_state(1)


def test_sequence_step_wrapper_gives_sigmoid_of_forward() -> None:
    model = create_model("sequence", "tgm", input_dim=6, num_classes=2).eval()
    wrapper = SequenceStep(model).eval()
    features = torch.randn(1, 30, 6)
    state = wrapper.initial_state(1)
    probs = []
    with torch.no_grad():
        for t in range(30):
            p, *state = wrapper(features[:, t], *state)
            probs.append(p)
        expected = torch.sigmoid(model(features))
    assert torch.allclose(torch.stack(probs, 1), expected, atol=1e-5)
    with pytest.raises(ValueError, match="causal"):
        SequenceStep(create_model("sequence", "tcn", input_dim=6, num_classes=2, causal=False))


# --------------------------------------------------------------------------------------------- presets


# Feature sizes (spatial + flow stream) of the architecture presets: DeepEthogram's 512 + 512, a quarter of it live.
FEATURE_DIMS = {"deg_f": 1024, "deg_m": 1024, "deg_s": 1024, "deg_live_cpu": 256}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_feature_dims_agree(name: str) -> None:
    preset = get_preset(name)
    model = TwoStream(**two_stream_kwargs(preset, num_classes=3))
    assert model.num_features == FEATURE_DIMS[name]
    assert model.num_frames == preset["frames_per_window"]
    arch, kwargs = sequence_kwargs(preset, num_classes=3, input_dim=model.num_features)
    seq = create_model("sequence", arch, **kwargs)
    assert seq.causal and seq.input_dim == FEATURE_DIMS[name]


def test_live_cpu_preset_runs_at_its_input_size() -> None:
    preset = get_preset("deg_live_cpu")
    model = TwoStream(**two_stream_kwargs(preset, num_classes=3)).eval()
    h, w = preset["input_size"]
    with torch.no_grad():
        feats, logits = FrameEncoder(model)(torch.zeros(1, preset["frames_per_window"], h, w, 3, dtype=torch.uint8))
    assert feats.shape == (1, FEATURE_DIMS["deg_live_cpu"]) and logits.shape == (1, 3)


# --------------------------------------------------------------------------------------------- export


@pytest.mark.slow
def test_frame_encoder_and_sequence_step_export_to_onnx(tmp_path: Path) -> None:
    """The two export wrappers go through torch.onnx.export (dynamo) and match in onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    model = TwoStream(num_classes=2, num_frames=3, width=0.25, flow_generator_kwargs={"width": 0.25}).eval()
    encoder = FrameEncoder(model).eval()
    frames = torch.randint(0, 256, (2, 3, H, W, 3), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=16)
    torch.onnx.export(
        encoder,
        (frames,),
        tmp_path / "encoder.onnx",
        dynamo=True,
        input_names=["frames"],
        output_names=["features", "logits"],
        dynamic_shapes={"frames": {0: batch}},
    )
    features, logits = ort.InferenceSession(str(tmp_path / "encoder.onnx")).run(None, {"frames": frames.numpy()})
    with torch.no_grad():
        ref_features, ref_logits = encoder(frames)
    assert torch.allclose(torch.from_numpy(features), ref_features, atol=1e-4)
    assert torch.allclose(torch.from_numpy(logits), ref_logits, atol=1e-4)

    step = SequenceStep(create_model("sequence", "tgm", input_dim=model.num_features, num_classes=2)).eval()
    state = step.initial_state(1)
    names = [f"state_{i}" for i in range(len(state))]
    torch.onnx.export(
        step,
        (torch.zeros(1, model.num_features), *state),
        tmp_path / "step.onnx",
        dynamo=True,
        input_names=["feature", *names],
        output_names=["probs", *[f"{n}_out" for n in names]],
    )
    session = ort.InferenceSession(str(tmp_path / "step.onnx"))
    sequence = torch.randn(1, 12, model.num_features)
    current = [s.numpy() for s in state]
    probs = []
    for t in range(12):
        out = session.run(None, {"feature": sequence[:, t].numpy(), **dict(zip(names, current, strict=True))})
        probs.append(torch.from_numpy(out[0]))
        current = out[1:]
    with torch.no_grad():
        expected = torch.sigmoid(step.model(sequence))
    assert torch.allclose(torch.stack(probs, 1), expected, atol=1e-5)


def test_two_stream_takes_its_normalisation_from_the_flow_generator() -> None:
    stats = {"mean": (0.3, 0.35, 0.4), "std": (0.2, 0.21, 0.22)}
    by_kwargs = TwoStream(num_classes=2, num_frames=3, width=0.25, flow_generator_kwargs={"width": 0.25, **stats})
    generator = create_model("flow", "tinymotionnet", num_frames=3, width=0.25, **stats)
    by_module = TwoStream(num_classes=2, flow_generator=generator, num_frames=3, width=0.25)
    for model in (by_kwargs, by_module):
        assert torch.allclose(model.input_mean, torch.tensor(stats["mean"]))
        assert torch.allclose(model.input_std, model.flow_generator.input_std)
    explicit = TwoStream(num_classes=2, num_frames=3, width=0.25, mean=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(explicit.flow_generator.input_mean, torch.tensor([0.1, 0.2, 0.3]))
