"""Weight loading: DeepEthogram checkpoints (fake, from its recorded names and shapes), torchvision, ours.

DeepEthogram's files carry their config as pickled OmegaConf objects: the fake checkpoints do too, pickled from a
stand-in ``omegaconf`` package that exists only while they are saved (see :func:`foreign_omegaconf`). Files that
would run code when unpickled are refused, and the tests check that no code ran.

The tables below were recorded from DeepEthogram 0.5.0 (installed in a throwaway venv, never a dependency):
``deg_f(num_classes=4)`` (hidden two-stream: TinyMotionNet + 2x ResNet18), ``MotionNet()`` and
``TinyMotionNet3D()``, printing ``state_dict()`` key and shape. A fake checkpoint is built from a table with
random tensors in DeepEthogram's file structure ({"epoch", "state_dict", "optimizer", "hyperparameters"},
keys optionally prefixed "model." or "module.") and must load with every tensor placed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torchvision

from camera_adapters.errors import UserFacingError
from deg_train.models import TwoStream, create_model
from deg_train.models.safe_load import load_untrusted
from deg_train.models.weights import WeightsError, load_weights

torch.set_num_threads(1)

# key shape ("-" = scalar); DeepEthogram deg_f(num_classes=4)
DEG_F_TABLE = """
spatial_classifier.0.conv1.weight 64x3x7x7
spatial_classifier.0.bn1.weight 64
spatial_classifier.0.bn1.bias 64
spatial_classifier.0.bn1.running_mean 64
spatial_classifier.0.bn1.running_var 64
spatial_classifier.0.bn1.num_batches_tracked -
spatial_classifier.0.layer1.0.conv1.weight 64x64x3x3
spatial_classifier.0.layer1.0.bn1.weight 64
spatial_classifier.0.layer1.0.bn1.bias 64
spatial_classifier.0.layer1.0.bn1.running_mean 64
spatial_classifier.0.layer1.0.bn1.running_var 64
spatial_classifier.0.layer1.0.bn1.num_batches_tracked -
spatial_classifier.0.layer1.0.conv2.weight 64x64x3x3
spatial_classifier.0.layer1.0.bn2.weight 64
spatial_classifier.0.layer1.0.bn2.bias 64
spatial_classifier.0.layer1.0.bn2.running_mean 64
spatial_classifier.0.layer1.0.bn2.running_var 64
spatial_classifier.0.layer1.0.bn2.num_batches_tracked -
spatial_classifier.0.layer1.1.conv1.weight 64x64x3x3
spatial_classifier.0.layer1.1.bn1.weight 64
spatial_classifier.0.layer1.1.bn1.bias 64
spatial_classifier.0.layer1.1.bn1.running_mean 64
spatial_classifier.0.layer1.1.bn1.running_var 64
spatial_classifier.0.layer1.1.bn1.num_batches_tracked -
spatial_classifier.0.layer1.1.conv2.weight 64x64x3x3
spatial_classifier.0.layer1.1.bn2.weight 64
spatial_classifier.0.layer1.1.bn2.bias 64
spatial_classifier.0.layer1.1.bn2.running_mean 64
spatial_classifier.0.layer1.1.bn2.running_var 64
spatial_classifier.0.layer1.1.bn2.num_batches_tracked -
spatial_classifier.0.layer2.0.conv1.weight 128x64x3x3
spatial_classifier.0.layer2.0.bn1.weight 128
spatial_classifier.0.layer2.0.bn1.bias 128
spatial_classifier.0.layer2.0.bn1.running_mean 128
spatial_classifier.0.layer2.0.bn1.running_var 128
spatial_classifier.0.layer2.0.bn1.num_batches_tracked -
spatial_classifier.0.layer2.0.conv2.weight 128x128x3x3
spatial_classifier.0.layer2.0.bn2.weight 128
spatial_classifier.0.layer2.0.bn2.bias 128
spatial_classifier.0.layer2.0.bn2.running_mean 128
spatial_classifier.0.layer2.0.bn2.running_var 128
spatial_classifier.0.layer2.0.bn2.num_batches_tracked -
spatial_classifier.0.layer2.0.downsample.0.weight 128x64x1x1
spatial_classifier.0.layer2.0.downsample.1.weight 128
spatial_classifier.0.layer2.0.downsample.1.bias 128
spatial_classifier.0.layer2.0.downsample.1.running_mean 128
spatial_classifier.0.layer2.0.downsample.1.running_var 128
spatial_classifier.0.layer2.0.downsample.1.num_batches_tracked -
spatial_classifier.0.layer2.1.conv1.weight 128x128x3x3
spatial_classifier.0.layer2.1.bn1.weight 128
spatial_classifier.0.layer2.1.bn1.bias 128
spatial_classifier.0.layer2.1.bn1.running_mean 128
spatial_classifier.0.layer2.1.bn1.running_var 128
spatial_classifier.0.layer2.1.bn1.num_batches_tracked -
spatial_classifier.0.layer2.1.conv2.weight 128x128x3x3
spatial_classifier.0.layer2.1.bn2.weight 128
spatial_classifier.0.layer2.1.bn2.bias 128
spatial_classifier.0.layer2.1.bn2.running_mean 128
spatial_classifier.0.layer2.1.bn2.running_var 128
spatial_classifier.0.layer2.1.bn2.num_batches_tracked -
spatial_classifier.0.layer3.0.conv1.weight 256x128x3x3
spatial_classifier.0.layer3.0.bn1.weight 256
spatial_classifier.0.layer3.0.bn1.bias 256
spatial_classifier.0.layer3.0.bn1.running_mean 256
spatial_classifier.0.layer3.0.bn1.running_var 256
spatial_classifier.0.layer3.0.bn1.num_batches_tracked -
spatial_classifier.0.layer3.0.conv2.weight 256x256x3x3
spatial_classifier.0.layer3.0.bn2.weight 256
spatial_classifier.0.layer3.0.bn2.bias 256
spatial_classifier.0.layer3.0.bn2.running_mean 256
spatial_classifier.0.layer3.0.bn2.running_var 256
spatial_classifier.0.layer3.0.bn2.num_batches_tracked -
spatial_classifier.0.layer3.0.downsample.0.weight 256x128x1x1
spatial_classifier.0.layer3.0.downsample.1.weight 256
spatial_classifier.0.layer3.0.downsample.1.bias 256
spatial_classifier.0.layer3.0.downsample.1.running_mean 256
spatial_classifier.0.layer3.0.downsample.1.running_var 256
spatial_classifier.0.layer3.0.downsample.1.num_batches_tracked -
spatial_classifier.0.layer3.1.conv1.weight 256x256x3x3
spatial_classifier.0.layer3.1.bn1.weight 256
spatial_classifier.0.layer3.1.bn1.bias 256
spatial_classifier.0.layer3.1.bn1.running_mean 256
spatial_classifier.0.layer3.1.bn1.running_var 256
spatial_classifier.0.layer3.1.bn1.num_batches_tracked -
spatial_classifier.0.layer3.1.conv2.weight 256x256x3x3
spatial_classifier.0.layer3.1.bn2.weight 256
spatial_classifier.0.layer3.1.bn2.bias 256
spatial_classifier.0.layer3.1.bn2.running_mean 256
spatial_classifier.0.layer3.1.bn2.running_var 256
spatial_classifier.0.layer3.1.bn2.num_batches_tracked -
spatial_classifier.0.layer4.0.conv1.weight 512x256x3x3
spatial_classifier.0.layer4.0.bn1.weight 512
spatial_classifier.0.layer4.0.bn1.bias 512
spatial_classifier.0.layer4.0.bn1.running_mean 512
spatial_classifier.0.layer4.0.bn1.running_var 512
spatial_classifier.0.layer4.0.bn1.num_batches_tracked -
spatial_classifier.0.layer4.0.conv2.weight 512x512x3x3
spatial_classifier.0.layer4.0.bn2.weight 512
spatial_classifier.0.layer4.0.bn2.bias 512
spatial_classifier.0.layer4.0.bn2.running_mean 512
spatial_classifier.0.layer4.0.bn2.running_var 512
spatial_classifier.0.layer4.0.bn2.num_batches_tracked -
spatial_classifier.0.layer4.0.downsample.0.weight 512x256x1x1
spatial_classifier.0.layer4.0.downsample.1.weight 512
spatial_classifier.0.layer4.0.downsample.1.bias 512
spatial_classifier.0.layer4.0.downsample.1.running_mean 512
spatial_classifier.0.layer4.0.downsample.1.running_var 512
spatial_classifier.0.layer4.0.downsample.1.num_batches_tracked -
spatial_classifier.0.layer4.1.conv1.weight 512x512x3x3
spatial_classifier.0.layer4.1.bn1.weight 512
spatial_classifier.0.layer4.1.bn1.bias 512
spatial_classifier.0.layer4.1.bn1.running_mean 512
spatial_classifier.0.layer4.1.bn1.running_var 512
spatial_classifier.0.layer4.1.bn1.num_batches_tracked -
spatial_classifier.0.layer4.1.conv2.weight 512x512x3x3
spatial_classifier.0.layer4.1.bn2.weight 512
spatial_classifier.0.layer4.1.bn2.bias 512
spatial_classifier.0.layer4.1.bn2.running_mean 512
spatial_classifier.0.layer4.1.bn2.running_var 512
spatial_classifier.0.layer4.1.bn2.num_batches_tracked -
spatial_classifier.1.weight 4x512
spatial_classifier.1.bias 4
flow_generator.conv1.0.weight 64x33x7x7
flow_generator.conv1.0.bias 64
flow_generator.conv1.1.weight 64
flow_generator.conv1.1.bias 64
flow_generator.conv1.1.running_mean 64
flow_generator.conv1.1.running_var 64
flow_generator.conv1.1.num_batches_tracked -
flow_generator.conv2.0.weight 128x64x5x5
flow_generator.conv2.0.bias 128
flow_generator.conv2.1.weight 128
flow_generator.conv2.1.bias 128
flow_generator.conv2.1.running_mean 128
flow_generator.conv2.1.running_var 128
flow_generator.conv2.1.num_batches_tracked -
flow_generator.conv3.0.weight 256x128x3x3
flow_generator.conv3.0.bias 256
flow_generator.conv3.1.weight 256
flow_generator.conv3.1.bias 256
flow_generator.conv3.1.running_mean 256
flow_generator.conv3.1.running_var 256
flow_generator.conv3.1.num_batches_tracked -
flow_generator.conv4.0.weight 128x256x3x3
flow_generator.conv4.0.bias 128
flow_generator.conv4.1.weight 128
flow_generator.conv4.1.bias 128
flow_generator.conv4.1.running_mean 128
flow_generator.conv4.1.running_var 128
flow_generator.conv4.1.num_batches_tracked -
flow_generator.deconv3.0.weight 128x128x4x4
flow_generator.deconv3.0.bias 128
flow_generator.deconv2.0.weight 128x64x4x4
flow_generator.deconv2.0.bias 64
flow_generator.xconv3.0.weight 128x404x3x3
flow_generator.xconv3.0.bias 128
flow_generator.xconv3.1.weight 128
flow_generator.xconv3.1.bias 128
flow_generator.xconv3.1.running_mean 128
flow_generator.xconv3.1.running_var 128
flow_generator.xconv3.1.num_batches_tracked -
flow_generator.xconv2.0.weight 64x212x3x3
flow_generator.xconv2.0.bias 64
flow_generator.xconv2.1.weight 64
flow_generator.xconv2.1.bias 64
flow_generator.xconv2.1.running_mean 64
flow_generator.xconv2.1.running_var 64
flow_generator.xconv2.1.num_batches_tracked -
flow_generator.predict_flow4.weight 20x128x3x3
flow_generator.predict_flow3.weight 20x128x3x3
flow_generator.predict_flow2.weight 20x64x3x3
flow_generator.upsampled_flow4_to_3.weight 20x20x4x4
flow_generator.upsampled_flow4_to_3.bias 20
flow_generator.upsampled_flow3_to_2.weight 20x20x4x4
flow_generator.upsampled_flow3_to_2.bias 20
flow_classifier.0.conv1.weight 64x20x7x7
flow_classifier.0.bn1.weight 64
flow_classifier.0.bn1.bias 64
flow_classifier.0.bn1.running_mean 64
flow_classifier.0.bn1.running_var 64
flow_classifier.0.bn1.num_batches_tracked -
flow_classifier.0.layer1.0.conv1.weight 64x64x3x3
flow_classifier.0.layer1.0.bn1.weight 64
flow_classifier.0.layer1.0.bn1.bias 64
flow_classifier.0.layer1.0.bn1.running_mean 64
flow_classifier.0.layer1.0.bn1.running_var 64
flow_classifier.0.layer1.0.bn1.num_batches_tracked -
flow_classifier.0.layer1.0.conv2.weight 64x64x3x3
flow_classifier.0.layer1.0.bn2.weight 64
flow_classifier.0.layer1.0.bn2.bias 64
flow_classifier.0.layer1.0.bn2.running_mean 64
flow_classifier.0.layer1.0.bn2.running_var 64
flow_classifier.0.layer1.0.bn2.num_batches_tracked -
flow_classifier.0.layer1.1.conv1.weight 64x64x3x3
flow_classifier.0.layer1.1.bn1.weight 64
flow_classifier.0.layer1.1.bn1.bias 64
flow_classifier.0.layer1.1.bn1.running_mean 64
flow_classifier.0.layer1.1.bn1.running_var 64
flow_classifier.0.layer1.1.bn1.num_batches_tracked -
flow_classifier.0.layer1.1.conv2.weight 64x64x3x3
flow_classifier.0.layer1.1.bn2.weight 64
flow_classifier.0.layer1.1.bn2.bias 64
flow_classifier.0.layer1.1.bn2.running_mean 64
flow_classifier.0.layer1.1.bn2.running_var 64
flow_classifier.0.layer1.1.bn2.num_batches_tracked -
flow_classifier.0.layer2.0.conv1.weight 128x64x3x3
flow_classifier.0.layer2.0.bn1.weight 128
flow_classifier.0.layer2.0.bn1.bias 128
flow_classifier.0.layer2.0.bn1.running_mean 128
flow_classifier.0.layer2.0.bn1.running_var 128
flow_classifier.0.layer2.0.bn1.num_batches_tracked -
flow_classifier.0.layer2.0.conv2.weight 128x128x3x3
flow_classifier.0.layer2.0.bn2.weight 128
flow_classifier.0.layer2.0.bn2.bias 128
flow_classifier.0.layer2.0.bn2.running_mean 128
flow_classifier.0.layer2.0.bn2.running_var 128
flow_classifier.0.layer2.0.bn2.num_batches_tracked -
flow_classifier.0.layer2.0.downsample.0.weight 128x64x1x1
flow_classifier.0.layer2.0.downsample.1.weight 128
flow_classifier.0.layer2.0.downsample.1.bias 128
flow_classifier.0.layer2.0.downsample.1.running_mean 128
flow_classifier.0.layer2.0.downsample.1.running_var 128
flow_classifier.0.layer2.0.downsample.1.num_batches_tracked -
flow_classifier.0.layer2.1.conv1.weight 128x128x3x3
flow_classifier.0.layer2.1.bn1.weight 128
flow_classifier.0.layer2.1.bn1.bias 128
flow_classifier.0.layer2.1.bn1.running_mean 128
flow_classifier.0.layer2.1.bn1.running_var 128
flow_classifier.0.layer2.1.bn1.num_batches_tracked -
flow_classifier.0.layer2.1.conv2.weight 128x128x3x3
flow_classifier.0.layer2.1.bn2.weight 128
flow_classifier.0.layer2.1.bn2.bias 128
flow_classifier.0.layer2.1.bn2.running_mean 128
flow_classifier.0.layer2.1.bn2.running_var 128
flow_classifier.0.layer2.1.bn2.num_batches_tracked -
flow_classifier.0.layer3.0.conv1.weight 256x128x3x3
flow_classifier.0.layer3.0.bn1.weight 256
flow_classifier.0.layer3.0.bn1.bias 256
flow_classifier.0.layer3.0.bn1.running_mean 256
flow_classifier.0.layer3.0.bn1.running_var 256
flow_classifier.0.layer3.0.bn1.num_batches_tracked -
flow_classifier.0.layer3.0.conv2.weight 256x256x3x3
flow_classifier.0.layer3.0.bn2.weight 256
flow_classifier.0.layer3.0.bn2.bias 256
flow_classifier.0.layer3.0.bn2.running_mean 256
flow_classifier.0.layer3.0.bn2.running_var 256
flow_classifier.0.layer3.0.bn2.num_batches_tracked -
flow_classifier.0.layer3.0.downsample.0.weight 256x128x1x1
flow_classifier.0.layer3.0.downsample.1.weight 256
flow_classifier.0.layer3.0.downsample.1.bias 256
flow_classifier.0.layer3.0.downsample.1.running_mean 256
flow_classifier.0.layer3.0.downsample.1.running_var 256
flow_classifier.0.layer3.0.downsample.1.num_batches_tracked -
flow_classifier.0.layer3.1.conv1.weight 256x256x3x3
flow_classifier.0.layer3.1.bn1.weight 256
flow_classifier.0.layer3.1.bn1.bias 256
flow_classifier.0.layer3.1.bn1.running_mean 256
flow_classifier.0.layer3.1.bn1.running_var 256
flow_classifier.0.layer3.1.bn1.num_batches_tracked -
flow_classifier.0.layer3.1.conv2.weight 256x256x3x3
flow_classifier.0.layer3.1.bn2.weight 256
flow_classifier.0.layer3.1.bn2.bias 256
flow_classifier.0.layer3.1.bn2.running_mean 256
flow_classifier.0.layer3.1.bn2.running_var 256
flow_classifier.0.layer3.1.bn2.num_batches_tracked -
flow_classifier.0.layer4.0.conv1.weight 512x256x3x3
flow_classifier.0.layer4.0.bn1.weight 512
flow_classifier.0.layer4.0.bn1.bias 512
flow_classifier.0.layer4.0.bn1.running_mean 512
flow_classifier.0.layer4.0.bn1.running_var 512
flow_classifier.0.layer4.0.bn1.num_batches_tracked -
flow_classifier.0.layer4.0.conv2.weight 512x512x3x3
flow_classifier.0.layer4.0.bn2.weight 512
flow_classifier.0.layer4.0.bn2.bias 512
flow_classifier.0.layer4.0.bn2.running_mean 512
flow_classifier.0.layer4.0.bn2.running_var 512
flow_classifier.0.layer4.0.bn2.num_batches_tracked -
flow_classifier.0.layer4.0.downsample.0.weight 512x256x1x1
flow_classifier.0.layer4.0.downsample.1.weight 512
flow_classifier.0.layer4.0.downsample.1.bias 512
flow_classifier.0.layer4.0.downsample.1.running_mean 512
flow_classifier.0.layer4.0.downsample.1.running_var 512
flow_classifier.0.layer4.0.downsample.1.num_batches_tracked -
flow_classifier.0.layer4.1.conv1.weight 512x512x3x3
flow_classifier.0.layer4.1.bn1.weight 512
flow_classifier.0.layer4.1.bn1.bias 512
flow_classifier.0.layer4.1.bn1.running_mean 512
flow_classifier.0.layer4.1.bn1.running_var 512
flow_classifier.0.layer4.1.bn1.num_batches_tracked -
flow_classifier.0.layer4.1.conv2.weight 512x512x3x3
flow_classifier.0.layer4.1.bn2.weight 512
flow_classifier.0.layer4.1.bn2.bias 512
flow_classifier.0.layer4.1.bn2.running_mean 512
flow_classifier.0.layer4.1.bn2.running_var 512
flow_classifier.0.layer4.1.bn2.num_batches_tracked -
flow_classifier.1.weight 4x512
flow_classifier.1.bias 4
"""

DEG_MOTIONNET_TABLE = """
conv1.0.weight 64x33x3x3
conv1.0.bias 64
conv1.1.weight 64
conv1.1.bias 64
conv1.1.running_mean 64
conv1.1.running_var 64
conv1.1.num_batches_tracked -
conv1_1.0.weight 64x64x3x3
conv1_1.0.bias 64
conv1_1.1.weight 64
conv1_1.1.bias 64
conv1_1.1.running_mean 64
conv1_1.1.running_var 64
conv1_1.1.num_batches_tracked -
conv2.0.weight 128x64x3x3
conv2.0.bias 128
conv2.1.weight 128
conv2.1.bias 128
conv2.1.running_mean 128
conv2.1.running_var 128
conv2.1.num_batches_tracked -
conv2_1.0.weight 128x128x3x3
conv2_1.0.bias 128
conv2_1.1.weight 128
conv2_1.1.bias 128
conv2_1.1.running_mean 128
conv2_1.1.running_var 128
conv2_1.1.num_batches_tracked -
conv3.0.weight 256x128x3x3
conv3.0.bias 256
conv3.1.weight 256
conv3.1.bias 256
conv3.1.running_mean 256
conv3.1.running_var 256
conv3.1.num_batches_tracked -
conv3_1.0.weight 256x256x3x3
conv3_1.0.bias 256
conv3_1.1.weight 256
conv3_1.1.bias 256
conv3_1.1.running_mean 256
conv3_1.1.running_var 256
conv3_1.1.num_batches_tracked -
conv4.0.weight 512x256x3x3
conv4.0.bias 512
conv4.1.weight 512
conv4.1.bias 512
conv4.1.running_mean 512
conv4.1.running_var 512
conv4.1.num_batches_tracked -
conv4_1.0.weight 512x512x3x3
conv4_1.0.bias 512
conv4_1.1.weight 512
conv4_1.1.bias 512
conv4_1.1.running_mean 512
conv4_1.1.running_var 512
conv4_1.1.num_batches_tracked -
conv5.0.weight 512x512x3x3
conv5.0.bias 512
conv5.1.weight 512
conv5.1.bias 512
conv5.1.running_mean 512
conv5.1.running_var 512
conv5.1.num_batches_tracked -
conv5_1.0.weight 512x512x3x3
conv5_1.0.bias 512
conv5_1.1.weight 512
conv5_1.1.bias 512
conv5_1.1.running_mean 512
conv5_1.1.running_var 512
conv5_1.1.num_batches_tracked -
conv6.0.weight 1024x512x3x3
conv6.0.bias 1024
conv6.1.weight 1024
conv6.1.bias 1024
conv6.1.running_mean 1024
conv6.1.running_var 1024
conv6.1.num_batches_tracked -
conv6_1.0.weight 1024x1024x3x3
conv6_1.0.bias 1024
conv6_1.1.weight 1024
conv6_1.1.bias 1024
conv6_1.1.running_mean 1024
conv6_1.1.running_var 1024
conv6_1.1.num_batches_tracked -
deconv5.0.weight 1024x512x4x4
deconv5.0.bias 512
deconv4.0.weight 1044x256x4x4
deconv4.0.bias 256
deconv3.0.weight 788x128x4x4
deconv3.0.bias 128
deconv2.0.weight 404x64x4x4
deconv2.0.bias 64
xconv5.0.weight 512x1044x3x3
xconv5.0.bias 512
xconv5.1.weight 512
xconv5.1.bias 512
xconv5.1.running_mean 512
xconv5.1.running_var 512
xconv5.1.num_batches_tracked -
xconv4.0.weight 256x788x3x3
xconv4.0.bias 256
xconv4.1.weight 256
xconv4.1.bias 256
xconv4.1.running_mean 256
xconv4.1.running_var 256
xconv4.1.num_batches_tracked -
xconv3.0.weight 128x404x3x3
xconv3.0.bias 128
xconv3.1.weight 128
xconv3.1.bias 128
xconv3.1.running_mean 128
xconv3.1.running_var 128
xconv3.1.num_batches_tracked -
xconv2.0.weight 64x212x3x3
xconv2.0.bias 64
xconv2.1.weight 64
xconv2.1.bias 64
xconv2.1.running_mean 64
xconv2.1.running_var 64
xconv2.1.num_batches_tracked -
predict_flow6.weight 20x1024x3x3
predict_flow5.weight 20x512x3x3
predict_flow4.weight 20x256x3x3
predict_flow3.weight 20x128x3x3
predict_flow2.weight 20x64x3x3
upsampled_flow6_to_5.weight 20x20x4x4
upsampled_flow6_to_5.bias 20
upsampled_flow5_to_4.weight 20x20x4x4
upsampled_flow5_to_4.bias 20
upsampled_flow4_to_3.weight 20x20x4x4
upsampled_flow4_to_3.bias 20
upsampled_flow3_to_2.weight 20x20x4x4
upsampled_flow3_to_2.bias 20
"""

DEG_TINYMOTIONNET3D_TABLE = """
conv1.0.weight 16x3x7x7x7
conv1.1.weight 16
conv1.1.bias 16
conv1.1.running_mean 16
conv1.1.running_var 16
conv1.1.num_batches_tracked -
conv2.0.weight 32x16x5x5x5
conv2.1.weight 32
conv2.1.bias 32
conv2.1.running_mean 32
conv2.1.running_var 32
conv2.1.num_batches_tracked -
conv3.0.weight 64x32x3x3x3
conv3.1.weight 64
conv3.1.bias 64
conv3.1.running_mean 64
conv3.1.running_var 64
conv3.1.num_batches_tracked -
conv4.0.weight 32x64x3x3x3
conv4.1.weight 32
conv4.1.bias 32
conv4.1.running_mean 32
conv4.1.running_var 32
conv4.1.num_batches_tracked -
conv5.0.weight 32x32x2x3x3
conv5.1.weight 32
conv5.1.bias 32
conv5.1.running_mean 32
conv5.1.running_var 32
conv5.1.num_batches_tracked -
deconv3.0.weight 32x32x1x4x4
deconv3.1.weight 32
deconv3.1.bias 32
deconv3.1.running_mean 32
deconv3.1.running_var 32
deconv3.1.num_batches_tracked -
deconv2.0.weight 32x16x1x4x4
deconv2.1.weight 16
deconv2.1.bias 16
deconv2.1.running_mean 16
deconv2.1.running_var 16
deconv2.1.num_batches_tracked -
iconv3.0.weight 64x64x2x3x3
iconv3.1.weight 64
iconv3.1.bias 64
iconv3.1.running_mean 64
iconv3.1.running_var 64
iconv3.1.num_batches_tracked -
iconv2.0.weight 32x32x2x3x3
iconv2.1.weight 32
iconv2.1.bias 32
iconv2.1.running_mean 32
iconv2.1.running_var 32
iconv2.1.num_batches_tracked -
xconv3.0.weight 32x98x3x3x3
xconv3.0.bias 32
xconv3.1.weight 32
xconv3.1.bias 32
xconv3.1.running_mean 32
xconv3.1.running_var 32
xconv3.1.num_batches_tracked -
xconv2.0.weight 16x50x3x3x3
xconv2.0.bias 16
xconv2.1.weight 16
xconv2.1.bias 16
xconv2.1.running_mean 16
xconv2.1.running_var 16
xconv2.1.num_batches_tracked -
predict_flow4.0.weight 2x32x3x3x3
predict_flow4.0.bias 2
predict_flow3.0.weight 2x32x3x3x3
predict_flow3.0.bias 2
predict_flow2.0.weight 2x16x3x3x3
predict_flow2.0.bias 2
upsampled_flow4_to_3.weight 2x2x1x4x4
upsampled_flow4_to_3.bias 2
upsampled_flow3_to_2.weight 2x2x1x4x4
upsampled_flow3_to_2.bias 2
"""


def parse_table(table: str) -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in table.strip().splitlines():
        key, shape = line.split()
        rows.append((key, () if shape == "-" else tuple(int(s) for s in shape.split("x"))))
    return rows


def fake_state(table: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in parse_table(table):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        else:
            state[key] = torch.randn(shape, generator=g)
    return state


# A stand-in for OmegaConf written as files: its classes pickle the way OmegaConf 2.x's do (NEWOBJ + BUILD of the
# instance dict; dataclass metadata naming typing.Any and builtin types; a defaultdict; parent back-references).
# It is importable only while a checkpoint is saved, so loading meets a class from a module that does not exist,
# exactly as deg-train meets DeepEthogram's files where OmegaConf is not installed.
FOREIGN_OMEGACONF = {
    "__init__.py": "",
    "base.py": textwrap.dedent(
        """
        import collections
        import typing
        from dataclasses import dataclass, field

        @dataclass
        class Metadata:
            ref_type: typing.Any = typing.Any
            object_type: typing.Any = None
            optional: bool = True
            key: typing.Any = None
            flags: dict = field(default_factory=lambda: collections.defaultdict(dict))

        @dataclass
        class ContainerMetadata(Metadata):
            key_type: typing.Any = typing.Any
            element_type: typing.Any = typing.Any

        class Node:
            def __getstate__(self):
                return dict(self.__dict__)

            def __setstate__(self, state):
                raise AssertionError("OmegaConf code must not run while deg-train loads a checkpoint")
        """
    ),
    "nodes.py": textwrap.dedent(
        """
        from omegaconf.base import Metadata, Node

        class AnyNode(Node):
            def __init__(self, value, key, parent):
                self._val, self._parent, self._metadata = value, parent, Metadata(key=key)
        """
    ),
    "dictconfig.py": textwrap.dedent(
        """
        from omegaconf.base import ContainerMetadata, Node

        def wrap(value, key, parent):
            from omegaconf.listconfig import ListConfig
            from omegaconf.nodes import AnyNode
            if isinstance(value, dict):
                return DictConfig(value, key, parent)
            if isinstance(value, list):
                return ListConfig(value, key, parent)
            return AnyNode(value, key, parent)

        class DictConfig(Node):
            def __init__(self, content, key=None, parent=None):
                self._parent, self._flags_cache = parent, None
                self._metadata = ContainerMetadata(key=key, object_type=dict)
                self._content = {k: wrap(v, k, self) for k, v in content.items()}
        """
    ),
    "listconfig.py": textwrap.dedent(
        """
        from omegaconf.base import ContainerMetadata, Node
        from omegaconf.dictconfig import wrap

        class ListConfig(Node):
            def __init__(self, content, key=None, parent=None):
                self._parent, self._flags_cache = parent, None
                self._metadata = ContainerMetadata(key=key, object_type=list, element_type=int)
                self._content = [wrap(v, i, self) for i, v in enumerate(content)]
        """
    ),
}
DEG_HYPERPARAMETERS = {
    "flow_generator": {"arch": "TinyMotionNet", "n_rgb": 11, "weights": "latest"},
    "train": {"lr": 1e-4, "milestones": [10, 20], "patience": None},
    "project": {"name": "rats", "class_names": ["background", "grooming"]},
}


@contextlib.contextmanager
def foreign_omegaconf(root: Path):
    """Make the stand-in ``omegaconf`` importable (to pickle its objects), then remove every trace of it."""
    package = root / "omegaconf"
    package.mkdir(parents=True, exist_ok=True)
    for name, source in FOREIGN_OMEGACONF.items():
        (package / name).write_text(source)
    saved = {name: mod for name, mod in sys.modules.items() if name == "omegaconf" or name.startswith("omegaconf.")}
    for name in saved:
        del sys.modules[name]
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("omegaconf.dictconfig")
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n == "omegaconf" or n.startswith("omegaconf.")]:
            del sys.modules[name]
        sys.modules.update(saved)
        shutil.rmtree(package)
        importlib.invalidate_caches()


def write_deg_checkpoint(path: Path, state: dict[str, torch.Tensor], prefix: str = "model.", lightning=False) -> Path:
    """A DeepEthogram checkpoint as its code writes it: the config is a pickled OmegaConf DictConfig.

    ``lightning``: the layout of a PyTorch Lightning ``.ckpt`` (``hyper_parameters`` and ``hparams_type``).
    """
    with foreign_omegaconf(path.parent / f".{path.name}.omegaconf") as dictconfig:
        config = dictconfig.DictConfig(DEG_HYPERPARAMETERS)
        if lightning:
            payload = {
                "epoch": 12,
                "global_step": 480,
                "pytorch-lightning_version": "1.6.5",
                "state_dict": {prefix + k: v for k, v in state.items()},
                "hyper_parameters": config,
                "hparams_type": dictconfig.DictConfig,
                "lr_schedulers": [{"mode": "min", "best": float("inf"), "_last_lr": [1e-4]}],
            }
        else:
            payload = {
                "epoch": 12,
                "state_dict": {prefix + k: v for k, v in state.items()},
                "optimizer": None,
                "hyperparameters": config,
            }
        torch.save(payload, path)
    assert not (path.parent / f".{path.name}.omegaconf").joinpath("omegaconf").exists()  # gone again
    return path


DEG_RENAMES = {
    "spatial_classifier.0.": "spatial_encoder.",
    "spatial_classifier.1.": "spatial_head.",
    "flow_classifier.0.": "flow_encoder.",
    "flow_classifier.1.": "flow_head.",
    "flow_generator.": "flow_generator.",
}


def ours(key: str) -> str:
    for old, new in DEG_RENAMES.items():
        if key.startswith(old):
            return new + key[len(old) :]
    raise AssertionError(key)


def deg_f_model(num_classes: int = 4, num_frames: int = 11) -> TwoStream:
    return TwoStream(
        num_classes=num_classes, flow_generator="tinymotionnet", backbone="resnet18", num_frames=num_frames
    )


@pytest.mark.parametrize(
    ("prefix", "lightning"), [("model.", False), ("module.", False), ("", False), ("model.", True)]
)
def test_deepethogram_feature_extractor_checkpoint_loads_every_tensor(
    tmp_path: Path, prefix: str, lightning: bool
) -> None:
    state = fake_state(DEG_F_TABLE)
    path = write_deg_checkpoint(tmp_path / "checkpoint.pt", state, prefix, lightning=lightning)
    model = deg_f_model()
    report = load_weights(model, path)  # auto-detected
    assert report.source == "deepethogram"
    assert len(report.loaded) == len(state) and not report.skipped
    own = model.state_dict()
    for key, value in state.items():
        assert torch.equal(own[ours(key)], value), key
    assert {k.split(".")[-1] for k in report.kept_init} == {"input_mean", "input_std"}


def test_bare_state_dict_and_different_number_of_behaviours(tmp_path: Path) -> None:
    state = fake_state(DEG_F_TABLE)
    path = tmp_path / "weights.pt"
    torch.save(state, path)
    model = deg_f_model(num_classes=7)
    report = load_weights(model, path, source="deepethogram")
    skipped = {s.split(":")[0] for s in report.skipped}
    assert skipped == {"spatial_head.weight", "spatial_head.bias", "flow_head.weight", "flow_head.bias"}
    assert torch.equal(model.flow_encoder.conv1.weight, state["flow_classifier.0.conv1.weight"])
    with pytest.raises(WeightsError, match=re.escape("spatial_head.weight")):
        load_weights(deg_f_model(num_classes=7), path, allow_head_mismatch=False)


def test_mismatching_deepethogram_file_names_the_first_wrong_key(tmp_path: Path) -> None:
    state = fake_state(DEG_F_TABLE)
    path = write_deg_checkpoint(tmp_path / "checkpoint.pt", state)
    with pytest.raises(WeightsError, match=r"flow_generator.conv1.0.weight.*\(64, 33, 7, 7\).*\(64, 15, 7, 7\)"):
        load_weights(deg_f_model(num_frames=5), path)  # 5 frames: the file's 11-frame convolution does not fit

    state["flow_classifier.0.layer9.0.conv1.weight"] = torch.zeros(3)
    path = write_deg_checkpoint(tmp_path / "extra.pt", state)
    with pytest.raises(WeightsError, match=re.escape("flow_encoder.layer9.0.conv1.weight")):
        load_weights(deg_f_model(), path)

    state = fake_state(DEG_F_TABLE)
    del state["spatial_classifier.0.layer2.1.bn2.running_var"]
    path = write_deg_checkpoint(tmp_path / "missing.pt", state)
    with pytest.raises(WeightsError, match=re.escape("no value for 'spatial_encoder.layer2.1.bn2.running_var'")):
        load_weights(deg_f_model(), path)

    state = fake_state(DEG_F_TABLE)
    state["fusion.bn.weight"] = torch.zeros(4)
    path = write_deg_checkpoint(tmp_path / "unknown.pt", state)
    with pytest.raises(WeightsError, match=re.escape("fusion.bn.weight")):
        load_weights(deg_f_model(), path)


def test_deepethogram_flow_generator_parts(tmp_path: Path) -> None:
    # the flow generator inside a feature-extractor checkpoint loads into a bare TinyMotionNet
    state = fake_state(DEG_F_TABLE)
    path = write_deg_checkpoint(tmp_path / "fe.pt", state)
    tiny = create_model("flow", "tinymotionnet")
    load_weights(tiny, path)
    assert torch.equal(tiny.predict_flow2.weight, state["flow_generator.predict_flow2.weight"])

    motion_state = fake_state(DEG_MOTIONNET_TABLE, seed=1)
    path = write_deg_checkpoint(tmp_path / "motionnet.pt", motion_state)
    motionnet = create_model("flow", "motionnet")
    report = load_weights(motionnet, path)
    assert report.source == "deepethogram" and len(report.loaded) == len(motion_state)
    assert all(torch.equal(motionnet.state_dict()[k], v) for k, v in motion_state.items())

    state3d = fake_state(DEG_TINYMOTIONNET3D_TABLE, seed=2)
    path = write_deg_checkpoint(tmp_path / "tmn3d.pt", state3d)
    two_stream = TwoStream(num_classes=2, flow_generator="tinymotionnet3d", backbone="resnet3d_18", width=0.25)
    report = load_weights(two_stream, path)  # a flow-generator file goes into the two-stream's generator
    assert all(torch.equal(two_stream.flow_generator.state_dict()[k], v) for k, v in state3d.items())
    assert all(k.startswith("flow_generator.") for k in report.loaded)

    with pytest.raises(WeightsError, match="shape mismatch"):
        load_weights(create_model("flow", "tinymotionnet3d", width=0.5), path)


def test_torchvision_resnet_into_two_stream_cross_modality(tmp_path: Path) -> None:
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = TwoStream(num_classes=3, num_frames=4)
    report = load_weights(model, path)
    assert report.source == "torchvision"
    rgb = reference.conv1.weight.detach()
    assert torch.equal(model.spatial_encoder.conv1.weight, rgb)
    flow_conv = model.flow_encoder.conv1.weight
    assert flow_conv.shape == (64, 6, 7, 7)
    assert torch.allclose(flow_conv, rgb.mean(dim=1, keepdim=True).repeat(1, 6, 1, 1))
    assert torch.equal(model.flow_encoder.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert any(k.startswith("fc.") for k in (s.split(":")[0] for s in report.skipped))

    backbone = create_model("feature", "resnet50")
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")
    report = load_weights(backbone, tmp_path / "resnet50.pth", source="torchvision")
    assert set(report.kept_init) == {"compression_fc.0.weight", "compression_fc.0.bias"}

    with pytest.raises(
        WeightsError, match=r"shape mismatch at 'conv1.weight': file \(64, 3, 7, 7\), model \(32, 3, 7, 7\)"
    ):
        load_weights(create_model("feature", "resnet18", width=0.5), path, source="torchvision")


def test_our_checkpoints(tmp_path: Path) -> None:
    flow = create_model("flow", "tinymotionnet", num_frames=3, width=0.25)
    ckpt = {"schema_version": 1, "stage": "flow", "arch": "tinymotionnet", "state_dict": flow.state_dict()}
    torch.save(ckpt, tmp_path / "checkpoint_last.pt")
    model = TwoStream(num_classes=2, num_frames=3, width=0.25, flow_generator_kwargs={"width": 0.25})
    report = load_weights(model, tmp_path / "checkpoint_last.pt")
    assert report.source == "ours"
    assert torch.equal(model.flow_generator.conv1[0].weight, flow.conv1[0].weight)

    copy = TwoStream(num_classes=2, num_frames=3, width=0.25, flow_generator_kwargs={"width": 0.25})
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    load_weights(copy, tmp_path / "plain.pt", source="ours")
    assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), model.state_dict().values()))


def test_unreadable_files_and_bad_sources(tmp_path: Path) -> None:
    model = create_model("flow", "tinymotionnet", num_frames=3, width=0.25)
    with pytest.raises(WeightsError, match="not found"):
        load_weights(model, tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="not a readable"):
        load_weights(model, tmp_path / "junk.pt")
    torch.save({"a": 1}, tmp_path / "dict.pt")
    with pytest.raises(WeightsError, match="no state_dict"):
        load_weights(model, tmp_path / "dict.pt")
    with pytest.raises(WeightsError, match="known: auto, ours, torchvision, deepethogram"):
        load_weights(model, tmp_path / "dict.pt", source="caffe")
    assert issubclass(WeightsError, UserFacingError)


# ------------------------------------------------------------------------------- files that must not run code


def test_deepethogram_config_pickled_as_omegaconf_loads_as_plain_data(tmp_path: Path) -> None:
    """The pickled-config path real DeepEthogram files take: classes of a module that is not importable here."""
    state = fake_state(DEG_MOTIONNET_TABLE)
    for name, lightning in (("checkpoint.pt", False), ("last.ckpt", True)):
        path = write_deg_checkpoint(tmp_path / name, state, lightning=lightning)
        assert b"omegaconf.dictconfig" in zip_members(path)  # the pickle names the foreign class
        data = load_untrusted(path, error=WeightsError)
        config = data["hyper_parameters" if lightning else "hyperparameters"]
        assert config == DEG_HYPERPARAMETERS  # plain dicts, lists and values
        assert all(torch.equal(data["state_dict"]["model." + k], v) for k, v in state.items())
        assert "omegaconf" not in sys.modules
        report = load_weights(create_model("flow", "motionnet"), path)
        assert report.source == "deepethogram" and len(report.loaded) == len(state)


def zip_members(path: Path) -> bytes:
    """The uncompressed pickle inside a torch zip file (where the class names are)."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return b"".join(archive.read(n) for n in archive.namelist() if n.endswith("data.pkl"))


class _RunsCode:
    """Unpickling this calls ``call(*args)``: what a crafted checkpoint does."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _crafted(tmp_path: Path, marker: Path) -> dict[str, object]:
    """Payloads that write ``marker`` when unpickled by a plain torch.load, each inside a plausible checkpoint."""
    import builtins
    import subprocess

    attacks = {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "subprocess": _RunsCode(subprocess.call, ["touch", str(marker)]),
        "exec": _RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "open": _RunsCode(builtins.open, str(marker), "w"),
    }
    state = fake_state(DEG_MOTIONNET_TABLE)
    return {
        name: {"epoch": 1, "state_dict": state, "hyperparameters": {"note": attack}, "schema_version": 1,
               "stage": "flow", "arch": "motionnet", "model_kwargs": {}}
        for name, attack in attacks.items()
    }  # fmt: skip


def test_a_crafted_checkpoint_is_refused_and_runs_no_code(tmp_path: Path) -> None:
    from deg_train.models.checkpoints import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    for name, payload in _crafted(tmp_path, marker).items():
        path = tmp_path / f"{name}.pt"
        torch.save(payload, path)
        with pytest.raises(WeightsError, match=r"refused: loading it would create a Python object") as info:
            load_weights(create_model("flow", "motionnet"), path)
        assert str(path) in str(info.value) and "state_dict()" in str(info.value)
        with pytest.raises(CheckpointError, match="refused"):
            load_checkpoint(path)
        assert not marker.exists(), f"{name}: code from the file ran"
    # The same inside a DeepEthogram-style OmegaConf config: the stand-ins do not open a way in.
    path = tmp_path / "nested.pt"
    with foreign_omegaconf(tmp_path / ".omegaconf") as dictconfig:
        config = dictconfig.DictConfig({"train": {"lr": 1e-4}})
        config._content["train"]._content["hook"] = _RunsCode(os.system, f"touch {marker}")
        torch.save({"state_dict": fake_state(DEG_MOTIONNET_TABLE), "hyperparameters": config}, path)
    with pytest.raises(WeightsError, match="refused"):
        load_weights(create_model("flow", "motionnet"), path)
    assert not marker.exists()


def test_a_whole_pickled_model_is_refused_with_what_to_do(tmp_path: Path) -> None:
    model = create_model("flow", "tinymotionnet", num_frames=3, width=0.25)
    torch.save(model, tmp_path / "model.pt")  # a module object, not weights: loading it imports and runs our code
    with pytest.raises(WeightsError, match=r"model\.pt: refused.*torch\.save\(obj\.state_dict\(\)"):
        load_weights(create_model("flow", "tinymotionnet", num_frames=3, width=0.25), tmp_path / "model.pt")


def test_no_user_file_is_loaded_without_weights_only() -> None:
    """Every torch.load in the package goes through the restricted loader (this test reads the sources)."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("deg_train", "deg_live", "camera_adapters", "scripts"):
        for source in (root / package).rglob("*.py"):
            for number, line in enumerate(source.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if re.search(r"torch\.load\(|pickle\.loads?\(|weights_only\s*=\s*False", code):
                    if "weights_only=True" not in code:
                        offenders.append(f"{source.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []
