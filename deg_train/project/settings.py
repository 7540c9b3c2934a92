"""Project-level settings beyond DeepEthogram's ``project:`` section: how to split and where to cache.

They live in the project's ``project_config.yaml`` under a ``deg_live:`` key (DeepEthogram ignores keys it does not
know), and every key is documented with its default in ``configs/project.yaml``. Missing keys take the defaults
below; unknown keys and wrong types are a :class:`camera_adapters.settings.ConfigError` naming the key.

Example:
    >>> settings = load_project_settings({"split": {"seed": 3}}, overrides=["split.fractions=[0.6, 0.2, 0.2]"])
    >>> settings.split.seed, settings.split.fractions
    (3, (0.6, 0.2, 0.2))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from camera_adapters.settings import load_settings, load_settings_file

PROJECT_SETTINGS_SCHEMA_VERSION = 1

#: configs/project.yaml, the documented defaults (shipped with the package as ``deg_train/configs/project.yaml``).
DEFAULT_SETTINGS_FILE = Path(str(resources.files("deg_train").joinpath("configs", "project.yaml")))
if not DEFAULT_SETTINGS_FILE.is_file():  # a checkout without a working link (Windows without symlinks)
    DEFAULT_SETTINGS_FILE = Path(__file__).resolve().parents[2] / "configs" / "project.yaml"


@dataclass
class SplitSettings:
    """How ``deg-train split`` assigns videos to train/validation/test.

    Attributes:
        fractions: shares of videos (or sessions) for train, validation and test; they must sum to 1.
        seed: random seed; the same seed and videos give the same split.
        group_by: a regular expression whose first group (or whole match) names a video's session; videos of one
            session always land in the same part. None: every video is its own session.
        max_tries: candidate splits tried while looking for one with every behaviour in train and validation.
    """

    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 0
    group_by: str | None = None
    max_tries: int = 2000


@dataclass
class CacheSettings:
    """The frame cache (decoded frames at training resolution, see deg_train.project.frame_cache).

    Attributes:
        dir: folder of the caches, relative to the project root (or absolute, e.g. on a fast local disk).
    """

    dir: str = "cache"


@dataclass
class LabelSettings:
    """How the project's behaviours relate to each other.

    Attributes:
        exclusive: True: mutually exclusive behaviours (one per frame, background included; softmax models,
            exclusive decisions); False: multi-label (independent sigmoids); None: detected from the labels
            (exclusive when no labelled frame has two behaviours on), see ``Project.exclusive_behaviours``.
    """

    exclusive: bool | None = None


@dataclass
class ProjectSettings:
    """Everything the project format needs beyond DeepEthogram's ``project:`` section."""

    schema_version: int = PROJECT_SETTINGS_SCHEMA_VERSION
    add_mode: Literal["copy", "link"] = "copy"
    split: SplitSettings = field(default_factory=SplitSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    labels: LabelSettings = field(default_factory=LabelSettings)


def load_project_settings(
    data: Mapping[str, Any] | None = None, *, overrides: Iterable[str] = (), source: str = "project settings"
) -> ProjectSettings:
    """Build :class:`ProjectSettings` from a mapping (the ``deg_live:`` section) plus ``key=value`` overrides."""
    return load_settings(ProjectSettings, data or {}, overrides=overrides, source=source)


def load_project_settings_file(path: str | Path, *, overrides: Iterable[str] = ()) -> ProjectSettings:
    """Read :class:`ProjectSettings` from a YAML file such as ``configs/project.yaml``."""
    return load_settings_file(ProjectSettings, path, overrides=overrides)
