"""Offline inference: trained runs over whole videos, the reference every live backend must reproduce.

``extract`` runs a feature run's frame encoder over videos (stage 2 -> stage 3's features on disk), ``predict``
loads a sequence run and turns features into probabilities and decisions, ``videos`` is ``deg-train infer`` over
many videos (sharded).

Front door::

    from deg_train.inference import extract_features, infer_video, infer_videos, load_encoder, load_sequence
"""

from deg_train.inference.extract import ExtractError, LoadedEncoder, encode_video, extract_features, load_encoder
from deg_train.inference.predict import (
    InferenceError,
    InferenceResult,
    LoadedSequence,
    infer_video,
    load_sequence,
    read_thresholds,
)
from deg_train.inference.videos import infer_videos, resolve_sequence_run

__all__ = [
    "ExtractError",
    "InferenceError",
    "InferenceResult",
    "LoadedEncoder",
    "LoadedSequence",
    "encode_video",
    "extract_features",
    "infer_video",
    "infer_videos",
    "load_encoder",
    "load_sequence",
    "read_thresholds",
    "resolve_sequence_run",
]
