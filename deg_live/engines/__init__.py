"""Inference engines: a bundle's frame encoder and sequence step on ONNX Runtime, torch or TensorRT.

The front door::

    from deg_live.engines import create_engine
    engine = create_engine(bundle, backend="auto")    # or "onnxruntime", "torch", "tensorrt"

Importing this package imports no torch, ONNX Runtime or TensorRT; each backend loads its framework when used.
"""

from deg_live.engines.base import (
    Engine,
    EngineError,
    EngineUnavailableError,
    FrameError,
    FrameStream,
    OfflineResult,
    StepResult,
)
from deg_live.engines.registry import Availability, create_engine, list_engines, probe, probe_all

__all__ = [
    "Availability",
    "Engine",
    "EngineError",
    "EngineUnavailableError",
    "FrameError",
    "FrameStream",
    "OfflineResult",
    "StepResult",
    "create_engine",
    "list_engines",
    "probe",
    "probe_all",
]
