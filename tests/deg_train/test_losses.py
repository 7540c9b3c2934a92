"""Losses on known cases: warping, flow loss, focal BCE, label-count helpers, flow colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deg_train.models import create_model, warp
from deg_train.training.flow_viz import flow_to_rgb
from deg_train.training.losses import (
    MaskedFocalBCE,
    MotionNetLoss,
    charbonnier,
    init_bias_from_counts,
    pos_weight_from_counts,
    ssim,
)

torch.set_num_threads(1)


def smooth_images(n: int, size: int = 48, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) smooth random images in [0, 1] (low-frequency noise, upsampled)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def shifted_pair(dx: int, dy: int) -> tuple[torch.Tensor, torch.Tensor]:
    """frame0 and frame1 = frame0 with its content moved by (dx, dy) pixels (integer, via roll)."""
    frame0 = smooth_images(2)
    frame1 = torch.roll(frame0, shifts=(dy, dx), dims=(2, 3))
    return frame0, frame1


def test_warping_a_shifted_image_by_the_right_flow_reconstructs_it() -> None:
    frame0, frame1 = shifted_pair(dx=3, dy=-2)
    flow = torch.zeros(2, 2, 48, 48)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # frame0(x, y) = frame1(x + 3, y - 2)
    rec = warp(frame1, flow)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # away from borders and the roll seam
    assert (rec - frame0)[inner].abs().max() < 1e-5
    wrong = warp(frame1, -flow)
    assert (wrong - frame0)[inner].abs().mean() > 10 * (rec - frame0)[inner].abs().mean() + 1e-3


def test_zero_flow_on_identical_frames_gives_near_zero_photometric_loss() -> None:
    frames = smooth_images(1).unsqueeze(1).repeat(2, 5, 1, 1, 1)  # (2, 5, 3, H, W), all frames equal
    flows = [torch.zeros(2, 8, 48 // s, 48 // s) for s in (2, 4, 8)]
    total, parts = MotionNetLoss()(frames, flows)
    assert parts["photometric"] < 3 * charbonnier(torch.zeros(())) + 1e-6  # only the eps floor, per scale
    assert abs(float(parts["ssim"])) < 1e-4
    assert float(parts["smoothness"]) < 1e-3
    assert set(parts) == {"photometric", "ssim", "smoothness", "sparsity", "total"}
    assert torch.isclose(total, parts["total"])


def test_flow_loss_prefers_the_true_motion_and_denormalises() -> None:
    frame0, frame1 = shifted_pair(dx=2, dy=0)
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.3, 0.25])
    frames = torch.stack([frame0, frame1], dim=1)  # (2, 2, 3, H, W), T = 2
    normalised = (frames - mean.view(1, 1, 3, 1, 1)) / std.view(1, 1, 3, 1, 1)
    loss = MotionNetLoss(mean=mean, std=std)

    def flows_with(dx: float) -> list[torch.Tensor]:
        out = []
        for s in (2, 4, 8):
            f = torch.zeros(2, 2, 48 // s, 48 // s)
            f[:, 0] = dx / s  # pixels of that scale
            out.append(f)
        return out

    right, _ = loss(normalised, flows_with(2.0))
    zero, _ = loss(normalised, flows_with(0.0))
    wrong, _ = loss(normalised, flows_with(-2.0))
    assert right < zero < wrong
    # the same frames given un-normalised to a loss without mean/std give the same value
    plain, _ = MotionNetLoss()(frames, flows_with(2.0))
    assert torch.isclose(right, plain, atol=1e-5)


def test_flow_loss_trains_a_flow_generator_end_to_end() -> None:
    model = create_model("flow", "tinymotionnet", num_frames=3, width=0.25)
    frames = smooth_images(2, 32).unsqueeze(1).repeat(1, 3, 1, 1, 1)
    total, _ = MotionNetLoss(flow_sparsity=True, sparsity_weight=0.05)(frames, model(frames))
    total.backward()
    assert model.predict_flow2.weight.grad is not None and torch.isfinite(total)


def test_sparsity_and_smoothness_multipliers() -> None:
    flows = [torch.ones(1, 2, 8, 8) * 2.0]
    frames = torch.rand(1, 2, 3, 16, 16)
    _, parts = MotionNetLoss(flow_sparsity=True, sparsity_weight=0.05)(frames, flows)
    assert torch.isclose(parts["sparsity"], torch.tensor(0.1))
    bumpy = [torch.randn(1, 2, 8, 8)]
    _, a = MotionNetLoss()(frames, bumpy)
    _, b = MotionNetLoss(smooth_weight_multiplier=0.25)(frames, bumpy)
    assert torch.isclose(b["smoothness"], a["smoothness"] * 0.25)


def test_ssim_of_identical_images_is_one() -> None:
    x = smooth_images(1)
    assert torch.allclose(ssim(x, x), torch.ones_like(x), atol=1e-4)
    assert ssim(x, 1 - x).mean() < 0.5


def test_focal_bce_reduces_to_bce_and_masks_unlabelled() -> None:
    logits = torch.randn(6, 4, requires_grad=True)
    targets = torch.randint(0, 2, (6, 4)).float()
    plain = MaskedFocalBCE(gamma=0.0, label_smoothing=0.0)(logits, targets)
    assert torch.isclose(plain, F.binary_cross_entropy_with_logits(logits, targets))

    masked_targets = targets.clone()
    masked_targets[:3, 1] = -1
    loss = MaskedFocalBCE(gamma=1.0, label_smoothing=0.05)(logits, masked_targets)
    loss.backward()
    assert torch.all(logits.grad[:3, 1] == 0)  # masked entries give no gradient
    assert torch.all(logits.grad[3:, 1] != 0)
    everything_masked = MaskedFocalBCE()(logits, torch.full((6, 4), -1.0))
    assert everything_masked == 0


def test_focal_term_down_weights_easy_examples_and_works_on_sequences() -> None:
    targets = torch.ones(1, 1)
    easy, hard = torch.tensor([[4.0]]), torch.tensor([[-1.0]])
    bce, focal = MaskedFocalBCE(gamma=0.0, label_smoothing=0.0), MaskedFocalBCE(gamma=2.0, label_smoothing=0.0)
    assert focal(easy, targets) / bce(easy, targets) < focal(hard, targets) / bce(hard, targets)
    seq = MaskedFocalBCE()(torch.randn(2, 10, 3), torch.randint(-1, 2, (2, 10, 3)))
    assert seq.dim() == 0 and torch.isfinite(seq)
    with pytest.raises(ValueError, match="differ"):
        MaskedFocalBCE()(torch.randn(2, 3), torch.zeros(2, 4))


def test_label_smoothing_targets() -> None:
    # with smoothing s, a logit of log((1-s)/s) is optimal for a positive: the gradient there is zero
    s = 0.05
    logit = torch.tensor([[np.log((1 - s) / s)]], dtype=torch.float32, requires_grad=True)
    MaskedFocalBCE(gamma=0.0, label_smoothing=s)(logit, torch.ones(1, 1)).backward()
    assert abs(float(logit.grad)) < 1e-6


def test_positive_weights_and_bias_from_counts() -> None:
    pos, neg = np.array([10, 500, 0]), np.array([990, 500, 1000])
    w = pos_weight_from_counts(pos, neg, beta=0.25)
    assert torch.allclose(w, torch.tensor([99**0.25, 1.0, 1.0]))
    layer = torch.nn.Linear(8, 3)
    init_bias_from_counts(layer, pos, neg)
    probs = torch.sigmoid(layer.bias.detach())
    assert torch.allclose(probs[:2], torch.tensor([0.01, 0.5]), atol=1e-6)
    assert layer.bias[2] == 0  # no positives: neutral bias, not -inf
    weighted = MaskedFocalBCE(pos_weight=w, gamma=0.0, label_smoothing=0.0)
    unweighted = MaskedFocalBCE(gamma=0.0, label_smoothing=0.0)
    logits, targets = torch.zeros(1, 3), torch.tensor([[1.0, 1.0, 0.0]])
    assert weighted(logits, targets) > unweighted(logits, targets)
    with pytest.raises(ValueError, match="bias shape"):
        init_bias_from_counts(torch.nn.Linear(8, 2), pos, neg)


def test_flow_to_rgb_colour_wheel() -> None:
    zero = flow_to_rgb(np.zeros((2, 4, 4)))
    assert zero.dtype == np.uint8 and zero.shape == (4, 4, 3) and np.all(zero == 255)  # no motion: white
    right = flow_to_rgb(np.stack([np.ones((4, 4)), np.zeros((4, 4))]))[0, 0]
    left = flow_to_rgb(np.stack([-np.ones((4, 4)), np.zeros((4, 4))]))[0, 0]
    up = flow_to_rgb(np.stack([np.zeros((4, 4)), -np.ones((4, 4))]))[0, 0]
    assert len({tuple(right), tuple(left), tuple(up)}) == 3  # direction sets the hue
    weak = flow_to_rgb(np.stack([np.full((4, 4), 0.5), np.zeros((4, 4))]), max_magnitude=1.0)[0, 0]
    assert weak.min() > right.min()  # smaller magnitude: less saturated
    assert flow_to_rgb(torch.randn(2, 5, 6)).shape == (5, 6, 3)
    with pytest.raises(ValueError, match=r"\(2, H, W\)"):
        flow_to_rgb(np.zeros((3, 4, 4)))
