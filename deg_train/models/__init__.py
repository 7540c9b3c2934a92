"""The three DeepEthogram stages' networks, a registry by name, presets and the export wrappers.

Front door::

    from deg_train.models import create_model, list_models, PRESETS, TwoStream, FrameEncoder, SequenceStep
"""

from deg_train.models import feature, flow, sequence  # noqa: F401  (registers the architectures)
from deg_train.models.feature.two_stream import HiddenTwoStream, TwoStream
from deg_train.models.flow.base import FlowGenerator, reconstruct, upsample_flow, warp
from deg_train.models.frame_encoder import FrameEncoder, SequenceStep
from deg_train.models.presets import PRESETS, get_preset
from deg_train.models.registry import UnknownModelError, create_model, list_models, register_model
from deg_train.models.sequence.base import SequenceModel

__all__ = [
    "PRESETS",
    "FlowGenerator",
    "FrameEncoder",
    "HiddenTwoStream",
    "SequenceModel",
    "SequenceStep",
    "TwoStream",
    "UnknownModelError",
    "create_model",
    "get_preset",
    "list_models",
    "reconstruct",
    "register_model",
    "upsample_flow",
    "warp",
]
