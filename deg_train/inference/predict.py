"""Offline inference: the reference every live backend must reproduce.

:func:`infer_video` is the whole pipeline on one video file, written to be read top to bottom:

1. decode every frame and resize it with :func:`camera_adapters.video.resize_rgb` (THE project resize);
2. the frame encoder (:class:`~deg_train.models.frame_encoder.FrameEncoder`, uint8 in, preprocessing inside) on
   the CAUSAL window of each frame t (frames ``t-T+1 .. t``, frame 0 repeated before the start) -> features
   ``(N, D)`` and the feature extractor's own logits;
3. the sequence model's ``forward`` on the whole feature sequence ``(1, N, D)`` -> logits ``(N, K)``; a causal
   model sees only features <= t, so this equals stepping it frame by frame (what live does);
4. sigmoid -> probabilities ``(N, K)``;
5. thresholds picked on validation (``thresholds.json`` of the sequence run) and the causal postprocessor
   (:class:`deg_live.postprocess.CausalPostprocessor`, the live one) -> decisions and onset/offset transitions.

The live side streams the same video through an exported bundle and must get the same probabilities (to float
tolerance on the same backend) and the same events. Tests in ``tests/deg_live`` and the export tests compare with
this function.

Example:
    >>> result = infer_video("DATA/rat1/rat1.mp4", "models/..._feature_resnet18", "models/..._sequence_tgm")
    >>> result.probabilities.shape         # (N, K)
    >>> result.decisions[:, 2].sum()       # frames decided as behaviour 2
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_output, atomic_write_text
from deg_live.outputs import our_group_name
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings, Transition, offline_cleanup
from deg_train.inference.extract import LoadedEncoder, encode_video, is_exclusive, load_encoder, probabilities
from deg_train.models.checkpoints import build_model_from_checkpoint

log = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
THRESHOLDS_SCHEMA_VERSION = 1


class InferenceError(UserFacingError, ValueError):
    """The runs given do not fit together (behaviours, feature sizes) or a file they need is missing."""


# ---------------------------------------------------------------------------------------------------------------
# The sequence run
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LoadedSequence:
    """A stage-3 run, ready to run on features.

    Attributes:
        model: the sequence model, ``forward(features (B, T, D)) -> logits (B, T, K)``.
        behaviours: K names, background first.
        thresholds: ``(K,)`` picked on validation (0.5 each until ``thresholds.json`` exists).
        postprocess: the causal postprocessing settings.
        causal: False for the centred (DeepEthogram-like) comparison model.
        latent_name: the outputs group holding the features it was trained on.
        output_name: the outputs group its own predictions go to: ``deg_train_<arch>`` (``..._centred``).
        run_dir: the run directory (None for an in-memory model).
        meta: the checkpoint's metadata.
    """

    model: torch.nn.Module
    behaviours: list[str]
    thresholds: np.ndarray
    postprocess: PostprocessSettings
    causal: bool
    latent_name: str | None
    output_name: str
    run_dir: Path | None
    meta: dict[str, Any] = field(default_factory=dict)
    exclusive: bool = False

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """``(N, K)`` probabilities of this model's logits (softmax if exclusive, else sigmoids)."""
        return probabilities(logits, self.exclusive)


def postprocess_from_config(
    config: dict[str, Any] | None, behaviours: list[str], source: str = "run config"
) -> PostprocessSettings:
    """:class:`PostprocessSettings` from a run config's ``postprocess`` section (background = its column).

    Every key is checked: a misspelt or unknown one (``background_exclusive``) is a ConfigError naming it and
    the known keys, never silently the default.

    Raises:
        camera_adapters.settings.ConfigError: unknown key or wrong type; PostprocessError: a value out of range.
    """
    section = dict((config or {}).get("postprocess") or {})
    background = behaviours.index("background") if "background" in behaviours else None
    section["background_index"] = background
    if background is None:
        section["exclusive_background"] = False
    return PostprocessSettings.from_dict(section, source=f"{source}: postprocess")


def load_sequence(sequence_run: str | os.PathLike | LoadedSequence, *, device: str = "cpu") -> LoadedSequence:
    """Load a stage-3 run (directory or checkpoint) with its thresholds and postprocessing settings.

    Raises:
        CheckpointError: unreadable run or not a sequence run.
        InferenceError: a ``thresholds.json`` that does not match the run's behaviours.
    """
    if isinstance(sequence_run, LoadedSequence):
        return sequence_run

    model, meta = build_model_from_checkpoint(sequence_run, expect_stage="sequence")
    behaviours = list(meta["behaviours"])
    config = meta.get("config") or {}
    seq_cfg = config.get("sequence") or {}
    causal = bool(meta.get("model_kwargs", {}).get("causal", seq_cfg.get("causal", True)))
    run_dir = Path(meta["run_dir"])
    thresholds = np.full(len(behaviours), 0.5, np.float32)
    postprocess = postprocess_from_config(config, behaviours, source=str(meta.get("path", sequence_run)))
    saved = read_thresholds(run_dir)
    if saved is not None:
        if saved["behaviours"] != behaviours:
            raise InferenceError(
                f"{run_dir / THRESHOLDS_FILE}: behaviours {saved['behaviours']} differ from the run's {behaviours}; "
                "pick thresholds again (deg-train evaluate --pick-thresholds)"
            )
        thresholds = np.asarray(saved["thresholds"], np.float32)
        if saved.get("postprocess"):
            postprocess = PostprocessSettings.from_dict(saved["postprocess"], source=str(run_dir / THRESHOLDS_FILE))
    extra = meta.get("extra") or {}
    arch = str(meta.get("arch", "sequence"))
    exclusive = is_exclusive(meta)
    if exclusive and not postprocess.exclusive:
        postprocess = dataclasses.replace(postprocess, exclusive=True)  # decisions follow the model's classes
    return LoadedSequence(
        model=model.to(device).eval(),
        behaviours=behaviours,
        thresholds=thresholds,
        postprocess=postprocess,
        exclusive=exclusive,
        causal=causal,
        latent_name=extra.get("latent_name") or seq_cfg.get("latent_name"),
        output_name=our_group_name(arch, centred=not causal),
        run_dir=run_dir,
        meta=meta,
    )


def read_thresholds(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """A sequence run's ``thresholds.json`` (None if thresholds were not picked yet).

    Raises:
        InferenceError: unreadable file or a newer schema.
    """
    path = Path(run_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InferenceError(f"{path}: unreadable ({err}); pick thresholds again (deg-train evaluate)") from None
    if int(data.get("schema_version", 0)) > THRESHOLDS_SCHEMA_VERSION:
        raise InferenceError(f"{path}: schema {data.get('schema_version')} is newer than this deg-train; upgrade")
    return data


def write_thresholds_file(
    run_dir: str | os.PathLike,
    behaviours: list[str],
    thresholds: np.ndarray,
    postprocess: PostprocessSettings,
    **info: Any,
) -> Path:
    """Write ``thresholds.json`` into a sequence run (atomically): what export and live read.

    Format: ``{"schema_version": 1, "behaviours": [...], "thresholds": [...], "postprocess": {...
    PostprocessSettings...}, ...info}`` where ``info`` says how they were picked (videos, F1 on validation...).
    """
    data = {
        "schema_version": THRESHOLDS_SCHEMA_VERSION,
        "behaviours": list(behaviours),
        "thresholds": [float(t) for t in thresholds],
        "postprocess": postprocess.to_dict(),
        **info,
    }
    return atomic_write_text(Path(run_dir) / THRESHOLDS_FILE, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ---------------------------------------------------------------------------------------------------------------
# Sequence model on a whole video's features
# ---------------------------------------------------------------------------------------------------------------


def run_sequence(model: torch.nn.Module, features: np.ndarray, *, device: str = "cpu") -> np.ndarray:
    """The sequence model's ``forward`` on one whole video: ``features (N, D)`` -> ``logits (N, K) float32``."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None].to(device)
    with torch.inference_mode():
        logits = model(x)
    return logits[0].float().cpu().numpy()


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function, float32."""
    return probabilities(x, exclusive=False)


@dataclass
class InferenceResult:
    """Everything :func:`infer_video` computes for one video.

    Attributes:
        behaviours: K names, background first.
        features: ``(N, D) float32`` encoder features (concat of spatial and flow).
        feature_logits: ``(N, K) float32``, the feature extractor's own logits.
        logits: ``(N, K) float32``, the sequence model's.
        probabilities: ``(N, K) float32``, sigmoid of ``logits``.
        thresholds: ``(K,)``.
        decisions: ``(N, K) bool`` from the causal postprocessor (what live decides).
        transitions: the onsets/offsets the causal postprocessor decided, in frame order.
        timings: seconds spent in decode, encoder, sequence, postprocess, total.
    """

    behaviours: list[str]
    features: np.ndarray
    feature_logits: np.ndarray
    logits: np.ndarray
    probabilities: np.ndarray
    thresholds: np.ndarray
    decisions: np.ndarray
    transitions: list[Transition]
    timings: dict[str, float]

    @property
    def n_frames(self) -> int:
        """N."""
        return int(self.probabilities.shape[0])


def check_compatible(encoder: LoadedEncoder, sequence: LoadedSequence) -> None:
    """The feature run and the sequence run must agree on behaviours.

    Raises:
        InferenceError: they do not.
    """
    if list(encoder.behaviours) != list(sequence.behaviours):
        raise InferenceError(
            f"feature run behaviours {encoder.behaviours} differ from sequence run behaviours "
            f"{sequence.behaviours}; use runs trained on the same project labels"
        )


def infer_video(
    video_path: str | os.PathLike,
    feature_run: str | os.PathLike | LoadedEncoder,
    sequence_run: str | os.PathLike | LoadedSequence,
    *,
    thresholds: np.ndarray | None = None,
    postprocess: PostprocessSettings | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool | str = False,
    precision: str = "fp32",
) -> InferenceResult:
    """Run the whole offline pipeline on one video file: the reference live inference must match.

    Args:
        video_path: any video file (need not be in a project).
        feature_run: a stage-2 run directory / checkpoint, or a :class:`LoadedEncoder`.
        sequence_run: a stage-3 run directory / checkpoint, or a :class:`LoadedSequence`.
        thresholds: ``(K,)`` to use instead of the run's ``thresholds.json``.
        postprocess: settings to use instead of the run's.
        batch_size: encoder windows per call.
        device: torch device (``cpu``, ``cuda``...).
        progress: show a progress bar (a string is its label).
        precision: encoder arithmetic, ``fp32`` (the reference; default) or ``bf16``.

    Returns:
        An :class:`InferenceResult` (``.probabilities (N, K)`` is what live must reproduce).

    Raises:
        VideoError: the video cannot be decoded.
        InferenceError / CheckpointError: runs that are missing or do not fit together.
    """
    t0 = time.perf_counter()
    # 1–2. Decode, resize, encode each frame's causal window.
    encoder = load_encoder(feature_run, device=device)
    sequence = load_sequence(sequence_run, device=device)
    check_compatible(encoder, sequence)
    encoded = encode_video(
        video_path, encoder, batch_size=batch_size, device=device, progress=progress, precision=precision
    )
    timings = dict(encoded.timings)
    # 3–4. The sequence model over the whole video, then the sigmoid (softmax for exclusive behaviours).
    t1 = time.perf_counter()
    logits = run_sequence(sequence.model, encoded.features, device=device)
    probs = sequence.probabilities(logits)
    timings["sequence"] = time.perf_counter() - t1
    # 5. Thresholds and the causal postprocessor (exactly the live one).
    t2 = time.perf_counter()
    thr = sequence.thresholds if thresholds is None else np.asarray(thresholds, np.float32)
    post = sequence.postprocess if postprocess is None else postprocess
    decisions, transitions = CausalPostprocessor(thr, post).run(probs)
    timings["postprocess"] = time.perf_counter() - t2
    timings["total"] = time.perf_counter() - t0
    return InferenceResult(
        behaviours=list(sequence.behaviours),
        features=encoded.features,
        feature_logits=encoded.logits,
        logits=logits,
        probabilities=probs,
        thresholds=thr,
        decisions=decisions,
        transitions=transitions,
        timings=timings,
    )


# ---------------------------------------------------------------------------------------------------------------
# Files DeepEthogram users expect
# ---------------------------------------------------------------------------------------------------------------


#: The end of our predictions CSV's name. DeepEthogram's ``postprocess_and_save`` and its GUI's export write
#: ``<video>_predictions.csv``; ours is ``<video>_predictions_deg_train.csv`` (same format), so neither ever replaces
#: the other's and no file DeepEthogram wrote is changed. DeepEthogram's project scan ignores the name (it looks for
#: "label", "score", "output" in file names).
PREDICTIONS_SUFFIX = "_predictions_deg_train.csv"


def predictions_path_for(video_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> Path:
    """``<video>_predictions_deg_train.csv`` beside the video (or in ``out_dir``); see :data:`PREDICTIONS_SUFFIX`."""
    video_path = Path(video_path)
    folder = Path(out_dir) if out_dir is not None else video_path.parent
    return folder / f"{video_path.stem}{PREDICTIONS_SUFFIX}"


def write_predictions_csv(path: str | os.PathLike, decisions: np.ndarray, behaviours: list[str]) -> Path:
    """Write per-frame 0/1 predictions in DeepEthogram's layout (the same as its label files).

    An unnamed first column holds the frame index, then one column per behaviour (background first), 0 or 1.
    """
    frame = pd.DataFrame(np.asarray(decisions).astype(np.int64), columns=list(behaviours))
    with atomic_output(path, suffix=".csv") as tmp:
        frame.to_csv(tmp)
    return Path(path)


def final_decisions(
    probabilities: np.ndarray,
    thresholds: np.ndarray,
    settings: PostprocessSettings,
    mode: str = "causal",
) -> np.ndarray:
    """Decisions for reports.

    ``causal`` = the live postprocessor; ``offline`` = DeepEthogram's min-bout cleanup (looks at the future,
    offline only).
    """
    if mode == "causal":
        return CausalPostprocessor(thresholds, settings).run(probabilities)[0]
    if mode == "offline":
        return offline_cleanup(
            probabilities,
            thresholds,
            settings.per_behaviour("min_bout_length", probabilities.shape[1]),
            background_index=settings.background_index,
        )
    raise InferenceError(f"postprocess mode {mode!r}: expected 'causal' or 'offline'")
