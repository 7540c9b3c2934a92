"""Export trained models to a model bundle for deg_live: ONNX + torch exported programs + manifest.

Two layers:

- :func:`export_bundle` takes the two streaming modules and metadata and writes a bundle:
  ``encoder.onnx`` / ``encoder.pt2`` from a :class:`~deg_train.models.frame_encoder.FrameEncoder`
  (``frames (B, T, H, W, 3) uint8 -> features (B, D), logits (B, K)``, preprocessing inside, dynamic batch) and
  ``sequence_step.onnx`` / ``sequence_step.pt2`` from a :class:`~deg_train.models.frame_encoder.SequenceStep`
  (``features (B, D), *state -> probs (B, K), *new_state``, dynamic batch), then ``manifest.json`` through
  :func:`deg_live.bundle.write_bundle`. Right after writing, each ONNX graph is run in ONNX Runtime and each
  ``.pt2`` reloaded, on the example inputs, and compared with the torch module; a difference beyond the tolerance
  is an :class:`ExportError` (the bundle is not left behind).
- :func:`export_runs` / :func:`export_from_path` find the feature and sequence runs (a sequence run dir, or a
  project whose newest finished sequence run is used), rebuild the models from their checkpoints, take the
  thresholds and postprocessing settings from the sequence run, and call :func:`export_bundle`.

The bundle is written to a temporary directory beside ``out`` and renamed into place only when complete and
checked, so a failed export never leaves a half bundle (and never destroys an existing one).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from camera_adapters.errors import UserFacingError
from camera_adapters.progress import progress_bar
from camera_adapters.video import VideoReader
from deg_live import __version__
from deg_live.bundle import (
    Bundle,
    GraphSpec,
    InputSpec,
    Manifest,
    SequenceSpec,
    StateSpec,
    TensorSpec,
    backup_path,
    read_bundle,
    write_bundle,
)
from deg_train.inference.extract import load_encoder
from deg_train.inference.predict import check_compatible, load_sequence, read_thresholds
from deg_train.models.checkpoints import CheckpointError, checkpoint_path, list_runs, load_checkpoint, run_stage
from deg_train.models.feature.two_stream import TwoStream
from deg_train.models.frame_encoder import FrameEncoder, SequenceStep
from deg_train.models.registry import create_model
from deg_train.training.presets import get_preset, sequence_kwargs, two_stream_kwargs

log = logging.getLogger(__name__)

ENCODER_ONNX = "encoder.onnx"
ENCODER_PT2 = "encoder.pt2"
SEQUENCE_ONNX = "sequence_step.onnx"
SEQUENCE_PT2 = "sequence_step.pt2"
#: Largest batch the exported graphs are declared for (torch.export needs a bound; TensorRT profiles use it).
MAX_BATCH = 1024


class ExportError(UserFacingError, RuntimeError):
    """The models cannot be exported, or the exported graphs do not reproduce the torch modules."""


@dataclass(frozen=True)
class Tolerance:
    """How close the exported graphs must be to torch: ``|a - b| <= atol + rtol * |b|`` elementwise."""

    rtol: float = 1e-3
    atol: float = 1e-4


def _producer() -> str:
    return f"deg_train {__version__} (torch {torch.__version__})"


# ---------------------------------------------------------------------------------------------------------------
# The core: modules + metadata -> bundle
# ---------------------------------------------------------------------------------------------------------------


def export_bundle(
    encoder: nn.Module,
    sequence_step: nn.Module,
    out: str | os.PathLike,
    *,
    behaviours: Sequence[str],
    height: int,
    width: int,
    frames_per_window: int,
    thresholds: Sequence[float] | None = None,
    postprocess: dict[str, Any] | None = None,
    preset: str = "",
    training: dict[str, Any] | None = None,
    torch_programs: bool = True,
    overwrite: bool = False,
    tolerance: Tolerance = Tolerance(),
    example_frames: np.ndarray | None = None,
    opset: int | None = None,
    progress: bool | None = None,
) -> Bundle:
    """Write a model bundle from a frame encoder and a sequence step.

    Args:
        encoder: ``forward(frames (B, T, H, W, 3) uint8) -> (features (B, D) float32, logits (B, K))``.
        sequence_step: ``forward(features (B, D), *state) -> (probs (B, K), *new_state)``, with
            ``initial_state(batch) -> tuple of tensors`` (fixed shapes, batch first); optional attributes
            ``kind`` ("history"/"recurrent"), ``receptive_field`` and ``state_names``.
        out: the bundle directory to create.
        behaviours: K behaviour names (output column order).
        height: the encoder's input frame height (frames are resized to it with ``resize_rgb``).
        width: the input frame width.
        frames_per_window: T.
        thresholds: K on-thresholds (default 0.5 each).
        postprocess: :class:`deg_live.postprocess.PostprocessSettings` as a dict.
        preset: the model preset name.
        training: free-form training summary for the manifest (project, runs, videos, split, metrics).
        torch_programs: also write ``.pt2`` exported programs for the torch engine.
        overwrite: replace an existing ``out``.
        tolerance: how close ONNX Runtime and the reloaded programs must be to the torch modules.
        example_frames: ``(N, H, W, 3) uint8`` real frames to check with (default: random frames).
        opset: ONNX opset (default: the exporter's).
        progress: show a progress bar over the export steps (default: when stderr is a terminal).

    Returns:
        the written bundle, read back and verified.

    Raises:
        ExportError: the modules do not export, or the exported graphs differ from torch.
    """
    out = Path(out)
    k = len(behaviours)
    recover_interrupted_publish(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out}: already exists; choose another --out or pass --overwrite")
    thresholds = [0.5] * k if thresholds is None else [float(t) for t in thresholds]
    encoder = encoder.eval().cpu()
    sequence_step = sequence_step.eval().cpu()

    # Example inputs: batch 2 (so the batch dimension is not specialised to 1), real frames when given.
    frames = _example_windows(example_frames, frames_per_window, height, width)
    with torch.inference_mode():
        features, logits = encoder(torch.from_numpy(frames))
    d = int(features.shape[-1])
    if tuple(features.shape) != (len(frames), d) or tuple(logits.shape) != (len(frames), k):
        raise ExportError(
            f"the encoder returned features {tuple(features.shape)} and logits {tuple(logits.shape)} for "
            f"{len(frames)} windows and {k} behaviours; expected (B, D) and (B, {k})"
        )
    sequence_step = BatchFirstStep(sequence_step)
    state = tuple(sequence_step.initial_state(2))
    state_names = list(getattr(sequence_step.step, "state_names", None) or [f"state{i}" for i in range(len(state))])
    kind, receptive_field = sequence_kind(sequence_step.step)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    bar = progress_bar(
        total=6,
        desc=f"export {out.name}",
        unit="step",
        disable=not (sys.stderr.isatty() if progress is None else progress),
    )
    try:
        enc_files = {"onnx": ENCODER_ONNX}
        seq_files = {"onnx": SEQUENCE_ONNX}
        batch = _batch_dim()
        bar.set_postfix_str("torch.export")
        enc_ep = _torch_export(encoder, (torch.from_numpy(frames),), ({0: batch},), "encoder")
        # BatchFirstStep.forward(feature, *state): the state is one nested group for torch.export.
        seq_args = (features.detach().clone(), *[s.detach().clone() for s in state])
        seq_dims = ({0: batch}, tuple({0: batch} for _ in state))
        seq_ep = _torch_export(sequence_step, seq_args, seq_dims, "sequence step")
        bar.update()
        bar.set_postfix_str("ONNX encoder")
        _onnx_export(enc_ep, tmp / ENCODER_ONNX, ["frames"], ["features", "logits"], opset)
        bar.update()
        bar.set_postfix_str("ONNX sequence step")
        state_out = [f"{n}_out" for n in state_names]
        _onnx_export(seq_ep, tmp / SEQUENCE_ONNX, ["features", *state_names], ["probs", *state_out], opset)
        bar.update()
        if torch_programs:
            torch.export.save(enc_ep, tmp / ENCODER_PT2)
            torch.export.save(seq_ep, tmp / SEQUENCE_PT2)
            enc_files["torch"] = ENCODER_PT2
            seq_files["torch"] = SEQUENCE_PT2

        bar.update()
        # Check the graphs against the torch modules before anything is published.
        bar.set_postfix_str("checking against torch")
        check_encoder(encoder, tmp, frames, torch_programs, tolerance)
        check_sequence_step(sequence_step, tmp, d, torch_programs, tolerance)
        bar.update()
        bar.set_postfix_str("manifest")

        t = frames_per_window
        manifest = Manifest(
            behaviours=list(behaviours),
            input=InputSpec(height=height, width=width, frames_per_window=t),
            encoder=GraphSpec(
                files=enc_files,
                inputs=[TensorSpec("frames", ["batch", t, height, width, 3], "uint8")],
                outputs=[TensorSpec("features", ["batch", d]), TensorSpec("logits", ["batch", k])],
            ),
            sequence=SequenceSpec(
                files=seq_files,
                inputs=[
                    TensorSpec("features", ["batch", d]),
                    *[TensorSpec(n, ["batch", *s.shape[1:]], _dtype(s)) for n, s in zip(state_names, state)],
                ],
                outputs=[
                    TensorSpec("probs", ["batch", k]),
                    *[TensorSpec(n, ["batch", *s.shape[1:]], _dtype(s)) for n, s in zip(state_out, state)],
                ],
                kind=kind,
                feature_size=d,
                state=[
                    StateSpec(input=n, output=o, shape=["batch", *s.shape[1:]], dtype=_dtype(s))
                    for n, o, s in zip(state_names, state_out, state)
                ],
                receptive_field=None if receptive_field is None else int(receptive_field),
            ),
            thresholds=thresholds,
            preset=preset,
            producer=_producer(),
            postprocess=dict(postprocess or {}),
            training=dict(training or {}),
        )
        write_bundle(tmp, manifest)
        publish_bundle(tmp, out)
        bar.update()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        bar.close()
    bundle = read_bundle(out)
    log.info("exported bundle %s (%d behaviours, D=%d, T=%d, %dx%d)", out, k, d, frames_per_window, height, width)
    return bundle


# Renames, through a name a test can interrupt (fault injection between the steps of publish_bundle).
_rename = os.replace


def publish_bundle(new: Path, out: Path) -> None:
    """Move the finished bundle ``new`` (a directory beside ``out``) to ``out``; an old ``out`` survives any crash.

    Steps: the old bundle is renamed to its backup name (:func:`deg_live.bundle.backup_path`), ``new`` is renamed
    into place, the backup is deleted. Each rename is atomic: a crash before the second leaves the old bundle whole
    at the backup name (the next export, or :func:`recover_interrupted_publish`, puts it back; ``read_bundle`` says
    where it is); a crash after it leaves the new bundle in place and a backup the next export deletes.
    """
    backup = backup_path(out)
    if backup.exists():
        shutil.rmtree(backup)
    had_old = out.exists()
    if had_old:
        _rename(out, backup)
    try:
        _rename(new, out)
    except BaseException:
        if had_old and not out.exists():
            _rename(backup, out)  # the old bundle back where it was
        raise
    if had_old:
        shutil.rmtree(backup, ignore_errors=True)


def recover_interrupted_publish(out: Path) -> None:
    """Undo what an export killed inside :func:`publish_bundle` left: restore the old bundle, or drop its backup."""
    backup = backup_path(out)
    if not backup.is_dir():
        return
    if out.exists():
        log.info("removing %s, left by an export that was interrupted after publishing %s", backup, out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        log.warning("restoring %s from %s: an export was interrupted while replacing it", out, backup)
        _rename(backup, out)


class BatchFirstStep(nn.Module):
    """A sequence step whose state tensors all have the batch dimension first (the bundle's convention).

    Some models keep state with the batch elsewhere (a GRU's hidden state is ``(layers, B, H)``); this wrapper
    finds each state tensor's batch dimension (the one that changes between ``initial_state(1)`` and ``(2)``)
    and moves it to the front on the way in and out, so engines never need to know.
    """

    def __init__(self, step: nn.Module):
        super().__init__()
        self.step = step
        one, two = step.initial_state(1), step.initial_state(2)
        self.batch_dims: list[int] = []
        for a, b in zip(one, two):
            diff = [i for i, (x, y) in enumerate(zip(a.shape, b.shape)) if x != y]
            if len(diff) != 1 or a.shape[diff[0]] != 1:
                raise ExportError(f"cannot find the batch dimension of a sequence state tensor {tuple(a.shape)}")
            self.batch_dims.append(diff[0])

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, ...]:
        """Zero state, batch first."""
        return tuple(s.movedim(d, 0) for s, d in zip(self.step.initial_state(batch), self.batch_dims))

    def forward(self, feature: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``feature (B, D)``, batch-first state -> ``probs (B, K)``, new batch-first state."""
        inner = [s.movedim(0, d) for s, d in zip(state, self.batch_dims)]
        probs, *new_state = self.step(feature, *inner)
        return (probs, *[s.movedim(d, 0).contiguous() for s, d in zip(new_state, self.batch_dims)])


def sequence_kind(step: nn.Module) -> tuple[str, int | None]:
    """``(kind, receptive_field)`` of a sequence step: "recurrent" (unbounded) or "history" (a finite window)."""
    model = getattr(step, "model", step)
    receptive_field = getattr(step, "receptive_field", None) or getattr(model, "receptive_field", None)
    kind = getattr(step, "kind", None) or ("history" if receptive_field else "recurrent")
    return str(kind), (None if receptive_field is None else int(receptive_field))


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _batch_dim() -> Any:
    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def _example_windows(frames: np.ndarray | None, t: int, h: int, w: int) -> np.ndarray:
    """Two causal windows ``(2, T, H, W, 3) uint8``: from real frames when given, else seeded random ones."""
    if frames is None:
        rng = np.random.default_rng(0)
        return rng.integers(0, 256, (2, t, h, w, 3), dtype=np.uint8)
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (h, w, 3):
        raise ExportError(f"example frames must be (N, {h}, {w}, 3) uint8, got {frames.dtype} {frames.shape}")
    n = len(frames)
    ends = [min(n - 1, t - 1), n - 1]  # the second window ends at the last frame
    idx = np.clip(np.array(ends)[:, None] + np.arange(-t + 1, 1)[None, :], 0, None)
    return np.ascontiguousarray(frames[idx])


def _torch_export(module: nn.Module, args: tuple, dynamic_shapes: tuple, what: str) -> torch.export.ExportedProgram:
    try:
        with torch.no_grad():
            return torch.export.export(module, args, dynamic_shapes=dynamic_shapes, strict=False)
    except Exception as err:
        raise ExportError(
            f"torch.export cannot trace the {what} ({type(err).__name__}: {str(err).strip()[:500]})"
        ) from err


def _onnx_export(
    program: torch.export.ExportedProgram, path: Path, inputs: list[str], outputs: list[str], opset: int | None
) -> None:
    # The ONNX toolchain logs every rewrite at INFO; a user exporting wants only warnings.
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        torch.onnx.export(
            program,
            f=str(path),
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            optimize=True,
            verbose=False,
        )
    except Exception as err:
        raise ExportError(
            f"ONNX export of {path.name} failed ({type(err).__name__}: {str(err).strip()[:500]})"
        ) from err
    if not path.is_file():
        raise ExportError(f"ONNX export of {path.name} wrote no file")


# ---------------------------------------------------------------------------------------------------------------
# Checks: exported graphs == torch modules
# ---------------------------------------------------------------------------------------------------------------


def _compare(name: str, got: np.ndarray, want: np.ndarray, tol: Tolerance) -> None:
    if got.shape != want.shape:
        raise ExportError(f"{name}: shape {got.shape} differs from torch's {want.shape}")
    if not np.allclose(got, want, rtol=tol.rtol, atol=tol.atol):
        err = np.abs(got.astype(np.float64) - want)
        raise ExportError(
            f"{name} does not reproduce the torch module: max abs difference {err.max():.3g} "
            f"(tolerance atol={tol.atol:g}, rtol={tol.rtol:g}); the export is unreliable for this model"
        )


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _load_program(path: Path) -> nn.Module:
    with warnings.catch_warnings():
        # torch's archive reader warns about constants it shares between weights; harmless here.
        warnings.filterwarnings("ignore", message="No complete tensor found", category=UserWarning)
        return torch.export.load(path).module()


def check_encoder(
    encoder: nn.Module, directory: Path, windows: np.ndarray, torch_programs: bool, tol: Tolerance = Tolerance()
) -> None:
    """Run the exported encoder (ONNX Runtime, and the reloaded ``.pt2``) at batch sizes 1 and 2 vs torch.

    Raises:
        ExportError: a difference beyond ``tol``.
    """
    session = _ort_session(directory / ENCODER_ONNX)
    program = _load_program(directory / ENCODER_PT2) if torch_programs else None
    for batch in (windows[:1], windows):
        with torch.inference_mode():
            want = [t.numpy() for t in encoder(torch.from_numpy(batch))]
            got_pt2 = [t.numpy() for t in program(torch.from_numpy(batch))] if program is not None else None
        got = session.run(["features", "logits"], {"frames": batch})
        for name, g, w in zip(("features", "logits"), got, want):
            _compare(f"{ENCODER_ONNX} ({name}, batch {len(batch)})", g, w, tol)
        if got_pt2 is not None:
            for name, g, w in zip(("features", "logits"), got_pt2, want):
                _compare(f"{ENCODER_PT2} ({name}, batch {len(batch)})", g, w, tol)


def check_sequence_step(
    step: nn.Module, directory: Path, feature_size: int, torch_programs: bool, tol: Tolerance = Tolerance(), n: int = 8
) -> None:
    """Step the exported sequence graph ``n`` times on random features, carrying its own state, vs torch.

    Raises:
        ExportError: a difference beyond ``tol``.
    """
    session = _ort_session(directory / SEQUENCE_ONNX)
    names = [i.name for i in session.get_inputs()]
    outs = [o.name for o in session.get_outputs()]
    program = _load_program(directory / SEQUENCE_PT2) if torch_programs else None
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(n, 1, feature_size, generator=gen)
    with torch.inference_mode():
        state_t = tuple(step.initial_state(1))
        state_o = tuple(s.numpy() for s in state_t)
        state_p = state_t
        for i in range(n):
            probs_t, *state_t = step(feats[i], *state_t)
            probs_o, *state_o = session.run(outs, dict(zip(names, (feats[i].numpy(), *state_o))))
            _compare(f"{SEQUENCE_ONNX} (probs, step {i})", probs_o, probs_t.numpy(), tol)
            if program is not None:
                probs_p, *state_p = program(feats[i], *state_p)
                _compare(f"{SEQUENCE_PT2} (probs, step {i})", probs_p.numpy(), probs_t.numpy(), tol)


# ---------------------------------------------------------------------------------------------------------------
# The thin layer: run directories -> bundle
# ---------------------------------------------------------------------------------------------------------------


def _is_project(path: Path) -> bool:
    return path.is_dir() and (path / "models").is_dir() and not (path / "config.yaml").is_file()


def _is_causal(run: Path) -> bool:
    """Whether a sequence run's model is causal (from its checkpoint; unreadable runs count as not)."""
    try:
        meta = load_checkpoint(run)
    except CheckpointError:
        return False
    seq_cfg = (meta.get("config") or {}).get("sequence") or {}
    return bool((meta.get("model_kwargs") or {}).get("causal", seq_cfg.get("causal", True)))


def resolve_runs(path: str | os.PathLike, feature_run: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The ``(feature_run, sequence_run)`` directories to export from a user's ``RUN_OR_PROJECT``.

    ``path`` is a sequence run directory (or its checkpoint file), or a project directory whose newest finished
    causal sequence run is used. The feature run is ``feature_run`` if given, else the one the sequence run was trained
    on (recorded in its checkpoint).

    Raises:
        ExportError: nothing to export there.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ExportError(f"{path}: no such run or project directory")
    if _is_project(path):
        # The newest finished CAUSAL sequence run (train-all also trains a centred one for comparison).
        sequence_run = next(
            (run for run in reversed(list_runs(path / "models", "sequence", finished=True)) if _is_causal(run)), None
        )
        if sequence_run is None:
            raise ExportError(
                f"{path}: the project has no finished causal sequence run to export; train one first "
                "(deg-train train-sequence or deg-train train-all)"
            )
    else:
        sequence_run = path if path.is_dir() else path.parent
        stage = run_stage(sequence_run)
        if stage is not None and stage != "sequence":
            raise ExportError(
                f"{sequence_run}: this is a {stage} run; export needs a sequence run (or the project directory)"
            )
    try:
        meta = load_checkpoint(sequence_run)
        checkpoint_path(sequence_run)
    except CheckpointError as err:
        raise ExportError(f"cannot export {sequence_run}: {err}") from None
    if meta.get("stage") != "sequence":
        raise ExportError(f"{sequence_run}: a {meta.get('stage')} checkpoint; export needs a sequence run")
    if feature_run is None:
        recorded = (meta.get("extra") or {}).get("feature_run")
        if not recorded:
            raise ExportError(f"{sequence_run}: the run does not record its feature run; pass --feature-run")
        feature_run = Path(recorded)
        if not feature_run.is_absolute() and not feature_run.exists():
            feature_run = sequence_run.parent / feature_run.name
    feature_run = Path(feature_run)
    if not feature_run.exists():
        raise ExportError(f"{feature_run}: the feature run is missing; pass --feature-run")
    return feature_run, sequence_run


def export_runs(
    feature_run: str | os.PathLike,
    sequence_run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    overwrite: bool = False,
    torch_programs: bool = True,
    example_video: str | os.PathLike | None = None,
    preset: str | None = None,
) -> Bundle:
    """Export a trained feature run + sequence run as a bundle.

    Thresholds and postprocessing come from the sequence run (``thresholds.json`` when thresholds were picked
    on validation, else 0.5 and the config's settings, with a warning); the training summary from both
    checkpoints.

    Args:
        feature_run: stage-2 run directory or checkpoint.
        sequence_run: stage-3 run directory or checkpoint (causal).
        out: the bundle directory.
        overwrite: replace an existing bundle.
        torch_programs: write ``.pt2`` programs too.
        example_video: a video whose first frames are used to check the export (default: random frames).
        preset: the preset name for the manifest (default: from the run config, else the feature arch).

    Raises:
        ExportError / CheckpointError / InferenceError: runs that are missing, centred, or do not fit.
    """
    encoder = load_encoder(feature_run)
    sequence = load_sequence(sequence_run)
    check_compatible(encoder, sequence)
    if not sequence.causal:
        raise ExportError(
            f"{sequence.run_dir}: a centred (non-causal) sequence model cannot stream; export a causal run"
        )
    picked = read_thresholds(sequence.run_dir) if sequence.run_dir is not None else None
    if picked is None:
        log.warning("%s: thresholds were not picked on validation yet; the bundle uses 0.5", sequence.run_dir)
    height, width = encoder.size
    frames = None
    if example_video is not None:
        with VideoReader(example_video, size=(height, width)) as video:
            frames = video.read_range(0, min(len(video), 2 * encoder.frames_per_window))
    config = encoder.meta.get("config") or {}
    training = {
        "feature_run": str(encoder.run_dir),
        "sequence_run": str(sequence.run_dir),
        "feature": _run_summary(encoder.meta),
        "sequence": _run_summary(sequence.meta),
        "thresholds": {k: v for k, v in (picked or {}).items() if k not in ("thresholds", "postprocess")},
        "latent_name": encoder.latent_name,
    }
    training = _json_safe(training)  # NaN metrics (e.g. F1 of an absent behaviour) become null
    return export_bundle(
        encoder.encoder,
        SequenceStep(sequence.model, exclusive=sequence.exclusive),
        out,
        behaviours=sequence.behaviours,
        height=height,
        width=width,
        frames_per_window=encoder.frames_per_window,
        thresholds=[float(t) for t in sequence.thresholds],
        postprocess=sequence.postprocess.to_dict(),
        preset=preset or str(config.get("preset") or (config.get("feature") or {}).get("arch") or ""),
        training=training,
        torch_programs=torch_programs,
        overwrite=overwrite,
        example_frames=frames,
    )


def _run_summary(meta: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint says about its training, JSON-safe, for the manifest."""
    extra = meta.get("extra") or {}
    summary = {
        "arch": meta.get("arch"),
        "epoch": meta.get("epoch"),
        "checkpoint": str(meta.get("path", "")),
        "metrics": meta.get("metrics") or {},
        "train_videos": extra.get("train_videos"),
        "val_videos": extra.get("val_videos"),
    }
    return _json_safe(summary)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def export_from_path(
    path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    feature_run: str | os.PathLike | None = None,
    **kwargs: Any,
) -> Bundle:
    """``deg-train export RUN_OR_PROJECT --out BUNDLE``: :func:`resolve_runs` then :func:`export_runs`."""
    feature, sequence = resolve_runs(path, feature_run)
    log.info("exporting feature run %s + sequence run %s -> %s", feature, sequence, out)
    return export_runs(feature, sequence, out, **kwargs)


def export_random(
    preset: str,
    out: str | os.PathLike,
    *,
    size: tuple[int, int] | None = None,
    num_behaviours: int = 7,
    seed: int = 0,
    **kwargs: Any,
) -> Bundle:
    """Export a preset's models with random weights (for benchmarks: speed does not depend on the weights).

    Args:
        preset: a training preset (:data:`deg_train.training.presets.PRESETS`: ``deg_f``, ``deg_live_cpu``...).
        out: the bundle directory.
        size: ``(height, width)`` input size (default: the preset's).
        num_behaviours: K (background plus ``K - 1`` placeholder behaviours).
        seed: torch seed for the random weights.
        **kwargs: passed to :func:`export_bundle` (``overwrite``, ``torch_programs``...).
    """
    torch.manual_seed(seed)
    spec = get_preset(preset)
    height, width = size or tuple(spec["input_size"])
    behaviours = ["background", *[f"behaviour_{i}" for i in range(1, num_behaviours)]]
    two_stream = TwoStream(**two_stream_kwargs(spec, num_behaviours)).eval()
    arch, seq_kwargs = sequence_kwargs(spec, num_behaviours, two_stream.num_features)
    sequence = create_model("sequence", arch, **seq_kwargs).eval()
    return export_bundle(
        FrameEncoder(two_stream),
        SequenceStep(sequence),
        out,
        behaviours=behaviours,
        height=int(height),
        width=int(width),
        frames_per_window=two_stream.num_frames,
        preset=preset,
        training={"random_weights": True, "seed": seed, "note": "random weights, for benchmarks only"},
        **kwargs,
    )
