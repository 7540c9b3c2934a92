"""3D ResNets (Hara et al., 'Can spatiotemporal 3D CNNs retrace the history of 2D CNNs') as clip backbones.

Used by DeepEthogram's DEG-slow preset (3D ResNet34) on the whole RGB clip and on the stack of flows. Names
match DeepEthogram's ``resnet3d_34`` (shortcut type B: 1x1x1 convolution + BatchNorm3d), without its ``fc``.
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.flow.base import scaled_width
from deg_train.models.registry import register_model


class BasicBlock3d(nn.Module):
    """Two 3x3x3 convolutions with a residual connection."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, planes, T / stride, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet3d(nn.Module):
    """3D ResNet backbone: clip (B, C, T, H, W) -> features (B, num_features).

    Args:
        layers: blocks per stage, (3, 4, 6, 3) for ResNet34.
        in_channels: 3 for an RGB clip, 2 for a clip of flows.
        width: channel multiplier.

    Attributes:
        is_3d: True: the two-stream model feeds it the whole clip (B, C, T, H, W).
        num_features: D, the size of the returned feature vector.
    """

    is_3d = True

    def __init__(self, layers: tuple[int, int, int, int], in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.in_channels = in_channels
        stem = scaled_width(64, width)
        self.conv1 = nn.Conv3d(in_channels, stem, 7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        self._in = stem
        planes = [scaled_width(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(planes[0], layers[0], 1)
        self.layer2 = self._make_layer(planes[1], layers[1], 2)
        self.layer3 = self._make_layer(planes[2], layers[2], 2)
        self.layer4 = self._make_layer(planes[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.num_features = planes[3]
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in != planes:
            downsample = nn.Sequential(
                nn.Conv3d(self._in, planes, 1, stride=stride, bias=False), nn.BatchNorm3d(planes)
            )
        layers = [BasicBlock3d(self._in, planes, stride, downsample)]
        self._in = planes
        layers += [BasicBlock3d(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of a clip.

        Args:
            x: (B, in_channels, T, H, W) float.

        Returns:
            (B, num_features) features.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


@register_model("feature", "resnet3d_18")
def resnet3d_18(in_channels: int = 3, width: float = 1.0) -> ResNet3d:
    """3D ResNet18 backbone, 512-d features (x width)."""
    return ResNet3d((2, 2, 2, 2), in_channels=in_channels, width=width)


@register_model("feature", "resnet3d_34")
def resnet3d_34(in_channels: int = 3, width: float = 1.0) -> ResNet3d:
    """3D ResNet34 backbone (DEG-slow), 512-d features (x width)."""
    return ResNet3d((3, 4, 6, 3), in_channels=in_channels, width=width)
