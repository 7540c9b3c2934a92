"""Turn a DeepEthogram 0.5 project's trained models into ready runs of ours (``deg-train import-deepethogram``).

A lab that trained with DeepEthogram keeps its models: this reads its project (``project_config.yaml``) and its
newest trained feature extractor and sequence model (DeepEthogram's own "latest" lookup: per run the best
Lightning ``.ckpt``, else ``last.ckpt``, else ``checkpoint.pt``; or the files named) and writes, into the
project's ``models/`` folder:

- a **feature run** (``<stamp>_feature_deepethogram-<arch>``): its flow generator and two-stream feature extractor
  in our :class:`~deg_train.models.feature.two_stream.TwoStream`, with exactly DeepEthogram's input handling: the
  project's ``augs.normalization`` (mean/std), its ``augs.resize`` as the input size, its frame picker
  (``spatial_frame="deepethogram"``: channels 16-18 of the stacked clip) and its **centred** clip (frames
  t-5..t+5, frames outside the video replaced by the mean colour ``uint8(mean * 255)``, as its ``VideoIterable``
  does) and its resize (OpenCV bilinear). Its features go to the outputs group ``deg_train_deepethogram_<arch>``,
  beside DeepEthogram's own;
- a **sequence run** (``<stamp>_sequence_tgmj-centred``): its TGMJ as :class:`~deg_train.models.sequence.tgmj.
  DeepEthogramTGMJ` (centred, offline only), with DeepEthogram's thresholds and its postprocessor's minimum bout
  lengths (``postprocessor.type`` / ``min_bout_length``, per behaviour from the labelled bouts as DeepEthogram
  computes them) for ``--postprocess offline``. Its predictions go to ``deg_train_tgmj_centred``.

- a **causal feature run** (``<stamp>_feature_deepethogram-<arch>-causal``): the same weights on our causal window
  (frames t-T+1..t, the spatial stream on frame t itself; group ``deg_train_deepethogram_<arch>_causal``). A live
  system cannot look ahead, so this is the run for live use: ``deg-train train-sequence --feature-run <it>`` trains
  our causal sequence model on its features, and ``export`` + ``deg-live run`` take the lab's own feature extractor
  live, with live == offline as for any run of ours. Its features are not DeepEthogram's (those need the future).

Every file is read without running code from it (:mod:`deg_train.models.safe_load`): Lightning checkpoints hold
OmegaConf configs, read with stand-ins. What cannot be reproduced is refused with a message (sequence models other
than ``tgmj``) or listed once as a warning. Feature extractors trained with ``final_bn`` (a BatchNorm1d after each
stream's bias-free last layer) load with it.

Resizing: DeepEthogram resizes with OpenCV (``cv2.resize``, bilinear); the centred run does the same
(:mod:`deg_train.inference.opencv_resize`, exact on the sizes tested), the causal twin uses ours (FFmpeg's area
filter, what the live side uses). Decoding: both sides use FFmpeg's decoders and colour conversion (equal on the
H.264 rat videos).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

from camera_adapters.errors import UserFacingError
from deg_live.labels import read_labels
from deg_live.outputs import our_group_name
from deg_live.postprocess import PostprocessSettings
from deg_train.inference.predict import write_thresholds_file
from deg_train.models.checkpoints import mark_done, new_run_dir, save_checkpoint
from deg_train.models.registry import create_model
from deg_train.models.safe_load import load_untrusted
from deg_train.models.weights import load_weights

log = logging.getLogger(__name__)

#: DeepEthogram's flow generator names -> ours.
FLOW_ARCHS = {"TinyMotionNet": "tinymotionnet", "MotionNet": "motionnet", "TinyMotionNet3D": "tinymotionnet3d"}
#: DeepEthogram's feature extractor archs we build (``resnet3d_*`` see the whole clip).
FEATURE_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet3d_18", "resnet3d_34")
#: The window rule of imported feature runs (``LoadedEncoder.window``).
CENTRED_WINDOW = "deepethogram_centred"
#: DeepEthogram 0.5's defaults for sections a project_config.yaml may omit (its conf/postprocessor.yaml).
DEFAULT_POSTPROCESSOR = {"type": "min_bout_per_behavior", "min_bout_length": 1}


class DeepEthogramImportError(UserFacingError, ValueError):
    """A DeepEthogram project or model that cannot be imported; the message names the file and what to do."""


@dataclass
class ImportedRuns:
    """What :func:`import_deepethogram` wrote.

    Attributes:
        feature_run: our feature run (DeepEthogram's flow generator + feature extractor).
        sequence_run: our run of its TGMJ, or None when the project has no trained sequence model.
        latent_name: the outputs group the feature run writes.
        causal_feature_run: the same weights on our causal window (spatial stream on frame t): what our causal
            sequence model trains on and what goes live (``deg_train_deepethogram_<arch>_causal``).
        sources: which DeepEthogram file each came from.
        not_honoured: settings of the project we could not reproduce (also logged once).
    """

    feature_run: Path
    sequence_run: Path | None
    latent_name: str
    causal_feature_run: Path
    sources: dict[str, str] = field(default_factory=dict)
    not_honoured: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Reading a DeepEthogram project
# ---------------------------------------------------------------------------------------------------------------


def _yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise DeepEthogramImportError(f"{path}: unreadable YAML ({err})") from None
    if not isinstance(data, dict):
        raise DeepEthogramImportError(f"{path}: expected a mapping")
    return data


def read_project_config(project: str | os.PathLike) -> dict[str, Any]:
    """A DeepEthogram project's ``project_config.yaml`` (plain YAML)."""
    path = Path(project) / "project_config.yaml"
    if not path.is_file():
        raise DeepEthogramImportError(f"{project}: no project_config.yaml; is this a DeepEthogram project folder?")
    return _yaml(path)


def _run_model(run_dir: Path) -> str | None:
    """Which model a DeepEthogram run directory trained (``run.model`` of its config.yaml), None if not a run."""
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    try:
        data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return None
    run = data.get("run") or {}
    if run.get("type") not in (None, "train"):
        return None
    return run.get("model") or data.get("model")


def _run_model_and_arch(run_dir: Path) -> tuple[str, str] | None:
    """``(model type, arch)`` of a DeepEthogram run directory, read as its ``get_weights_from_model_path`` does.

    Its pretrained runs keep ``hyperparameters.yaml`` (older layout: ``model`` plus ``<model>`` or ``classifier``
    or ``arch``); trained runs keep ``config.yaml`` (``run.model`` and ``<model>.arch``).
    """
    for name in ("hyperparameters.yaml", "config.yaml"):
        if (run_dir / name).is_file():
            try:
                params = yaml.safe_load((run_dir / name).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return None
            break
    else:
        return None
    if not isinstance(params, dict):
        return None
    if "model" in params:
        model = params["model"]
        arch = params.get(model) if isinstance(model, str) and model in params else None
        if arch is None:
            arch = params.get("classifier") if model == "feature_extractor" else params.get("arch")
    elif isinstance(params.get("run"), dict):
        model = params["run"].get("model")
        arch = (params.get(model) or {}).get("arch") if isinstance(model, str) else None
    else:
        return None
    if not isinstance(model, str) or not isinstance(arch, str):
        return None
    return model, arch


def pretrained_dir(project: str | os.PathLike, config: dict[str, Any]) -> Path | None:
    """A DeepEthogram project's folder of pretrained models, or None.

    ``project.pretrained_path`` (default ``pretrained_models``) is looked for where DeepEthogram looks: as given,
    then under the models folder, the project and ``<project>/models``.
    """
    root = Path(project)
    section = config.get("project") if isinstance(config.get("project"), dict) else {}
    name = Path(str(section.get("pretrained_path") or "pretrained_models"))
    model_path = Path(str(section.get("model_path") or "models"))
    candidates = [name] if name.is_absolute() else []
    candidates += [
        (model_path if model_path.is_absolute() else root / model_path) / name.name,
        root / name.name,
        root / "models" / name.name,
    ]
    return next((c for c in candidates if c.is_dir()), None)


def pretrained_weights(project: str | os.PathLike, config: dict[str, Any], model: str, arch: str) -> Path | None:
    """DeepEthogram's pretrained weights for ``model`` (``flow_generator`` / ``feature_extractor``) and ``arch``.

    The newest run of that model and arch in :func:`pretrained_dir` (what its ``weights: pretrained`` loads), or None.
    """
    folder = pretrained_dir(project, config)
    if folder is None:
        return None
    runs = sorted(p for p in folder.iterdir() if p.is_dir())
    for run in reversed(runs):
        found = _run_model_and_arch(run)
        if found and found[0] == model and found[1].lower() == arch.lower():
            weights = weightfile_of_run(run)
            if weights is not None:
                return weights
    return None


def weightfile_of_run(run_dir: Path) -> Path | None:
    """DeepEthogram's choice in a run: the last ``epoch*.ckpt`` by name ("best"), else ``last.ckpt``, else .pt."""
    lightning = run_dir / "lightning_checkpoints"
    if lightning.is_dir():
        ckpts = sorted(p for p in lightning.iterdir() if p.suffix == ".ckpt")
        best = [p for p in ckpts if "epoch" in p.name and p.name != "last.ckpt"]
        if best:
            return best[-1]
        if (lightning / "last.ckpt").is_file():
            return lightning / "last.ckpt"
    pt = run_dir / "checkpoint.pt"
    return pt if pt.is_file() else None


def latest_weights(project: str | os.PathLike, model: str) -> Path | None:
    """The newest trained run of ``model`` (``feature_extractor``, ``sequence``...) and its weights file."""
    models = Path(project) / "models"
    if not models.is_dir():
        return None
    runs = sorted(p for p in models.iterdir() if p.is_dir() and _run_model(p) == model)
    for run in reversed(runs):
        weights = weightfile_of_run(run)
        if weights is not None:
            return weights
    return None


def _run_config(weights: Path) -> dict[str, Any]:
    """The config a weights file was trained with: its run's config.yaml, else the file's own hyper_parameters."""
    run_dir = weights.parent.parent if weights.parent.name == "lightning_checkpoints" else weights.parent
    if (run_dir / "config.yaml").is_file():
        return _yaml(run_dir / "config.yaml")
    raw = load_untrusted(weights, error=DeepEthogramImportError)
    for key in ("hyper_parameters", "hyperparameters"):
        if isinstance(raw, dict) and isinstance(raw.get(key), dict):
            return raw[key]
    raise DeepEthogramImportError(f"{weights}: no config.yaml beside it and no hyper_parameters inside it")


def _normalisation(config: dict[str, Any], source: str) -> tuple[list[float], list[float]]:
    norm = ((config.get("augs") or {}).get("normalization")) or {}
    mean, std = norm.get("mean"), norm.get("std")
    if mean is None or std is None:
        log.warning("%s: no augs.normalization; using DeepEthogram's default 0.5/0.5", source)
        return [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]
    if len(mean) != 3 or len(std) != 3 or min(float(s) for s in std) <= 0:
        raise DeepEthogramImportError(f"{source}: augs.normalization needs 3 means and 3 positive stds")
    return [float(m) for m in mean], [float(s) for s in std]


def pad_colour(mean: list[float]) -> list[int]:
    """The frame DeepEthogram puts before the first and after the last frame: ``uint8(clip(mean * 255))``."""
    return [int(v) for v in np.clip(np.asarray(mean, np.float64) * 255, 0, 255).astype(np.uint8)]


def min_bout_lengths(project: str | os.PathLike, config: dict[str, Any], behaviours: list[str]) -> list[int]:
    """Our ``min_bout_length`` per behaviour (shortest bout KEPT) from DeepEthogram's ``postprocessor`` settings.

    DeepEthogram removes bouts of length <= N (ours keeps bouts >= N + 1). ``min_bout``: one N for all;
    ``min_bout_per_behavior`` (its default): N = the ``min_bout_length``-th percentile of the labelled bout lengths
    of each behaviour over the fully labelled videos, rounded (1 where a behaviour has no bout); ``null``: none.
    """
    post = {**DEFAULT_POSTPROCESSOR, **(config.get("postprocessor") or {})}
    kind, n = post.get("type"), post.get("min_bout_length", 1)
    if kind is None:
        return [1] * len(behaviours)
    if kind == "min_bout":
        return [int(n) + 1] * len(behaviours)
    if kind != "min_bout_per_behavior":
        raise DeepEthogramImportError(f"postprocessor.type {kind!r}: expected min_bout, min_bout_per_behavior or null")
    lengths: list[list[int]] = [[] for _ in behaviours]
    for label_file in sorted((Path(project) / "DATA").glob("*/*_labels.csv")):
        try:
            matrix = read_labels(label_file, behaviours=behaviours).values
        except UserFacingError as err:  # a label file that does not fit the project is left out, with a warning
            log.warning("%s: not used for bout lengths (%s)", label_file, err)
            continue
        if np.any(matrix == -1):
            continue  # DeepEthogram ignores partially labelled videos
        for k in range(matrix.shape[1]):
            trace = np.concatenate([[0], (matrix[:, k] == 1).astype(np.int8), [0]])
            changes = np.diff(trace)
            onsets, offsets = np.flatnonzero(changes == 1), np.flatnonzero(changes == -1)
            lengths[k].extend((offsets - onsets).tolist())
    out = []
    for values in lengths:
        n_remove = int(np.round(np.percentile(values, float(n)))) if values else 1
        out.append(n_remove + 1)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Building our models from its files
# ---------------------------------------------------------------------------------------------------------------


def feature_model_kwargs(config: dict[str, Any], num_classes: int, mean: list[float], std: list[float]) -> dict:
    """Our ``TwoStream`` constructor arguments for DeepEthogram's feature extractor config."""
    fe = config.get("feature_extractor") or {}
    fg = config.get("flow_generator") or {}
    arch = str(fe.get("arch", "resnet18"))
    if arch not in FEATURE_ARCHS:
        known = ", ".join(FEATURE_ARCHS)
        raise DeepEthogramImportError(f"feature_extractor.arch {arch!r}: importable ones are {known}")
    flow = str(fg.get("arch", "TinyMotionNet"))
    if flow not in FLOW_ARCHS:
        raise DeepEthogramImportError(f"flow_generator.arch {flow!r}: importable ones are {', '.join(FLOW_ARCHS)}")
    num_frames = int(fg.get("n_rgb") or fg.get("input_images") or int(fe.get("n_flows", 10)) + 1)
    fusion = str(fe.get("fusion", "average"))
    return {
        "num_classes": num_classes,
        "flow_generator": FLOW_ARCHS[flow],
        "backbone": arch,
        "num_frames": num_frames,
        "fusion": fusion,
        "dropout": float(fe.get("dropout_p", 0.25)),
        "mean": tuple(mean),
        "std": tuple(std),
        "spatial_frame": "last" if "3d" in arch else "deepethogram",
        "final_bn": bool(fe.get("final_bn", False)),
    }


def sequence_model_kwargs(config: dict[str, Any], input_dim: int, num_classes: int) -> dict:
    """Our ``DeepEthogramTGMJ`` constructor arguments for DeepEthogram's sequence config."""
    seq = config.get("sequence") or {}
    arch = seq.get("arch", "tgmj")
    if arch != "tgmj":
        raise DeepEthogramImportError(f"sequence.arch {arch!r}: only DeepEthogram's default 'tgmj' is importable")
    for key, want in (("c_in", 1), ("soft_attn", True), ("tgm_reduction", "max")):
        if seq.get(key, want) != want:
            raise DeepEthogramImportError(f"sequence.{key}: {seq.get(key)!r} is not supported (only {want!r})")
    return {
        "input_dim": input_dim,
        "num_classes": num_classes,
        "n_filters": int(seq.get("n_filters", 8)),
        "filter_length": int(seq.get("filter_length", 15)),
        "num_layers": int(seq.get("num_layers", 3)),
        "c_out": int(seq.get("c_out", 8)),
        "num_features": int(seq.get("num_features", 128)),
        "input_dropout": float(seq.get("input_dropout", 0.5)),
        "dropout": float(seq.get("dropout_p", 0.5)),
        "final_bn": bool(seq.get("final_bn", True)),
        "nonlinear_classification": bool(seq.get("nonlinear_classification", True)),
        "chunk_length": int(seq.get("sequence_length", 180)),
        "causal": False,
    }


def _thresholds(project: Path, group: str, k: int, metrics_file: Path | None) -> np.ndarray:
    """DeepEthogram's thresholds for a model: those its inference wrote into an outputs file, else its metrics."""
    for outputs in sorted((project / "DATA").glob("*/*_outputs.h5")):
        with h5py.File(outputs, "r") as f:
            if group in f and "thresholds" in f[group]:
                t = np.asarray(f[group]["thresholds"][()], np.float32)
                t = t[-1] if t.ndim == 2 else t
                if t.shape == (k,):
                    return t
    if metrics_file is not None and metrics_file.is_file():
        with h5py.File(metrics_file, "r") as f:
            try:
                optimum = np.asarray(f["val"]["metrics_by_threshold"]["optimum"][()], np.float32)
            except KeyError:
                optimum = None
        if optimum is not None and optimum.ndim == 2 and optimum.shape[1] == k:
            return optimum[-1]
    log.warning("no DeepEthogram thresholds found for %s; using 0.5", group)
    return np.full(k, 0.5, np.float32)


def import_deepethogram(
    project: str | os.PathLike,
    *,
    feature_weights: str | os.PathLike | None = None,
    flow_weights: str | os.PathLike | None = None,
    sequence_weights: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
) -> ImportedRuns:
    """Write our runs of a DeepEthogram project's trained feature extractor and TGMJ (see the module docstring).

    Args:
        project: the DeepEthogram project folder (``project_config.yaml``, ``DATA/``, ``models/``).
        feature_weights: its feature extractor file (``checkpoint.pt`` or a Lightning ``.ckpt``); None: the newest.
        flow_weights: its flow generator file; None: the newest flow generator run's (what its inference uses).
        sequence_weights: its sequence model file; None: the newest (none trained: no sequence run).
        models_dir: where our runs go (default: the project's ``models/``).

    Raises:
        DeepEthogramImportError: no trained feature extractor, or settings we cannot reproduce.
        deg_train.models.weights.WeightsError: a file that does not fit (named, with the key and shapes).
    """
    project = Path(project)
    project_cfg = read_project_config(project)
    behaviours = [str(b) for b in ((project_cfg.get("project") or {}).get("class_names") or [])]
    if not behaviours:
        raise DeepEthogramImportError(f"{project / 'project_config.yaml'}: project.class_names is empty")
    models_dir = Path(models_dir) if models_dir is not None else project / "models"
    sources: dict[str, str] = {}
    not_honoured: list[str] = []

    # -- feature extractor (with its flow generator) ----------------------------------------------------------
    fe_file = Path(feature_weights) if feature_weights else latest_weights(project, "feature_extractor")
    if fe_file is None or not fe_file.is_file():
        raise DeepEthogramImportError(
            f"{project}: no trained DeepEthogram feature extractor found (models/*/ with run.model "
            "feature_extractor); train one with DeepEthogram or pass --feature-weights FILE, or train ours in the "
            "project with deg-train train-all (it starts from DeepEthogram's pretrained models where the project has "
            "them and the preset builds the same models, e.g. --preset deg_f)"
        )
    fe_cfg = _run_config(fe_file)
    mean, std = _normalisation(project_cfg, str(project / "project_config.yaml"))
    kwargs = feature_model_kwargs(fe_cfg, len(behaviours), mean, std)
    model = create_model("two_stream", "hidden_two_stream", **kwargs)
    report = load_weights(model, fe_file, source="deepethogram", allow_head_mismatch=False)
    missing = [k for k in report.kept_init if not k.endswith(("input_mean", "input_std"))]  # ours: set above
    if missing:
        raise DeepEthogramImportError(f"{fe_file}: no weights for {missing[:3]}; a whole model is needed")
    sources["feature"] = str(fe_file)
    # DeepEthogram's inference takes the flow generator from its newest flow generator run (flow_generator.weights:
    # latest), not from the feature extractor's file (whose copy was trained on with BatchNorm statistics moving).
    flow_file = Path(flow_weights) if flow_weights else latest_weights(project, "flow_generator")
    if flow_file is not None and flow_file.is_file():
        load_weights(model.flow_generator, flow_file, source="deepethogram", allow_head_mismatch=False)
        sources["flow"] = str(flow_file)
    else:
        not_honoured.append("flow_generator.weights: no flow generator run found; its copy in the feature file is used")
    resize = (project_cfg.get("augs") or {}).get("resize") or (fe_cfg.get("augs") or {}).get("resize")
    if not resize:
        raise DeepEthogramImportError(
            f"{project / 'project_config.yaml'}: augs.resize is not set; DeepEthogram then feeds frames at the "
            "video's own size, which our runs cannot (set augs.resize to the size the model was trained at)"
        )
    size = [int(resize[0]), int(resize[1])]
    augs = project_cfg.get("augs") or {}
    if augs.get("crop_size") or augs.get("pad"):
        not_honoured.append("augs.crop_size / augs.pad (DeepEthogram crops or pads before resizing; we do not)")
    fe_arch = str(kwargs["backbone"])
    latent_name = our_group_name(f"deepethogram_{fe_arch}")
    exclusive = (fe_cfg.get("feature_extractor") or {}).get("final_activation", "sigmoid") == "softmax"
    config = {
        "data": {"size": size, "exclusive": exclusive},
        "feature": {"arch": fe_arch},
        "sequence": {"latent_name": latent_name},
        "deepethogram": {"project": str(project), "sources": sources, "normalization": {"mean": mean, "std": std}},
    }
    feature_run = new_run_dir(models_dir, "feature", f"deepethogram-{fe_arch}")
    extra = {
        "window": CENTRED_WINDOW,
        "pad_rgb": pad_colour(mean),
        "resize": "opencv_linear",
        "exclusive": exclusive,
        "imported_from": str(fe_file),
        "latent_name": latent_name,
    }
    save_checkpoint(
        feature_run / "checkpoint_best.pt",
        model=model,
        stage="feature",
        arch="hidden_two_stream",
        model_kwargs=kwargs,
        behaviours=behaviours,
        config=config,
        epoch=0,
        extra=extra,
    )
    mark_done(feature_run, {"imported_from": str(fe_file)})
    # Its causal twin, for our causal sequence model and live use: the same weights on OUR causal window (frames
    # t-T+1..t, the spatial stream on frame t itself), so live equals offline by construction. Written last: the
    # newest feature run, which train-sequence takes by default.
    causal_kwargs = {**kwargs, "spatial_frame": "last"}
    causal_model = create_model("two_stream", "hidden_two_stream", **causal_kwargs)
    causal_model.load_state_dict(model.state_dict())
    causal_latent = our_group_name(f"deepethogram_{fe_arch}_causal")
    causal_feature_run = new_run_dir(models_dir, "feature", f"deepethogram-{fe_arch}-causal")
    save_checkpoint(
        causal_feature_run / "checkpoint_best.pt",
        model=causal_model,
        stage="feature",
        arch="hidden_two_stream",
        model_kwargs=causal_kwargs,
        behaviours=behaviours,
        config={**config, "sequence": {"latent_name": causal_latent}},
        epoch=0,
        extra={
            "exclusive": exclusive,
            "imported_from": str(fe_file),
            "causal_twin_of": str(feature_run),
            "latent_name": causal_latent,
        },
    )
    mark_done(causal_feature_run, {"imported_from": str(fe_file)})

    # -- sequence model (TGMJ) ---------------------------------------------------------------------------------
    seq_file = Path(sequence_weights) if sequence_weights else latest_weights(project, "sequence")
    sequence_run = None
    if seq_file is not None and seq_file.is_file():
        seq_cfg = _run_config(seq_file)
        skw = sequence_model_kwargs(seq_cfg, int(model.num_features), len(behaviours))
        seq_model = create_model("sequence", "tgmj", **skw)
        load_weights(seq_model, seq_file, source="deepethogram", allow_head_mismatch=False)
        sources["sequence"] = str(seq_file)
        seq_run_dir = seq_file.parent.parent if seq_file.parent.name == "lightning_checkpoints" else seq_file.parent
        deg_group = (seq_cfg.get("sequence") or {}).get("output_name") or "tgmj"
        thresholds = _thresholds(project, deg_group, len(behaviours), seq_run_dir / "classification_metrics.h5")
        background = behaviours.index("background") if "background" in behaviours else None
        postprocess = PostprocessSettings(
            min_bout_length=min_bout_lengths(project, {**fe_cfg, **project_cfg}, behaviours),
            background_index=background,
            exclusive_background=background is not None,
            exclusive=exclusive,
        )
        seq_config = {
            "data": {"size": size, "exclusive": exclusive},
            "sequence": {"arch": "tgmj", "causal": False, "latent_name": latent_name},
            "postprocess": postprocess.to_dict(),
            "deepethogram": {"project": str(project), "weights": str(seq_file)},
        }
        sequence_run = new_run_dir(models_dir, "sequence", "tgmj-centred")  # never "the latest causal run"
        save_checkpoint(
            sequence_run / "checkpoint_best.pt",
            model=seq_model,
            stage="sequence",
            arch="tgmj",
            model_kwargs=skw,
            behaviours=behaviours,
            config=seq_config,
            epoch=0,
            extra={
                "feature_run": str(feature_run),
                "latent_name": latent_name,
                "exclusive": exclusive,
                "imported_from": str(seq_file),
            },
        )
        write_thresholds_file(sequence_run, behaviours, thresholds, postprocess, picked_by=f"DeepEthogram ({seq_file})")
        mark_done(sequence_run, {"imported_from": str(seq_file)})
    for item in not_honoured:
        log.warning("DeepEthogram setting not reproduced: %s", item)
    return ImportedRuns(feature_run, sequence_run, latent_name, causal_feature_run, sources, not_honoured)
