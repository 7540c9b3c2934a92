"""The three stages' networks: architectures by name, export wrappers, checkpoints, pretrained weights.

Front door::

    from deg_train.models import create_model, list_models, TwoStream, FrameEncoder, SequenceStep
    from deg_train.models import build_model_from_checkpoint, resolve_run, load_weights
"""

from deg_train.models import feature, flow, sequence  # noqa: F401  (registers the architectures)
from deg_train.models.checkpoints import CheckpointError, build_model_from_checkpoint, load_checkpoint, resolve_run
from deg_train.models.feature.two_stream import HiddenTwoStream, TwoStream
from deg_train.models.flow.base import FlowGenerator, reconstruct, upsample_flow, warp
from deg_train.models.frame_encoder import FrameEncoder, SequenceStep
from deg_train.models.registry import UnknownModelError, create_model, list_models, register_model
from deg_train.models.sequence.base import SequenceModel
from deg_train.models.weights import WeightsError, load_weights

__all__ = [
    "CheckpointError",
    "FlowGenerator",
    "FrameEncoder",
    "HiddenTwoStream",
    "SequenceModel",
    "SequenceStep",
    "TwoStream",
    "UnknownModelError",
    "WeightsError",
    "build_model_from_checkpoint",
    "create_model",
    "list_models",
    "load_checkpoint",
    "load_weights",
    "reconstruct",
    "register_model",
    "resolve_run",
    "upsample_flow",
    "warp",
]
