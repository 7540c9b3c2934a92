"""Train/validation/test splits by video (or by session), reproducible, and always finishing.

Neighbouring frames are nearly identical, so a split by frame would leak: videos — or whole sessions of videos —
go to one part each. :func:`make_split` fixes how many videos/sessions each part gets from the fractions, then
looks among candidate assignments (all of them when there are few, else ``max_tries`` seeded random ones) for one
where every behaviour that has any positive frame appears in train and validation (then in test). The search is
bounded, so it always ends — unlike DeepEthogram's, which loops forever when no such split exists. When none is
perfect the best is kept and :attr:`Split.missing` says which behaviours are absent where. Requests that cannot be
met at all (fractions not summing to 1, fewer videos than non-empty parts) raise :class:`SplitError`.

The file format is DeepEthogram's ``DATA/split.yaml``: ``train``, ``val`` and ``test`` lists of video names and a
``metadata`` mapping whose ``split`` holds the fractions (we add ``seed``, ``group_by`` and ``schema_version``).

Example:
    >>> split = make_split({"a": [10, 3], "b": [5, 0], "c": [7, 2], "d": [1, 1]}, fractions=(0.5, 0.25, 0.25), seed=0)
    >>> split.train, split.val, split.test
    (['b', 'd'], ['c'], ['a'])
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text

SPLIT_SCHEMA_VERSION = 1
PARTS = ("train", "val", "test")


class SplitError(UserFacingError, ValueError):
    """A split request is impossible, or a split file is malformed; the message says why and what to do."""


@dataclass
class Split:
    """Video names per part.

    Attributes:
        train, val, test: video names, sorted.
        fractions: the requested shares (train, val, test).
        seed: the seed that made it (None when loaded from a file that does not say).
        group_by: the session pattern used, if any.
        missing: for each part, behaviours with positive frames somewhere that this part lacks.
    """

    train: list[str]
    val: list[str]
    test: list[str]
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int | None = None
    group_by: str | None = None
    missing: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for part in PARTS:
            names = [str(n) for n in getattr(self, part)]
            for name in names:
                if name in seen:
                    raise SplitError(f"video {name!r} is in both {seen[name]} and {part}")
                seen[name] = part
            setattr(self, part, sorted(names))

    def part_of(self, name: str) -> str | None:
        """``"train"``, ``"val"``, ``"test"``, or None if the video is not in the split."""
        for part in PARTS:
            if name in getattr(self, part):
                return part
        return None

    def assign(self, part: str, names: Sequence[str]) -> Split:
        """A copy with ``names`` moved (or added) to ``part``; the other videos stay where they are.

        Raises:
            SplitError: an unknown part.
        """
        if part not in PARTS:
            raise SplitError(f"unknown split part {part!r}; parts: {', '.join(PARTS)}")
        moved = {str(n) for n in names}
        parts = {p: [n for n in getattr(self, p) if n not in moved] for p in PARTS}
        parts[part] = parts[part] + sorted(moved)
        return Split(**parts, fractions=self.fractions, seed=self.seed, group_by=self.group_by)

    @property
    def names(self) -> list[str]:
        """Every video in the split."""
        return [*self.train, *self.val, *self.test]

    def to_dict(self) -> dict[str, Any]:
        """DeepEthogram's split.yaml mapping."""
        return {
            "metadata": {
                "split": [float(f) for f in self.fractions],
                "seed": self.seed,
                "group_by": self.group_by,
                "schema_version": SPLIT_SCHEMA_VERSION,
            },
            "train": list(self.train),
            "val": list(self.val),
            "test": list(self.test),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``split.yaml`` atomically."""
        return atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        """Read a ``split.yaml`` (ours or DeepEthogram's).

        Raises:
            SplitError: the file is missing, not YAML, or lacks the train/val/test lists.
        """
        path = Path(path)
        if not path.is_file():
            raise SplitError(f"{path}: split file not found; make one with deg-train split --make")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise SplitError(f"{path}: cannot read the split ({err})") from None
        except RecursionError:
            raise SplitError(f"{path}: cannot read the split (nested too deeply)") from None
        if not isinstance(data, dict):
            raise SplitError(f"{path}: expected a mapping with train, val and test lists")
        parts = {}
        for part in PARTS:
            value = data.get(part) or []
            if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
                raise SplitError(f"{path}: {part} must be a list of video names, got {value!r}")
            parts[part] = [str(v) for v in value]
        meta = data.get("metadata") or {}
        fractions = meta.get("split") if isinstance(meta, dict) else None
        try:
            fractions = tuple(float(f) for f in fractions) if fractions else (0.7, 0.15, 0.15)
        except (TypeError, ValueError):
            raise SplitError(f"{path}: metadata.split must be three fractions, got {fractions!r}") from None
        seed = meta.get("seed") if isinstance(meta, dict) else None
        group_by = meta.get("group_by") if isinstance(meta, dict) else None
        try:
            return cls(**parts, fractions=fractions, seed=seed, group_by=group_by)
        except SplitError as err:
            raise SplitError(f"{path}: {err}") from None


# ---------------------------------------------------------------------------------------------------------------
# Making a split
# ---------------------------------------------------------------------------------------------------------------


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, val, test) shares: three finite numbers >= 0 summing to 1, train > 0.

    Raises:
        SplitError: saying what is wrong.
    """
    try:
        values = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise SplitError(f"split fractions must be numbers, got {fractions!r}") from None
    if len(values) != 3:
        raise SplitError(f"split fractions are three numbers (train, val, test), got {list(values)}")
    if any(not math.isfinite(f) or f < 0 for f in values):
        raise SplitError(f"split fractions must be >= 0, got {list(values)}")
    if abs(sum(values) - 1.0) > 1e-6:
        raise SplitError(f"split fractions must sum to 1, got {list(values)} (sum {sum(values):g})")
    if values[0] <= 0:
        raise SplitError(f"the train fraction must be above 0, got {list(values)}")
    return values  # type: ignore[return-value]


def _group_function(group_by: str | Callable[[str], str] | None) -> Callable[[str], str]:
    if group_by is None:
        return lambda name: name
    if callable(group_by):
        return group_by
    try:
        pattern = re.compile(group_by)
    except re.error as err:
        raise SplitError(f"group_by {group_by!r} is not a valid regular expression ({err})") from None

    def group(name: str) -> str:
        match = pattern.search(name)
        if match is None:
            return name
        return match.group(1) if pattern.groups and match.group(1) is not None else match.group(0)

    return group


def _part_sizes(fractions: tuple[float, float, float], n_units: int) -> list[int]:
    """Units per part: near ``fractions * n_units``, at least 1 for every non-zero fraction."""
    ideal = [f * n_units for f in fractions]
    sizes = [max(1, round(x)) if f > 0 else 0 for f, x in zip(fractions, ideal)]
    while sum(sizes) > n_units:  # shrink the part furthest above its ideal (never below 1)
        k = max((i for i in range(3) if sizes[i] > 1), key=lambda i: sizes[i] - ideal[i])
        sizes[k] -= 1
    while sum(sizes) < n_units:  # grow the part furthest below its ideal
        k = max((i for i in range(3) if fractions[i] > 0), key=lambda i: ideal[i] - sizes[i])
        sizes[k] += 1
    return sizes


def _as_counts(value: Any, n_behaviours: int | None) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "positives"):  # a LabelTable
        return np.asarray(value.positives(), dtype=np.int64)
    return np.asarray(value, dtype=np.int64).reshape(-1)


def make_split(
    videos: Mapping[str, Any],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    group_by: str | Callable[[str], str] | None = None,
    *,
    behaviours: Sequence[str] | None = None,
    max_tries: int = 2000,
) -> Split:
    """Split videos into train/val/test, by video or by session, reproducibly from ``seed``.

    Args:
        videos: video name -> its labels: a :class:`deg_live.labels.LabelTable`, a ``(K,)`` count of positive
            frames per behaviour, or None for an unlabelled video (it still gets a part).
        fractions: shares of videos/sessions for (train, val, test); they must sum to 1.
        seed: the random seed; the same inputs and seed give the same split.
        group_by: None (each video alone), a regular expression (first group or whole match = session name), or a
            function name -> session name. Videos of a session always share a part.
        behaviours: names of the K count columns, for :attr:`Split.missing` (default ``behaviour_<k>``).
        max_tries: the most candidate assignments examined; the search always ends.

    Raises:
        SplitError: bad fractions, no videos, fewer videos/sessions than parts with a fraction above 0, or label
            counts of different lengths.
    """
    fractions = check_fractions(fractions)
    if not videos:
        raise SplitError("no videos to split; add videos first (deg-train add)")
    if max_tries < 1:
        raise SplitError(f"max_tries must be at least 1, got {max_tries}")
    group_of = _group_function(group_by)
    names = sorted(videos)
    counts = {name: _as_counts(videos[name], None) for name in names}
    lengths = {len(c) for c in counts.values() if c is not None}
    if len(lengths) > 1:
        raise SplitError(f"label counts have different numbers of behaviours across videos: {sorted(lengths)}")
    k = lengths.pop() if lengths else 0
    behaviours = list(behaviours) if behaviours is not None else [f"behaviour_{i}" for i in range(k)]
    if len(behaviours) != k:
        raise SplitError(f"{len(behaviours)} behaviour names for {k} count columns")

    # Sessions ("units") and their summed positive counts.
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(str(group_of(name)), []).append(name)
    units = sorted(groups)
    unit_counts = np.zeros((len(units), k), np.int64)
    unit_frames = np.zeros(len(units), np.float64)
    for u, unit in enumerate(units):
        for name in groups[unit]:
            if counts[name] is not None:
                unit_counts[u] += counts[name]
                unit_frames[u] += counts[name].sum()
    needed = sum(1 for f in fractions if f > 0)
    what = "sessions" if group_by is not None else "videos"
    if len(units) < needed:
        raise SplitError(
            f"{len(units)} {what} cannot fill {needed} parts (fractions {list(fractions)}); add videos or set the "
            "validation or test fraction to 0"
        )
    sizes = _part_sizes(fractions, len(units))
    present = unit_counts.sum(axis=0) > 0
    total_frames = max(unit_frames.sum(), 1.0)

    def score(order: Sequence[int]) -> tuple[int, int, float]:
        bounds = np.cumsum([0, *sizes])
        missing_tv = missing_test = 0
        balance = 0.0
        for p in range(3):
            members = list(order[bounds[p] : bounds[p + 1]])
            if sizes[p] == 0:
                continue
            have = unit_counts[members].sum(axis=0) > 0
            lacking = int((present & ~have).sum())
            if p < 2:
                missing_tv += lacking
            else:
                missing_test += lacking
            balance += abs(unit_frames[members].sum() / total_frames - fractions[p])
        return missing_tv, missing_test, balance

    rng = np.random.default_rng(seed)
    n_candidates = math.factorial(len(units)) // math.prod(math.factorial(s) for s in sizes)
    if n_candidates <= max_tries:
        candidates = list(_all_assignments(len(units), sizes))
        rng.shuffle(candidates)  # ties are broken by the seed, not by name order
    else:
        candidates = (list(rng.permutation(len(units))) for _ in range(max_tries))
    best_order, best_score = None, None
    for order in candidates:
        s = score(order)
        if best_score is None or s < best_score:
            best_order, best_score = list(order), s
            if s[0] == 0 and s[1] == 0:
                break  # every behaviour everywhere: good enough, stop early
    assert best_order is not None
    bounds = np.cumsum([0, *sizes])
    parts: dict[str, list[str]] = {}
    missing: dict[str, list[str]] = {}
    for p, part in enumerate(PARTS):
        members = best_order[bounds[p] : bounds[p + 1]]
        parts[part] = [name for u in members for name in groups[units[u]]]
        if sizes[p]:
            have = unit_counts[members].sum(axis=0) > 0
            lacking = [behaviours[i] for i in np.flatnonzero(present & ~have)]
            if lacking:
                missing[part] = lacking
    pattern = group_by if isinstance(group_by, str) or group_by is None else getattr(group_by, "__name__", "custom")
    return Split(**parts, fractions=fractions, seed=seed, group_by=pattern, missing=missing)


def _all_assignments(n: int, sizes: Sequence[int]):
    """Every order (train members, val members, test members) with the given part sizes, each part sorted."""
    everyone = range(n)
    for train in itertools.combinations(everyone, sizes[0]):
        rest = [i for i in everyone if i not in train]
        for val in itertools.combinations(rest, sizes[1]):
            test = [i for i in rest if i not in val]
            yield [*train, *val, *test]
