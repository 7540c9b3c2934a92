"""TinyMotionNet3D: the 3D-convolution flow generator of DeepEthogram's DEG-slow preset.

Frames stay on their own time axis (B, 3, T, H, W); convolutions mix time and space; two (2, 3, 3) temporal
convolutions turn T frames into T - 1 frame pairs. One 2-channel flow per pair at strides 2, 4, 8. Parameter
names match DeepEthogram's TinyMotionNet3D.
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.flow.base import FlowGenerator, crop_concat, scaled_width
from deg_train.models.registry import register_model


def conv3d_block(
    in_ch: int,
    out_ch: int,
    kernel_size: int | tuple[int, int, int] = 3,
    stride: int | tuple[int, int, int] = 1,
    bias: bool = True,
    batch_norm: bool = True,
    act: bool = True,
) -> nn.Sequential:
    """Conv3d with 'same' padding (floor((k-1)/2) per dim) [+ BatchNorm3d] [+ LeakyReLU(0.1)]."""
    k = (kernel_size,) * 3 if isinstance(kernel_size, int) else kernel_size
    padding = tuple((ki - 1) // 2 for ki in k)
    layers: list[nn.Module] = [nn.Conv3d(in_ch, out_ch, k, stride=stride, padding=padding, bias=bias)]
    if batch_norm:
        layers.append(nn.BatchNorm3d(out_ch))
    if act:
        layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


def deconv3d_block(in_ch: int, out_ch: int, bias: bool, batch_norm: bool) -> nn.Sequential:
    """ConvTranspose3d doubling H and W (kernel (1, 4, 4)) [+ BatchNorm3d] + LeakyReLU(0.1)."""
    layers: list[nn.Module] = [
        nn.ConvTranspose3d(in_ch, out_ch, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1), bias=bias)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm3d(out_ch))
    layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


@register_model("flow", "tinymotionnet3d")
class TinyMotionNet3D(FlowGenerator):
    """3D flow generator: T frames in, T - 1 flows out at strides 2, 4, 8.

    Args:
        num_frames: T, frames per window (11 in DeepEthogram).
        channel_base: channels of the first stage (DeepEthogram: 16; stages use 1x, 2x, 4x).
        width: channel multiplier applied to ``channel_base``.
        batch_norm: BatchNorm after the convolutions (then the convolutions have no bias).
        mean: per-channel normalisation mean stored as ``input_mean``.
        std: per-channel normalisation std stored as ``input_std``.
    """

    def __init__(
        self,
        num_frames: int = 11,
        channel_base: int = 16,
        width: float = 1.0,
        batch_norm: bool = True,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__()
        if num_frames < 2:
            raise ValueError(f"num_frames must be >= 2, got {num_frames}")
        self.num_frames = num_frames
        self._init_normalisation(mean, std)
        base = scaled_width(channel_base, width)
        c0, c1, c2 = base, base * 2, base * 4
        bias = not batch_norm
        bn = batch_norm
        s = (1, 2, 2)

        self.conv1 = conv3d_block(3, c0, kernel_size=7, bias=bias, batch_norm=bn)
        self.conv2 = conv3d_block(c0, c1, kernel_size=5, stride=s, bias=bias, batch_norm=bn)
        self.conv3 = conv3d_block(c1, c2, stride=s, bias=bias, batch_norm=bn)
        self.conv4 = conv3d_block(c2, c1, stride=s, bias=bias, batch_norm=bn)
        # (2, 3, 3) with no temporal padding: T frames -> T - 1 frame pairs
        self.conv5 = conv3d_block(c1, c1, kernel_size=(2, 3, 3), bias=bias, batch_norm=bn)

        self.deconv3 = deconv3d_block(c1, c1, bias=bias, batch_norm=bn)
        self.deconv2 = deconv3d_block(c1, c0, bias=bias, batch_norm=bn)

        self.iconv3 = conv3d_block(c2, c2, kernel_size=(2, 3, 3), bias=bias, batch_norm=bn)
        self.iconv2 = conv3d_block(c1, c1, kernel_size=(2, 3, 3), bias=bias, batch_norm=bn)

        self.xconv3 = conv3d_block(c1 + c2 + 2, c1, batch_norm=bn, act=False)
        self.xconv2 = conv3d_block(c0 + c1 + 2, c0, batch_norm=bn, act=False)

        self.predict_flow4 = conv3d_block(c1, 2, batch_norm=False, act=False)
        self.predict_flow3 = conv3d_block(c1, 2, batch_norm=False, act=False)
        self.predict_flow2 = conv3d_block(c0, 2, batch_norm=False, act=False)

        self.upsampled_flow4_to_3 = nn.ConvTranspose3d(2, 2, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1))
        self.upsampled_flow3_to_2 = nn.ConvTranspose3d(2, 2, (1, 4, 4), stride=(1, 2, 2), padding=(0, 1, 1))

    @staticmethod
    def _to_channels(flow: torch.Tensor) -> torch.Tensor:
        # (B, 2, T-1, h, w) -> (B, 2(T-1), h, w) with channels (dx_0, dy_0, dx_1, dy_1, ...)
        b, c, p, h, w = flow.shape
        return flow.permute(0, 2, 1, 3, 4).reshape(b, p * c, h, w)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Flows at strides 2, 4, 8.

        Args:
            frames: (B, T, 3, H, W) normalised float.

        Returns:
            [flow2 (B, 2(T-1), H/2, W/2), flow3 (.., H/4, W/4), flow4 (.., H/8, W/8)], pixels at each scale.
        """
        self._check_input(frames)
        x = frames.permute(0, 2, 1, 3, 4)  # (B, 3, T, H, W)
        out1 = self.conv1(x)  # T, 1
        out2 = self.conv2(out1)  # T, 1/2
        out3 = self.conv3(out2)  # T, 1/4
        out4 = self.conv4(out3)  # T, 1/8
        out5 = self.conv5(out4)  # T-1, 1/8

        flow4 = self.predict_flow4(out5)
        flow4_up = self.upsampled_flow4_to_3(flow4) * 2
        concat3 = crop_concat((self.iconv3(out3), self.deconv3(out5), flow4_up))
        inter3 = self.xconv3(concat3)
        flow3 = self.predict_flow3(inter3)
        flow3_up = self.upsampled_flow3_to_2(flow3) * 2
        concat2 = crop_concat((self.iconv2(out2), self.deconv2(inter3), flow3_up))
        inter2 = self.xconv2(concat2)
        flow2 = self.predict_flow2(inter2)
        return [self._to_channels(flow2), self._to_channels(flow3), self._to_channels(flow4)]
