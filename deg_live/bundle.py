"""The model bundle: a directory with ``manifest.json`` and the exported graphs, read and checked without torch.

``deg-train export`` writes a bundle with :func:`write_bundle`; every ``deg_live`` engine opens one with
:func:`read_bundle`. The manifest says everything the live side needs and nothing it must guess.

Layout::

    bundle/
      manifest.json          # this module's Manifest, as JSON (schema_version first)
      manifest.sha256        # sha256 of manifest.json's bytes, ``sha256sum`` format (``sha256sum -c`` checks it)
      encoder.onnx           # frame encoder: last T raw uint8 frames -> that frame's features and logits
      encoder.pt2            # optional: torch.export program of the same encoder
      sequence_step.onnx     # sequence step: newest features + carried state -> probabilities + new state
      sequence_step.pt2      # optional
      engines/               # TensorRT engine caches built on the machine that runs them (not hashed)

``manifest.json`` (schema version 2)::

    {
      "schema_version": 2,
      "created": "2026-11-23T22:00:00Z",           # UTC, ISO 8601
      "producer": "deg_train 0.1.0",
      "preset": "deg_f",
      "behaviours": ["background", "grooming", ...],   # K names, column order of every output
      "input": {"height": 128, "width": 128, "channels": 3, "color": "rgb", "resize": "area",
                "frames_per_window": 11, "dtype": "uint8", "layout": "BTHWC"},
      "encoder": {"files": {"onnx": "encoder.onnx", "torch": "encoder.pt2"},
                  "inputs":  [{"name": "frames", "shape": ["batch", 11, 128, 128, 3], "dtype": "uint8"}],
                  "outputs": [{"name": "features", "shape": ["batch", 512], "dtype": "float32"},
                              {"name": "logits", "shape": ["batch", 7], "dtype": "float32"}]},
      "sequence": {"files": {"onnx": "sequence_step.onnx"},
                   "kind": "history",              # "history" (a window of past features) or "recurrent"
                   "feature_size": 512, "receptive_field": 64,
                   "inputs":  [{"name": "features", "shape": [1, 512], "dtype": "float32"},
                               {"name": "history", "shape": [1, 63, 512], "dtype": "float32"}],
                   "outputs": [{"name": "probs", "shape": [1, 7], "dtype": "float32"},
                               {"name": "history_out", "shape": [1, 63, 512], "dtype": "float32"}],
                   "state": [{"input": "history", "output": "history_out", "shape": [1, 63, 512],
                              "dtype": "float32", "initial": "zeros"}]},
      "thresholds": [0.5, 0.31, ...],              # K on-thresholds, picked on validation
      "postprocess": {"hysteresis": 0.05, "min_duration_frames": 2, ...},   # deg_live.postprocess settings
      "training": {...},                           # free-form: project, videos, split, metrics summary
      "files": {"encoder.onnx": {"sha256": "…", "bytes": 123456}, ...}     # every file but manifest.json
    }

Conventions the engines rely on: the encoder's first input is the frame window ``(B, T, H, W, 3) uint8`` at
``input.height x input.width`` (resized with :func:`camera_adapters.video.resize_rgb`, "area"), with
preprocessing inside the graph; its outputs include ``features (B, D)`` and ``logits (B, K)``. The sequence step's
first input is the newest ``features (B, D)``, the others are the carried state; its first output is ``probs (B,
K)`` (sigmoid inside), the others the new state; ``state`` pairs each state input with its output. A shape entry
is an int or a name for a dynamic axis.

The manifest itself is covered by ``manifest.sha256``: every file is hashed in ``files``, and ``files`` (with the
thresholds and everything else the manifest says) is hashed there, so an edited threshold or a damaged manifest
is refused with one error naming the file (re-export the bundle; thresholds and postprocessing are chosen on
validation by ``deg-train``, not by hand). The hash protects against accidents and careless edits, not against
someone who means to forge a bundle: whoever can write the bundle can write its hash (docs/events_and_bundle.md).

Schema versions: 2 (this one) requires ``manifest.sha256``. Version 1 bundles (written before the manifest hash
existed, otherwise identical) are still read, with a loud warning that their manifest is unchecked, until they
are re-exported; a version-1 manifest that does have a ``manifest.sha256`` is checked against it.

Reading is bounded: a manifest larger than :data:`MAX_MANIFEST_BYTES`, nested deeper than
:data:`MAX_MANIFEST_DEPTH`, with NaN/Infinity, an integer of thousands of digits or any other malformed content
raises :class:`BundleError`, never a bare exception (tests/deg_live/test_bundle_fuzz.py tries 10,000 mutations).

Everything that a user can get wrong raises :class:`BundleError` naming the file and what to do. This module
imports no torch and no numpy.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_write_text

log = logging.getLogger(__name__)

BUNDLE_SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
MANIFEST_HASH_NAME = "manifest.sha256"
FIRST_HASHED_SCHEMA = 2  # from this schema version on, manifest.sha256 is required
ENGINE_CACHE_DIRNAME = "engines"
MAX_MANIFEST_BYTES = 16 << 20  # a real manifest is a few kB; the training summary keeps it well below this
MAX_MANIFEST_DEPTH = 32  # the manifest's own structure is 4 deep; free-form sections get some room

SUPPORTED_COLORS = ("rgb",)
SUPPORTED_RESIZE = ("area",)
SEQUENCE_KINDS = ("history", "recurrent")
STATE_INITIALS = ("zeros",)
DTYPES = ("uint8", "float32", "float16", "int64", "int32", "bool")


class BundleError(UserFacingError, ValueError):
    """A model bundle that cannot be used: missing, changed, from a newer version, or self-contradictory."""


# ---------------------------------------------------------------------------------------------------------------
# Manifest dataclasses
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TensorSpec:
    """One graph input or output: name, shape (ints, or strings naming dynamic axes) and dtype."""

    name: str
    shape: list[int | str]
    dtype: str = "float32"


@dataclass
class StateSpec:
    """One carried state tensor of the sequence step: the input it is fed to and the output it comes back from."""

    input: str
    output: str
    shape: list[int | str]
    dtype: str = "float32"
    initial: str = "zeros"


@dataclass
class InputSpec:
    """What the encoder eats: ``frames_per_window`` raw frames of ``height x width x channels`` ``dtype``."""

    height: int
    width: int
    channels: int = 3
    color: str = "rgb"
    resize: str = "area"
    frames_per_window: int = 11
    dtype: str = "uint8"
    layout: str = "BTHWC"


@dataclass
class GraphSpec:
    """The frame encoder: files by format ({"onnx": "encoder.onnx", "torch": "encoder.pt2"}) and its I/O."""

    files: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


@dataclass
class SequenceSpec:
    """The sequence step: files, I/O, the kind of state it carries, and how far back it sees."""

    files: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    kind: str = "history"
    feature_size: int = 0
    state: list[StateSpec] = field(default_factory=list)
    receptive_field: int | None = None


@dataclass
class FileEntry:
    """Size and sha256 of one bundle file."""

    sha256: str
    bytes: int


@dataclass
class Manifest:
    """Everything ``manifest.json`` holds (see the module docstring for the JSON)."""

    behaviours: list[str]
    input: InputSpec
    encoder: GraphSpec
    sequence: SequenceSpec
    thresholds: list[float]
    schema_version: int = BUNDLE_SCHEMA_VERSION
    created: str = ""
    producer: str = ""
    preset: str = ""
    postprocess: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    files: dict[str, FileEntry] = field(default_factory=dict)

    @property
    def num_behaviours(self) -> int:
        """K, the number of behaviours (columns of every output)."""
        return len(self.behaviours)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON values, ``schema_version`` first."""
        data = dataclasses.asdict(self)
        first = ("schema_version", "created", "producer", "preset")
        return {**{key: data.pop(key) for key in first}, **data}

    def to_json(self) -> str:
        """The manifest as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = MANIFEST_NAME) -> Manifest:
        """Parse and validate a manifest mapping.

        Raises:
            BundleError: a newer schema, unknown keys, wrong types or a manifest that contradicts itself.
        """
        from camera_adapters.settings import ConfigError, load_settings  # PyYAML only

        if not isinstance(data, Mapping):
            raise BundleError(f"{source}: expected a JSON object at the top level")
        version = data.get("schema_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise BundleError(f"{source}: schema_version must be a positive integer, got {version!r}")
        if version > BUNDLE_SCHEMA_VERSION:
            raise BundleError(
                f"{source}: bundle schema version {version} is newer than this deg-live supports "
                f"({BUNDLE_SCHEMA_VERSION}); upgrade deg-live (pip install -U deg-live) or re-export the bundle"
            )
        try:
            manifest = load_settings(cls, data, source=source)
        except ConfigError as err:
            raise BundleError(f"invalid manifest: {err}") from None
        manifest.validate(source)
        return manifest

    def validate(self, source: str = MANIFEST_NAME) -> None:
        """Check the manifest is consistent with itself.

        Raises:
            BundleError: naming the first field that is wrong.
        """

        def fail(msg: str) -> BundleError:
            return BundleError(f"{source}: {msg}")

        k = len(self.behaviours)
        if k == 0:
            raise fail("behaviours: the list is empty; a bundle needs at least one behaviour")
        if any(not name.strip() for name in self.behaviours) or len(set(self.behaviours)) != k:
            raise fail(f"behaviours: names must be non-empty and unique, got {self.behaviours}")
        if len(self.thresholds) != k:
            raise fail(f"thresholds: {len(self.thresholds)} values for {k} behaviours; give one per behaviour")
        if any(not (0.0 <= t <= 1.0) for t in self.thresholds):
            raise fail(f"thresholds: every threshold must be in [0, 1], got {self.thresholds}")

        spec = self.input
        if spec.height < 1 or spec.width < 1:
            raise fail(f"input: height and width must be positive, got {spec.height}x{spec.width}")
        if spec.channels != 3:
            raise fail(f"input.channels: only 3 (colour frames) is supported, got {spec.channels}")
        if spec.color not in SUPPORTED_COLORS:
            raise fail(f"input.color: {spec.color!r} is not supported (supported: {', '.join(SUPPORTED_COLORS)})")
        if spec.resize not in SUPPORTED_RESIZE:
            raise fail(f"input.resize: {spec.resize!r} is not supported (supported: {', '.join(SUPPORTED_RESIZE)})")
        if spec.frames_per_window < 1:
            raise fail(f"input.frames_per_window must be >= 1, got {spec.frames_per_window}")
        if spec.dtype != "uint8" or spec.layout != "BTHWC":
            raise fail(f"input: frames must be uint8 BTHWC, got {spec.dtype} {spec.layout}")

        for gname, graph in (("encoder", self.encoder), ("sequence", self.sequence)):
            if not graph.files:
                raise fail(f"{gname}.files: no model file listed (expected e.g. {{'onnx': '{gname}.onnx'}})")
            for fmt, rel in graph.files.items():
                _check_relative(rel, f"{source}: {gname}.files.{fmt}")
            if not graph.inputs or not graph.outputs:
                raise fail(f"{gname}: inputs and outputs must be listed")
            for t in [*graph.inputs, *graph.outputs]:
                if t.dtype not in DTYPES:
                    raise fail(f"{gname}: tensor {t.name!r} has unknown dtype {t.dtype!r} (known: {', '.join(DTYPES)})")
            names = [t.name for t in [*graph.inputs, *graph.outputs]]
            if len(set(names)) != len(names):
                raise fail(f"{gname}: input and output names must be unique, got {names}")

        # Encoder: (B, T, H, W, 3) uint8 in; features (B, D) and logits (B, K) out.
        frames = self.encoder.inputs[0]
        want = [None, spec.frames_per_window, spec.height, spec.width, spec.channels]
        if len(frames.shape) != 5 or not _dims_agree(frames.shape, want) or frames.dtype != "uint8":
            raise fail(
                f"encoder input {frames.name!r} is {frames.dtype} {frames.shape} but input says uint8 "
                f"(B, {spec.frames_per_window}, {spec.height}, {spec.width}, {spec.channels})"
            )
        outputs = {t.name: t for t in self.encoder.outputs}
        for required in ("features", "logits"):
            if required not in outputs:
                raise fail(f"encoder outputs: no {required!r} output (outputs: {sorted(outputs)})")
        d = self.sequence.feature_size
        if d < 1:
            raise fail(f"sequence.feature_size must be >= 1, got {d}")
        if not _dims_agree(outputs["features"].shape, [None, d]):
            raise fail(f"encoder output 'features' has shape {outputs['features'].shape} but feature_size is {d}")
        if not _dims_agree(outputs["logits"].shape, [None, k]):
            raise fail(f"encoder output 'logits' has shape {outputs['logits'].shape} but there are {k} behaviours")

        # Sequence step: features (B, D) + state in; probs (B, K) + new state out.
        seq = self.sequence
        if seq.kind not in SEQUENCE_KINDS:
            raise fail(f"sequence.kind: {seq.kind!r} is not one of {', '.join(SEQUENCE_KINDS)}")
        if seq.receptive_field is not None and seq.receptive_field < 1:
            raise fail(f"sequence.receptive_field must be >= 1 or null, got {seq.receptive_field}")
        if not _dims_agree(seq.inputs[0].shape, [None, d]):
            raise fail(f"sequence input {seq.inputs[0].name!r} has shape {seq.inputs[0].shape}, expected (B, {d})")
        if not _dims_agree(seq.outputs[0].shape, [None, k]):
            raise fail(
                f"sequence output {seq.outputs[0].name!r} has shape {seq.outputs[0].shape} but there are {k} behaviours"
            )
        in_names = [t.name for t in seq.inputs[1:]]
        out_names = [t.name for t in seq.outputs[1:]]
        if [s.input for s in seq.state] != in_names or [s.output for s in seq.state] != out_names:
            raise fail(
                f"sequence.state pairs inputs {[s.input for s in seq.state]} with outputs "
                f"{[s.output for s in seq.state]}, but the graph's state inputs are {in_names} and outputs "
                f"{out_names} (in this order)"
            )
        for s in seq.state:
            if s.initial not in STATE_INITIALS:
                raise fail(f"sequence.state {s.input!r}: initial {s.initial!r} not one of {STATE_INITIALS}")

        # Postprocessing settings must parse and fit K.
        try:
            settings = _postprocess_settings(self.postprocess, f"{source}: postprocess")
            settings.check(k)
        except UserFacingError as err:
            raise fail(f"postprocess: {err}") from None

        for rel, entry in self.files.items():
            _check_relative(rel, f"{source}: files")
            if len(entry.sha256) != 64 or any(c not in "0123456789abcdef" for c in entry.sha256):
                raise fail(f"files.{rel}.sha256: not a sha256 hex digest")
            if entry.bytes < 0:
                raise fail(f"files.{rel}.bytes: negative size")
        for gname, graph in (("encoder", self.encoder), ("sequence", self.sequence)):
            for rel in graph.files.values():
                if self.files and _norm(rel) not in self.files:
                    raise fail(f"{gname} file {rel!r} is not listed under files (no hash to check it against)")


def _postprocess_settings(data: Mapping[str, Any], source: str):  # -> PostprocessSettings (lazy: numpy)
    from deg_live.postprocess import PostprocessSettings

    return PostprocessSettings.from_dict(dict(data), source=source)


def _dims_agree(shape: Sequence[int | str | None], want: Sequence[int | str | None]) -> bool:
    """Ranks equal and every dimension known on both sides equal (strings and None are dynamic)."""
    if len(shape) != len(want):
        return False
    return all(not isinstance(a, int) or not isinstance(b, int) or a == b for a, b in zip(shape, want))


def _norm(rel: str) -> str:
    return PurePosixPath(rel.replace("\\", "/")).as_posix()


def _check_relative(rel: str, where: str) -> None:
    p = PurePosixPath(rel.replace("\\", "/"))
    if not rel or p.is_absolute() or ".." in p.parts or rel.startswith("~"):
        raise BundleError(f"{where}: {rel!r} must be a path relative to the bundle directory, inside it")
    if p.as_posix() in (MANIFEST_NAME, MANIFEST_HASH_NAME):
        raise BundleError(f"{where}: {p.as_posix()} cannot be listed in the manifest (it covers the manifest)")


# ---------------------------------------------------------------------------------------------------------------
# Bundle
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """An opened bundle: its directory and validated manifest. Holds no resources.

    Attributes:
        directory: absolute path of the bundle directory.
        manifest: the parsed, validated manifest.
    """

    directory: Path
    manifest: Manifest

    @property
    def behaviours(self) -> list[str]:
        """Behaviour names, the column order of every output."""
        return list(self.manifest.behaviours)

    @property
    def thresholds(self) -> list[float]:
        """(K,) on-thresholds."""
        return list(self.manifest.thresholds)

    @property
    def input(self) -> InputSpec:
        """What the encoder eats (size, colour, frames per window)."""
        return self.manifest.input

    @property
    def engine_cache_dir(self) -> Path:
        """Where engines may cache per-machine builds (TensorRT plans): ``<bundle>/engines``; not hashed."""
        return self.directory / ENGINE_CACHE_DIRNAME

    def path(self, relative: str) -> Path:
        """Absolute path of a file of the bundle."""
        return self.directory / _norm(relative)

    def model_file(self, graph: str, fmt: str = "onnx") -> Path | None:
        """Absolute path of ``graph`` ("encoder" or "sequence") in format ``fmt`` ("onnx", "torch"), or None."""
        spec = self._graph(graph)
        rel = spec.files.get(fmt)
        return self.path(rel) if rel is not None else None

    def postprocess_settings(self):  # -> deg_live.postprocess.PostprocessSettings
        """The postprocessing settings (a :class:`deg_live.postprocess.PostprocessSettings`)."""
        return _postprocess_settings(self.manifest.postprocess, f"{self.directory / MANIFEST_NAME}: postprocess")

    def postprocessor(self):  # -> deg_live.postprocess.CausalPostprocessor
        """A fresh :class:`deg_live.postprocess.CausalPostprocessor` with this bundle's thresholds and settings."""
        from deg_live.postprocess import CausalPostprocessor

        return CausalPostprocessor(self.thresholds, self.postprocess_settings())

    def check_graph_io(self, graph: str, inputs: Iterable[Any], outputs: Iterable[Any]) -> None:
        """Compare the manifest with the inputs and outputs an engine found in the loaded graph.

        Args:
            graph: "encoder" or "sequence".
            inputs: what the graph declares, in order: onnxruntime ``NodeArg``s (``.name``, ``.shape``,
                ``.type`` like "tensor(float)"), TensorRT-style objects with the same attributes, ``TensorSpec``s,
                or tuples ``(name, shape)`` / ``(name, shape, dtype)``. Dynamic dims may be strings or None.
            outputs: the same for the outputs.

        Raises:
            BundleError: names, count, rank, a fixed dimension or a dtype differ; the message names the file.
        """
        spec = self._graph(graph)
        where = f"{self.directory}: {graph} graph ({', '.join(spec.files.values())})"
        for role, declared, found in (("inputs", spec.inputs, list(inputs)), ("outputs", spec.outputs, list(outputs))):
            found = [_as_tensor(x) for x in found]
            want_names = [t.name for t in declared]
            got_names = [t[0] for t in found]
            if want_names != got_names:
                raise BundleError(
                    f"{where}: the graph's {role} are {got_names} but the manifest says {want_names}; "
                    "the bundle was edited or exported inconsistently, re-export it"
                )
            for want, (name, shape, dtype) in zip(declared, found):
                if shape is not None and not _dims_agree(shape, want.shape):
                    raise BundleError(
                        f"{where}: {role[:-1]} {name!r} has shape {list(shape)} in the graph but {want.shape} in "
                        "the manifest; re-export the bundle"
                    )
                if dtype is not None and dtype != want.dtype:
                    raise BundleError(
                        f"{where}: {role[:-1]} {name!r} is {dtype} in the graph but {want.dtype} in the manifest; "
                        "re-export the bundle"
                    )

    def verify(self) -> None:
        """Check every file listed in the manifest exists with its recorded size and sha256.

        Raises:
            BundleError: naming the missing or changed file.
        """
        for gname in ("encoder", "sequence"):
            for rel in self._graph(gname).files.values():
                if not self.path(rel).is_file():
                    raise BundleError(f"{self.directory}: {gname} file {rel!r} is missing; re-export the bundle")
        for rel, entry in self.manifest.files.items():
            path = self.path(rel)
            if not path.is_file():
                raise BundleError(f"{self.directory}: file {rel!r} listed in {MANIFEST_NAME} is missing")
            size = path.stat().st_size
            if size != entry.bytes or sha256_file(path) != entry.sha256:
                raise BundleError(
                    f"{self.directory}: file {rel!r} has changed since export (its sha256 or size differs from "
                    f"{MANIFEST_NAME}); re-export the bundle or restore the file"
                )

    def _graph(self, graph: str) -> GraphSpec | SequenceSpec:
        if graph == "encoder":
            return self.manifest.encoder
        if graph == "sequence":
            return self.manifest.sequence
        raise ValueError(f"unknown graph {graph!r}: expected 'encoder' or 'sequence'")


_ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(uint8)": "uint8",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
    "float": "float32",
    "half": "float16",
}


def _as_tensor(x: Any) -> tuple[str, list | None, str | None]:
    """(name, shape or None, dtype name or None) from a NodeArg-like object, TensorSpec or tuple."""
    if isinstance(x, TensorSpec):
        return x.name, list(x.shape), x.dtype
    if isinstance(x, (tuple, list)):
        name, shape = x[0], x[1]
        dtype = x[2] if len(x) > 2 else None
    else:
        name = x.name
        shape = getattr(x, "shape", None)
        dtype = getattr(x, "type", None) or getattr(x, "dtype", None)
    if dtype is not None:
        dtype = str(dtype)
        dtype = _ONNX_TYPES.get(dtype, dtype.removeprefix("DataType.").lower().replace("torch.", ""))
        dtype = {"float": "float32", "half": "float16"}.get(dtype, dtype)
    shape = None if shape is None else [d if isinstance(d, int) else None for d in shape]
    return str(name), shape, dtype


# ---------------------------------------------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------------------------------------------


def backup_path(directory: str | os.PathLike) -> Path:
    """Where an export keeps the old bundle while it renames the new one into place (``.<name>.previous``)."""
    directory = Path(directory)
    return directory.with_name(f".{directory.name}.previous")


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def manifest_hash_line(manifest_bytes: bytes) -> str:
    """The text of ``manifest.sha256`` for these manifest bytes (``sha256sum`` format: ``<hex>  manifest.json``)."""
    return f"{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST_NAME}\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _json_depth_ok(data: Any, limit: int) -> bool:
    """Whether ``data`` nests no deeper than ``limit`` containers (iterative: no recursion to exhaust)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return False
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
    except OSError as err:
        raise BundleError(f"{path}: cannot read it ({err.strerror or err}); re-export the bundle") from None
    if len(raw) > limit:
        raise BundleError(f"{path}: larger than {limit} bytes, not {what}; re-export the bundle (deg-train export)")
    return raw


def _short(err: BaseException, limit: int = 200) -> str:
    text = str(err)
    return text if len(text) <= limit else text[:limit] + "..."


def parse_manifest(raw: bytes, hash_file: bytes | None, source: str = MANIFEST_NAME) -> Manifest:
    """Check and parse the bytes of ``manifest.json``.

    The one decoder of manifests: :func:`read_bundle` reads the two files and calls it.

    Args:
        raw: the bytes of ``manifest.json``.
        hash_file: the bytes of ``manifest.sha256``, or None when there is none.
        source: the manifest's path, for messages.

    Raises:
        BundleError: too large, not UTF-8 JSON, NaN/Infinity, huge integers, nested too deep, a newer schema,
            a missing or mismatching hash, or a manifest that is invalid or contradicts itself.
    """
    redo = "re-export the bundle (deg-train export)"
    if len(raw) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{source}: larger than {MAX_MANIFEST_BYTES} bytes, not a manifest; {redo}")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise BundleError(f"{source}: not a manifest (JSON nested too deeply to read); {redo}") from None
    except (ValueError, UnicodeDecodeError) as err:  # JSONDecodeError, int digit limit, NaN/Infinity
        raise BundleError(f"{source}: not valid JSON ({_short(err)}); {redo}") from None
    if not _json_depth_ok(data, MAX_MANIFEST_DEPTH):
        raise BundleError(f"{source}: nested deeper than {MAX_MANIFEST_DEPTH} levels, not a manifest; {redo}")
    # A newer schema is reported as such before anything else: its hashing or layout may differ.
    version = data.get("schema_version") if isinstance(data, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        if version > BUNDLE_SCHEMA_VERSION:
            Manifest.from_dict(data, source=source)  # raises the "newer, upgrade" error
        _check_manifest_hash(source, raw, hash_file, version)
    return Manifest.from_dict(data, source=source)


def _check_manifest_hash(source: str, raw: bytes, hash_file: bytes | None, version: int) -> None:
    """Compare ``manifest.sha256`` with the manifest's bytes (see the module docstring for version 1).

    Raises:
        BundleError: the hash file is missing (schema >= 2), malformed, or does not match.
    """
    hash_name = str(Path(source).with_name(MANIFEST_HASH_NAME))
    if hash_file is None:
        if version >= FIRST_HASHED_SCHEMA:
            raise BundleError(
                f"{hash_name} is missing, so {source} cannot be checked (a bundle of schema version {version} always "
                "has one); re-export the bundle (deg-train export) or restore the file"
            )
        log.warning(
            "UNCHECKED BUNDLE MANIFEST: %s is a schema version %d bundle from before manifests were hashed; its "
            "thresholds and settings cannot be checked for edits. Re-export it with deg-train export.",
            source,
            version,
        )
        return
    try:
        fields = hash_file.decode("ascii").split()
    except UnicodeDecodeError:
        fields = []
    if len(fields) != 2 or fields[1].lstrip("*") != MANIFEST_NAME or len(fields[0]) != 64:
        raise BundleError(
            f"{hash_name}: cannot read it: expected one line '<sha256>  {MANIFEST_NAME}'; re-export the bundle "
            "(deg-train export)"
        )
    if fields[0].lower() != hashlib.sha256(raw).hexdigest():
        raise BundleError(
            f"{source} does not match {MANIFEST_HASH_NAME}: the manifest was edited or damaged after export "
            "(a hand-edited threshold or setting is refused); re-export the bundle with deg-train export: "
            "thresholds and postprocessing come from deg-train (evaluate --pick-thresholds, the postprocess config)"
        )


def read_bundle(path: str | os.PathLike, verify: bool = True) -> Bundle:
    """Open a bundle directory (or its manifest.json), check and validate the manifest and, by default, every file.

    Args:
        path: the bundle directory or its ``manifest.json``.
        verify: check each model file's size and sha256 (reads every file once; pass False to skip). The manifest
            itself is always checked against ``manifest.sha256``.

    Raises:
        BundleError: no such bundle, unreadable, edited or invalid manifest, newer schema, missing or changed file.
    """
    path = Path(path).expanduser()
    directory = path.parent if path.name == MANIFEST_NAME else path
    manifest_path = directory / MANIFEST_NAME
    if not directory.is_dir():
        if backup_path(directory).is_dir():
            raise BundleError(
                f"{directory}: missing, but {backup_path(directory)} holds the previous bundle: an export was "
                "interrupted while replacing it. Run the export again, or rename that folder back"
            )
        raise BundleError(f"{directory}: no such bundle directory (export one with `deg-train export`)")
    if not manifest_path.is_file():
        raise BundleError(f"{directory}: not a model bundle, {MANIFEST_NAME} is missing")
    raw = _read_limited(manifest_path, MAX_MANIFEST_BYTES, "a manifest")
    hash_path = directory / MANIFEST_HASH_NAME
    hash_file = _read_limited(hash_path, 4096, "a manifest hash") if hash_path.is_file() else None
    manifest = parse_manifest(raw, hash_file, source=str(manifest_path))
    if not manifest.files:
        raise BundleError(f"{manifest_path}: files is empty, so nothing can be verified; re-export the bundle")
    bundle = Bundle(directory=directory.resolve(), manifest=manifest)
    if verify:
        bundle.verify()
    return bundle


def write_bundle(directory: str | os.PathLike, manifest: Manifest, files: Iterable[str | os.PathLike] = ()) -> Bundle:
    """Hash the bundle's files and write ``manifest.json`` atomically (call after writing the model files).

    Every file named in ``manifest.encoder.files`` and ``manifest.sequence.files`` is hashed, plus ``files``
    (extra paths relative to ``directory``, or absolute paths inside it). ``manifest.files`` is replaced, and
    ``created`` filled with the current UTC time if empty. The manifest is validated before anything is written.

    Args:
        directory: the bundle directory, already holding the model files.
        manifest: the manifest to write (its ``files`` is overwritten).
        files: extra files of the bundle to hash.

    Returns:
        The bundle, read back and verified.

    Raises:
        BundleError: a listed file is missing or the manifest contradicts itself.
    """
    directory = Path(directory)
    rels: list[str] = []
    for rel in [*manifest.encoder.files.values(), *manifest.sequence.files.values(), *files]:
        p = Path(rel)
        if p.is_absolute():
            try:
                p = p.resolve().relative_to(directory.resolve())
            except ValueError:
                raise BundleError(f"{rel}: not inside the bundle directory {directory}") from None
        norm = _norm(p.as_posix())
        _check_relative(norm, f"bundle {directory}")
        if norm not in rels:
            rels.append(norm)
    entries = {}
    for rel in rels:
        path = directory / rel
        if not path.is_file():
            raise BundleError(f"{directory}: {rel!r} does not exist; write the model files before the manifest")
        entries[rel] = FileEntry(sha256=sha256_file(path), bytes=path.stat().st_size)
    # Always the current schema: this writes the current layout (with manifest.sha256).
    manifest = dataclasses.replace(manifest, files=entries, schema_version=BUNDLE_SCHEMA_VERSION)
    if not manifest.created:
        manifest.created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if not manifest.producer:
        from deg_live import __version__

        manifest.producer = f"deg-live {__version__}"
    # Round-trip through JSON so what is written is exactly what read_bundle accepts.
    text = manifest.to_json()
    Manifest.from_dict(json.loads(text), source=str(directory / MANIFEST_NAME))
    # The hash file first: a crash between the two writes leaves a mismatch (a clear error), never a manifest
    # that passes unchecked.
    atomic_write_text(directory / MANIFEST_HASH_NAME, manifest_hash_line(text.encode("utf-8")))
    atomic_write_text(directory / MANIFEST_NAME, text)
    return read_bundle(directory, verify=True)
