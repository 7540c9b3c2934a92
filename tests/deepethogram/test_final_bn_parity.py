"""A DeepEthogram feature extractor trained with ``final_bn: true`` gives its own logits through ours.

DeepEthogram's code (in its own environment) builds the model and computes the logits; we load its state dict the
way import-deepethogram does and compare. Skipped without ``$DEG_PEER_VENV``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import torch

from tests.deepethogram.conftest import peer_python

SCRIPT = Path(__file__).with_name("final_bn_with_deepethogram.py")


def test_final_bn_feature_extractor_gives_deepethogram_logits(tmp_path):
    from deg_train.models.feature.two_stream import TwoStream
    from deg_train.models.weights import load_weights

    python = peer_python()
    out = tmp_path / "final_bn.pt"
    done = subprocess.run([str(python), str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = torch.load(out, weights_only=True)
    weights = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": theirs["state_dict"]}, weights)
    model = TwoStream(
        num_classes=len(theirs["classes"]),
        flow_generator="tinymotionnet",
        backbone="resnet18",
        num_frames=11,
        flow_fusion_weight=theirs["flow_fusion_weight"],
        spatial_frame="deepethogram",
        final_bn=True,
    )
    report = load_weights(model, weights, source="deepethogram", allow_head_mismatch=False)
    assert any(k.startswith("spatial_bn.") for k in report.loaded)
    x = theirs["input"]  # (B, 3T, H, W), frames stacked as DeepEthogram stacks them
    with torch.no_grad():
        ours = model.eval()(x.reshape(x.shape[0], 11, 3, *x.shape[2:]))["logits"]
    torch.testing.assert_close(ours, theirs["logits"], rtol=1e-4, atol=1e-5)
