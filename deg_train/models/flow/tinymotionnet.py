"""TinyMotionNet: the small 2D flow generator of DeepEthogram's DEG-fast preset (Zhu et al., Hidden Two-Stream).

Encoder: 4 convolutions (1, 1/2, 1/4, 1/8 of the input); decoder: 2 transposed convolutions with skip
connections; a flow is predicted at 1/8, 1/4 and 1/2 of the input. Parameter names match DeepEthogram's
TinyMotionNet, so its checkpoints load without renaming (see ``deg_train.models.weights``).
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


@register_model("flow", "tinymotionnet")
class TinyMotionNet(FlowGenerator):
    """Small 2D flow generator: T stacked RGB frames in, T - 1 flows out at strides 2, 4, 8.

    Args:
        num_frames: T, frames per window (11 in DeepEthogram).
        width: channel multiplier (1.0 = DeepEthogram's sizes; only 1.0 loads DeepEthogram weights).
        batch_norm: BatchNorm after the encoder convolutions.
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
        c1, c2, c3, c4 = (scaled_width(c, width) for c in (64, 128, 256, 128))
        d3, d2 = scaled_width(128, width), scaled_width(64, width)

        self.conv1 = conv_bn_act(3 * num_frames, c1, kernel_size=7, batch_norm=batch_norm)
        self.conv2 = conv_bn_act(c1, c2, kernel_size=5, stride=2, batch_norm=batch_norm)
        self.conv3 = conv_bn_act(c2, c3, stride=2, batch_norm=batch_norm)
        self.conv4 = conv_bn_act(c3, c4, stride=2, batch_norm=batch_norm)

        self.deconv3 = deconv_act(c4, d3)
        self.deconv2 = deconv_act(d3, d2)

        self.xconv3 = conv_bn_act(c3 + d3 + n, d3, batch_norm=batch_norm, act=False)
        self.xconv2 = conv_bn_act(c2 + d2 + n, d2, batch_norm=batch_norm, act=False)

        self.predict_flow4 = nn.Conv2d(c4, n, 3, padding=1, bias=False)
        self.predict_flow3 = nn.Conv2d(d3, n, 3, padding=1, bias=False)
        self.predict_flow2 = nn.Conv2d(d2, n, 3, padding=1, bias=False)

        self.upsampled_flow4_to_3 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)
        self.upsampled_flow3_to_2 = nn.ConvTranspose2d(n, n, 4, stride=2, padding=1)

    def forward(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Flows at strides 2, 4, 8.

        Args:
            frames: (B, T, 3, H, W) normalised float.

        Returns:
            [flow2 (B, 2(T-1), H/2, W/2), flow3 (.., H/4, W/4), flow4 (.., H/8, W/8)], pixels at each scale.
        """
        self._check_input(frames)
        b, t, c, h, w = frames.shape
        x = frames.reshape(b, t * c, h, w)  # frame i -> channels 3i..3i+2
        out1 = self.conv1(x)  # 1
        out2 = self.conv2(out1)  # 1/2
        out3 = self.conv3(out2)  # 1/4
        out4 = self.conv4(out3)  # 1/8

        flow4 = self.predict_flow4(out4)
        # A displacement of 1 pixel at 1/8 is 2 pixels at 1/4: upsampled flows are doubled.
        flow4_up = self.upsampled_flow4_to_3(flow4) * 2
        concat3 = crop_concat((out3, self.deconv3(out4), flow4_up))
        inter3 = self.xconv3(concat3)
        flow3 = self.predict_flow3(inter3)
        flow3_up = self.upsampled_flow3_to_2(flow3) * 2
        concat2 = crop_concat((out2, self.deconv2(inter3), flow3_up))
        inter2 = self.xconv2(concat2)
        flow2 = self.predict_flow2(inter2)
        return [flow2, flow3, flow4]
