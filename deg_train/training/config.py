"""The training configuration: one typed object for all three stages, loaded from a preset plus overrides.

A run of ``deg-train train-flow | train-features | train-sequence`` reads a :class:`TrainConfig`. It comes from a
preset YAML in ``configs/presets/`` (``deg_f``, ``deg_m``, ``deg_s``, ``tiny``, ``demo_cpu``) or any YAML file,
with ``key=value`` overrides from the command line on top (``flow.epochs=3 train.seed=1``). Unknown keys, wrong
types and values out of range (epochs, batch sizes and steps >= 1, learning rates > 0, probabilities in [0, 1],
sizes the models accept...) are :class:`~camera_adapters.settings.ConfigError` naming the file, the dotted key and
the allowed range, raised when the config is loaded: before any run folder exists.

Inheritance: a preset file may name another with a top-level ``base:`` key (a preset name such as ``defaults`` or
a path relative to the file). The base is read first and the file's own keys are merged on top, recursively
(mappings merge, everything else replaces). ``defaults.yaml`` holds every key with a comment; the others hold only
what they change. The resolved config (every key, after inheritance and overrides) is saved as ``config.yaml`` in
each run directory, and :func:`load_config` reads such a file back.

Example:
    >>> cfg = load_config("deg_f", ["flow.epochs=2"])
    >>> cfg.flow.arch, cfg.flow.epochs
    ('TinyMotionNet', 2)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from camera_adapters.settings import ConfigError, load_settings, merge, read_yaml, save_settings, to_dict
from deg_live.postprocess import PostprocessSettings
from deg_train.evaluation.onsets import EventsConfig

CONFIG_SCHEMA_VERSION = 1
_MAX_COUNT = 1_000_000_000  # an upper bound for counts (epochs, steps, batch sizes): larger is a typo


def _check_int(section: str, name: str, value: object, lo: int, hi: int = _MAX_COUNT, optional: bool = False) -> None:
    """Raise ValueError naming ``section.name`` and the allowed range unless ``lo <= value <= hi`` (or None)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        allowed = f"an integer from {lo} to {hi}" + (", or null" if optional else "")
        raise ValueError(f"{section}.{name} = {value!r} is out of range; allowed: {allowed}")


def _check_float(
    section: str,
    name: str,
    value: object,
    lo: float,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    optional: bool = False,
) -> None:
    """Raise ValueError naming ``section.name`` and the allowed interval unless ``value`` lies in it (or None)."""
    if value is None and optional:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    finite = number and (not isinstance(value, float) or math.isfinite(value))
    inside = finite and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
    if not inside:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open or hi == math.inf else ']'}"
        allowed = f"a number in {interval}" + (", or null" if optional else "")
        raise ValueError(f"{section}.{name} = {value!r} is out of range; allowed: {allowed}")


def _check_optimisation(section: str, cfg: object) -> None:
    """The ranges every stage's training section shares (epochs, learning rate, batches, steps, loss shape)."""
    _check_int(section, "epochs", cfg.epochs, 1)
    _check_float(section, "lr", cfg.lr, 0.0, 10.0, lo_open=True)
    _check_float(section, "weight_decay", cfg.weight_decay, 0.0, 10.0)
    _check_int(section, "batch_size", cfg.batch_size, 1, 1 << 16)
    _check_int(section, "steps_per_epoch", cfg.steps_per_epoch, 1, optional=True)
    _check_int(section, "val_steps", cfg.val_steps, 1, optional=True)
    for name, lo, hi, hi_open in (("focal_gamma", 0.0, 10.0, False), ("label_smoothing", 0.0, 0.5, True),
                                  ("pos_weight_beta", 0.0, 1.0, False)):  # fmt: skip
        if hasattr(cfg, name):
            _check_float(section, name, getattr(cfg, name), lo, hi, hi_open=hi_open)


def _presets_dir() -> Path:
    """The preset YAMLs: ``DEG_TRAIN_PRESETS`` if set, else those shipped in the package.

    ``deg_train/configs`` is package data: in a checkout a link to the top-level ``configs/`` folder, in an
    installed wheel real files. Where a checkout has no working link (Windows without symlinks) the top-level
    folder is used directly.
    """
    if os.environ.get("DEG_TRAIN_PRESETS"):
        return Path(os.environ["DEG_TRAIN_PRESETS"])
    packaged = Path(str(resources.files("deg_train").joinpath("configs", "presets")))
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "configs" / "presets"


#: Where the preset YAML files live (shipped with the package; ``DEG_TRAIN_PRESETS`` overrides it).
PRESETS_DIR = _presets_dir()


# ---------------------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    """What the models see (see ``defaults.yaml`` for each key).

    The train/validation/test split is the project's (``DATA/split.yaml``, made by ``deg-train split`` from the
    project settings), not part of a training config: every stage and every run sees the same split.
    """

    size: tuple[int, int] = (128, 128)
    frames_per_window: int = 11
    exclusive: bool | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None and (len(value) != 3 or any(not 0 <= v <= 1 for v in value)):
                raise ValueError(f"data.{name} = {list(value)} is out of range; allowed: 3 numbers in [0, 1], or null")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"data.std = {list(self.std)} is out of range; allowed: 3 numbers in (0, 1], or null")
        if any(s <= 0 or s % 16 or s > 4096 for s in self.size):
            raise ValueError(
                f"data.size = {list(self.size)} is out of range; allowed: height and width positive multiples of "
                "16 (what the models accept), at most 4096"
            )
        if self.frames_per_window < 2:
            raise ValueError("frames_per_window must be at least 2 (flows are between consecutive frames)")
        _check_int("data", "frames_per_window", self.frames_per_window, 2, 256)


@dataclass
class AugmentConfig:
    """Training-time augmentation, the same random transform for every frame of a clip."""

    enabled: bool = True
    backend: Literal["fused", "kornia"] = "fused"
    crop_scale: tuple[float, float] = (0.8, 1.0)
    lr_flip: float = 0.5
    ud_flip: float = 0.0
    degrees: float = 10.0
    brightness: float = 0.25
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1
    grayscale: float = 0.5

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale {list(self.crop_scale)}: need 0 < min <= max <= 1")
        for name in ("lr_flip", "ud_flip", "grayscale"):  # probabilities
            _check_float("augment", name, getattr(self, name), 0.0, 1.0)
        if not 0 <= self.hue <= 0.5:
            raise ValueError("hue must lie in [0, 0.5]")
        _check_float("augment", "degrees", self.degrees, 0.0, 180.0)
        for name in ("brightness", "contrast", "saturation"):
            _check_float("augment", name, getattr(self, name), 0.0, 1.0)


@dataclass
class FlowConfig:
    """Stage 1: the self-supervised flow generator."""

    arch: str = "TinyMotionNet"
    weights: str | None = None
    epochs: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    steps_per_epoch: int | None = 1000
    val_steps: int | None = 200
    smooth_weight_multiplier: float = 1.0
    flow_sparsity: bool = False
    sparsity_weight: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_optimisation("flow", self)
        _check_float("flow", "smooth_weight_multiplier", self.smooth_weight_multiplier, 0.0, 1000.0)
        _check_float("flow", "sparsity_weight", self.sparsity_weight, 0.0, 1000.0)


@dataclass
class FeatureConfig:
    """Stage 2: the hidden two-stream feature extractor (frozen flow generator + spatial and flow CNNs)."""

    arch: str = "resnet18"
    fusion: Literal["average", "concatenate"] = "average"
    flow_fusion_weight: float = 1.5
    width: float = 1.0
    dropout: float = 0.25
    weights: str | None = None
    flow_run: str | None = None
    epochs: int = 20
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    steps_per_epoch: int | None = 1000
    val_steps: int | None = 1000
    focal_gamma: float = 1.0
    label_smoothing: float = 0.05
    pos_weight_beta: float = 0.25
    class_balance: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_float("feature", "class_balance", self.class_balance, 0.0, 1.0)
        if self.flow_fusion_weight < 0:
            raise ValueError("flow_fusion_weight must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must lie in [0, 1)")
        _check_optimisation("feature", self)
        _check_float("feature", "width", self.width, 0.0, 4.0, lo_open=True)


@dataclass
class SequenceConfig:
    """Stage 3: the causal sequence model over saved stage-2 features.

    ``params`` holds constructor arguments per architecture (``params.tgm``, ``params.gru``...), so switching
    ``arch`` needs no other change; :meth:`model_params` gives the current architecture's. Their numbers live in
    ``defaults.yaml`` only (empty here: a config built without a preset uses the constructors' defaults).
    """

    arch: str = "tgm"
    causal: bool = True
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    weights: str | None = None
    feature_run: str | None = None
    latent_name: str | None = None
    epochs: int = 100
    lr: float = 1e-4
    weight_decay: float = 0.01
    batch_size: int = 16
    chunk_length: int = 180
    steps_per_epoch: int | None = None
    val_steps: int | None = None
    focal_gamma: float = 1.0
    label_smoothing: float = 0.05
    pos_weight_beta: float = 0.25

    def __post_init__(self) -> None:
        _check_optimisation("sequence", self)
        _check_int("sequence", "chunk_length", self.chunk_length, 1, 1_000_000)

    def model_params(self) -> dict[str, Any]:
        """Constructor arguments of ``arch`` (``params[arch]``, empty if not given)."""
        return dict(self.params.get(self.arch.lower(), {}))


#: ``train.lr_schedule`` values: DeepEthogram's plateau rule, or cosine decay over the stage's epochs.
LR_SCHEDULES = ("plateau", "cosine")


@dataclass
class LoopConfig:
    """The training loop shared by the stages (``train:`` section)."""

    seed: int = 0
    device: str = "auto"
    amp: bool = True
    deterministic: bool = True
    lr_schedule: str = "plateau"
    patience: int = 5
    reduce_factor: float = 0.1
    min_lr: float = 5e-7
    early_stop_patience: int | None = 10
    max_steps_per_epoch: int | None = None
    max_val_steps: int | None = None
    num_workers: int = 0
    grad_clip: float | None = None
    threads: int | None = None
    progress_every_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.reduce_factor < 1:
            raise ValueError("reduce_factor must lie in (0, 1)")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"train.lr_schedule: {self.lr_schedule!r}; expected one of {', '.join(LR_SCHEDULES)}")
        _check_int("train", "seed", self.seed, 0, 2**32 - 1)
        _check_int("train", "patience", self.patience, 0, 10_000)
        _check_float("train", "min_lr", self.min_lr, 0.0, 10.0)
        _check_int("train", "early_stop_patience", self.early_stop_patience, 1, 10_000, optional=True)
        _check_int("train", "max_steps_per_epoch", self.max_steps_per_epoch, 1, optional=True)
        _check_int("train", "max_val_steps", self.max_val_steps, 1, optional=True)
        _check_int("train", "num_workers", self.num_workers, 0, 1024)
        _check_float("train", "grad_clip", self.grad_clip, 0.0, lo_open=True, optional=True)
        _check_int("train", "threads", self.threads, 1, 4096, optional=True)
        _check_float("train", "progress_every_s", self.progress_every_s, 0.0, 3600.0)


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.yaml`` beside each run."""

    schema_version: int = CONFIG_SCHEMA_VERSION
    preset: str = "deg_f"
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    feature: FeatureConfig = field(default_factory=FeatureConfig)
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    postprocess: PostprocessSettings = field(default_factory=PostprocessSettings)
    events: EventsConfig = field(default_factory=EventsConfig)
    train: LoopConfig = field(default_factory=LoopConfig)

    def __post_init__(self) -> None:
        if self.schema_version > CONFIG_SCHEMA_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is newer than this deg-train understands "
                f"({CONFIG_SCHEMA_VERSION}); upgrade deg-train"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML-ready values."""
        return to_dict(self)


# ---------------------------------------------------------------------------------------------------------------
# Loading and saving
# ---------------------------------------------------------------------------------------------------------------


def list_presets() -> list[str]:
    """Names of the preset files in :data:`PRESETS_DIR` (without ``.yaml``)."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """The YAML file for a preset name (``deg_f``) or a path to a YAML file.

    Raises:
        ConfigError: neither an existing file nor a known preset name (the message lists the known ones).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        return path
    candidate = PRESETS_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError(
        f"unknown preset {str(name_or_path)!r}; known presets: {', '.join(list_presets()) or '(none)'} "
        f"(in {PRESETS_DIR}), or give a path to a YAML file"
    )


def read_preset(name_or_path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a preset's mapping with its ``base:`` chain merged in (base first, the file's keys on top).

    Raises:
        ConfigError: a missing file, bad YAML, or a ``base:`` cycle.
    """
    path = preset_path(name_or_path).resolve()
    if path in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path))
        raise ConfigError(f"{path}: base: cycle ({chain})")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a preset name or a path, got {base!r}")
    base_ref: str | Path = base
    if base.endswith((".yaml", ".yml")) and not Path(base).is_absolute():
        base_ref = path.parent / base
    return merge(read_preset(base_ref, (*_seen, path)), data)


def load_config(preset_or_path: str | os.PathLike | None = "deg_f", overrides: list[str] | tuple = ()) -> TrainConfig:
    """Load a :class:`TrainConfig` from a preset name or YAML file, then apply ``key=value`` overrides.

    Args:
        preset_or_path: ``deg_f``, ``deg_m``, ``deg_s``, ``tiny``, ``demo_cpu``, any preset in ``configs/presets``,
            a path to a YAML file (a run's saved ``config.yaml`` works too), or None for ``defaults.yaml``.
        overrides: ``dotted.key=value`` strings, e.g. ``["flow.epochs=2", "data.size=[96, 96]"]``.

    Raises:
        ConfigError: unknown preset, unknown key, wrong type or invalid value; the message names file and key.
    """
    path = preset_path("defaults" if preset_or_path is None else preset_or_path)
    data = read_preset(path)
    return load_settings(TrainConfig, data, overrides=overrides, source=str(path))


def save_config(config: TrainConfig, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (atomically) and return the path; :func:`load_config` reads it back."""
    return save_settings(config, path, header="deg-train resolved config: every key, after presets and overrides")
