"""What the studio has open: a project (ours or DeepEthogram's, in place), a live recording folder, or one video.

A :class:`Workspace` lists :class:`StudioVideo` items and owns reading and saving their labels, through the one
owner of each format: a project's videos through :class:`deg_train.project.Project` (``load_labels`` /
``save_labels``, atomic, record.yaml kept up to date), any other video through :mod:`deg_live.labels`
(``<video>_labels.csv`` beside it, DeepEthogram's layout, atomic). Predictions come from ``<video>_outputs.h5``
through :mod:`deg_live.viewer.review` (offline results and recorded sessions alike).

Autosave and crash safety: unsaved edits are written every few seconds, atomically, to
``<video folder>/.deg_studio/<video>_labels.autosave.csv`` (the same CSV layout, readable by any label reader)
with a small JSON beside it (schema version, time, cursor). The label file itself is only ever replaced whole
(write to a temporary file, fsync, rename), so a window killed at any moment leaves the last saved labels intact
and the last autosave readable. Opening a video whose autosave differs from its saved labels restores the
autosave (and says so); saving removes it. The hidden folder is never taken for a video or label file, by us or by
DeepEthogram.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text
from camera_adapters.video import VIDEO_EXTENSIONS
from deg_live.labels import BACKGROUND, LabelError, LabelTable, empty_labels, labels_to_csv, read_labels, write_labels
from deg_live.outputs import list_groups, outputs_path_for, read_predictions
from deg_train.project.layout import CONFIG_FILE, Project

log = logging.getLogger(__name__)

AUTOSAVE_DIR = ".deg_studio"
AUTOSAVE_SCHEMA_VERSION = 1


class StudioError(UserFacingError, ValueError):
    """A path the studio cannot open, or an edit it cannot make; the message says what to do."""


@dataclass
class StudioVideo:
    """One video the studio can label.

    Attributes:
        name: the video's name (project folder name, session name or file stem).
        video: the video file.
        labels_path: its ``<video>_labels.csv`` (may not exist yet).
        outputs_path: its ``<video>_outputs.h5`` (may not exist).
        session: the recording folder, when the video is a ``deg-live run --record`` session.
    """

    name: str
    video: Path
    labels_path: Path
    outputs_path: Path
    session: Path | None = None

    @property
    def autosave_path(self) -> Path:
        """The autosave CSV of this video's labels."""
        return self.video.parent / AUTOSAVE_DIR / f"{self.name}_labels.autosave.csv"

    @property
    def claim_path(self) -> Path:
        """The note saying which studio process has this video open."""
        return self.video.parent / AUTOSAVE_DIR / f"{self.name}.open.json"

    def prediction_groups(self) -> list[str]:
        """Groups of the outputs file holding predictions (``P``), sequence models first; [] without one."""
        try:
            groups = list_groups(self.outputs_path)
        except UserFacingError:
            return []
        if not groups:
            return []
        import h5py

        try:
            with h5py.File(self.outputs_path, "r") as f:
                with_p = [g for g in groups if "P" in f[g]]
                return sorted(with_p, key=lambda g: ("spatial_features" in f[g], g))
        except OSError:
            return []


class Workspace:
    """The videos the studio works on, and how their labels are read and written.

    Make one with :meth:`open`.

    Attributes:
        videos: the videos, in the order the video list shows them.
        project: the project, or None (a recording folder or a single video).
        behaviours: the behaviour names, ``background`` first (may grow with :meth:`add_behaviour`).
        exclusive: one behaviour per frame (the project setting ``labels.exclusive: true``).
        title: what the window title says.
    """

    def __init__(self, videos: list[StudioVideo], behaviours: list[str], *, project: Project | None, title: str):
        self.videos = videos
        self.behaviours = behaviours
        self.project = project
        self.title = title
        #: Changes of the project's behaviours, newest last: ("added", name, None, None) or ("removed", name,
        #: the behaviours before, {video: the removed column}).
        self._behaviour_undo: list[tuple] = []
        # Only the explicit setting labels.exclusive: true. When it is null, training detects exclusivity from the
        # labels; the studio must not, or labelling one behaviour per frame would forbid the first overlap.
        self.exclusive = bool(project is not None and project.settings.labels.exclusive is True)

    # -- opening --------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, project: str | os.PathLike | None = None, target: str | os.PathLike | None = None) -> Workspace:
        """Open a project, a recording folder (one session or a folder of sessions), or a video file.

        Args:
            project: a project folder (``-p``); ``target`` then names one of its videos (or a path to it).
            target: without ``project``: a project folder, a recording folder or a video file.

        Raises:
            StudioError: nothing there the studio can open (the message says what it looked for).
        """
        if project is not None:
            return cls._from_project(Project.open(project))
        if target is None:
            target = Path.cwd()
        target = Path(target).expanduser()
        if not target.exists():
            raise StudioError(f"{target}: no such file or folder")
        if target.is_dir() and (target / CONFIG_FILE).is_file():
            return cls._from_project(Project.open(target))
        if target.is_file():
            if target.suffix.lower() not in VIDEO_EXTENSIONS:
                raise StudioError(
                    f"{target}: not a video ({', '.join(sorted(VIDEO_EXTENSIONS))}); give a video, a project or a "
                    "recording folder"
                )
            video = _single(target)
            return cls([video], _behaviours_of([video]), project=None, title=target.name)
        sessions = [_session(target)] if _is_session(target) else []
        if not sessions:
            sessions = [_session(d) for d in sorted(target.iterdir()) if d.is_dir() and _is_session(d)]
        if not sessions:
            raise StudioError(
                f"{target}: neither a project (no {CONFIG_FILE}) nor a recording folder (no <session>/"
                "<session>.mp4 written by `deg-live run --record`)"
            )
        return cls(sessions, _behaviours_of(sessions), project=None, title=f"recordings in {target}")

    @classmethod
    def _from_project(cls, project: Project) -> Workspace:
        videos = [
            StudioVideo(
                r.name,
                r.video_path,
                r.labels_path or r.directory / f"{r.name}_labels.csv",
                r.outputs_path,
                r.directory if (r.directory / f"{r.name}_recording.json").exists() else None,
            )
            for r in project.videos
        ]
        behaviours = project.behaviours or [BACKGROUND]
        return cls(videos, list(behaviours), project=project, title=f"project {project.name}")

    def find(self, name_or_path: str | os.PathLike) -> int:
        """Index of a video given by name or path.

        Raises:
            StudioError: not one of the workspace's videos (the message lists them).
        """
        text = str(name_or_path)
        for i, v in enumerate(self.videos):
            if text == v.name or Path(text).name in (v.video.name, v.name):
                return i
        raise StudioError(f"no video {text!r} here (videos: {', '.join(v.name for v in self.videos) or 'none'})")

    # -- labels ---------------------------------------------------------------------------------------------------

    def load_labels(self, index: int, n_frames: int) -> tuple[LabelTable, str | None]:
        """The labels of video ``index`` (``n_frames`` rows), and a note when they came from an autosave.

        Without a label file the labels start unlabelled (-1). An autosave that differs from the saved labels
        (the window was killed, or closed without saving) is restored; an unreadable one is reported and left.

        Raises:
            LabelError: the label file is malformed or has the wrong number of rows (the message names it).
        """
        video = self.videos[index]
        if video.labels_path.is_file():
            if self.project is not None:
                table = self.project.load_labels(video.name)
            else:
                table = read_labels(video.labels_path, n_frames=n_frames, behaviours=self.behaviours, fill_missing=-1)
        else:
            table = empty_labels(self.behaviours, n_frames)
            table.path = video.labels_path
        if table.n_frames != n_frames:
            raise LabelError(
                f"{video.labels_path}: {table.n_frames} label rows but the video decodes to {n_frames} frames"
            )
        note = None
        auto = video.autosave_path
        if auto.is_file():
            try:
                saved = read_labels(auto, n_frames=n_frames, behaviours=self.behaviours, fill_missing=-1)
            except LabelError as err:
                note = f"autosave {auto} unreadable ({err}); left as it is"
            else:
                if not np.array_equal(saved.values, table.values):
                    info = read_autosave_info(video)
                    when = info.get("written", "an earlier session") if info else "an earlier session"
                    note = f"restored unsaved edits from the autosave of {when} (save to keep them)"
                    table = LabelTable(saved.behaviours, saved.values, video.labels_path)
        return table, note

    def save_labels(self, index: int, table: LabelTable) -> Path:
        """Write video ``index``'s labels (atomically) and remove its autosave; returns the label file."""
        video = self.videos[index]
        if self.project is not None:
            path = self.project.save_labels(video.name, table)
            video.labels_path = path
        else:
            path = write_labels(table, video.labels_path)
        try:
            video.autosave_path.unlink(missing_ok=True)
            video.autosave_path.with_suffix(".json").unlink(missing_ok=True)
        except OSError as err:
            log.warning("could not remove the autosave %s: %s", video.autosave_path, err)
        return path

    def autosave(self, index: int, table: LabelTable, cursor: int = 0) -> Path:
        """Write the autosave of video ``index`` (atomically: CSV first, then its JSON note); returns the CSV."""
        video = self.videos[index]
        path = video.autosave_path
        atomic_write_text(path, labels_to_csv(table))
        note = {
            "schema_version": AUTOSAVE_SCHEMA_VERSION,
            "video": video.name,
            "labels": str(video.labels_path),
            "cursor": int(cursor),
            "written": _dt.datetime.now().isoformat(timespec="seconds"),
        }
        atomic_write_text(path.with_suffix(".json"), json.dumps(note, indent=1) + "\n")
        return path

    # -- behaviours -----------------------------------------------------------------------------------------------

    @property
    def can_undo_behaviours(self) -> bool:
        """Whether a change of the project's behaviours can be undone."""
        return bool(self._behaviour_undo)

    def undo_behaviours(self) -> list[str]:
        """Undo the last add/remove of a behaviour in the project, keeping every label edit made since.

        Undoing an add removes the behaviour again (frames where it alone was on become background, as any
        removal). Undoing a removal puts its column back where it was, with the values it had in each video that
        had labels then, and turns back into that behaviour the frames the removal had made background (those
        still background only); videos added since get it unlabelled.

        Returns:
            The behaviours now.

        Raises:
            LabelError: nothing to undo, or a label file that does not read.
        """
        if not self.can_undo_behaviours:
            raise LabelError("no change of behaviours to undo")
        kind, name, order, columns = self._behaviour_undo.pop()
        project = self.project
        if kind == "added":
            project.remove_behaviour(name)
        else:
            project.add_behaviour(name, -1)
            k = project.behaviours.index(name)
            tables = {}
            for video in [r.name for r in project.videos if r.labels_path is not None]:
                table = project.load_labels(video)
                values = np.array(table.values, np.int8, copy=True)
                old = columns.get(video)
                if old is not None and len(old) == len(values):
                    values[:, k] = old
                    b = table.behaviours.index(BACKGROUND) if BACKGROUND in table.behaviours else None
                    if b is not None:
                        others = [j for j in range(values.shape[1]) if j not in (b, k)]
                        alone = (old == 1) & (values[:, b] == 1) & ~(values[:, others] == 1).any(axis=1)
                        values[alone, b] = 0
                tables[video] = LabelTable(list(table.behaviours), values, table.path).reorder(order)
            project.restore_labels(order, tables)
        self.behaviours = list(project.behaviours)
        return self.behaviours

    def add_behaviour(self, name: str) -> None:
        """Add a behaviour: to the project and every label file (unlabelled there), or to this workspace's list."""
        if self.project is not None:
            self.project.add_behaviour(name, -1)
            self._behaviour_undo.append(("added", name, None, None))
            self.behaviours = list(self.project.behaviours)
        else:
            if name in self.behaviours:
                raise LabelError(f"behaviour {name!r} already exists")
            self.behaviours = [*self.behaviours, name]

    def remove_behaviour(self, name: str) -> None:
        """Remove a behaviour from the project and every label file (frames where it alone was on: background)."""
        if self.project is not None:
            order = list(self.project.behaviours)
            columns = {}
            if name in order:  # else remove_behaviour refuses it below
                for record in self.project.videos:
                    if record.labels_path is not None:
                        columns[record.name] = self.project.load_labels(record.name).column(name).copy()
            self.project.remove_behaviour(name)
            self._behaviour_undo.append(("removed", name, order, columns))
            self.behaviours = list(self.project.behaviours)
        else:
            self.behaviours = [b for b in self.behaviours if b != name]

    def add_video(self, path: str | os.PathLike) -> int:
        """Add a video: into the project (copied, checked, as ``deg-train add``), or to the list; returns its index."""
        path = Path(path)
        if self.project is not None:
            record = self.project.add_video(path)
            self.videos.append(
                StudioVideo(
                    record.name,
                    record.video_path,
                    record.labels_path or record.directory / f"{record.name}_labels.csv",
                    record.outputs_path,
                )
            )
        else:
            self.videos.append(_single(path))
        return len(self.videos) - 1


def claim(video: StudioVideo) -> str | None:
    """Note that this process has ``video`` open; a warning when another live studio process has it open too.

    Two windows saving the same labels would overwrite each other's edits: the second one is told so (it may
    still go on). A note left by a process that is gone is replaced silently.
    """
    path = video.claim_path
    warning = None
    try:
        other = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        other = None
    if isinstance(other, dict) and other.get("pid") != os.getpid() and other.get("host") == socket.gethostname():
        if _alive(other.get("pid")):
            warning = (
                f"{video.name} is also open in another studio (process {other.get('pid')}, since "
                f"{other.get('since', '?')}): whichever saves last overwrites the other's labels"
            )
    note = {
        "schema_version": AUTOSAVE_SCHEMA_VERSION,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": _dt.datetime.now().isoformat(timespec="seconds"),
    }
    try:
        atomic_write_text(path, json.dumps(note) + "\n")
    except OSError as err:
        log.warning("could not write %s: %s", path, err)
    return warning


def release(video: StudioVideo) -> None:
    """Remove this process's note on ``video`` (another process's note is left alone)."""
    path = video.claim_path
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
            path.parent.rmdir()  # only when empty (no autosave): looking at a video leaves nothing behind
    except (OSError, ValueError, AttributeError):
        pass


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_autosave_info(video: StudioVideo) -> dict | None:
    """The JSON note of a video's autosave, or None when missing or unreadable."""
    try:
        info = json.loads(video.autosave_path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _single(path: Path) -> StudioVideo:
    path = Path(path)
    if not path.is_file():
        raise StudioError(f"{path}: video not found")
    return StudioVideo(path.stem, path, path.with_name(f"{path.stem}_labels.csv"), outputs_path_for(path))


def _is_session(folder: Path) -> bool:
    return (folder / f"{folder.name}.mp4").is_file() and (
        (folder / f"{folder.name}_outputs.h5").exists() or (folder / f"{folder.name}_recording.json").exists()
    )


def _session(folder: Path) -> StudioVideo:
    name = folder.name
    return StudioVideo(
        name, folder / f"{name}.mp4", folder / f"{name}_labels.csv", folder / f"{name}_outputs.h5", session=folder
    )


def _behaviours_of(videos: list[StudioVideo]) -> list[str]:
    """Behaviours of a workspace without a project: from the first label file, else the first outputs file."""
    for video in videos:
        if video.labels_path.is_file():
            try:
                return list(read_labels(video.labels_path).behaviours)
            except LabelError as err:
                log.warning("%s", err)
    for video in videos:
        if video.outputs_path.exists():
            try:
                names = read_predictions(video.outputs_path).behaviours
            except UserFacingError:
                continue
            return [BACKGROUND] + [b for b in names if b != BACKGROUND]
    return [BACKGROUND]
