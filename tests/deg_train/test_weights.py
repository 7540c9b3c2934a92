"""Weight loading: DeepEthogram checkpoints (fake, from its recorded names and shapes), torchvision, ours.

The tables below were recorded from DeepEthogram 0.5.0 (installed in a throwaway venv, never a dependency):
``deg_f(num_classes=4)`` (hidden two-stream: TinyMotionNet + 2x ResNet18), ``MotionNet()`` and
``TinyMotionNet3D()``, printing ``state_dict()`` key and shape. A fake checkpoint is built from a table with
random tensors in DeepEthogram's file structure ({"epoch", "state_dict", "optimizer", "hyperparameters"},
keys optionally prefixed "model." or "module.") and must load with every tensor placed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

from camera_adapters.errors import UserFacingError
from deg_train.models import TwoStream, create_model
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


def write_deg_checkpoint(path: Path, state: dict[str, torch.Tensor], prefix: str = "model.") -> Path:
    payload = {
        "epoch": 12,
        "state_dict": {prefix + k: v for k, v in state.items()},
        "optimizer": None,
        "hyperparameters": {"flow_generator": {"arch": "TinyMotionNet"}},
    }
    torch.save(payload, path)
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


@pytest.mark.parametrize("prefix", ["model.", "module.", ""])
def test_deepethogram_feature_extractor_checkpoint_loads_every_tensor(tmp_path: Path, prefix: str) -> None:
    state = fake_state(DEG_F_TABLE)
    path = write_deg_checkpoint(tmp_path / "checkpoint.pt", state, prefix)
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
