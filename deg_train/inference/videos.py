"""``deg-train infer``: predictions for many videos (project videos or any files), optionally one shard.

:func:`infer_videos` runs the offline pipeline of :mod:`deg_train.inference.predict` over a list of videos, reusing
features already saved in each ``<video>_outputs.h5`` when they come from the same feature run, and writes
``<video>_outputs.h5`` like DeepEthogram (our groups beside its own, see :mod:`deg_live.outputs`) and
``<video>_predictions_deg_train.csv`` (DeepEthogram's predictions format under a name of ours, so a
``<video>_predictions.csv`` DeepEthogram wrote is never replaced). :func:`resolve_sequence_run` turns a
user's ``--sequence-run`` into a run directory (default: the newest finished causal run).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camera_adapters.progress import progress_bar
from deg_live.outputs import list_groups, outputs_path_for, read_outputs, write_outputs
from deg_train.inference.extract import encode_video, load_encoder, select_shard, write_encoded
from deg_train.inference.predict import (
    InferenceError,
    LoadedSequence,
    check_compatible,
    final_decisions,
    load_sequence,
    predictions_path_for,
    run_sequence,
    write_predictions_csv,
)
from deg_train.models.checkpoints import CheckpointError, list_runs, resolve_run
from deg_train.project.layout import Project

log = logging.getLogger(__name__)


def resolve_sequence_run(project: Any, run: str | os.PathLike | LoadedSequence | None) -> Any:
    """A sequence run from a user's value; None = the newest finished CAUSAL sequence run of the project.

    (``train-all`` trains the centred comparison model after the causal one, so "the latest sequence run" would
    otherwise be the model that cannot run live.)
    """
    if isinstance(run, LoadedSequence):
        return run
    if run is not None:
        return resolve_run(project, "sequence", run)
    runs = [r for r in list_runs(project.models_dir, "sequence", finished=True) if not r.name.endswith("-centred")]
    if not runs:
        centred = [r.name for r in list_runs(project.models_dir, "sequence", finished=True)]
        hint = f"; or run a centred one by name: --sequence-run {centred[-1]}" if centred else ""
        if not centred and any(project.models_dir.glob("*_sequence_train")):
            hint = "; DeepEthogram's own models: `deg-train import-deepethogram -p PROJECT` makes runs of them"
        raise CheckpointError(
            f"{project.models_dir}: no finished causal sequence run yet; train one first "
            f"(deg-train train-sequence or train-all){hint}"
        )
    return runs[-1]


def infer_videos(
    *,
    project: str | os.PathLike | Any | None = None,
    videos: Sequence[str] | None = None,
    feature_run: str | os.PathLike | None = None,
    sequence_run: str | os.PathLike | None = None,
    shard: str | tuple[int, int] | None = None,
    out_dir: str | os.PathLike | None = None,
    postprocess_mode: str = "causal",
    write_h5: bool = True,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool = True,
    precision: str = "fp32",
) -> list[tuple[Path, Path]]:
    """``deg-train infer``: predictions for many videos (project videos or any files), optionally one shard.

    For each video: features (reused from its outputs file when they are there and from the same feature run,
    else encoded), the sequence model, thresholds and postprocessing; writes ``<video>_outputs.h5`` (feature and
    sequence groups) and ``<video>_predictions_deg_train.csv`` (never DeepEthogram's ``<video>_predictions.csv``).

    Returns:
        ``(video, predictions csv)`` pairs.

    Raises:
        InferenceError: no videos, or runs not given and no project to find them in.
    """
    proj = None
    if project is not None:
        if hasattr(project, "videos"):
            proj = project
        else:
            proj = Project.open(project)
    if proj is None and (sequence_run is None):
        raise InferenceError("give --sequence-run (and --feature-run) or --project to find the latest runs in")
    seq_dir = resolve_sequence_run(proj, sequence_run) if proj is not None else Path(sequence_run)
    seq = load_sequence(seq_dir, device=device)
    if feature_run is None:
        feature_run = (seq.meta.get("extra") or {}).get("feature_run")
    if feature_run is None:
        if proj is None:
            raise InferenceError("give --feature-run: the sequence run does not say which feature run it used")
        feature_run = resolve_run(proj, "feature", None)
    elif proj is not None:
        feature_run = resolve_run(proj, "feature", feature_run)
    enc = load_encoder(feature_run, device=device)
    check_compatible(enc, seq)
    fingerprint = enc.fingerprint() + ("" if precision == "fp32" else f":{precision}")

    # The video list: project names or paths.
    items: list[tuple[str, Path, Path]] = []  # (name, video path, outputs path)
    if videos is None:
        if proj is None:
            raise InferenceError("no videos given; pass video files or --project")
        items = [(r.name, r.video_path, r.outputs_path) for r in proj.videos]
    else:
        records = {r.name: r for r in proj.videos} if proj is not None else {}
        for v in videos:
            if v in records:
                r = records[v]
                items.append((r.name, r.video_path, r.outputs_path))
            else:
                path = Path(v)
                if not path.is_file():
                    known = f"; project videos: {sorted(records)}" if records else ""
                    raise InferenceError(f"{v}: neither a video file nor a project video{known}")
                items.append((path.stem, path, outputs_path_for(path)))
    if not items:
        raise InferenceError("no videos to run on")
    if shard is not None:
        items = select_shard(items, shard, key=lambda item: item[0])
        log.info("shard %s: %d videos", shard, len(items))

    written = []
    for name, video, outputs in progress_bar(items, desc="infer", unit="video", disable=not progress):
        if out_dir is not None:
            outputs = Path(out_dir) / outputs.name
        group = read_outputs(outputs, enc.latent_name) if enc.latent_name in list_groups(outputs) else None
        if group is not None and group.attrs.get("encoder") == fingerprint and group.spatial_features is not None:
            features = group.features
        else:
            encoded = encode_video(
                video,
                enc,
                batch_size=batch_size,
                device=device,
                progress=name if progress else False,
                precision=precision,
            )
            features = encoded.features
            if write_h5:
                write_encoded(outputs, encoded, enc, fingerprint)
        logits = run_sequence(seq.model, features, device=device)
        probs = seq.probabilities(logits)
        decisions = final_decisions(probs, seq.thresholds, seq.postprocess, postprocess_mode)
        if write_h5:
            write_outputs(
                outputs,
                seq.output_name,
                logits=logits,
                probabilities=probs,
                thresholds=seq.thresholds,
                behaviours=seq.behaviours,
                attrs={
                    "stage": "sequence",
                    "run": str(seq.run_dir),
                    "latent_name_in": enc.latent_name,
                    "causal": seq.causal,
                    "postprocess": seq.postprocess.to_dict(),
                },
            )
        csv = predictions_path_for(video, out_dir)
        write_predictions_csv(csv, decisions, seq.behaviours)
        written.append((Path(video), csv))
    return written
