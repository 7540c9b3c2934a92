"""Run by DeepEthogram's own python (never ours): a deg_f feature extractor with ``final_bn: true`` built by its
code, its logits on a fixed input, saved for tests/deepethogram/test_final_bn_parity.py.

Usage: PEER_PYTHON final_bn_with_deepethogram.py OUT.pt
"""

import os
import sys
import tempfile

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

from deepethogram import utils  # noqa: E402
from deepethogram.feature_extractor.train import build_model_from_cfg as build_feature_extractor  # noqa: E402
from deepethogram.flow_generator.train import build_model_from_cfg as build_flow_generator  # noqa: E402
from deepethogram_speed_worker import deg_config  # noqa: E402  (its config, composed as its make_config does)

CLASSES = ["background", "grooming", "rearing", "licking"]

torch.manual_seed(0)
with tempfile.TemporaryDirectory() as tmp:
    cfg = deg_config(64, 4, CLASSES, tmp)
    cfg.feature_extractor.final_bn = True
    flow_dir = os.path.join(tmp, "flow_generator")
    os.makedirs(flow_dir)
    utils.checkpoint(build_flow_generator(cfg), flow_dir, 0)
    cfg.flow_generator.weights = os.path.join(flow_dir, "checkpoint.pt")
    *_, model = build_feature_extractor(cfg, num_classes=len(CLASSES))
model.eval()
with torch.no_grad():  # the final BatchNorms' statistics and affine terms away from their defaults
    for stream in (model.spatial_classifier, model.flow_classifier):
        bn = stream[2]
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.normal_()
    x = torch.randn(2, 33, 64, 64)
    logits = model(x)
torch.save(
    {
        "state_dict": model.state_dict(),
        "input": x,
        "logits": logits,
        "classes": CLASSES,
        "flow_fusion_weight": float(cfg.feature_extractor.get("flow_fusion_weight", 1.5) or 1.5),
    },
    sys.argv[1],
)
print("ok", tuple(logits.shape))
