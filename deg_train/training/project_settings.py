"""A DeepEthogram project's own settings, honoured when we train in it (``train-*`` and ``train-all``).

A project DeepEthogram made keeps its settings in ``project_config.yaml`` (``augs``, ``postprocessor``, ...). When
we train in such a project, the ones that mean something for us become config overrides, applied **after the
preset (or ``--config`` file) and before the command line's ``key=value`` overrides**: the project's own setting
wins over a preset's default, and an explicit override wins over the project.

====================================  =====================================================================
DeepEthogram                          ours
====================================  =====================================================================
``augs.resize`` [h, w] (or one int)    ``data.size`` (when both are multiples of 16, what our models take)
``augs.normalization`` mean / std      ``data.mean`` / ``data.std``: the models' input normalisation
``postprocessor`` type / min length    ``postprocess.min_bout_length`` per behaviour, mapped as
                                       ``import-deepethogram`` does (:func:`deg_train.inference.deepethogram.
                                       min_bout_lengths`), used by ``--postprocess offline``
``project.class_names``                the behaviours (the project's label files use them already)
``flow_generator.weights`` /           ``flow.weights`` / ``feature.weights``: with ``pretrained`` (DeepEthogram's
``feature_extractor.weights``          default), its pretrained model of that arch in ``project.pretrained_path``
                                       (e.g. the Kinetics-700 deg_f feature extractor; its classification heads
                                       are re-initialised for the project's behaviours), when the preset builds
                                       the same full-width models on 11-frame clips
====================================  =====================================================================

Everything else DeepEthogram would use and we do not (``augs.crop_size``, ``augs.pad``, ``augs.dali``, augmentation
values that differ from ours, its ``train.*`` / ``compute.*`` settings, its ``flow_generator.arch`` /
``feature_extractor.arch`` / ``sequence.arch`` where they differ from the preset's...) is listed once, as one warning
block at the start of each training stage and in the run's ``train.log`` (:func:`not_honoured`,
:func:`warn_not_honoured`). Our own projects (no DeepEthogram sections) are left alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camera_adapters.errors import UserFacingError
from deg_train.training.config import TrainConfig, load_config

log = logging.getLogger(__name__)

#: Sections only DeepEthogram writes into project_config.yaml; one of them marks a DeepEthogram project.
DEEPETHOGRAM_SECTIONS = ("augs", "postprocessor", "compute", "train", "flow_generator", "feature_extractor", "sequence")
#: DeepEthogram's augmentation keys -> ours (same meaning); a different value is reported, not applied.
AUGMENT_KEYS = {
    "LR": "lr_flip",
    "UD": "ud_flip",
    "degrees": "degrees",
    "brightness": "brightness",
    "contrast": "contrast",
    "hue": "hue",
    "saturation": "saturation",
    "grayscale": "grayscale",
}
#: DeepEthogram's defaults of keys with no counterpart of ours: reported only when a project changes them.
NO_COUNTERPART_DEFAULTS = {
    "augs.crop_size": None,
    "augs.pad": None,
    "augs.dali": False,
    "augs.random_resize": False,
    "augs.color_p": 0.5,
    "compute.batch_size": 32,
    "compute.num_workers": 8,
    "compute.gpu_id": 0,
    "compute.distributed": False,
    "sequence.filter_length": 15,
}
#: (project config, line) pairs already logged by this process (train-all lists each once).
_WARNED: set[tuple[str, str]] = set()


def is_deepethogram_project(config: dict[str, Any]) -> bool:
    """Whether a project_config.yaml mapping is DeepEthogram's (it has one of DeepEthogram's own sections)."""
    return any(isinstance(config.get(key), dict) for key in DEEPETHOGRAM_SECTIONS)


def _size(resize: Any) -> list[int] | None:
    if isinstance(resize, int) and not isinstance(resize, bool):
        return [resize, resize]
    if isinstance(resize, (list, tuple)) and len(resize) == 2 and all(isinstance(v, int) for v in resize):
        return [int(resize[0]), int(resize[1])]
    return None


def _valid_size(size: list[int]) -> bool:
    return all(0 < s <= 4096 and s % 16 == 0 for s in size)


def _normalisation(augs: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    norm = augs.get("normalization") or {}
    mean, std = norm.get("mean"), norm.get("std")
    try:
        mean, std = [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        return None
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        return None
    return mean, std


@dataclass
class ProjectOverrides:
    """What a DeepEthogram project sets for our training.

    Attributes:
        overrides: ``key=value`` strings, applied after the preset and before the user's overrides.
        honoured: one line per honoured setting (``augs.resize [96, 96] -> data.size``), logged at INFO.
    """

    overrides: list[str] = field(default_factory=list)
    honoured: list[str] = field(default_factory=list)
    #: stage ("flow", "feature") -> (its ``<stage>.weights=FILE`` override, DeepEthogram's arch, honoured line):
    #: dropped again by :func:`load_project_config` when the preset's models cannot take the file.
    pretrained: dict[str, tuple[str, str, str]] = field(default_factory=dict)


#: DeepEthogram's model sections whose ``weights: pretrained`` we honour -> (our stage, its default arch).
PRETRAINED_SECTIONS = {"flow_generator": ("flow", "TinyMotionNet"), "feature_extractor": ("feature", "resnet18")}
#: Frames per clip of DeepEthogram's pretrained flow generators and feature extractors.
PRETRAINED_FRAMES = 11


def _wants_pretrained(config: dict[str, Any], section: str) -> tuple[bool, str]:
    """Whether a DeepEthogram project trains ``section`` from its pretrained weights, and that model's arch."""
    block = config.get(section) if isinstance(config.get(section), dict) else {}
    arch = str(block.get("arch") or PRETRAINED_SECTIONS[section][1])
    return block.get("weights", "pretrained") == "pretrained", arch  # DeepEthogram's default is "pretrained"


def pretrained_misfit(config: TrainConfig, stage: str, arch: str) -> str | None:
    """Why the preset's ``stage`` model cannot start from DeepEthogram's pretrained ``arch`` (None: it can)."""
    ours = config.flow.arch if stage == "flow" else config.feature.arch
    if str(ours).lower() != arch.lower():
        return f"the preset builds {ours}, the pretrained model is {arch}"
    width = float(config.flow.params.get("width", 1.0)) if stage == "flow" else float(config.feature.width)
    if width != 1.0:
        return f"the preset's {stage} model is {width:g}x wide (DeepEthogram's pretrained models are full width)"
    if config.data.frames_per_window != PRETRAINED_FRAMES:
        return (
            f"data.frames_per_window is {config.data.frames_per_window} (DeepEthogram's pretrained models take "
            f"{PRETRAINED_FRAMES})"
        )
    return None


def project_overrides(project: Any) -> ProjectOverrides:
    """The config overrides a DeepEthogram project's own settings give (empty for our own projects)."""
    config = project.config
    out = ProjectOverrides()
    if not is_deepethogram_project(config):
        return out
    augs = config.get("augs") if isinstance(config.get("augs"), dict) else {}
    size = _size(augs.get("resize"))
    if size is not None and _valid_size(size):
        out.overrides.append(f"data.size=[{size[0]}, {size[1]}]")
        out.honoured.append(f"augs.resize {size} -> data.size")
    norm = _normalisation(augs)
    if norm is not None:
        mean, std = norm
        out.overrides += [f"data.mean={mean}", f"data.std={std}"]
        out.honoured.append(f"augs.normalization mean {mean} std {std} -> data.mean / data.std")
    behaviours = list(project.behaviours)
    if behaviours:
        from deg_train.inference.deepethogram import DEFAULT_POSTPROCESSOR, min_bout_lengths

        try:
            lengths = min_bout_lengths(project.root, config, behaviours)
        except UserFacingError as err:
            log.warning("%s: postprocessor not used (%s)", project.config_path, err)
        else:
            post = {**DEFAULT_POSTPROCESSOR, **(config.get("postprocessor") or {})}
            out.overrides.append(f"postprocess.min_bout_length={lengths}")
            out.honoured.append(
                f"postprocessor {post.get('type')} {post.get('min_bout_length')} -> postprocess.min_bout_length "
                f"{lengths} (bouts kept, per behaviour; --postprocess offline)"
            )
    from deg_train.inference.deepethogram import pretrained_weights

    for section, (stage, _default) in PRETRAINED_SECTIONS.items():
        wanted, arch = _wants_pretrained(config, section)
        found = pretrained_weights(project.root, config, section, arch) if wanted else None
        if found is not None:
            override = f"{stage}.weights={found}"
            out.overrides.append(override)
            line = f"{section}.weights pretrained -> {stage}.weights {found}"
            out.honoured.append(line)
            out.pretrained[stage] = (override, arch, line)
    return out


def load_project_config(
    project: Any, preset_or_path: str | os.PathLike | None, overrides: list[str] | tuple = ()
) -> TrainConfig:
    """``load_config`` with a DeepEthogram project's settings between the preset and ``overrides``.

    So an explicit ``data.size=`` still wins over the project's ``augs.resize``. Our own projects: exactly
    :func:`~deg_train.training.config.load_config`.
    """
    found = project_overrides(project)
    config = load_config(preset_or_path, [*found.overrides, *overrides])
    # DeepEthogram's pretrained weights only where the preset builds the models they fit (not_honoured says why not).
    unfit = [(o, line) for stage, (o, arch, line) in found.pretrained.items() if pretrained_misfit(config, stage, arch)]
    if unfit:
        dropped = {o for o, _ in unfit}
        found.overrides = [o for o in found.overrides if o not in dropped]
        found.honoured = [h for h in found.honoured if h not in {line for _, line in unfit}]
        config = load_config(preset_or_path, [*found.overrides, *overrides])
    for line in found.honoured:
        log.info("DeepEthogram project setting honoured: %s", line)
    return config


def not_honoured(project: Any, config: TrainConfig, stage: str | None = None) -> list[str]:
    """The project's DeepEthogram settings that ``config`` does not follow, one line each ([] for our projects).

    ``stage="sequence"`` leaves out the flow and feature architectures: the sequence model trains on the features of
    an existing run (possibly DeepEthogram's own, imported), whatever the preset would have built.
    """
    cfg = project.config
    if not is_deepethogram_project(cfg):
        return []
    out: list[str] = []
    augs = cfg.get("augs") if isinstance(cfg.get("augs"), dict) else {}
    resize = augs.get("resize")
    size = _size(resize)
    if resize is not None:
        if size is None or not _valid_size(size):
            out.append(
                f"augs.resize {resize}: our models take sizes in multiples of 16; training at data.size "
                f"{list(config.data.size)}"
            )
        elif list(config.data.size) != size:
            out.append(f"augs.resize {size}: training at data.size {list(config.data.size)} (given explicitly)")
    norm = _normalisation(augs)
    if augs.get("normalization") is not None and norm is None:
        out.append("augs.normalization: not 3 means and 3 positive stds; the models' default 0.5/0.5 is used")
    elif norm is not None and (
        config.data.mean is None or [round(v, 9) for v in config.data.mean] != [round(v, 9) for v in norm[0]]
        or config.data.std is None or [round(v, 9) for v in config.data.std] != [round(v, 9) for v in norm[1]]
    ):  # fmt: skip
        out.append(
            f"augs.normalization: training with data.mean {config.data.mean} / data.std {config.data.std} "
            "(given explicitly)"
        )
    for theirs, ours in AUGMENT_KEYS.items():
        if theirs in augs and augs[theirs] is not None:
            value = getattr(config.augment, ours)
            if abs(float(augs[theirs]) - float(value)) > 1e-9:
                out.append(f"augs.{theirs} {augs[theirs]}: ours is augment.{ours} {value} (set it to change)")
    for dotted, default in NO_COUNTERPART_DEFAULTS.items():
        section, key = dotted.split(".")
        block = cfg.get(section) if isinstance(cfg.get(section), dict) else {}
        if key in block and block[key] != default:
            out.append(f"{dotted} {block[key]}: no counterpart here")
    train = cfg.get("train") if isinstance(cfg.get("train"), dict) else {}
    if train:
        keys = ", ".join(f"{k} {v}" for k, v in train.items())
        out.append(f"train.* ({keys}): DeepEthogram's own schedule and loss; ours come from the preset")
    arch_sections = (
        ()
        if stage == "sequence"
        else (("flow_generator", config.flow.arch), ("feature_extractor", config.feature.arch))
    )
    for section, ours in arch_sections:
        block = cfg.get(section) if isinstance(cfg.get(section), dict) else {}
        arch = block.get("arch")
        if arch and str(arch).lower() != str(ours).lower():
            out.append(f"{section}.arch {arch}: the preset trains {ours}")
    if stage != "sequence":
        out += _pretrained_not_honoured(project, config)
    seq = cfg.get("sequence") if isinstance(cfg.get("sequence"), dict) else {}
    if seq.get("arch") and str(seq["arch"]).lower() != str(config.sequence.arch).lower():
        out.append(f"sequence.arch {seq['arch']}: the preset trains {config.sequence.arch} (causal)")
    return out


def _pretrained_not_honoured(project: Any, config: TrainConfig) -> list[str]:
    """``weights: pretrained`` sections the config does not start from, each with the reason."""
    from deg_train.inference.deepethogram import pretrained_dir, pretrained_weights

    out = []
    for section, (stage, _default) in PRETRAINED_SECTIONS.items():
        wanted, arch = _wants_pretrained(project.config, section)
        if not wanted:
            continue
        given = getattr(config, stage).weights
        found = pretrained_weights(project.root, project.config, section, arch)
        if found is not None and given is not None and Path(given) == found:
            continue
        if given is not None:
            reason = f"starting from {stage}.weights {given} (given explicitly)"
        elif found is None:
            folder = pretrained_dir(project.root, project.config)
            where = f"in {folder}" if folder else "(no pretrained_models folder beside the project's models)"
            reason = f"no pretrained {arch} {where}; training from scratch"
        else:
            reason = f"{pretrained_misfit(config, stage, arch) or 'not used'}; training from scratch"
        out.append(f"{section}.weights pretrained: {reason}")
    return out


def warning_block(project: Any, lines: list[str]) -> str:
    """The one warning listing ``lines`` (several lines of text)."""
    head = f"{project.config_path}: DeepEthogram settings this training does not follow ({len(lines)}):"
    return "\n".join([head, *(f"  - {line}" for line in lines)])


def warn_not_honoured(
    project: Any, config: TrainConfig, run_dir: str | os.PathLike | None = None, stage: str | None = None
) -> list[str]:
    """Log :func:`not_honoured` as one warning (once per process) and append it to ``run_dir/train.log``."""
    lines = not_honoured(project, config, stage)
    if not lines:
        return lines
    block = warning_block(project, lines)
    new = [line for line in lines if (str(project.config_path), line) not in _WARNED]
    if new:  # each line once per process: a later stage repeats none that an earlier one listed
        _WARNED.update((str(project.config_path), line) for line in new)
        log.warning("%s", warning_block(project, new))
    if run_dir is not None:
        with open(Path(run_dir) / "train.log", "a", encoding="utf-8") as fh:
            fh.write(f"WARNING {block}\n")
    return lines
