"""Shared pieces of the flow generators (stage 1): the base class, building blocks, warping and upsampling.

Conventions (all flow generators):
- input ``frames: (B, T, 3, H, W)`` float, already normalised with the model's ``input_mean``/``input_std``;
- output: a list of 3 flows, finest first, each ``(B, 2 * (T - 1), ceil(H / s), ceil(W / s))`` with
  ``s`` in ``output_strides`` = ``(2, 4, 8)``: like DeepEthogram's networks, the finest flow is at HALF the input
  resolution (use :func:`upsample_flow` to get full resolution);
- channels are ordered ``(dx_0, dy_0, dx_1, dy_1, ...)``; flow ``i`` relates frame ``i`` and frame ``i + 1``;
- direction and units: flow ``i`` at pixel ``(x, y)`` is the displacement, in pixels *of that scale*, at which
  frame ``i + 1`` is sampled to reconstruct frame ``i``: ``frame_i(x, y) ~= frame_{i+1}(x + dx_i, y + dy_i)``
  (backward warping, as in DeepEthogram's reconstructor; positive dx = content moved right).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)


class Reconstruction(NamedTuple):
    """One scale of a flow reconstruction, every tensor ``(B * (T - 1), C, h, w)``.

    Attributes:
        target: frame ``i`` resized to the flow's scale.
        warped: frame ``i + 1`` warped by flow ``i`` (the estimate of ``target``).
        flow: flow ``i`` in pixels of that scale, ``(B * (T - 1), 2, h, w)``.
    """

    target: torch.Tensor
    warped: torch.Tensor
    flow: torch.Tensor


def conv_bn_act(
    in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, batch_norm: bool = True, act: bool = True
) -> nn.Sequential:
    """Conv2d (with bias, 'same' padding) [+ BatchNorm2d] [+ LeakyReLU(0.1)]; indices 0, 1, 2."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=(kernel_size - 1) // 2, bias=True)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    if act:
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


def deconv_act(in_ch: int, out_ch: int) -> nn.Sequential:
    """ConvTranspose2d(4, stride 2, pad 1) doubling the size, then LeakyReLU(0.1)."""
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=True), nn.LeakyReLU(0.1))


def crop_concat(tensors: tuple[torch.Tensor, ...], dim: int = 1) -> torch.Tensor:
    """Concatenate along ``dim`` after cropping the last two (spatial) dims to the smallest size.

    Sizes are static for a given input size, so this exports to ONNX without data-dependent control flow.
    """
    h = min(t.shape[-2] for t in tensors)
    w = min(t.shape[-1] for t in tensors)
    return torch.cat([t[..., :h, :w] for t in tensors], dim=dim)


def scaled_width(channels: int, width: float) -> int:
    """Channel count after a width multiplier (at least 8, rounded to a multiple of 4 when narrowed)."""
    if width == 1.0:
        return channels
    return max(8, round(channels * width / 4.0) * 4)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` by ``flow``: ``out(x, y) = image(x + dx, y + dy)`` (bilinear, border padding).

    Args:
        image: (N, C, H, W) float.
        flow: (N, 2, H, W) displacement in pixels (channel 0 = dx, 1 = dy).

    Returns:
        (N, C, H, W) warped image. Used only by the loss (grid_sample is not in any inference path).
    """
    h, w = image.shape[-2], image.shape[-1]
    ys = torch.arange(h, device=image.device, dtype=image.dtype)
    xs = torch.arange(w, device=image.device, dtype=image.dtype)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    sample_x = grid_x.unsqueeze(0) + flow[:, 0]
    sample_y = grid_y.unsqueeze(0) + flow[:, 1]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels.
    norm_x = 2.0 * sample_x / max(w - 1, 1) - 1.0
    norm_y = 2.0 * sample_y / max(h - 1, 1) - 1.0
    grid = torch.stack([norm_x, norm_y], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow to ``size`` (bilinear) and rescale its values to pixels of the new size.

    Args:
        flow: (B, 2 * P, h, w) with channels (dx_0, dy_0, ...), in pixels at (h, w).
        size: target (H, W).

    Returns:
        (B, 2 * P, H, W) flow in pixels at (H, W).
    """
    h, w = flow.shape[-2], flow.shape[-1]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    pairs = flow.shape[1] // 2
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device).repeat(pairs)
    return out * scale.view(1, -1, 1, 1)


def reconstruct(frames: torch.Tensor, flows: list[torch.Tensor]) -> list[Reconstruction]:
    """Warp frame ``i + 1`` by flow ``i`` at every scale, for the self-supervised loss.

    Args:
        frames: (B, T, C, H, W) float images (any range; the loss expects [0, 1]).
        flows: list of (B, 2 * (T - 1), h_s, w_s) flows, any number of scales.

    Returns:
        One :class:`Reconstruction` per scale, tensors of shape (B * (T - 1), C, h_s, w_s).
    """
    b, t, c, h, w = frames.shape
    pairs = t - 1
    t0 = frames[:, :-1].reshape(b * pairs, c, h, w)
    t1 = frames[:, 1:].reshape(b * pairs, c, h, w)
    out = []
    for flow in flows:
        fh, fw = flow.shape[-2], flow.shape[-1]
        if flow.shape[1] != 2 * pairs:
            raise ValueError(f"flow has {flow.shape[1]} channels, expected {2 * pairs} for {t} frames")
        flow_pairs = flow.reshape(b * pairs, 2, fh, fw)
        if (fh, fw) == (h, w):
            target, source = t0, t1
        else:
            target = F.interpolate(t0, size=(fh, fw), mode="bilinear", align_corners=False, antialias=True)
            source = F.interpolate(t1, size=(fh, fw), mode="bilinear", align_corners=False, antialias=True)
        out.append(Reconstruction(target, warp(source, flow_pairs), flow_pairs))
    return out


class FlowGenerator(nn.Module):
    """Base class of the flow generators.

    Subclasses implement :meth:`forward`; they set ``num_frames`` and register ``input_mean``/``input_std``
    buffers (shape (3,)) via :meth:`_init_normalisation`.

    Attributes:
        num_frames: T, frames per window (flows out: T - 1).
        output_strides: downsampling of each returned flow relative to the input, finest first.
    """

    output_strides: tuple[int, ...] = (2, 4, 8)
    num_frames: int

    def _init_normalisation(self, mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> None:
        mean = DEFAULT_MEAN if mean is None else mean
        std = DEFAULT_STD if std is None else std
        self.register_buffer("input_mean", torch.as_tensor(mean, dtype=torch.float32).detach().clone().reshape(3))
        self.register_buffer("input_std", torch.as_tensor(std, dtype=torch.float32).detach().clone().reshape(3))

    def _check_input(self, frames: torch.Tensor) -> None:
        if frames.dim() != 5 or frames.shape[2] != 3 or frames.shape[1] != self.num_frames:
            raise ValueError(
                f"{type(self).__name__} expects frames (B, {self.num_frames}, 3, H, W), got {tuple(frames.shape)}"
            )

    def reconstruct(self, frames: torch.Tensor, flows: list[torch.Tensor]) -> list[Reconstruction]:
        """Per-scale warped images for the loss; see :func:`reconstruct`."""
        return reconstruct(frames, flows)
