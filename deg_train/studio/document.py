"""The labels of one video being edited: every edit the studio makes, with undo and redo (numpy only, no Qt).

The values are a :class:`deg_live.labels.LabelTable`'s ``(N, K) int8`` array in {1, 0, -1}, ``background``
first, and the rules are DeepEthogram's:

- a frame is *labelled* when its row holds no -1; a person who labels a frame labels all of it, so touching an
  unlabelled row makes its other behaviours absent (0);
- ``background`` is 1 exactly where a labelled row has no other behaviour present; it is recomputed for every row
  an edit touches;
- painting ``background`` makes every other behaviour of those rows absent; erasing ``background`` makes the rows
  unlabelled again (absent background with nothing else present means nothing);
- in an exclusive project (one behaviour per frame) painting a behaviour makes the others absent.

Every edit replaces one contiguous block of rows and is recorded as (rows, before, after), so undo and redo cost
the size of the edit, not of the video: a 200,000-frame video edits as fast as a short one. Edits that share a
``merge`` key (one toggle-and-step bout) become one undo step.

Example:
    >>> doc = LabelDocument(read_labels("v_labels.csv"))
    >>> doc.paint([2], 100, 150)          # behaviour 2 present on frames 100..149
    >>> doc.undo()
    (100, 150)
    >>> write_labels(doc.table(), "v_labels.csv")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deg_live.labels import BACKGROUND, LabelError, LabelTable


@dataclass
class _Edit:
    """One undo step: rows ``[start, stop)`` were ``before`` and became ``after``."""

    start: int
    stop: int
    before: np.ndarray
    after: np.ndarray
    merge: Any = None


class LabelDocument:
    """Per-frame labels of one video under edit.

    Args:
        table: the labels to start from (``background`` must be the first column; it is added if missing).
        exclusive: one behaviour per frame (the project's ``labels.exclusive``).

    Attributes:
        behaviours: the K column names, ``background`` first.
        values: ``(N, K) int8``, edited in place; read it, change it only through the methods.
        revision: bumped by every change (edits, undo, redo); compare with :attr:`saved_revision`.
    """

    def __init__(self, table: LabelTable, *, exclusive: bool = False):
        if BACKGROUND not in table.behaviours:
            table = table.with_background()
        if table.behaviours[0] != BACKGROUND:
            table = table.reorder([BACKGROUND] + [b for b in table.behaviours if b != BACKGROUND])
        self.behaviours = list(table.behaviours)
        self.values = np.array(table.values, dtype=np.int8, copy=True)
        self.exclusive = bool(exclusive)
        self.path = table.path
        self.revision = 0
        self.saved_revision = 0
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []

    # -- reading --------------------------------------------------------------------------------------------------

    @property
    def n_frames(self) -> int:
        """N."""
        return int(self.values.shape[0])

    @property
    def dirty(self) -> bool:
        """Whether there are changes since the last :meth:`mark_saved`."""
        return self.revision != self.saved_revision

    def mark_saved(self) -> None:
        """Record that the current values are on disk."""
        self.saved_revision = self.revision

    def table(self) -> LabelTable:
        """The labels as a :class:`LabelTable` (a copy), ready for :func:`deg_live.labels.write_labels`."""
        return LabelTable(list(self.behaviours), self.values.copy(), self.path)

    def labelled_rows(self) -> np.ndarray:
        """``(N,) bool``: frames whose row holds no -1."""
        return (self.values >= 0).all(axis=1)

    def unfinished(self) -> bool:
        """Whether any cell is still unlabelled (-1)."""
        return bool((self.values < 0).any())

    def counts(self) -> dict[str, int]:
        """``frames``, ``labelled`` and ``unlabelled`` frame counts (for the info box)."""
        labelled = int(self.labelled_rows().sum())
        return {"frames": self.n_frames, "labelled": labelled, "unlabelled": self.n_frames - labelled}

    def index(self, behaviour: str) -> int:
        """Column of ``behaviour``.

        Raises:
            LabelError: no such behaviour (the message lists them).
        """
        try:
            return self.behaviours.index(behaviour)
        except ValueError:
            raise LabelError(f"no behaviour {behaviour!r} (behaviours: {', '.join(self.behaviours)})") from None

    # -- edits ----------------------------------------------------------------------------------------------------

    def paint(self, behaviours: Sequence[int], start: int, stop: int, present: bool = True, *, merge: Any = None):
        """Mark ``behaviours`` (column indices) present, or absent with ``present=False``, on frames ``[start, stop)``.

        Returns:
            The rows changed ``(start, stop)``, or None when nothing changed.
        """
        start, stop = self._clip(start, stop)
        if start >= stop or not behaviours:
            return None
        block = self.values[start:stop].copy()
        for k in behaviours:
            if not 0 <= k < len(self.behaviours):
                raise LabelError(f"behaviour index {k} out of range (0..{len(self.behaviours) - 1})")
            if k == 0:
                if present:
                    block[:] = 0
                    block[:, 0] = 1
                else:
                    block[:] = -1
                continue
            block[block < 0] = 0
            block[:, k] = 1 if present else 0
            if present and self.exclusive:
                others = [j for j in range(1, len(self.behaviours)) if j != k]
                block[:, others] = 0
            _recompute_background(block)
        return self._apply(start, block, merge)

    def clear(self, start: int, stop: int, *, merge: Any = None):
        """Make frames ``[start, stop)`` unlabelled (-1 everywhere). Returns the rows changed, or None."""
        start, stop = self._clip(start, stop)
        if start >= stop:
            return None
        return self._apply(start, np.full((stop - start, len(self.behaviours)), -1, np.int8), merge)

    def finalise(self):
        """DeepEthogram's finalise: every unlabelled frame becomes background, every -1 left becomes 0.

        Returns:
            The rows changed, or None when the video was already fully labelled.
        """
        missing = np.flatnonzero((self.values < 0).any(axis=1))
        if missing.size == 0:
            return None
        start, stop = int(missing[0]), int(missing[-1]) + 1
        block = self.values[start:stop].copy()
        block[block < 0] = 0
        _recompute_background(block)
        return self._apply(start, block, None)

    def import_predictions(
        self, decisions: np.ndarray, behaviours: Sequence[str], *, only_unlabelled: bool = True
    ) -> tuple[int, int] | None:
        """Take a model's decisions as labels.

        Args:
            decisions: ``(N, K') bool``, one row per video frame (rows past the end are ignored; missing rows are
                left as they are).
            behaviours: the K' names of ``decisions``' columns; those the labels lack are ignored, and the labels'
                behaviours the model lacks become absent on the imported rows.
            only_unlabelled: True: only frames nobody labelled yet; False: every frame (labels are overwritten).

        Returns:
            The rows changed, or None.
        """
        decisions = np.asarray(decisions, dtype=bool)
        n = min(self.n_frames, decisions.shape[0])
        rows = np.ones(n, bool) if not only_unlabelled else ~self.labelled_rows()[:n]
        if not rows.any():
            return None
        hits = np.flatnonzero(rows)
        start, stop = int(hits[0]), int(hits[-1]) + 1
        block = self.values[start:stop].copy()
        new = np.zeros_like(block)
        for k, name in enumerate(self.behaviours):
            if k and name in behaviours:
                new[:, k] = decisions[start:stop, list(behaviours).index(name)]
        if self.exclusive:  # a multi-label model's decisions may overlap: keep the first behaviour present
            on = new[:, 1:] == 1
            first = np.argmax(on, axis=1)
            keep = np.zeros_like(on)
            keep[np.arange(len(on)), first] = on[np.arange(len(on)), first]
            new[:, 1:] = keep
        _recompute_background(new)
        take = rows[start:stop]
        block[take] = new[take]
        return self._apply(start, block, None)

    # -- behaviours (these start a new history: the column count changes) ----------------------------------------

    def add_behaviour(self, name: str) -> None:
        """Add a behaviour column, unlabelled (-1) everywhere.

        Nobody has looked for it yet (``deg-train labels add-behaviour``'s default too). The other columns keep
        their labels; finalising (or painting) fills it in.
        """
        self._reset(self.table().add_behaviour(name, -1))

    def remove_behaviour(self, name: str) -> None:
        """Remove a behaviour; frames where it alone was present become background."""
        self._reset(self.table().remove_behaviour(name))

    def _reset(self, table: LabelTable) -> None:
        self.behaviours = list(table.behaviours)
        self.values = np.array(table.values, dtype=np.int8, copy=True)
        self._undo.clear()
        self._redo.clear()
        self.revision += 1

    # -- undo -----------------------------------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        """Whether :meth:`undo` has something to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether :meth:`redo` has something to redo."""
        return bool(self._redo)

    def undo(self) -> tuple[int, int] | None:
        """Undo the last edit; returns the rows it changed, or None when there is nothing to undo."""
        if not self._undo:
            return None
        edit = self._undo.pop()
        self.values[edit.start : edit.stop] = edit.before
        self._redo.append(edit)
        self.revision += 1
        return edit.start, edit.stop

    def redo(self) -> tuple[int, int] | None:
        """Redo the last undone edit; returns the rows it changed, or None."""
        if not self._redo:
            return None
        edit = self._redo.pop()
        self.values[edit.start : edit.stop] = edit.after
        edit.merge = None  # a redone step never absorbs later edits
        self._undo.append(edit)
        self.revision += 1
        return edit.start, edit.stop

    def end_merge(self) -> None:
        """Close the current undo step: the next edit starts a new one whatever its merge key."""
        if self._undo:
            self._undo[-1].merge = None

    # -- internals ------------------------------------------------------------------------------------------------

    def _clip(self, start: int, stop: int) -> tuple[int, int]:
        return max(0, int(start)), min(self.n_frames, int(stop))

    def _apply(self, start: int, block: np.ndarray, merge: Any) -> tuple[int, int] | None:
        stop = start + len(block)
        before = self.values[start:stop].copy()
        if np.array_equal(before, block):
            return None
        last = self._undo[-1] if self._undo else None
        if merge is not None and last is not None and last.merge == merge:
            lo, hi = min(start, last.start), max(stop, last.stop)
            merged_before = self.values[lo:hi].copy()  # rows between the two edits are unchanged by both
            merged_before[start - lo : stop - lo] = before
            merged_before[last.start - lo : last.stop - lo] = last.before  # the older state wins
            self.values[start:stop] = block
            self._undo[-1] = _Edit(lo, hi, merged_before, self.values[lo:hi].copy(), merge)
        else:
            self.values[start:stop] = block
            self._undo.append(_Edit(start, stop, before, block.copy(), merge))
        self._redo.clear()
        self.revision += 1
        return start, stop


def _recompute_background(block: np.ndarray) -> None:
    """Set column 0 of labelled rows of ``block`` ``(n, K)`` in place: 1 where no other behaviour is present."""
    labelled = (block[:, 1:] >= 0).all(axis=1) if block.shape[1] > 1 else block[:, 0] >= 0
    present = (block[:, 1:] == 1).any(axis=1) if block.shape[1] > 1 else np.zeros(len(block), bool)
    block[labelled, 0] = np.where(present[labelled], 0, 1)
