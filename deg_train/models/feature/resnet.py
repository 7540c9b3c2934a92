"""2D ResNets (He et al.) as feature backbones, with torchvision's parameter names.

``resnet18`` / ``resnet34`` / ``resnet50`` here have the same names and shapes as
``torchvision.models.resnet18`` etc. minus the final ``fc`` (a backbone returns features, the heads live in
the two-stream model), so a torchvision ``state_dict`` loads directly (``deg_train.models.weights``). ResNet50 adds,
like DeepEthogram, ``compression_fc`` (Linear 2048 -> 512 + ReLU) so both ResNets give 512-d features.
``width`` narrows every stage (0.5 = half the channels) for CPU presets; narrowed nets train from scratch.
"""

from __future__ import annotations

import torch
from torch import nn

from deg_train.models.flow.base import scaled_width
from deg_train.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 (strided, torchvision 'v1.5') - 1x1 bottleneck with a residual connection (ResNet50)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 4 * planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet backbone: image (B, C, H, W) -> features (B, num_features).

    Args:
        block: BasicBlock or Bottleneck.
        layers: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
        in_channels: 3 for RGB, 2 * (T - 1) for a stack of flows.
        width: channel multiplier (1.0 = torchvision).
        compress_to: if smaller than the last stage's channels, a Linear + ReLU (``compression_fc``) reduces
            the pooled features to this size (DeepEthogram: 512 for ResNet50). None keeps them.

    Attributes:
        is_3d: False: the two-stream model feeds it one image or a channel-stacked flow.
        num_features: D, the size of the returned feature vector.
    """

    is_3d = False

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        in_channels: int = 3,
        width: float = 1.0,
        compress_to: int | None = 512,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        stem = scaled_width(64, width)
        self.conv1 = nn.Conv2d(in_channels, stem, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self._in = stem
        planes = [scaled_width(p, width) for p in (64, 128, 256, 512)]
        self.layer1 = self._make_layer(block, planes[0], layers[0], 1)
        self.layer2 = self._make_layer(block, planes[1], layers[1], 2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], 2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        out = planes[3] * block.expansion
        if compress_to is not None and compress_to < out:
            self.compression_fc: nn.Module = nn.Sequential(nn.Linear(out, compress_to), nn.ReLU())
            out = compress_to
        else:
            self.compression_fc = nn.Identity()
        self.num_features = out

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._in != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._in, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._in, planes, stride, downsample)]
        self._in = planes * block.expansion
        layers += [block(self._in, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features of an image or a flow stack.

        Args:
            x: (B, in_channels, H, W) float.

        Returns:
            (B, num_features) features.
        """
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.compression_fc(x)


@register_model("feature", "resnet18")
def resnet18(in_channels: int = 3, width: float = 1.0, compress_to: int | None = 512) -> ResNet:
    """ResNet18 backbone, 512-d features (x width)."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels=in_channels, width=width, compress_to=compress_to)


@register_model("feature", "resnet34")
def resnet34(in_channels: int = 3, width: float = 1.0, compress_to: int | None = 512) -> ResNet:
    """ResNet34 backbone, 512-d features (x width)."""
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels=in_channels, width=width, compress_to=compress_to)


@register_model("feature", "resnet50")
def resnet50(in_channels: int = 3, width: float = 1.0, compress_to: int | None = 512) -> ResNet:
    """ResNet50 backbone; 2048 pooled features compressed to 512 like DeepEthogram (``compress_to=None``: 2048)."""
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels=in_channels, width=width, compress_to=compress_to)


@register_model("feature", "resnet18_half")
def resnet18_half(in_channels: int = 3, width: float = 0.5, compress_to: int | None = 512) -> ResNet:
    """ResNet18 at half width (256-d features): the live CPU preset's backbone."""
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels=in_channels, width=width, compress_to=compress_to)
