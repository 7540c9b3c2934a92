"""Model presets: DeepEthogram's three (deg_f, deg_m, deg_s) and a live CPU preset (deg_live_cpu).

Each preset names the architecture and key hyper-parameters of the three stages; the training config
(configs/presets/*.yaml) is built from these. Values for deg_f/deg_m/deg_s follow DeepEthogram's
``conf/preset/*.yaml`` and ``conf/model/*.yaml`` (11 frames -> 10 flows; fusion 'average' with flow weight
1.5; dropout 0.9; TGM: 3 layers, 8 filters of length 15, 8 channels, 128 hidden; DEG-slow flow loss with
sparsity 0.05 and smoothness x 0.25). DeepEthogram's default input size is 224x224 (multiples of 32).

Keys:
    flow: ``arch`` (registry kind "flow") + constructor kwargs; ``loss``: MotionNetLoss kwargs.
    feature: TwoStream kwargs (``backbone`` = registry kind "feature").
    sequence: ``arch`` (registry kind "sequence") + constructor kwargs (input_dim = ``feature_dim``).
    input_size: (H, W) frames are resized to.
    frames_per_window: T.
    feature_dim: Ds + Df, the stage-3 input size.
"""

from __future__ import annotations

import copy
from typing import Any

from camera_adapters.errors import UserFacingError

_TGM = {
    "arch": "tgm",
    "n_filters": 8,
    "filter_length": 15,
    "num_layers": 3,
    "c_out": 8,
    "num_features": 128,
    "input_dropout": 0.5,
    "dropout": 0.5,
    "causal": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    "deg_f": {
        "description": "DeepEthogram fast: TinyMotionNet + ResNet18 two-stream + causal TGM",
        "flow": {"arch": "tinymotionnet", "num_frames": 11, "loss": {"smooth_weight_multiplier": 1.0}},
        "feature": {
            "backbone": "resnet18",
            "fusion": "average",
            "flow_fusion_weight": 1.5,
            "dropout": 0.9,
            "width": 1.0,
        },
        "sequence": dict(_TGM),
        "input_size": (224, 224),
        "frames_per_window": 11,
        "feature_dim": 1024,
    },
    "deg_m": {
        "description": "DeepEthogram medium: MotionNet + ResNet50 (compressed to 512-d) two-stream + causal TGM",
        "flow": {"arch": "motionnet", "num_frames": 11, "loss": {"smooth_weight_multiplier": 1.0}},
        "feature": {
            "backbone": "resnet50",
            "fusion": "average",
            "flow_fusion_weight": 1.5,
            "dropout": 0.9,
            "width": 1.0,
        },
        "sequence": dict(_TGM),
        "input_size": (224, 224),
        "frames_per_window": 11,
        "feature_dim": 1024,
    },
    "deg_s": {
        "description": "DeepEthogram slow: TinyMotionNet3D + 3D ResNet34 on the whole clip + causal TGM",
        "flow": {
            "arch": "tinymotionnet3d",
            "num_frames": 11,
            "loss": {"flow_sparsity": True, "sparsity_weight": 0.05, "smooth_weight_multiplier": 0.25},
        },
        "feature": {
            "backbone": "resnet3d_34",
            "fusion": "average",
            "flow_fusion_weight": 1.5,
            "dropout": 0.9,
            "width": 1.0,
        },
        "sequence": dict(_TGM),
        "input_size": (224, 224),
        "frames_per_window": 11,
        "feature_dim": 1024,
    },
    "deg_live_cpu": {
        "description": "live on a CPU: 112x112, 5 frames, quarter-width TinyMotionNet + ResNet18, causal TGM",
        "flow": {"arch": "tinymotionnet", "num_frames": 5, "width": 0.25, "loss": {"smooth_weight_multiplier": 1.0}},
        "feature": {
            "backbone": "resnet18",
            "fusion": "average",
            "flow_fusion_weight": 1.5,
            "dropout": 0.5,
            "width": 0.25,
        },
        "sequence": {**_TGM, "num_features": 64},
        "input_size": (112, 112),
        "frames_per_window": 5,
        "feature_dim": 256,
    },
}


class UnknownPresetError(UserFacingError, KeyError):
    """Raised for a preset name that does not exist; lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def get_preset(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name``.

    Raises:
        UnknownPresetError: unknown name (the message lists the presets).
    """
    if name not in PRESETS:
        raise UnknownPresetError(f"unknown model preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def flow_kwargs(preset: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(arch, constructor kwargs) of a preset's flow generator (the ``loss`` entry removed)."""
    kwargs = {k: v for k, v in preset["flow"].items() if k not in ("arch", "loss")}
    return preset["flow"]["arch"], kwargs


def two_stream_kwargs(preset: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """Keyword arguments of ``TwoStream`` for a preset (flow generator by name, with its kwargs)."""
    arch, fkw = flow_kwargs(preset)
    num_frames = fkw.pop("num_frames")
    return {
        "num_classes": num_classes,
        "flow_generator": arch,
        "num_frames": num_frames,
        "flow_generator_kwargs": fkw,
        **preset["feature"],
    }


def sequence_kwargs(preset: dict[str, Any], num_classes: int) -> tuple[str, dict[str, Any]]:
    """(arch, constructor kwargs) of a preset's sequence model."""
    kwargs = {k: v for k, v in preset["sequence"].items() if k != "arch"}
    return preset["sequence"]["arch"], {"input_dim": preset["feature_dim"], "num_classes": num_classes, **kwargs}
