"""Per-frame behaviour labels in DeepEthogram's CSV layout: read, validate, edit, write.

A label file ``DATA/<video>/<video>_labels.csv`` has one row per video frame. Its first column is the frame index
(DeepEthogram writes it with an empty header), then ``background`` and one column per behaviour, each holding

- ``1``: the behaviour is present in this frame,
- ``0``: it is absent,
- ``-1``: nobody labelled it (the frame/behaviour is masked out of training, not the whole video).

``background`` is 1 where no other behaviour is present. DeepEthogram itself writes ``-1.0`` when it adds a behaviour
column, so integral floats are accepted; anything else (``2``, ``yes``, an empty cell) is a :class:`LabelError` that
names the file, row and column.

This module is the one reader and writer of label files for both sides: deg_train's projects and BORIS import
(re-exported by :mod:`deg_train.project`) and the viewer's review of recordings (:mod:`deg_live.viewer.review`).
It needs numpy only, so a machine without torch can read and check labels.

Example:
    >>> table = read_labels("DATA/mouse1/mouse1_labels.csv", n_frames=9000)
    >>> table.values.shape          # (N, K) int8
    (9000, 4)
    >>> table = table.add_behaviour("rearing")  # a new column, -1 (unlabelled) everywhere
    >>> write_labels(table, "DATA/mouse1/mouse1_labels.csv")
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text

BACKGROUND = "background"
LABEL_VALUES = (-1, 0, 1)

# Cell text -> value; anything not here goes through float() and must be integral and in LABEL_VALUES.
_FAST_VALUES = {"1": 1, "0": 0, "-1": -1, "1.0": 1, "0.0": 0, "-1.0": -1}


class LabelError(UserFacingError, ValueError):
    """A label file or label edit is wrong; the message names the file, row or column and what to do."""


@dataclass
class LabelTable:
    """Per-frame labels of one video.

    Attributes:
        behaviours: column names, ``background`` first.
        values: ``(N, K) int8`` in {1, 0, -1}; row i is frame i, column k is ``behaviours[k]``.
        path: the file these labels were read from, if any (for messages).
    """

    behaviours: list[str]
    values: np.ndarray
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        self.behaviours = list(self.behaviours)
        values = np.asarray(self.values)
        if values.ndim != 2 or values.shape[1] != len(self.behaviours):
            raise LabelError(
                f"{self._where()}labels have shape {values.shape}, expected (frames, {len(self.behaviours)})"
            )
        _check_names(self.behaviours, self._where())
        bad = ~np.isin(values, LABEL_VALUES)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise LabelError(
                f"{self._where()}row {row}, column {self.behaviours[col]!r}: value {values[row, col]!r} "
                "is not 1, 0 or -1"
            )
        self.values = values.astype(np.int8, copy=False)

    def _where(self) -> str:
        return f"{self.path}: " if self.path is not None else ""

    # -- shape and masks ---------------------------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """N, the number of frames (rows)."""
        return int(self.values.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    def labelled_mask(self) -> np.ndarray:
        """``(N, K) bool``: True where a frame/behaviour pair is labelled (value >= 0)."""
        return self.values >= 0

    def labelled_frames(self) -> np.ndarray:
        """``(N,) bool``: frames with at least one labelled behaviour (the frames a supervised stage can use)."""
        return (self.values >= 0).any(axis=1)

    def fully_labelled_frames(self) -> np.ndarray:
        """``(N,) bool``: frames where every behaviour is labelled."""
        return (self.values >= 0).all(axis=1)

    def positives(self) -> np.ndarray:
        """``(K,) int64``: frames where each behaviour is present (value 1)."""
        return (self.values == 1).sum(axis=0).astype(np.int64)

    def labelled_counts(self) -> np.ndarray:
        """``(K,) int64``: frames where each behaviour is labelled (value 0 or 1)."""
        return (self.values >= 0).sum(axis=0).astype(np.int64)

    def column(self, behaviour: str) -> np.ndarray:
        """``(N,) int8`` values of one behaviour."""
        return self.values[:, self._index(behaviour)]

    def _index(self, behaviour: str) -> int:
        try:
            return self.behaviours.index(behaviour)
        except ValueError:
            raise LabelError(
                f"{self._where()}no behaviour {behaviour!r} (behaviours: {', '.join(self.behaviours)})"
            ) from None

    # -- edits (each returns a new table; the original is untouched) -------------------------------------------

    def add_behaviour(self, name: str, value: int = -1) -> LabelTable:
        """A copy with a new column ``name`` filled with ``value`` (-1: unlabelled, the default; or 0: absent)."""
        if value not in (-1, 0):
            raise LabelError(f"a new behaviour starts unlabelled (-1) or absent (0), not {value!r}")
        if name in self.behaviours:
            raise LabelError(f"{self._where()}behaviour {name!r} already exists")
        column = np.full((self.n_frames, 1), value, np.int8)
        return LabelTable([*self.behaviours, name], np.concatenate([self.values, column], axis=1), self.path)

    def remove_behaviour(self, name: str) -> LabelTable:
        """A copy without column ``name`` (``background`` cannot be removed).

        Frames where ``name`` was present and every other behaviour is labelled absent become background (1).
        """
        if name == BACKGROUND:
            raise LabelError("the background column cannot be removed")
        k = self._index(name)
        keep = [i for i in range(len(self.behaviours)) if i != k]
        values = self.values[:, keep].copy()
        names = [self.behaviours[i] for i in keep]
        if BACKGROUND in names:
            b = names.index(BACKGROUND)
            others = [i for i in range(len(names)) if i != b]
            now_empty = (self.values[:, k] == 1) & (values[:, others] == 0).all(axis=1)
            values[now_empty, b] = 1
        return LabelTable(names, values, self.path)

    def reorder(self, behaviours: Sequence[str], *, fill: int | None = None) -> LabelTable:
        """A copy with columns in the order of ``behaviours``.

        Args:
            behaviours: the wanted columns (usually the project's class names).
            fill: value for wanted columns this table lacks (-1 or 0); None makes a missing column an error.

        Raises:
            LabelError: this table has columns not in ``behaviours`` (listed), or lacks some and ``fill`` is None.
        """
        behaviours = list(behaviours)
        extra = [b for b in self.behaviours if b not in behaviours]
        if extra:
            raise LabelError(
                f"{self._where()}unknown behaviour column(s) {', '.join(extra)} (the project has: "
                f"{', '.join(behaviours)}); add them to the project first (deg-train labels add-behaviour NAME) "
                "or remove those columns"
            )
        missing = [b for b in behaviours if b not in self.behaviours]
        if missing and fill is None:
            raise LabelError(
                f"{self._where()}missing behaviour column(s) {', '.join(missing)}; add them to the file, or "
                "import with --fill-missing -1 (unlabelled) or 0 (absent)"
            )
        if fill is not None and fill not in (-1, 0):
            raise LabelError(f"missing columns are filled with -1 (unlabelled) or 0 (absent), not {fill!r}")
        values = np.empty((self.n_frames, len(behaviours)), np.int8)
        for k, name in enumerate(behaviours):
            values[:, k] = self.values[:, self.behaviours.index(name)] if name in self.behaviours else fill
        return LabelTable(behaviours, values, self.path)

    def with_background(self) -> LabelTable:
        """A copy whose ``background`` column is recomputed from the other behaviours.

        Background is 1 where every other behaviour is labelled 0, 0 where any is 1, and -1 otherwise. The column
        is added first if missing.
        """
        others = [k for k, b in enumerate(self.behaviours) if b != BACKGROUND]
        rest = self.values[:, others]
        background = np.full(self.n_frames, -1, np.int8)
        background[(rest == 0).all(axis=1)] = 1
        background[(rest == 1).any(axis=1)] = 0
        names = [BACKGROUND] + [self.behaviours[k] for k in others]
        return LabelTable(names, np.concatenate([background[:, None], rest], axis=1), self.path)


def _check_names(names: Sequence[str], where: str = "") -> None:
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise LabelError(f"{where}empty behaviour name in {list(names)}")
        if name != name.strip() or any(c in name for c in ",\n\r\"'"):
            raise LabelError(f"{where}behaviour name {name!r} has spaces at its ends, a comma, quote or newline")
        if name in seen:
            raise LabelError(f"{where}duplicate behaviour column {name!r}")
        seen.add(name)


def check_behaviour_names(names: Iterable[str]) -> list[str]:
    """Validate a list of behaviour names (non-empty, unique, no commas or quotes) and return it.

    Raises:
        LabelError: naming the offending name.
    """
    names = list(names)
    _check_names(names)
    return names


# ---------------------------------------------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------------------------------------------


def _parse_cell(text: str) -> int | None:
    value = _FAST_VALUES.get(text)
    if value is not None:
        return value
    try:
        number = float(text)
    except ValueError:
        return None
    if number.is_integer() and int(number) in LABEL_VALUES:
        return int(number)
    return None


def read_labels(
    path: str | os.PathLike,
    *,
    n_frames: int | None = None,
    behaviours: Sequence[str] | None = None,
    fill_missing: int | None = None,
) -> LabelTable:
    """Read and validate a DeepEthogram label CSV.

    Args:
        path: the CSV file.
        n_frames: the video's frame count; the file must have exactly this many rows.
        behaviours: the project's behaviours (background first); the columns are checked against them and put in
            this order. None keeps the file's columns as they are.
        fill_missing: value (-1 or 0) for project behaviours the file lacks; None makes that an error. A missing
            ``background`` column is always computed from the others, as DeepEthogram does.

    Returns:
        The labels, ``background`` first.

    Raises:
        LabelError: the file is missing or malformed: no rows, duplicate or unknown columns, a first column that
            is not the frame index 0..N-1, values other than 1/0/-1, or a row count different from ``n_frames``.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: label file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelError(f"{path}: cannot read as a text CSV ({err})") from None
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:  # a cell beyond the csv module's field limit (128 KiB), a NUL in a quoted field
        raise LabelError(f"{path}: not a label CSV ({err})") from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise LabelError(f"{path}: empty file; expected a header row (,background,behaviour...) and one row per frame")
    header = [cell.strip() for cell in rows[0]]
    if len(header) < 2:
        raise LabelError(f"{path}: the header has {len(header)} column(s); expected the frame index, then behaviours")
    names = header[1:]
    seen: set[str] = set()
    for name in names:
        if not name:
            raise LabelError(f"{path}: a behaviour column has an empty name (header: {rows[0]})")
        if name in seen:
            raise LabelError(f"{path}: duplicate column {name!r}; each behaviour must appear once")
        seen.add(name)
    body = rows[1:]
    if not body:
        raise LabelError(f"{path}: no label rows after the header")
    n_cols = len(header)
    values = np.empty((len(body), n_cols - 1), np.int8)
    for i, row in enumerate(body):
        line = i + 2  # 1-based file line numbers, header is line 1
        if len(row) != n_cols:
            raise LabelError(f"{path}: line {line} has {len(row)} cells, the header has {n_cols}")
        index_text = row[0].strip()
        try:
            index = float(index_text)
        except ValueError:
            index = None
        if index is None or index != i:
            raise LabelError(
                f"{path}: line {line}: the first column must be the frame index {i}, got {index_text!r} "
                "(DeepEthogram's layout: frame index, then background, then one column per behaviour)"
            )
        for k in range(1, n_cols):
            value = _parse_cell(row[k].strip())
            if value is None:
                raise LabelError(
                    f"{path}: line {line} (frame {i}), column {names[k - 1]!r}: {row[k]!r} is not 1, 0 or -1"
                )
            values[i, k - 1] = value
    if n_frames is not None and len(body) != n_frames:
        raise LabelError(
            f"{path}: {len(body)} label rows but the video has {n_frames} frames; the file must have one row per "
            "frame (is it the label file of another video?)"
        )
    try:
        table = LabelTable(names, values, path)
    except LabelError:
        raise
    if BACKGROUND not in table.behaviours:
        table = table.with_background()
    elif table.behaviours[0] != BACKGROUND:
        table = table.reorder([BACKGROUND] + [b for b in table.behaviours if b != BACKGROUND])
    if behaviours is not None:
        table = table.reorder(behaviours, fill=fill_missing)
    return table


def labels_to_csv(table: LabelTable) -> str:
    """The CSV text of ``table`` in DeepEthogram's layout (empty index header, integer cells)."""
    header = "," + ",".join(table.behaviours) + "\n"
    if table.n_frames == 0:
        return header
    # Rows repeat a few patterns of {-1, 0, 1}: format each pattern once (a 200,000-row file in ~0.1 s, not ~1 s).
    patterns, which = np.unique(table.values, axis=0, return_inverse=True)
    texts = [",".join(str(int(v)) for v in row) for row in patterns]
    return header + "".join([f"{i},{texts[k]}\n" for i, k in enumerate(which.reshape(-1).tolist())])


def write_labels(table: LabelTable, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` atomically (a crash never leaves half a label file) and return the path."""
    return atomic_write_text(path, labels_to_csv(table))


def empty_labels(behaviours: Sequence[str], n_frames: int, value: int = -1) -> LabelTable:
    """A table of ``n_frames`` rows with every value ``value`` (-1: nothing labelled yet)."""
    return LabelTable(list(behaviours), np.full((n_frames, len(behaviours)), value, np.int8))
