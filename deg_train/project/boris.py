"""Import BORIS event tables into per-frame labels.

BORIS (Behavioral Observation Research Interactive Software) codes behaviours as timed events. Two of its tabular
exports (CSV or TSV) are read here:

- **Export events** ("tabular events"): one row per event, with columns ``Behavior``, ``Behavior type``
  (``START``, ``STOP`` or ``POINT``; older versions call the column ``Status``) and ``Time`` (seconds), and usually
  ``Subject``, ``Observation id``, ``FPS``, ``Media duration (s)``. Older versions put a few lines of observation
  facts above the header; they are skipped.
- **Export aggregated events**: one row per bout, with ``Behavior``, ``Behavior type`` (``STATE`` or ``POINT``),
  ``Start (s)``, ``Stop (s)`` and usually ``Subject`` and ``Observation id``.

A state bout from ``start`` to ``stop`` seconds labels frames ``start * fps`` up to (not including)
``stop * fps``, both rounded half up — at least one frame; a point event labels the one frame ``time * fps``
(rounded the same way). Inside the observed interval (the whole video unless told otherwise) every behaviour
of the table is 0 where it has no bout; outside it, frames are ``outside`` (-1 unlabelled by default, or 0).
``background`` is computed: 1 where every other behaviour is 0. Behaviours in the file that the project does not
have are an error listing them, unless ``add_missing`` (they become new columns).

Example:
    >>> table = import_boris("mouse1_boris.tsv", n_frames=9000, fps=30.0, behaviours=project.behaviours)
    >>> project.save_labels("mouse1", table)
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deg_live.labels import BACKGROUND, LabelError, LabelTable, check_behaviour_names

_MISSING = {"", "NA", "nan", "NaN", "None"}


@dataclass(frozen=True)
class BorisBout:
    """One coded bout: a state from ``start`` to ``stop`` seconds, or a point event (``stop == start``)."""

    behaviour: str
    start: float
    stop: float
    point: bool = False
    subject: str = ""
    observation: str = ""


@dataclass
class BorisEvents:
    """The bouts read from one BORIS export.

    Attributes:
        path: the file.
        kind: ``"events"`` (START/STOP/POINT rows) or ``"aggregated"`` (bouts with start and stop).
        bouts: every bout, paired.
        fps: the frame rate BORIS recorded for the media, if the file says.
        media_duration: the media's duration in seconds, if the file says.
    """

    path: Path
    kind: str
    bouts: list[BorisBout] = field(default_factory=list)
    fps: float | None = None
    media_duration: float | None = None

    @property
    def behaviours(self) -> list[str]:
        """Behaviours coded in the file, in order of first appearance."""
        return list(dict.fromkeys(b.behaviour for b in self.bouts))

    @property
    def subjects(self) -> list[str]:
        """Subjects in the file (``""`` for BORIS's "no focal subject")."""
        return list(dict.fromkeys(b.subject for b in self.bouts))

    @property
    def observations(self) -> list[str]:
        """Observation ids in the file."""
        return list(dict.fromkeys(b.observation for b in self.bouts))


def _float(text: str, path: Path, line: int, column: str) -> float | None:
    text = (text or "").strip()
    if text in _MISSING:
        return None
    try:
        value = float(text)
    except ValueError:
        # Multi-player observations write "player #1:25.000"; take the first number.
        head = text.split(";")[0].split("|")[0].split(":")[-1].strip()
        try:
            value = float(head)
        except ValueError:
            raise LabelError(f"{path}: line {line}, column {column!r}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise LabelError(f"{path}: line {line}, column {column!r}: {text!r} is not a finite number")
    return value


def _frame(seconds: float, fps: float) -> int:
    """The frame shown at ``seconds``: rounded half up (not to even), so 3.5 frames is frame 4 everywhere."""
    return math.floor(seconds * fps + 0.5)


def read_boris(path: str | os.PathLike) -> BorisEvents:
    """Read a BORIS "events" or "aggregated events" export (CSV or TSV) and pair its START/STOP rows into bouts.

    Raises:
        LabelError: the file is missing, is not one of these exports, has a bad number, or has unpaired
            START/STOP events (naming the behaviour and time).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelError(f"{path}: BORIS export not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise LabelError(f"{path}: cannot read as text ({err}); export from BORIS as CSV or TSV") from None
    first_lines = text.splitlines()[:50]
    delimiter = (
        "\t" if sum(line.count("\t") for line in first_lines) > sum(line.count(",") for line in first_lines) else ","
    )
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    header_at = None
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row]
        if "Behavior" in cells and ("Time" in cells or "Start (s)" in cells):
            header_at = i
            break
    if header_at is None:
        raise LabelError(
            f"{path}: not a BORIS events export (no header with 'Behavior' and 'Time' or 'Start (s)'); use BORIS's "
            "Observations > Export events (tabular) or Export aggregated events, as CSV or TSV"
        )
    header = [c.strip() for c in rows[header_at]]
    col = {name: i for i, name in reversed(list(enumerate(header)))}  # first occurrence wins
    kind = "aggregated" if "Start (s)" in col else "events"
    type_col = "Behavior type" if "Behavior type" in col else "Status" if "Status" in col else None
    if kind == "events" and type_col is None:
        raise LabelError(f"{path}: events export without a 'Behavior type' (or 'Status') column")
    if kind == "aggregated" and "Stop (s)" not in col:
        raise LabelError(f"{path}: aggregated export without a 'Stop (s)' column")

    def cell(row: list[str], name: str) -> str:
        i = col.get(name)
        return row[i].strip() if i is not None and i < len(row) else ""

    events = BorisEvents(path, kind)
    open_states: dict[tuple[str, str, str], tuple[float, int]] = {}
    for i in range(header_at + 1, len(rows)):
        row, line = rows[i], i + 1
        if not any(c.strip() for c in row):
            continue
        behaviour = cell(row, "Behavior")
        if not behaviour:
            raise LabelError(f"{path}: line {line}: empty 'Behavior'")
        subject = cell(row, "Subject")
        subject = "" if subject in ("No focal subject", "NA") else subject
        observation = cell(row, "Observation id")
        kind_of = (cell(row, type_col) if type_col else "").upper()
        if events.fps is None and "FPS" in col:
            events.fps = _float(cell(row, "FPS"), path, line, "FPS")
        for name in ("Media duration (s)", "Total length", "Media total length"):
            if events.media_duration is None and name in col:
                events.media_duration = _float(cell(row, name), path, line, name)
        if kind == "aggregated":
            start = _float(cell(row, "Start (s)"), path, line, "Start (s)")
            stop = _float(cell(row, "Stop (s)"), path, line, "Stop (s)")
            if start is None:
                raise LabelError(f"{path}: line {line}: {behaviour!r} has no start time")
            point = kind_of == "POINT" or stop is None
            stop = start if point else stop
            if stop < start:
                raise LabelError(f"{path}: line {line}: {behaviour!r} stops ({stop} s) before it starts ({start} s)")
            events.bouts.append(BorisBout(behaviour, start, stop, point, subject, observation))
            continue
        time = _float(cell(row, "Time"), path, line, "Time")
        if time is None:
            raise LabelError(f"{path}: line {line}: {behaviour!r} has no time")
        key = (observation, subject, behaviour)
        if kind_of == "POINT":
            events.bouts.append(BorisBout(behaviour, time, time, True, subject, observation))
        elif kind_of == "START":
            if key in open_states:
                raise LabelError(
                    f"{path}: line {line}: {behaviour!r} starts again at {time} s without stopping after its start "
                    f"at {open_states[key][0]} s (line {open_states[key][1]}); fix the pairing in BORIS"
                )
            open_states[key] = (time, line)
        elif kind_of == "STOP":
            if key not in open_states:
                raise LabelError(f"{path}: line {line}: {behaviour!r} stops at {time} s but never started")
            start, _ = open_states.pop(key)
            if time < start:
                raise LabelError(f"{path}: line {line}: {behaviour!r} stops ({time} s) before it starts ({start} s)")
            events.bouts.append(BorisBout(behaviour, start, time, False, subject, observation))
        else:
            raise LabelError(
                f"{path}: line {line}: behaviour type {kind_of!r} of {behaviour!r} is not START, STOP or POINT"
            )
    if open_states:
        (observation, subject, behaviour), (time, line) = next(iter(open_states.items()))
        raise LabelError(
            f"{path}: line {line}: {behaviour!r} starts at {time} s and never stops; fix the pairing in BORIS "
            "(BORIS's 'Check state events' finds these)"
        )
    return events


def _select(values: list[str], wanted: str | None, what: str, flag: str, path: Path) -> str | None:
    if wanted is not None:
        if wanted == "all":
            return None
        if wanted not in values:
            raise LabelError(f"{path}: no {what} {wanted!r} (the file has: {', '.join(map(repr, values))})")
        return wanted
    if len(values) > 1:
        raise LabelError(
            f"{path}: the file has several {what}s ({', '.join(map(repr, values))}); choose one with {flag} NAME "
            f"(or {flag} all to merge them)"
        )
    return None


def boris_to_labels(
    events: BorisEvents,
    n_frames: int,
    fps: float,
    behaviours: Sequence[str] | None = None,
    *,
    subject: str | None = None,
    observation: str | None = None,
    add_missing: bool = False,
    observed: str | tuple[float, float] = "video",
    outside: int = -1,
) -> LabelTable:
    """Turn BORIS bouts into a per-frame :class:`LabelTable` of ``n_frames`` rows.

    Args:
        events: from :func:`read_boris`.
        n_frames: the video's frame count.
        fps: the video's frame rate (BORIS times are seconds of the media).
        behaviours: the project's behaviours (background first); None: the file's behaviours.
        subject: which subject's events to use, or ``"all"``; needed when the file has several.
        observation: which observation's events to use, or ``"all"``; needed when the file has several.
        add_missing: behaviours in the file but not in ``behaviours`` become new columns instead of an error.
        observed: the part of the video that was coded: ``"video"`` (all of it), ``"events"`` (from the first
            bout's start to the last bout's stop), or ``(start_s, stop_s)``.
        outside: label of frames outside the observed part: -1 (unlabelled) or 0 (absent).

    Raises:
        LabelError: unknown behaviours (listed), several subjects/observations and none chosen, a bout after the
            end of the video, or bad arguments.
    """
    path = events.path
    if outside not in (-1, 0):
        raise LabelError(f"frames outside the observed part are -1 (unlabelled) or 0 (absent), not {outside!r}")
    if not fps or fps <= 0:
        raise LabelError(f"{path}: need the video's frame rate to turn seconds into frames, got {fps!r}")
    want_observation = _select(events.observations, observation, "observation", "--observation", path)
    want_subject = _select(events.subjects, subject, "subject", "--subject", path)
    bouts = [
        b
        for b in events.bouts
        if (want_observation is None or b.observation == want_observation)
        and (want_subject is None or b.subject == want_subject)
    ]
    coded = list(dict.fromkeys(b.behaviour for b in bouts))
    names = list(behaviours) if behaviours else [BACKGROUND]
    if BACKGROUND not in names:
        names = [BACKGROUND, *names]
    unknown = [b for b in coded if b not in names]
    if unknown and not add_missing:
        raise LabelError(
            f"{path}: behaviours not in the project: {', '.join(unknown)} (project: {', '.join(names)}); add them "
            "with --add-missing, or first with `deg-train labels add-behaviour NAME`"
        )
    names = names + unknown
    check_behaviour_names(names)

    if observed == "video":
        first, last = 0, n_frames
    elif observed == "events":
        if not bouts:
            raise LabelError(f"{path}: no events to take the observed interval from")
        first = max(0, _frame(min(b.start for b in bouts), fps))
        last = min(n_frames, max(_frame(max(b.stop for b in bouts), fps), first + 1))
    else:
        try:
            start_s, stop_s = (float(x) for x in observed)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise LabelError(f"observed must be 'video', 'events' or (start_s, stop_s), got {observed!r}") from None
        if stop_s <= start_s:
            raise LabelError(f"observed interval ({start_s}, {stop_s}) s is empty")
        first, last = max(0, _frame(start_s, fps)), min(n_frames, _frame(stop_s, fps))

    values = np.full((n_frames, len(names)), outside, np.int8)
    values[first:last, :] = 0
    for bout in bouts:
        begin = _frame(bout.start, fps)
        if begin >= n_frames:
            raise LabelError(
                f"{path}: {bout.behaviour!r} at {bout.start:.3f} s is after the end of the video ({n_frames} frames = "
                f"{n_frames / fps:.3f} s at {fps:g} fps); is it the export of another video, or another frame rate?"
            )
        end = begin + 1 if bout.point else max(_frame(bout.stop, fps), begin + 1)
        values[max(begin, 0) : min(end, n_frames), names.index(bout.behaviour)] = 1
    table = LabelTable(names, values, path)
    return table.with_background()


def import_boris(
    path: str | os.PathLike,
    n_frames: int,
    fps: float,
    behaviours: Sequence[str] | None = None,
    **options,
) -> LabelTable:
    """:func:`read_boris` then :func:`boris_to_labels` (same options)."""
    return boris_to_labels(read_boris(path), n_frames, fps, behaviours, **options)
