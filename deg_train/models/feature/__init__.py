"""Stage 2: CNN backbones (registry kind ``"feature"``) and the hidden two-stream model."""

from deg_train.models.feature.resnet import ResNet, resnet18, resnet18_half, resnet34, resnet50
from deg_train.models.feature.resnet3d import ResNet3d, resnet3d_18, resnet3d_34
from deg_train.models.feature.two_stream import HiddenTwoStream, TwoStream

__all__ = [
    "HiddenTwoStream",
    "ResNet",
    "ResNet3d",
    "TwoStream",
    "resnet3d_18",
    "resnet3d_34",
    "resnet18",
    "resnet18_half",
    "resnet34",
    "resnet50",
]
