"""Stage 1 flow generators: TinyMotionNet, MotionNet, TinyMotionNet3D (registry kind ``"flow"``)."""

from deg_train.models.flow.base import FlowGenerator, Reconstruction, reconstruct, upsample_flow, warp
from deg_train.models.flow.motionnet import MotionNet
from deg_train.models.flow.tinymotionnet import TinyMotionNet
from deg_train.models.flow.tinymotionnet3d import TinyMotionNet3D

__all__ = [
    "FlowGenerator",
    "MotionNet",
    "Reconstruction",
    "TinyMotionNet",
    "TinyMotionNet3D",
    "reconstruct",
    "upsample_flow",
    "warp",
]
