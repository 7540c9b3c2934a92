"""Per-video model outputs on disk: ``DATA/<video>/<video>_outputs.h5``, in DeepEthogram's layout.

One HDF5 file per video holds one group per model that has run on it, named by the model's *latent name*.
DeepEthogram names its groups by architecture (its feature extractor's, e.g. ``resnet18``, and its sequence model's,
e.g. ``tgmj``, or a name its config gives); ours always start with ``deg_train_`` (:func:`our_group_name`:
``deg_train_resnet18``, ``deg_train_tgm``, ``deg_train_tgm_centred``), so the two never collide in one file.
DeepEthogram's GUI and its ``projects.import_outputfile`` read these files, so the datasets keep its names, dtypes
and shapes:

============================  ================  ===========================================================
dataset                       shape / dtype     meaning
============================  ================  ===========================================================
``P``                         (N, K) float32    probabilities (sigmoid of ``logits``), one row per frame
``logits``                    (N, K) float32    the model's outputs before the sigmoid
``thresholds``                (K,) float32      per-behaviour thresholds picked on validation (0.5 if none yet)
``class_names``               (K,) str (ascii)  behaviour names, ``background`` first
``spatial_features``          (N, Ds) float32   stage 2 only: spatial stream features (before its last layer)
``flow_features``             (N, Df) float32   stage 2 only: flow stream features
============================  ================  ===========================================================

Ours adds attributes DeepEthogram ignores: on the file ``schema_version`` and ``producer``; on each group
``schema_version``, ``producer``, ``latent_name``, ``created`` (UTC ISO time), ``n_frames`` and whatever the writer
passes in ``attrs`` (for example the run directory the features came from, so stale features are detected and
redone).

Writes are atomic: a new file is built beside the old one (every other group copied over intact), then renamed
over it, so a crash never leaves a half-written group or a damaged file, and other models' groups survive. A group
another program wrote (DeepEthogram's own, :func:`group_producer` is not ``deg_train``) is never replaced unless the
caller passes ``overwrite=True`` (the user's ``--overwrite``).

This module is the one reader and writer of these files for both sides: deg_train writes and reads feature and
sequence groups (re-exported by :mod:`deg_train.project`), the viewer reads any group holding ``P``
(:func:`read_predictions`, also the recorder's ``deg_live`` group, which adds ``decisions``, ``frame_index`` and
``video_frame`` rows), and the live recorder (:mod:`deg_live.recorder`) grows its ``deg_live`` group row by row
while it records (:class:`OutputsAppender`, written in place and flushed, not atomically: a recording must be
readable while it grows and after a crash, up to its last flush) and reads it back (:func:`read_group`). numpy and
h5py only, no torch.

Example:
    >>> write_outputs("DATA/rat1/rat1_outputs.h5", "deg_train_resnet18", spatial_features=s, flow_features=f,
    ...               logits=z, probabilities=p, thresholds=t, behaviours=["background", "rearing"])
    >>> out = read_outputs("DATA/rat1/rat1_outputs.h5", "deg_train_resnet18")
    >>> out.features.shape           # (N, Ds + Df): what stage 3 trains on
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_output

OUTPUTS_SCHEMA_VERSION = 1
PRODUCER = "deg_train"

# Dataset names, DeepEthogram's spelling.
_P, _LOGITS, _THRESHOLDS, _CLASS_NAMES = "P", "logits", "thresholds", "class_names"
_SPATIAL, _FLOW = "spatial_features", "flow_features"


#: Every group deg_train writes starts with this, so none can collide with a group DeepEthogram writes.
OUR_GROUP_PREFIX = "deg_train_"
#: What :func:`group_producer` says of a group without our attributes (DeepEthogram writes none).
FOREIGN = "other"


class OutputsError(UserFacingError, ValueError):
    """An outputs file is missing, unreadable, lacks the asked-for group, or has inconsistent shapes."""


def our_group_name(arch: str, *, centred: bool = False) -> str:
    """Our group for a model: ``deg_train_<arch>`` (``..._centred`` for a non-causal comparison model)."""
    name = arch if arch.startswith(OUR_GROUP_PREFIX) else OUR_GROUP_PREFIX + arch
    return f"{name}_centred" if centred and not name.endswith("_centred") else name


@dataclass
class ModelOutputs:
    """One group of an outputs file, in memory.

    Attributes:
        latent_name: the HDF5 group's name.
        behaviours: K behaviour names, ``background`` first.
        probabilities: ``(N, K) float32``, the ``P`` dataset.
        logits: ``(N, K) float32``.
        thresholds: ``(K,) float32``.
        spatial_features: ``(N, Ds) float32`` or None (sequence-model groups have no features).
        flow_features: ``(N, Df) float32`` or None.
        attrs: the group's attributes (JSON-decoded where they were written as JSON).
    """

    latent_name: str
    behaviours: list[str]
    probabilities: np.ndarray
    logits: np.ndarray
    thresholds: np.ndarray
    spatial_features: np.ndarray | None = None
    flow_features: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        """N, the number of frames."""
        return int(self.probabilities.shape[0])

    @property
    def features(self) -> np.ndarray:
        """``(N, Ds + Df) float32``: concat(spatial, flow), the input of the sequence model.

        Raises:
            OutputsError: the group holds no features (it came from a sequence model).
        """
        if self.spatial_features is None or self.flow_features is None:
            raise OutputsError(f"group {self.latent_name!r} holds no features (it is a sequence model's output)")
        return np.concatenate([self.spatial_features, self.flow_features], axis=1)


def outputs_path_for(video_path: str | os.PathLike) -> Path:
    """DeepEthogram's outputs file for a video: ``<dir>/<stem>_outputs.h5`` beside the video."""
    video_path = Path(video_path)
    return video_path.with_name(f"{video_path.stem}_outputs.h5")


def list_groups(path: str | os.PathLike) -> list[str]:
    """Names of the groups (latent names) in an outputs file; ``[]`` when the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with _open_read(path) as f:
        return sorted(k for k in f.keys() if isinstance(f[k], h5py.Group))


def group_attrs(path: str | os.PathLike, latent_name: str) -> dict[str, Any] | None:
    """The attributes of one group, or None when the file or the group does not exist (cheap: no data read)."""
    path = Path(path)
    if not path.exists():
        return None
    with _open_read(path) as f:
        if latent_name not in f:
            return None
        return _decode_attrs(f[latent_name].attrs)


def group_producer(path: str | os.PathLike, latent_name: str) -> str | None:
    """Who wrote a group: ``"deg_train"``, another producer's name, :data:`FOREIGN` (DeepEthogram), or None (absent).

    Groups deg_train wrote before the ``producer`` attribute existed are recognised by their ``schema_version`` and
    ``latent_name`` attributes.
    """
    attrs = group_attrs(path, latent_name)
    if attrs is None:
        return None
    if attrs.get("producer"):
        return str(attrs["producer"])
    if "schema_version" in attrs and "latent_name" in attrs:
        return PRODUCER
    return FOREIGN


def write_outputs(
    path: str | os.PathLike,
    latent_name: str,
    *,
    logits: np.ndarray,
    probabilities: np.ndarray,
    thresholds: np.ndarray | Sequence[float] | None,
    behaviours: Sequence[str],
    spatial_features: np.ndarray | None = None,
    flow_features: np.ndarray | None = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write (or replace) the group ``latent_name`` of an outputs file, keeping every other group intact.

    A group of that name that deg_train wrote is replaced; one another program wrote (DeepEthogram's) only with
    ``overwrite``.

    Args:
        path: the ``<video>_outputs.h5`` file (created if missing).
        latent_name: the group's name (e.g. the feature arch ``resnet18`` or the sequence arch ``tgm``).
        logits: ``(N, K)``.
        probabilities: ``(N, K)`` in [0, 1].
        thresholds: ``(K,)`` or None for 0.5 everywhere (not picked yet).
        behaviours: K names, background first.
        spatial_features: ``(N, Ds)`` for a feature extractor's group, else None.
        flow_features: ``(N, Df)``, given together with ``spatial_features``.
        attrs: extra group attributes; values that are not str/int/float/bool are stored as JSON strings.
        overwrite: replace the group even if another program (DeepEthogram) wrote it.

    Returns:
        The path written.

    Raises:
        OutputsError: shapes disagree (with each other or with ``behaviours``), the existing file is not HDF5, or
            the group belongs to another program and ``overwrite`` is False.
    """
    path = Path(path)
    producer = group_producer(path, latent_name)
    if producer not in (None, PRODUCER) and not overwrite:
        raise OutputsError(
            f"{path}: group {latent_name!r} was written by another program (DeepEthogram?), not deg_train; it is "
            "kept. Pass --overwrite to replace it"
        )
    logits = np.asarray(logits, dtype=np.float32)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    behaviours = [str(b) for b in behaviours]
    k = len(behaviours)
    if logits.ndim != 2 or probabilities.shape != logits.shape or logits.shape[1] != k:
        raise OutputsError(
            f"{path}: logits {logits.shape} and probabilities {probabilities.shape} must both be (N, {k}) "
            f"for {k} behaviours"
        )
    n = logits.shape[0]
    thresholds = np.full(k, 0.5, np.float32) if thresholds is None else np.asarray(thresholds, np.float32)
    if thresholds.shape != (k,):
        raise OutputsError(f"{path}: thresholds have shape {thresholds.shape}, expected ({k},)")
    if (spatial_features is None) != (flow_features is None):
        raise OutputsError(f"{path}: give both spatial_features and flow_features, or neither")
    if spatial_features is not None:
        spatial_features = np.asarray(spatial_features, dtype=np.float32)
        flow_features = np.asarray(flow_features, dtype=np.float32)
        for name, arr in ((_SPATIAL, spatial_features), (_FLOW, flow_features)):
            if arr.ndim != 2 or arr.shape[0] != n:
                raise OutputsError(f"{path}: {name} has shape {arr.shape}, expected ({n}, D)")

    # DeepEthogram's GUI (projects.import_outputfile) opens on its own `tgmj` / feature-extractor group when the
    # file has one, else on the FIRST group of the file. Groups are kept in creation order (track_order) and our
    # newest causal sequence model's group is created first, so where only deg-train ran, its GUI opens on that.
    first = (attrs or {}).get("stage") == "sequence" and bool((attrs or {}).get("causal", False))
    with atomic_output(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w", track_order=True) as out:
            if first:
                group = out.create_group(latent_name, track_order=True)
            if path.exists():
                # Copy every other group (and the file's attributes) into the fresh file. Rebuilding rather than
                # deleting in place reclaims the space of the replaced group (HDF5 never shrinks a file).
                with _open_read(path) as old:
                    for key, value in old.attrs.items():
                        out.attrs[key] = value
                    keys = [k for k in old.keys() if k != latent_name]  # creation order (name order in old files)
                    keys.sort(key=lambda k: not _is_our_causal_sequence(old[k]))  # stable: theirs keep their order
                    for key in keys:
                        old.copy(old[key], out, name=key)
            out.attrs["schema_version"] = OUTPUTS_SCHEMA_VERSION
            out.attrs["producer"] = PRODUCER
            if not first:
                group = out.create_group(latent_name, track_order=True)
            group.create_dataset(_THRESHOLDS, data=thresholds, dtype=np.float32)
            group.create_dataset(_LOGITS, data=logits, dtype=np.float32)
            group.create_dataset(_P, data=probabilities, dtype=np.float32)
            if spatial_features is not None:
                group.create_dataset(_SPATIAL, data=spatial_features, dtype=np.float32)
                group.create_dataset(_FLOW, data=flow_features, dtype=np.float32)
            # DeepEthogram stores ascii bytes in a variable-length string dataset and decodes them when reading.
            names = [b.encode("ascii", "ignore") for b in behaviours]
            group.create_dataset(_CLASS_NAMES, data=names, dtype=h5py.string_dtype())
            group.attrs["schema_version"] = OUTPUTS_SCHEMA_VERSION
            group.attrs["producer"] = PRODUCER
            group.attrs["latent_name"] = latent_name
            group.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            group.attrs["n_frames"] = n
            for key, value in (attrs or {}).items():
                group.attrs[key] = _encode_attr(value)
    return path


def _is_our_causal_sequence(item: Any) -> bool:
    """Whether an HDF5 object is a group deg_train wrote for a causal sequence model."""
    if not isinstance(item, h5py.Group):
        return False
    a = item.attrs
    return a.get("producer") == PRODUCER and a.get("stage") == "sequence" and bool(a.get("causal", False))


def read_outputs(path: str | os.PathLike, latent_name: str | None = None, *, features: bool = True) -> ModelOutputs:
    """Read one group of an outputs file.

    Args:
        path: the ``<video>_outputs.h5`` file.
        latent_name: the group; None picks the only group there is (an error if there are several).
        features: False skips reading the (large) feature datasets.

    Raises:
        OutputsError: the file is missing or unreadable, the group is not there (the message lists those that
            are), its schema is newer than this version reads, or its datasets have inconsistent shapes.
    """
    path = Path(path)
    if not path.exists():
        raise OutputsError(f"{path}: outputs file not found; run `deg-train extract` (or `infer`) first")
    with _open_read(path) as f:
        groups = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group))
        if latent_name is None:
            if len(groups) != 1:
                raise OutputsError(f"{path}: holds groups {groups}; say which one to read (latent name)")
            latent_name = groups[0]
        if latent_name not in f:
            raise OutputsError(f"{path}: no group {latent_name!r} (it holds {groups}); run extract/infer for it")
        group = f[latent_name]
        attrs = _decode_attrs(group.attrs)
        version = int(attrs.get("schema_version", 0))
        if version > OUTPUTS_SCHEMA_VERSION:
            raise OutputsError(
                f"{path}: group {latent_name!r} has schema_version {version}, newer than this deg_train reads "
                f"({OUTPUTS_SCHEMA_VERSION}); upgrade deg_train"
            )
        missing = [d for d in (_P, _LOGITS, _THRESHOLDS, _CLASS_NAMES) if d not in group]
        if missing:
            raise OutputsError(f"{path}: group {latent_name!r} lacks datasets {missing}")
        probabilities = group[_P][()].astype(np.float32, copy=False)
        logits = group[_LOGITS][()].astype(np.float32, copy=False)
        thresholds = np.asarray(group[_THRESHOLDS][()], dtype=np.float32)
        if thresholds.ndim == 2:  # DeepEthogram once stored one row per epoch: the last is the one in use
            thresholds = thresholds[-1]
        behaviours = [b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in group[_CLASS_NAMES][()]]
        spatial = flow = None
        if features and _SPATIAL in group and _FLOW in group:
            spatial = group[_SPATIAL][()].astype(np.float32, copy=False)
            flow = group[_FLOW][()].astype(np.float32, copy=False)
    k = len(behaviours)
    if probabilities.shape != logits.shape or probabilities.ndim != 2 or probabilities.shape[1] != k:
        raise OutputsError(
            f"{path}: group {latent_name!r}: P {probabilities.shape} / logits {logits.shape} do not match "
            f"{k} class_names"
        )
    if thresholds.shape != (k,):
        raise OutputsError(f"{path}: group {latent_name!r}: thresholds {thresholds.shape}, expected ({k},)")
    return ModelOutputs(latent_name, behaviours, probabilities, logits, thresholds, spatial, flow, attrs)


def write_thresholds(path: str | os.PathLike, latent_name: str, thresholds: np.ndarray | Sequence[float]) -> Path:
    """Replace the thresholds of an existing group (after they are picked on validation), atomically."""
    out = read_outputs(path, latent_name)
    fixed = ("schema_version", "producer", "latent_name", "created", "n_frames")
    extra = {k: v for k, v in out.attrs.items() if k not in fixed}
    return write_outputs(
        path,
        latent_name,
        logits=out.logits,
        probabilities=out.probabilities,
        thresholds=thresholds,
        behaviours=out.behaviours,
        spatial_features=out.spatial_features,
        flow_features=out.flow_features,
        attrs=extra,
    )


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def _open_read(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise OutputsError(
            f"{path}: not a readable HDF5 outputs file ({err}); delete it and run extract again"
        ) from None


def _encode_attr(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float, np.integer, np.floating)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return "json:" + json.dumps(value, default=str)


def _decode_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str) and value.startswith("json:"):
            value = json.loads(value[5:])
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


@dataclass
class Predictions:
    """The predictions of one group of an outputs file, for review: what any group holding ``P`` has.

    Attributes:
        group: the group's name.
        behaviours: K names (``b0, b1...`` when the group has no ``class_names``).
        probabilities: ``(N, K) float32``.
        thresholds: ``(K,) float32`` (0.5 when the group has none).
        rows: per-row datasets the group also holds, among ``decisions`` (bool), ``frame_index`` and
            ``video_frame`` (int64), read as they are.
        attrs: the group's attributes.
    """

    group: str
    behaviours: list[str]
    probabilities: np.ndarray
    thresholds: np.ndarray
    rows: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


_ROW_DATASETS = {"decisions": bool, "frame_index": np.int64, "video_frame": np.int64}


def read_predictions(path: str | os.PathLike, group: str | None = None) -> Predictions:
    """Read the probabilities of one group holding ``P``: a feature, sequence or recorded (``deg_live``) group.

    Args:
        path: the outputs file.
        group: the group; None picks the only one holding ``P``, else the newest sequence model's (a group
            without features).

    Raises:
        OutputsError: the file is missing or unreadable, has no such group (the message lists those there are),
            or ``P`` does not match ``class_names`` / ``thresholds``.
    """
    path = Path(path)
    if not path.exists():
        raise OutputsError(f"{path}: outputs file not found")
    with _open_read(path) as f:
        groups = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group) and _P in f[k])
        if group is not None and group not in groups:
            raise OutputsError(f"{path}: no prediction group {group!r} (it holds {groups}); pass --group NAME")
        if group is None:
            if not groups:
                raise OutputsError(f"{path}: no group holding predictions ('P'); is this an outputs file?")
            # Several models ran on this video: the sequence model's (no features) and, among those, the newest.
            candidates = [g for g in groups if _SPATIAL not in f[g]] or groups
            group = max(candidates, key=lambda g: str(f[g].attrs.get("created", "")))
        g = f[group]
        probabilities = np.asarray(g[_P][()], dtype=np.float32)
        k = probabilities.shape[1] if probabilities.ndim == 2 else 0
        behaviours = (
            [b.decode("utf-8") if isinstance(b, bytes) else str(b) for b in g[_CLASS_NAMES][()]]
            if _CLASS_NAMES in g
            else [f"b{i}" for i in range(k)]
        )
        thresholds = np.asarray(g[_THRESHOLDS][()], dtype=np.float32) if _THRESHOLDS in g else None
        rows = {name: np.asarray(g[name][()], dtype=dtype) for name, dtype in _ROW_DATASETS.items() if name in g}
        attrs = _decode_attrs(g.attrs)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(behaviours):
        raise OutputsError(
            f"{path}: group {group!r}: P has shape {probabilities.shape}, expected (N, {len(behaviours)})"
        )
    if thresholds is None:
        thresholds = np.full(len(behaviours), 0.5, dtype=np.float32)
    if thresholds.ndim == 2:  # DeepEthogram once stored one row per epoch: the last is the one in use
        thresholds = thresholds[-1]
    if thresholds.shape != (len(behaviours),):
        raise OutputsError(f"{path}: group {group!r}: thresholds {thresholds.shape}, expected ({len(behaviours)},)")
    return Predictions(group, behaviours, probabilities, thresholds, rows, attrs)


def read_features(path: str | os.PathLike, latent_name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sequence model's inputs from a feature extractor's group.

    Returns:
        ``features (N, Ds + Df) float32`` (concat of spatial and flow features) and ``logits (N, K) float32``.
    """
    out = read_outputs(path, latent_name)
    return out.features, out.logits


def read_group(path: str | os.PathLike, group: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every dataset of one group as stored (no checks, no conversions) and its attributes.

    For files whose group holds more than DeepEthogram's datasets, e.g. the recorder's ``deg_live`` group
    (:class:`OutputsAppender`); :func:`read_outputs` and :func:`read_predictions` are the checked readers.

    Raises:
        OutputsError: the file is missing or unreadable, or has no such group (the message lists those there are).
    """
    path = Path(path)
    if not path.exists():
        raise OutputsError(f"{path}: outputs file not found")
    with _open_read(path) as f:
        if group not in f or not isinstance(f[group], h5py.Group):
            groups = sorted(k for k in f.keys() if isinstance(f[k], h5py.Group))
            raise OutputsError(f"{path}: no group {group!r} (it holds {groups})")
        g = f[group]
        datasets = {name: g[name][()] for name in g.keys() if isinstance(g[name], h5py.Dataset)}
        return datasets, _decode_attrs(g.attrs)


@dataclass(frozen=True)
class RowColumn:
    """One per-row dataset of an :class:`OutputsAppender` group: ``(M, K)`` when ``per_behaviour`` else ``(M,)``."""

    name: str
    dtype: Any
    per_behaviour: bool = False


class OutputsAppender:
    """A new outputs file whose one group grows by rows while it is produced: the live recorder's ``deg_live`` group.

    The group has DeepEthogram's ``thresholds`` and ``class_names`` (fixed-length ascii) and one resizable dataset
    per :class:`RowColumn` (``P``, ``logits``, ``decisions``, ``frame_index`` ...), all starting with 0 rows;
    :meth:`append` adds rows to every column at once, :meth:`flush` puts them on disk. The file is written in
    place, not atomically (it must be readable while it grows): a killed process leaves a file readable up to the
    last flush. Disk errors (``OSError``; ``RuntimeError`` from h5py while closing) come out as they are, so the
    caller can stop and keep what is there; use :func:`read_group` or :func:`read_predictions` to read it.

    Args:
        path: the ``<session>_outputs.h5`` file to create (replaced if it holds only groups of ours).
        group: the group's name.
        behaviours: K names, ``background`` first.
        thresholds: ``(K,)``.
        columns: the per-row datasets.
        schema_version: stored on the file and on the group.
        producer: the file's ``producer`` attribute.
        attrs: more group attributes (JSON-encoded where they are not plain values).
        chunk_rows: HDF5 chunk length of the per-row datasets.

    Raises:
        OutputsError: the file exists and holds a group another program (DeepEthogram) wrote, or is not HDF5.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        group: str,
        *,
        behaviours: Sequence[str],
        thresholds: np.ndarray | Sequence[float],
        columns: Sequence[RowColumn],
        schema_version: int = OUTPUTS_SCHEMA_VERSION,
        producer: str = PRODUCER,
        attrs: Mapping[str, Any] | None = None,
        chunk_rows: int = 256,
    ) -> None:
        self.path = Path(path)
        self.group_name = group
        self.columns = tuple(columns)
        self.k = len(behaviours)
        thresholds = np.asarray(thresholds, dtype=np.float32)
        if thresholds.shape != (self.k,):
            raise OutputsError(f"{self.path}: thresholds have shape {thresholds.shape}, expected ({self.k},)")
        try:
            foreign = [name for name in list_groups(self.path) if group_producer(self.path, name) == FOREIGN]
        except OutputsError:
            foreign = []  # not HDF5 (a start cut short): nothing anyone could read is lost
        if foreign:
            raise OutputsError(
                f"{self.path}: holds groups {foreign} that another program (DeepEthogram?) wrote; they are kept. "
                "Record into another folder or session"
            )
        self._file: h5py.File | None = h5py.File(self.path, "w")
        try:
            f = self._file
            f.attrs["schema_version"] = schema_version
            f.attrs["producer"] = producer
            g = f.create_group(group)
            g.attrs["schema_version"] = schema_version
            g.attrs["latent_name"] = group
            g.attrs["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            for key, value in (attrs or {}).items():
                g.attrs[key] = _encode_attr(value)
            for column in self.columns:
                if column.per_behaviour:
                    shape, maxshape, chunks = (0, self.k), (None, self.k), (chunk_rows, self.k)
                else:
                    shape, maxshape, chunks = (0,), (None,), (chunk_rows,)
                g.create_dataset(column.name, shape=shape, maxshape=maxshape, chunks=chunks, dtype=column.dtype)
            g.create_dataset(_THRESHOLDS, data=thresholds)
            g.create_dataset(_CLASS_NAMES, data=np.array([str(b) for b in behaviours], dtype="S"))
            f.flush()
        except BaseException:
            self._file.close()
            self._file = None
            raise
        self.rows = 0

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._file is None

    def _group(self) -> h5py.Group:
        if self._file is None:
            raise OutputsError(f"{self.path}: the outputs file is closed")
        return self._file[self.group_name]

    def append(self, rows: Sequence[Sequence[Any]]) -> int:
        """Append rows, each a tuple with one value per column (in ``columns`` order); returns how many.

        Nothing is on disk before :meth:`flush`.
        """
        if not rows:
            return 0
        g = self._group()
        n0, n = self.rows, len(rows)
        for column, values in zip(self.columns, zip(*rows)):
            dataset = g[column.name]
            dataset.resize(n0 + n, axis=0)
            dataset[n0:] = np.stack(values) if column.per_behaviour else np.asarray(values)
        self.rows = n0 + n
        return n

    def column(self, name: str) -> np.ndarray:
        """All rows of one dataset written so far."""
        return self._group()[name][()]

    def put(self, name: str, data: np.ndarray) -> None:
        """Write (or replace) a dataset of the group whole, e.g. a per-row column known only at the end."""
        g = self._group()
        if name in g:
            del g[name]
        g.create_dataset(name, data=data)

    def set_attr(self, key: str, value: Any) -> None:
        """Set one group attribute (JSON-encoded where it is not a plain value)."""
        self._group().attrs[key] = _encode_attr(value)

    def flush(self) -> None:
        """Put everything appended so far on disk."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close (idempotent); the file is complete and readable afterwards."""
        f, self._file = self._file, None
        if f is not None:
            f.close()
