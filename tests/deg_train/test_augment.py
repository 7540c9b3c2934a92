"""Augmentation: one random transform per clip, identical across its frames, different between clips."""

from __future__ import annotations

import itertools

import pytest
import torch

from deg_train.training.augment import ClipAugment, model_normalisation, prepare_clips
from deg_train.training.config import AugmentConfig

torch.set_num_threads(1)

OFF = dict(
    crop_scale=(1.0, 1.0),
    lr_flip=0.0,
    ud_flip=0.0,
    degrees=0.0,
    brightness=0.0,
    contrast=0.0,
    saturation=0.0,
    hue=0.0,
    grayscale=0.0,
)


def _textured(b: int, t: int, h: int = 32, w: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(b, t, 3, h, w, generator=g)


@pytest.mark.parametrize("backend", ["fused", "kornia"])
def test_same_transform_on_every_frame_of_a_clip(backend):
    torch.manual_seed(0)
    aug = ClipAugment(AugmentConfig(backend=backend), (32, 48))
    frame = _textured(1, 1)
    clips = frame.expand(6, 5, 3, 32, 48).contiguous()  # 6 clips of 5 identical frames
    out = aug(clips)
    assert out.shape == clips.shape and out.dtype == torch.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # Identical frames in -> identical frames out, in every clip.
    assert torch.equal(out, out[:, :1].expand_as(out))
    # The clips got different transforms.
    assert (out[0] - out[1]).abs().max() > 0.05


@pytest.mark.parametrize("backend", ["fused", "kornia"])
def test_motion_between_frames_is_transformed_consistently(backend):
    # A bright square moving right by 2 px per frame; after a left-right flip it moves left, and the frame-to-frame
    # displacement stays the same for every pair (a per-frame transform would break that).
    x = torch.zeros(1, 4, 3, 32, 32)
    for t in range(4):
        x[0, t, :, 12:20, 4 + 2 * t : 12 + 2 * t] = 1.0
    aug = ClipAugment(AugmentConfig(backend=backend, **{**OFF, "lr_flip": 1.0}), (32, 32))
    out = aug(x)
    cols = [(out[0, t, 0].sum(0) > 0.5).nonzero().flatten() for t in range(4)]
    starts = [int(c.min()) for c in cols]
    assert [b - a for a, b in itertools.pairwise(starts)] == [-2, -2, -2]


def test_each_part_does_what_it_says():
    x = _textured(2, 3)
    flip = ClipAugment(AugmentConfig(**{**OFF, "lr_flip": 1.0}), (32, 48))(x)
    assert torch.allclose(flip, x.flip(-1), atol=1e-5)
    vflip = ClipAugment(AugmentConfig(**{**OFF, "ud_flip": 1.0}), (32, 48))(x)
    assert torch.allclose(vflip, x.flip(-2), atol=1e-5)
    gray = ClipAugment(AugmentConfig(**{**OFF, "grayscale": 1.0}), (32, 48))(x)
    assert torch.allclose(gray[:, :, 0], gray[:, :, 1], atol=1e-5) and torch.allclose(
        gray[:, :, 1], gray[:, :, 2], atol=1e-5
    )
    torch.manual_seed(1)
    bright = ClipAugment(AugmentConfig(**{**OFF, "brightness": 0.5}), (32, 48))(x * 0.5)
    ratio = bright / (x * 0.5).clamp(min=1e-3)
    for b in range(2):  # one brightness factor per clip
        r = ratio[b][x[b] > 0.2]
        assert r.std() < 1e-3 and 0.5 <= r.mean() <= 1.5
    # Everything off: the identity.
    assert ClipAugment(AugmentConfig(**OFF), (32, 48))(x) is x
    assert ClipAugment(AugmentConfig(enabled=False), (32, 48))(x) is x


def test_seeded_augmentation_is_reproducible():
    x = _textured(4, 3)
    aug = ClipAugment(AugmentConfig(), (32, 48))
    torch.manual_seed(5)
    a = aug(x)
    torch.manual_seed(5)
    b = aug(x)
    assert torch.equal(a, b)


def test_prepare_clips_uint8_to_normalised_float():
    clip = torch.randint(0, 256, (2, 3, 32, 48, 3), dtype=torch.uint8)  # (B, T, H, W, 3)

    class WithNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("input_mean", torch.tensor([0.4, 0.5, 0.6]))
            self.register_buffer("input_std", torch.tensor([0.2, 0.25, 0.3]))

    mean, std = model_normalisation(WithNorm())
    out = prepare_clips(clip, "cpu", mean=mean, std=std)
    assert out.shape == (2, 3, 3, 32, 48) and out.dtype == torch.float32
    expected = (clip.permute(0, 1, 4, 2, 3).float() / 255 - mean.view(1, 1, 3, 1, 1)) / std.view(1, 1, 3, 1, 1)
    assert torch.allclose(out, expected, atol=1e-6)
    m, s = model_normalisation(torch.nn.Linear(1, 1))  # no buffers: DeepEthogram's 0.5 / 0.5
    assert m.tolist() == [0.5, 0.5, 0.5] and s.tolist() == [0.5, 0.5, 0.5]
