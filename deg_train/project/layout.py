"""A project on disk, in DeepEthogram's layout, so DeepEthogram projects open as they are (and ours in it).

::

    my_project/
      project_config.yaml          # DeepEthogram's: a `project:` section (name, class_names, data_path...),
                                   # its other sections kept as they are, plus our `deg_live:` settings
      DATA/
        split.yaml                 # train/val/test video names (deg_train.project.splits)
        <video>/
          <video>.mp4              # the video (copied, or a symbolic link)
          <video>_labels.csv       # per-frame labels (deg_live.labels), optional
          <video>_outputs.h5       # features and predictions, written by `deg-train extract/infer`
          record.yaml              # DeepEthogram's index of the files above (+ our cached video facts)
      models/                      # training runs
      cache/                       # frame caches (deg_train.project.frame_cache), safe to delete

Everything written is written atomically: a crash or a bad input never leaves half a file or half a video folder.

Example:
    >>> project = Project.init("my_project", behaviours=["grooming", "rearing"])
    >>> project.add_video("mouse1.mp4", labels="mouse1_labels.csv")
    >>> table = project.load_labels("mouse1")    # LabelTable, background first
    >>> print(project.format_status())
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text
from camera_adapters.settings import ConfigError
from camera_adapters.video import VIDEO_EXTENSIONS, check_complete, probe
from deg_live.labels import (
    BACKGROUND,
    LabelError,
    LabelTable,
    check_behaviour_names,
    read_labels,
    write_labels,
)
from deg_train.project.frame_cache import FrameCache
from deg_train.project.normalization import fold_normalization, is_deepethogram_normalized, write_video_stats
from deg_train.project.settings import ProjectSettings, load_project_settings
from deg_train.project.splits import Split, make_split

log = logging.getLogger(__name__)

CONFIG_FILE = "project_config.yaml"
RECORD_FILE = "record.yaml"
SPLIT_FILE = "split.yaml"
SETTINGS_KEY = "deg_live"  # our section in project_config.yaml and record.yaml
RECORD_SCHEMA_VERSION = 1

# DeepEthogram's file roles in a video folder, found by name like it does.
_NOT_VIDEO = ("flow", "label", "output", "score")


class ProjectError(UserFacingError, ValueError):
    """A project path, video name or project edit is wrong; the message names it and says what to do."""


@dataclass
class VideoRecord:
    """One video of a project: its folder ``DATA/<name>/`` and the files in it.

    Attributes:
        name: the folder name, which names the video everywhere (splits, outputs, status).
        directory: ``DATA/<name>``.
        video_path: the video file (may be a symbolic link).
        labels_path: the label CSV, or None if the video is not labelled.
        outputs_path: where its ``_outputs.h5`` is or will be written.
        record: the contents of its ``record.yaml`` (empty if it has none).
    """

    name: str
    directory: Path
    video_path: Path
    labels_path: Path | None
    outputs_path: Path
    record: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def info(self) -> dict[str, Any] | None:
        """Video facts cached when it was added (n_frames, width, height, fps...), if still valid."""
        info = self.record.get(SETTINGS_KEY)
        if not isinstance(info, dict) or "n_frames" not in info:
            return None
        try:
            if self.video_path.stat().st_size != info.get("video_size_bytes"):
                return None  # the video was replaced since
        except OSError:
            return None
        return info

    @property
    def n_frames(self) -> int | None:
        """Frame count cached in record.yaml (exact, from decoding when added), or None if unknown."""
        info = self.info
        return int(info["n_frames"]) if info else None


@dataclass
class StatusRow:
    """One video's line of :meth:`Project.status`.

    Attributes:
        name: the video.
        n_frames: its frame count (None if it could not be read).
        labelled_frames: frames with at least one behaviour labelled (0 without labels).
        positives: behaviour -> frames where it is present.
        labelled: behaviour -> frames where it is labelled (0 or 1).
        split: ``train``, ``val``, ``test`` or None (not in the split yet).
        problem: what is wrong with this video's files, if anything.
    """

    name: str
    n_frames: int | None
    labelled_frames: int
    positives: dict[str, int]
    labelled: dict[str, int]
    split: str | None
    problem: str | None = None


def _read_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ProjectError(f"{path}: cannot read the {what} ({err})") from None
    except RecursionError:
        raise ProjectError(f"{path}: cannot read the {what} (nested too deeply)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProjectError(f"{path}: the {what} must be a YAML mapping, got {type(data).__name__}")
    return data


def _dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _check_video_name(name: str) -> str:
    if not name or name.startswith(".") or re.search(r"[\\/:*?\"<>|\n\r]", name) or name != name.strip():
        raise ProjectError(
            f"{name!r} cannot name a video folder: use letters, digits, '_', '-' or '.', not starting with '.'"
        )
    return name


class Project:
    """A DeepEthogram-layout project; make one with :meth:`init` or open one with :meth:`open`.

    Attributes:
        root: the project folder.
        config_path: its ``project_config.yaml``.
        config: that file's full contents (other tools' sections are kept intact when we write it back).
        settings: our :class:`~deg_train.project.settings.ProjectSettings` (from the ``deg_live:`` section).
    """

    def __init__(self, root: Path, config: dict[str, Any], settings: ProjectSettings):
        self.root = root
        self.config_path = root / CONFIG_FILE
        self.config = config
        self.settings = settings

    # -- opening and creating ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike, *, overrides: Iterable[str] = ()) -> Project:
        """Open the project at ``path`` (its folder or its project_config.yaml), in place, ours or DeepEthogram's.

        Args:
            path: the project folder or its ``project_config.yaml``.
            overrides: ``key=value`` overrides of the project settings (e.g. ``split.seed=3``), not saved.

        Raises:
            ProjectError: the path does not exist, is not a project, or its config is malformed.
        """
        path = Path(path).expanduser()
        if path.is_file() and path.name == CONFIG_FILE:
            path = path.parent
        if not path.exists():
            raise ProjectError(f"{path}: no such project folder")
        if not path.is_dir():
            raise ProjectError(f"{path}: not a project (a project is a folder with {CONFIG_FILE})")
        config_path = path / CONFIG_FILE
        if not config_path.is_file():
            raise ProjectError(
                f"{path}: not a project (no {CONFIG_FILE}); create one with `deg-train init {path}` or point at "
                "a DeepEthogram project folder"
            )
        config = _read_yaml_mapping(config_path, "project config")
        section = config.get("project")
        if not isinstance(section, dict):
            raise ProjectError(f"{config_path}: no `project:` mapping; this is not a DeepEthogram-style project config")
        names = section.get("class_names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProjectError(f"{config_path}: project.class_names must be a list of behaviour names, got {names!r}")
        try:
            check_behaviour_names(names)
        except LabelError as err:
            raise ProjectError(f"{config_path}: project.class_names: {err}") from None
        if names and names[0] != BACKGROUND:
            raise ProjectError(f"{config_path}: project.class_names must start with {BACKGROUND!r}, got {names}")
        ours = config.get(SETTINGS_KEY) or {}
        try:
            settings = load_project_settings(ours, overrides=overrides, source=f"{config_path}: {SETTINGS_KEY}")
        except ConfigError:
            raise
        return cls(path.resolve(), config, settings)

    @classmethod
    def init(
        cls,
        path: str | os.PathLike,
        name: str | None = None,
        behaviours: Sequence[str] = (),
        *,
        labeler: str | None = None,
    ) -> Project:
        """Create a new, empty project in the folder ``path`` (created if missing; must not hold a project).

        Args:
            path: the project folder.
            name: the project's name (default: the folder name).
            behaviours: behaviour names; ``background`` is put first (added if missing).
            labeler: who labels, as DeepEthogram records it.

        Raises:
            ProjectError: ``path`` already holds a project or is a file, or a behaviour name is invalid.
        """
        root = Path(path).expanduser()
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root}: exists and is not a folder")
        if (root / CONFIG_FILE).exists():
            raise ProjectError(f"{root}: already a project ({CONFIG_FILE} exists); open it instead")
        names = [BACKGROUND] + [b for b in behaviours if b != BACKGROUND] if behaviours else []
        try:
            check_behaviour_names(names)
        except LabelError as err:
            raise ProjectError(f"behaviours: {err}") from None
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        config = {
            "project": {
                "name": (name or root.name).replace(" ", "_"),
                "path": str(root),
                "data_path": "DATA",
                "model_path": "models",
                "pretrained_path": "pretrained_models",
                "class_names": names or None,
                "labeler": labeler,
                "config_file": str(root / CONFIG_FILE),
            },
            SETTINGS_KEY: {"schema_version": ProjectSettings().schema_version},
        }
        (root / "DATA").mkdir(exist_ok=True)
        (root / "models").mkdir(exist_ok=True)
        atomic_write_text(root / CONFIG_FILE, _dump_yaml(config))
        return cls.open(root)

    def save_config(self) -> None:
        """Write ``project_config.yaml`` back atomically (every section kept)."""
        atomic_write_text(self.config_path, _dump_yaml(self.config))

    # -- paths and names ---------------------------------------------------------------------------------------

    @property
    def _section(self) -> dict[str, Any]:
        return self.config["project"]

    @property
    def name(self) -> str:
        """The project's name."""
        return str(self._section.get("name") or self.root.name)

    @property
    def behaviours(self) -> list[str]:
        """Behaviour names, ``background`` first (DeepEthogram's ``class_names``); empty until set."""
        return list(self._section.get("class_names") or [])

    def _project_dir(self, key: str, default: str) -> Path:
        value = self._section.get(key) or default
        path = Path(str(value))
        if not path.is_absolute():
            return self.root / path
        if path.is_dir() or not (self.root / path.name).is_dir():
            return path
        return self.root / path.name  # the project was moved: DeepEthogram wrote absolute paths

    @property
    def data_dir(self) -> Path:
        """``DATA/``: one folder per video."""
        return self._project_dir("data_path", "DATA")

    @property
    def models_dir(self) -> Path:
        """``models/``: training runs."""
        return self._project_dir("model_path", "models")

    @property
    def runs_dir(self) -> Path:
        """Where training runs go (``models/``, as in DeepEthogram)."""
        return self.models_dir

    @property
    def cache_dir(self) -> Path:
        """Frame caches (``cache/`` unless the settings say otherwise)."""
        path = Path(self.settings.cache.dir).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def split_path(self) -> Path:
        """``DATA/split.yaml``."""
        return self.data_dir / SPLIT_FILE

    # -- videos ------------------------------------------------------------------------------------------------

    @property
    def videos(self) -> list[VideoRecord]:
        """The project's videos, sorted by name (read from ``DATA/`` each time)."""
        if not self.data_dir.is_dir():
            return []
        records = []
        for directory in sorted(p for p in self.data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            record = self._scan(directory)
            if record is not None:
                records.append(record)
        return records

    @property
    def video_names(self) -> list[str]:
        """Names of the project's videos."""
        return [r.name for r in self.videos]

    def video(self, name: str) -> VideoRecord:
        """The video called ``name``.

        Raises:
            ProjectError: no such video (the message lists the project's videos).
        """
        directory = self.data_dir / name
        record = self._scan(directory) if directory.is_dir() and not name.startswith(".") else None
        if record is None:
            known = ", ".join(self.video_names) or "none yet"
            raise ProjectError(f"no video {name!r} in project {self.root} (videos: {known})")
        return record

    def _scan(self, directory: Path) -> VideoRecord | None:
        name = directory.name
        record: dict[str, Any] = {}
        record_path = directory / RECORD_FILE
        if record_path.is_file():
            try:
                record = _read_yaml_mapping(record_path, "video record")
            except ProjectError as err:
                log.warning("%s; ignoring it", err)

        def default(role: str) -> Path | None:
            entry = record.get(role)
            value = entry.get("default") if isinstance(entry, dict) else None
            if isinstance(value, str) and value and (directory / value).exists():
                return directory / value
            return None

        files = sorted(p for p in directory.iterdir() if not p.name.startswith("."))
        video = default("rgb")
        if video is None or video.suffix.lower() not in VIDEO_EXTENSIONS:
            candidates = [
                p
                for p in files
                if p.suffix.lower() in VIDEO_EXTENSIONS and not any(s in p.name.lower() for s in _NOT_VIDEO)
            ]
            exact = [p for p in candidates if p.stem == name]
            video = (exact or candidates or [None])[0]
        if video is None:
            log.warning("%s: no video file found; skipping this folder", directory)
            return None
        labels = default("label")
        if labels is None or labels.suffix.lower() != ".csv":
            exact = directory / f"{name}_labels.csv"
            found = [
                p
                for p in files
                if p.suffix.lower() == ".csv" and ("label" in p.name.lower() or "score" in p.name.lower())
            ]
            labels = exact if exact.is_file() else (found[0] if len(found) == 1 else None)
        outputs = default("output") or directory / f"{name}_outputs.h5"
        return VideoRecord(name, directory, video, labels, outputs, record)

    def _write_record(
        self, directory: Path, name: str, video_file: str, labels_file: str | None, info: dict[str, Any]
    ) -> None:
        """Write ``record.yaml`` in DeepEthogram's layout, plus our cached facts under ``deg_live``."""

        def entry(files: list[str]) -> dict[str, Any]:
            return {"all": files, "default": files[0] if files else []}

        outputs = sorted(p.name for p in directory.glob("*output*.h5"))
        record = {
            "rgb": entry([video_file]),
            "flow": entry([]),
            "label": entry([labels_file] if labels_file else []),
            "output": entry(outputs),
            "stats": entry(["stats.yaml"] if (directory / "stats.yaml").is_file() else []),
            "keypoint": entry([]),
            "key": name,
            SETTINGS_KEY: info,
        }
        atomic_write_text(directory / RECORD_FILE, _dump_yaml(record))

    def add_video(
        self,
        path: str | os.PathLike,
        labels: str | os.PathLike | None = None,
        mode: str | None = None,
        *,
        name: str | None = None,
        fill_missing: int | None = None,
        allow_truncated: bool = False,
    ) -> VideoRecord:
        """Add a video (and optionally its label CSV) as ``DATA/<name>/``.

        Everything is checked before anything is written: the video must decode to the end, the labels must have
        one row per frame and the project's behaviour columns. The folder appears complete or not at all.
        If the project has no behaviours yet, the label file's columns become the project's behaviours.

        Args:
            path: the video file.
            labels: its label CSV (DeepEthogram layout), if labelled.
            mode: ``"copy"`` or ``"link"`` (symbolic link to the original); default from the project settings.
            name: the video's name in the project (default: the file name without extension).
            fill_missing: value (-1 unlabelled, 0 absent) for project behaviours the label file lacks;
                None makes a missing column an error.
            allow_truncated: add a video whose header declares more frames than decode (a file cut short),
                with the frames that decode and a warning; by default it is refused.

        Raises:
            VideoError: the video is missing, does not decode, or is truncated (VideoTruncatedError: fewer frames
                decode than its header declares, unless ``allow_truncated``).
            LabelError: the label file is malformed or does not match the video or the project.
            ProjectError: a video of that name is already in the project, or the mode is unknown.
        """
        mode = mode or self.settings.add_mode
        if mode not in ("copy", "link"):
            raise ProjectError(f"add mode must be 'copy' or 'link', got {mode!r}")
        source = Path(path).expanduser()
        if not source.is_file():
            raise ProjectError(f"{source}: video file not found")
        name = _check_video_name(name or source.stem)
        target_dir = self.data_dir / name
        if target_dir.exists():
            raise ProjectError(f"a video named {name!r} is already in the project ({target_dir}); rename the file")
        info = probe(source)  # decodes every frame: catches truncated and undecodable files before any copy
        if not allow_truncated:  # a faststart mp4 cut short decodes without an error, up to the cut
            check_complete(info, accept_hint=f"pass --allow-truncated to add the {info.n_frames} frames that decode")
        elif info.missing_frames:
            log.warning(
                "%s is truncated: its header declares %d frames but only %d decode; adding those %d frames",
                source,
                info.n_frames_metadata,
                info.n_frames,
                info.n_frames,
            )
        table: LabelTable | None = None
        new_behaviours = None
        if labels is not None:
            if self.behaviours:
                table = read_labels(
                    labels, n_frames=info.n_frames, behaviours=self.behaviours, fill_missing=fill_missing
                )
            else:
                table = read_labels(labels, n_frames=info.n_frames)
                new_behaviours = table.behaviours
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.data_dir / f".{name}.adding-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        try:
            video_file = f"{name}{source.suffix.lower()}"
            if mode == "copy":
                shutil.copy2(source, tmp / video_file)
            else:
                try:
                    os.symlink(source.resolve(), tmp / video_file)
                except OSError as err:
                    raise ProjectError(f"cannot link {source} ({err}); add it with mode 'copy' instead") from None
            labels_file = None
            if table is not None:
                labels_file = f"{name}_labels.csv"
                write_labels(table, tmp / labels_file)
            stat = (tmp / video_file).stat()
            facts = {
                "schema_version": RECORD_SCHEMA_VERSION,
                "n_frames": info.n_frames,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "codec": info.codec,
                "pix_fmt": info.pix_fmt,
                "video_size_bytes": stat.st_size,
                "source": str(source.resolve()),
                "mode": mode,
                "added": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            stats = None
            if is_deepethogram_normalized(self.config):  # DeepEthogram's project: measure colours as it does
                stats = write_video_stats(tmp / video_file, tmp)
            self._write_record(tmp, name, video_file, labels_file, facts)
            os.rename(tmp, target_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if new_behaviours:
            self._section["class_names"] = list(new_behaviours)
        if stats is not None:
            self.config["augs"]["normalization"] = fold_normalization(self.config["augs"].get("normalization"), stats)
            log.info("%s: colour statistics folded into augs.normalization (DeepEthogram's way)", name)
        if new_behaviours or stats is not None:
            self.save_config()
        return self.video(name)

    def n_frames(self, name: str, *, exact: bool = False) -> int:
        """Frame count of a video: cached in record.yaml when known, else probed (``exact`` decodes every frame)."""
        record = self.video(name)
        if record.n_frames is not None:
            return record.n_frames
        return probe(record.video_path, exact=exact).n_frames

    # -- labels ------------------------------------------------------------------------------------------------

    def load_labels(self, name: str, *, fill_missing: int = -1) -> LabelTable:
        """The labels of video ``name``, columns in the project's behaviour order.

        Project behaviours a file lacks (e.g. added while the file was elsewhere) are ``fill_missing`` (-1:
        unlabelled). The row count is checked against the frame count cached when the video was added.

        Raises:
            ProjectError: the video does not exist or has no labels.
            LabelError: the file is malformed, has unknown columns, or the wrong number of rows.
        """
        record = self.video(name)
        if record.labels_path is None:
            raise ProjectError(f"video {name!r} has no labels; add them with `deg-train labels import-csv {name} FILE`")
        behaviours = self.behaviours or None
        return read_labels(
            record.labels_path, n_frames=record.n_frames, behaviours=behaviours, fill_missing=fill_missing
        )

    def save_labels(self, name: str, table: LabelTable) -> Path:
        """Write ``table`` as video ``name``'s labels (atomically), in the project's behaviour order.

        Raises:
            LabelError: the table's columns differ from the project's, or its row count from the video's.
        """
        record = self.video(name)
        if self.behaviours:
            table = table.reorder(self.behaviours)
        n = record.n_frames
        if n is None:
            n = probe(record.video_path).n_frames
        if table.n_frames != n:
            raise LabelError(f"labels for {name!r} have {table.n_frames} rows but the video has {n} frames")
        path = record.labels_path or record.directory / f"{name}_labels.csv"
        write_labels(table, path)
        info = dict(record.record.get(SETTINGS_KEY) or {})
        if "n_frames" not in info:
            stat = record.video_path.stat()
            info.update({"schema_version": RECORD_SCHEMA_VERSION, "n_frames": n, "video_size_bytes": stat.st_size})
        self._write_record(record.directory, name, record.video_path.name, path.name, info)
        if not self.behaviours:
            self._section["class_names"] = list(table.behaviours)
            self.save_config()
        return path

    def _all_labels(self) -> dict[str, LabelTable]:
        return {r.name: self.load_labels(r.name) for r in self.videos if r.labels_path is not None}

    def add_behaviour(self, name: str, value: int = -1) -> None:
        """Add a behaviour to the project and a column to every label file (-1 unlabelled, or 0 absent).

        Existing labels are kept. Every label file is read (and checked) before anything is written.

        Raises:
            LabelError: invalid or existing name, bad value, or a label file that does not read.
        """
        check_behaviour_names([name])
        if name in self.behaviours:
            raise LabelError(f"behaviour {name!r} is already in the project")
        if value not in (-1, 0):
            raise LabelError(f"a new behaviour starts unlabelled (-1) or absent (0), not {value!r}")
        tables = self._all_labels()
        # Config first: should we stop half way, files lacking the column read as -1 (unlabelled) — nothing lost.
        self._section["class_names"] = (self.behaviours or [BACKGROUND]) + [name]
        self.save_config()
        for video, table in tables.items():
            write_labels(table.add_behaviour(name, value), self.video(video).labels_path)

    def remove_behaviour(self, name: str) -> None:
        """Remove a behaviour from the project and its column from every label file.

        Frames where it was the only behaviour present become ``background``. Other labels are kept.

        Raises:
            LabelError: unknown name, ``background``, or a label file that does not read.
        """
        if name == BACKGROUND:
            raise LabelError("the background class cannot be removed")
        if name not in self.behaviours:
            raise LabelError(f"no behaviour {name!r} in the project (behaviours: {', '.join(self.behaviours)})")
        tables = self._all_labels()
        # Files first: should we stop half way, the config still lists the behaviour and files without the column
        # read it as unlabelled; nothing else is lost.
        for video, table in tables.items():
            write_labels(table.remove_behaviour(name), self.video(video).labels_path)
        self._section["class_names"] = [b for b in self.behaviours if b != name]
        self.save_config()

    def restore_labels(self, behaviours: list[str], tables: dict[str, LabelTable]) -> None:
        """Put back the behaviours and label files of an earlier snapshot (undoing add/remove_behaviour).

        ``tables``: video name -> its labels at the time (``load_labels`` of every labelled video). The behaviour
        list is written first (files that lack a column then read it as unlabelled), then every file.

        Raises:
            LabelError: a table whose columns are not ``behaviours``.
        """
        for video, table in tables.items():
            if list(table.behaviours) != list(behaviours):
                raise LabelError(f"{video}: snapshot columns {list(table.behaviours)} differ from {behaviours}")
        self._section["class_names"] = list(behaviours)
        self.save_config()
        for video, table in tables.items():
            write_labels(table, self.video(video).labels_path)

    # -- splits ------------------------------------------------------------------------------------------------

    def load_split(self) -> Split | None:
        """The split in ``DATA/split.yaml``, or None if there is none yet."""
        if not self.split_path.is_file():
            return None
        return Split.load(self.split_path)

    def make_split(
        self,
        fractions: Sequence[float] | None = None,
        seed: int | None = None,
        group_by: str | None = None,
        *,
        save: bool = True,
    ) -> Split:
        """Split the project's videos by video or session (see :func:`deg_train.project.splits.make_split`).

        Arguments left as None come from the project settings (``split.*``). With ``save``, the split is
        written to ``DATA/split.yaml`` (replacing any previous one).
        """
        s = self.settings.split
        counts: dict[str, Any] = {}
        for record in self.videos:
            counts[record.name] = self.load_labels(record.name) if record.labels_path is not None else None
        split = make_split(
            counts,
            fractions=s.fractions if fractions is None else fractions,
            seed=s.seed if seed is None else seed,
            group_by=s.group_by if group_by is None else group_by,
            behaviours=self.behaviours or None,
            max_tries=s.max_tries,
        )
        if save:
            split.save(self.split_path)
        return split

    # -- frame caches ------------------------------------------------------------------------------------------

    def frame_cache(self, name: str, size: tuple[int, int], *, progress: bool = True):
        """The :class:`deg_train.project.frame_cache.FrameCache` of video ``name`` at ``size``, built if needed."""
        return FrameCache.open(self.video(name).video_path, self.cache_dir, size=size, progress=progress)

    def exclusive_behaviours(self, names: Iterable[str] | None = None) -> tuple[bool, str]:
        """Whether the behaviours are mutually exclusive, and why (the setting, or what the labels show).

        The project setting ``labels.exclusive`` decides when it is true or false; when it is null (the
        default) the labels decide: exclusive when no labelled frame of the videos ``names`` (default: all
        labelled videos) has two behaviours on.
        """
        setting = self.settings.labels.exclusive
        if setting is not None:
            return bool(setting), f"project setting labels.exclusive: {str(setting).lower()}"
        tables = self._all_labels()
        if names is not None:
            wanted = set(names)
            tables = {n: t for n, t in tables.items() if n in wanted}
        if not tables:
            return False, "no labels yet: multi-label"
        for name, table in tables.items():
            overlap = (np.asarray(table.values) == 1).sum(axis=1) > 1
            if overlap.any():
                frame = int(np.flatnonzero(overlap)[0])
                return False, f"detected from the labels: {name} frame {frame} has two behaviours on (multi-label)"
        return True, f"detected from the labels: no frame of {len(tables)} labelled videos has two behaviours on"

    # -- status ------------------------------------------------------------------------------------------------

    def status(self) -> list[StatusRow]:
        """One :class:`StatusRow` per video: frames, labelled frames, positives per behaviour, split part."""
        split = None
        split_problem = None
        try:
            split = self.load_split()
        except UserFacingError as err:
            split_problem = str(err)
        rows = []
        for record in self.videos:
            problem = split_problem
            n_frames: int | None = record.n_frames
            if n_frames is None:
                try:
                    n_frames = probe(record.video_path, exact=False).n_frames
                except UserFacingError as err:
                    problem = str(err)
            positives = dict.fromkeys(self.behaviours, 0)
            labelled = dict.fromkeys(self.behaviours, 0)
            labelled_frames = 0
            if record.labels_path is not None:
                try:
                    table = self.load_labels(record.name)
                    positives = dict(zip(table.behaviours, table.positives().tolist()))
                    labelled = dict(zip(table.behaviours, table.labelled_counts().tolist()))
                    labelled_frames = int(table.labelled_frames().sum())
                except UserFacingError as err:
                    problem = str(err)
            part = split.part_of(record.name) if split is not None else None
            rows.append(StatusRow(record.name, n_frames, labelled_frames, positives, labelled, part, problem))
        return rows

    def format_status(self, rows: list[StatusRow] | None = None) -> str:
        """The status as a text table: one line per video, a total line, then any problems."""
        rows = self.status() if rows is None else rows
        behaviours = self.behaviours
        header = ["video", "frames", "labelled", *behaviours, "split"]
        table: list[list[str]] = []
        for row in rows:
            cells = [row.name, "?" if row.n_frames is None else str(row.n_frames), str(row.labelled_frames)]
            for b in behaviours:
                pos, lab = row.positives.get(b, 0), row.labelled.get(b, 0)
                full = row.n_frames is not None and lab == row.n_frames
                cells.append("-" if lab == 0 else str(pos) if full else f"{pos}/{lab}")
            cells.append(row.split or "-")
            table.append(cells)
        totals = ["total", str(sum(r.n_frames or 0 for r in rows)), str(sum(r.labelled_frames for r in rows))]
        totals += [str(sum(r.positives.get(b, 0) for r in rows)) for b in behaviours]
        parts = [r.split for r in rows]
        totals.append(" ".join(f"{p}:{parts.count(p)}" for p in ("train", "val", "test") if parts.count(p)) or "-")
        widths = [max(len(x) for x in col) for col in zip(header, *table, totals)]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

        out = [
            f"project {self.name} at {self.root}: {len(rows)} videos, behaviours: {', '.join(behaviours) or 'none'}",
            line(header),
            line(["-" * w for w in widths]),
            *(line(c) for c in table),
            line(["-" * w for w in widths]),
            line(totals),
            "(behaviour columns: frames present; p/l: present/labelled where some frames are unlabelled; "
            "-: none labelled)",
        ]
        if any(r.labelled_frames for r in rows):
            exclusive, why = self.exclusive_behaviours()
            out.append(f"behaviours: {'mutually exclusive' if exclusive else 'multi-label'} ({why})")
        out += [f"problem: {r.name}: {r.problem}" for r in rows if r.problem]
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"Project({str(self.root)!r}, behaviours={self.behaviours})"


def label_counts(tables: Iterable[LabelTable]) -> np.ndarray:
    """``(K,)`` positive frames per behaviour summed over ``tables`` (same columns)."""
    total = None
    for table in tables:
        total = table.positives() if total is None else total + table.positives()
    return np.zeros(0, np.int64) if total is None else total
