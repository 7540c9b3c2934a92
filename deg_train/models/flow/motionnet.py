"""MotionNet: the larger 2D flow generator of DeepEthogram's DEG-medium preset (Zhu et al., Hidden Two-Stream).

Encoder of 6 stages (1 to 1/32), each two 3x3 convolutions; decoder with skip connections predicting a flow
at every level from 1/32 up to 1/2. The three finest (1/2, 1/4, 1/8) are returned. Parameter names match
DeepEthogram's MotionNet.
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.flow.base import (
    FlowGenerator,
    conv_bn_act,
    crop_concat,
    deconv_act,
    scaled_width,
)
from deg_train.models.registry import register_model


@register_model("flow", "motionnet")
class MotionNet(FlowGenerator):
    """2D flow generator with a 6-level encoder; returns flows at strides 2, 4, 8.

    Args:
        num_frames: T, frames per window (11 in DeepEthogram).
        width: channel multiplier (1.0 = DeepEthogram's sizes).
        batch_norm: BatchNorm after the convolutions.
        mean: per-channel normalisation mean stored as ``input_mean``.
        std: per-channel normalisation std stored as ``input_std``.
    """

    def __init__(
        self,
        num_frames: int = 11,
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
        n = 2 * (num_frames - 1)
        c1, c2, c3, c4, c5, c6 = (scaled_width(c, width) for c in (64, 128, 256, 512, 512, 1024))
        d5, d4, d3, d2 = (scaled_width(c, width) for c in (512, 256, 128, 64))
        bn = batch_norm

        self.conv1 = conv_bn_act(3 * num_frames, c1, batch_norm=bn)
        self.conv1_1 = conv_bn_act(c1, c1, batch_norm=bn)
        self.conv2 = conv_bn_act(c1, c2, stride=2, batch_norm=bn)
        self.conv2_1 = conv_bn_act(c2, c2, batch_norm=bn)
        self.conv3 = conv_bn_act(c2, c3, stride=2, batch_norm=bn)
        self.conv3_1 = conv_bn_act(c3, c3, batch_norm=bn)
        self.conv4 = conv_bn_act(c3, c4, stride=2, batch_norm=bn)
        self.conv4_1 = conv_bn_act(c4, c4, batch_norm=bn)
        self.conv5 = conv_bn_act(c4, c5, stride=2, batch_norm=bn)
        self.conv5_1 = conv_bn_act(c5, c5, batch_norm=bn)
        self.conv6 = conv_bn_act(c5, c6, stride=2, batch_norm=bn)
        self.conv6_1 = conv_bn_act(c6, c6, batch_norm=bn)

        cat5 = c5 + d5 + n
        cat4 = c4 + d4 + n
        cat3 = c3 + d3 + n
        cat2 = c2 + d2 + n
        self.deconv5 = deconv_act(c6, d5)
        self.deconv4 = deconv_act(cat5, d4)
        self.deconv3 = deconv_act(cat4, d3)
        self.deconv2 = deconv_act(cat3, d2)

        self.xconv5 = conv_bn_act(cat5, d5, batch_norm=bn, act=False)
        self.xconv4 = conv_bn_act(cat4, d4, batch_norm=bn, act=False)
        self.xconv3 = conv_bn_act(cat3, d3, batch_norm=bn, act=False)
        self.xconv2 = conv_bn_act(cat2, d2, batch_norm=bn, act=False)

        self.predict_flow6 = nn.Conv2d(c6, n, 3, padding=1, bias=False)
        self.predict_flow5 = nn.Conv2d(d5, n, 3, padding=1, bias=False)
        self.predict_flow4 = nn.Conv2d(d4, n, 3, padding=1, bias=False)
        self.predict_flow3 = nn.Conv2d(d3, n, 3, padding=1, bias=False)
        self.predict_flow2 = nn.Conv2d(d2, n, 3, padding=1, bias=False)

        self.upsampled_flow6_to_5 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)
        self.upsampled_flow5_to_4 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)
        self.upsampled_flow4_to_3 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)
        self.upsampled_flow3_to_2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)

        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.uniform_(m.bias, -0.01, 0.01)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Flows at strides 2, 4, 8.

        Args:
            frames: (B, T, 3, H, W) normalised float.

        Returns:
            [flow2 (B, 2(T-1), H/2, W/2), flow3 (.., H/4, W/4), flow4 (.., H/8, W/8)], pixels at each scale.
        """
        self._check_input(frames)
        b, t, c, h, w = frames.shape
        x = frames.reshape(b, t * c, h, w)
        out1 = self.conv1_1(self.conv1(x))  # 1
        out2 = self.conv2_1(self.conv2(out1))  # 1/2
        out3 = self.conv3_1(self.conv3(out2))  # 1/4
        out4 = self.conv4_1(self.conv4(out3))  # 1/8
        out5 = self.conv5_1(self.conv5(out4))  # 1/16
        out6 = self.conv6_1(self.conv6(out5))  # 1/32

        flow6 = self.predict_flow6(out6)
        flow6_up = self.upsampled_flow6_to_5(flow6) * 2  # one pixel at 1/32 is two at 1/16
        concat5 = crop_concat((out5, self.deconv5(out6), flow6_up))
        flow5 = self.predict_flow5(self.xconv5(concat5))
        flow5_up = self.upsampled_flow5_to_4(flow5) * 2

        concat4 = crop_concat((out4, self.deconv4(concat5), flow5_up))
        flow4 = self.predict_flow4(self.xconv4(concat4))
        flow4_up = self.upsampled_flow4_to_3(flow4) * 2

        concat3 = crop_concat((out3, self.deconv3(concat4), flow4_up))
        flow3 = self.predict_flow3(self.xconv3(concat3))
        flow3_up = self.upsampled_flow3_to_2(flow3) * 2

        concat2 = crop_concat((out2, self.deconv2(concat3), flow3_up))
        flow2 = self.predict_flow2(self.xconv2(concat2))
        return [flow2, flow3, flow4]
