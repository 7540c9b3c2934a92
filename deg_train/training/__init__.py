"""Training: the configuration, datasets, augmentation, losses, the one training loop and the three stages.

Front door::

    from deg_train.training import load_config, TrainConfig, train_flow, train_features, train_sequence
"""

from deg_train.training.config import TrainConfig, list_presets, load_config, save_config
from deg_train.training.stages import StageError, project_split, train_features, train_flow, train_sequence
from deg_train.training.trainer import FitResult, Task, fit, read_metrics

__all__ = [
    "FitResult",
    "StageError",
    "Task",
    "TrainConfig",
    "fit",
    "list_presets",
    "load_config",
    "project_split",
    "read_metrics",
    "save_config",
    "train_features",
    "train_flow",
    "train_sequence",
]
