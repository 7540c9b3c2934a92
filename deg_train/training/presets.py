"""The models a training preset builds, read from the preset YAMLs (the one place preset numbers live).

``get_preset("deg_f")`` loads ``configs/presets/deg_f.yaml`` (through its ``base:`` chain) and returns the model
settings of its three stages in the form the model constructors take, for code that builds a preset's models
without training them: random-weight bundles for benchmarks (``deg-train export --random-preset``), tests and
benchmarks. Training itself reads the same :class:`~deg_train.training.config.TrainConfig`, so the two cannot
drift apart.

Keys of a preset spec:
    flow: ``arch`` (registry kind "flow"), ``num_frames`` and constructor kwargs; ``loss``: MotionNetLoss kwargs.
    feature: TwoStream kwargs (``backbone`` = registry kind "feature").
    sequence: ``arch`` (registry kind "sequence"), ``causal`` and constructor kwargs (``input_dim`` is the feature
        extractor's ``num_features``).
    input_size: (H, W) frames are resized to.
    frames_per_window: T.
"""

from __future__ import annotations

from typing import Any

from deg_train.training.config import TrainConfig, load_config

#: The architecture presets: DeepEthogram's three and the live CPU preset (the other presets train these).
PRESETS = ("deg_f", "deg_m", "deg_s", "deg_live_cpu")


def model_spec(config: TrainConfig) -> dict[str, Any]:
    """The models a training config builds (see the module docstring for the keys)."""
    flow, feature, sequence = config.flow, config.feature, config.sequence
    return {
        "flow": {
            "arch": flow.arch.lower(),
            "num_frames": config.data.frames_per_window,
            **flow.params,
            "loss": {
                "smooth_weight_multiplier": flow.smooth_weight_multiplier,
                "flow_sparsity": flow.flow_sparsity,
                "sparsity_weight": flow.sparsity_weight,
            },
        },
        "feature": {
            "backbone": feature.arch,
            "fusion": feature.fusion,
            "flow_fusion_weight": feature.flow_fusion_weight,
            "dropout": feature.dropout,
            "width": feature.width,
            **feature.params,
        },
        "sequence": {"arch": sequence.arch, "causal": sequence.causal, **sequence.model_params()},
        "input_size": tuple(config.data.size),
        "frames_per_window": config.data.frames_per_window,
    }


def get_preset(name: str) -> dict[str, Any]:
    """The model spec of a training preset (a name in ``configs/presets`` or a YAML file).

    Raises:
        camera_adapters.settings.ConfigError: unknown preset (the message lists the known ones) or a bad file.
    """
    return model_spec(load_config(name))


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


def sequence_kwargs(preset: dict[str, Any], num_classes: int, input_dim: int) -> tuple[str, dict[str, Any]]:
    """(arch, constructor kwargs) of a preset's sequence model on features of size ``input_dim``."""
    kwargs = {k: v for k, v in preset["sequence"].items() if k != "arch"}
    return preset["sequence"]["arch"], {"input_dim": int(input_dim), "num_classes": num_classes, **kwargs}
