"""``deg-train train-flow | train-features | train-sequence | flow-viz``: train the three stages, look at flows.

Examples:
    deg-train train-flow -p my_project --preset deg_f
    deg-train train-features -p my_project --preset deg_f feature.epochs=30 train.device=cuda
    deg-train train-sequence -p my_project --preset deg_f sequence.arch=gru
    deg-train train-flow -p my_project --resume my_project/models/20240101_120000_flow_TinyMotionNet
    deg-train flow-viz -p my_project --video mouse1 --out flows/ --frames 200
    torchrun --nproc_per_node 4 -m deg_train.cli train-features -p my_project --preset deg_m
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from camera_adapters.errors import UserFacingError
from camera_adapters.files import atomic_output

log = logging.getLogger(__name__)

_CONFIG_HELP = (
    "Settings come from a preset in configs/presets (--preset, default deg_f) or a YAML file (--config), with "
    "key=value overrides on top (e.g. flow.epochs=3 train.seed=1 data.size=[96,96]); every key is documented in "
    "configs/presets/defaults.yaml. The resolved config is saved as config.yaml in the run directory."
)


def _add_common(parser: argparse.ArgumentParser, stage: str) -> None:
    parser.add_argument(
        "-p",
        "--project",
        default=".",
        metavar="DIR",
        help="the project folder (or its project_config.yaml); default: the current folder",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        metavar="NAME",
        help="a preset of configs/presets, e.g. deg_f (default), deg_live_cpu, live_cpu_hour, cpu_hour, demo_fast, "
        "tiny (an unknown name lists them all)",
    )
    source.add_argument("--config", metavar="FILE", help="a config YAML file (e.g. a run's config.yaml)")
    parser.add_argument(
        "--resume",
        metavar="RUN",
        help=f"resume this {stage} run directory after a crash or stop (its config.yaml is used unless --preset "
        "or --config is given; overrides still apply, e.g. more epochs)",
    )
    parser.add_argument(
        "--device",
        metavar="DEV",
        help="shortcut for train.device=DEV: auto, cpu, cuda, cuda:1 (default: auto)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, dotted keys (flow.lr=0.001, train.max_steps_per_epoch=50)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the training commands to ``deg-train``."""
    p = subparsers.add_parser(
        "train-flow",
        help="stage 1: train the flow generator (self-supervised, no labels needed)",
        description="Train the flow generator on every frame of the project's training videos with "
        "DeepEthogram's self-supervised MotionNet loss. Writes <project>/models/<date>_<time>_flow_<arch>/. "
        + _CONFIG_HELP,
    )
    _add_common(p, "flow")
    p.set_defaults(func=_train_flow)

    p = subparsers.add_parser(
        "train-features",
        help="stage 2: train the hidden two-stream feature extractor on labelled frames",
        description="Train the spatial and flow ResNets on labelled frames of the training videos, the flow "
        "stream fed by a trained (frozen) flow generator. Writes <project>/models/<date>_<time>_feature_<arch>/. "
        + _CONFIG_HELP,
    )
    _add_common(p, "feature")
    p.add_argument(
        "--flow-run",
        metavar="RUN",
        help="the flow run to use (a run directory or its name in <project>/models); default: feature.flow_run, "
        "else the newest finished flow run",
    )
    p.set_defaults(func=_train_features)

    p = subparsers.add_parser(
        "train-sequence",
        help="stage 3: train the causal sequence model on saved features",
        description="Train the sequence model (causal TGM by default) on the features a feature run saved in "
        "each video's <video>_outputs.h5 (extracted first where missing). Writes "
        "<project>/models/<date>_<time>_sequence_<arch>/. " + _CONFIG_HELP,
    )
    _add_common(p, "sequence")
    p.add_argument(
        "--feature-run",
        metavar="RUN",
        help="the feature run whose features to use; default: sequence.feature_run, else the newest finished "
        "feature run",
    )
    p.set_defaults(func=_train_sequence)

    p = subparsers.add_parser(
        "flow-viz",
        help="write colour-coded flows next to the frames (PNG grid and/or mp4)",
        description="Run a flow generator over a video and write its flows beside the frames, so a person can "
        "check they make sense: colour = direction, saturation = speed (white = still). The flow shown at "
        "frame t is the finest flow between frames t-1 and t, from the causal clip ending at t.",
    )
    p.add_argument(
        "-p",
        "--project",
        default=".",
        metavar="DIR",
        help="the project folder (used to find runs and videos by name); default: the current folder",
    )
    p.add_argument(
        "--run",
        metavar="RUN",
        help="a flow run, or a feature run (its frozen flow generator is used); default: the newest finished flow run",
    )
    p.add_argument("--video", required=True, metavar="NAME_OR_PATH", help="a project video name or a video file")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNG and/or mp4 into")
    p.add_argument("--start", type=int, default=0, metavar="N", help="first frame to show (default 0)")
    p.add_argument("--frames", type=int, default=100, metavar="N", help="how many frames (default 100)")
    p.add_argument(
        "--format",
        choices=("png", "mp4", "both"),
        default="both",
        help="png: a grid of 8 frames with their flows; mp4: every frame beside its flow; both (default)",
    )
    p.add_argument(
        "--max-flow",
        type=float,
        default=None,
        metavar="PX",
        help="flow magnitude in pixels per frame shown fully saturated (default: the 99th percentile of the "
        "magnitudes shown, printed)",
    )
    p.add_argument("--device", default="auto", metavar="DEV", help="torch device: auto (default), cpu, cuda")
    p.set_defaults(func=_flow_viz)


# ---------------------------------------------------------------------------------------------------------------
# Training commands
# ---------------------------------------------------------------------------------------------------------------


def _open_project(path: str) -> Any:
    from deg_train.project.layout import Project

    return Project.open(path)


def _config(args: argparse.Namespace, project: Any) -> Any:
    """The run's config: preset or --config, then a DeepEthogram project's own settings, then KEY=VALUE overrides.

    Resuming without --preset/--config reuses the run's saved config.yaml (which already has the project's).
    """
    from deg_train.training.config import load_config
    from deg_train.training.project_settings import load_project_config

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.config:
        return load_project_config(project, Path(args.config), overrides)
    if args.resume and not args.preset:
        saved = Path(args.resume) / "config.yaml"
        if not saved.is_file():
            raise UserFacingError(f"{args.resume}: no config.yaml; is it a run directory? (give --preset too)")
        return load_config(saved, overrides)
    return load_project_config(project, args.preset or "deg_f", overrides)


def _resume_dir(project: Any, run: str | None) -> Path | None:
    if run is None:
        return None
    path = Path(run)
    if not path.is_dir() and (Path(project.models_dir) / run).is_dir():
        path = Path(project.models_dir) / run
    if not path.is_dir():
        raise UserFacingError(f"--resume {run}: run directory not found")
    return path


def _report(run: Path) -> int:
    import os

    from deg_train.training.trainer import read_metrics

    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, rank 0 reports
    rows = read_metrics(run)
    if rows:
        last = rows[-1]
        shown = {k: v for k, v in last.items() if isinstance(v, float) and (k.startswith("val_") or k == "lr")}
        print(" ".join(f"{k}={v:.4g}" for k, v in list(shown.items())[:6]))
    print(run)
    return 0


def _train_flow(args: argparse.Namespace) -> int:
    from deg_train.training.stages import train_flow

    project = _open_project(args.project)
    return _report(train_flow(project, _config(args, project), run_dir=_resume_dir(project, args.resume)))


def _train_features(args: argparse.Namespace) -> int:
    from deg_train.training.stages import train_features

    project = _open_project(args.project)
    run = train_features(
        project, _config(args, project), flow_run=args.flow_run, run_dir=_resume_dir(project, args.resume)
    )
    return _report(run)


def _train_sequence(args: argparse.Namespace) -> int:
    from deg_train.training.stages import train_sequence

    project = _open_project(args.project)
    run = train_sequence(
        project, _config(args, project), feature_run=args.feature_run, run_dir=_resume_dir(project, args.resume)
    )
    return _report(run)


# ---------------------------------------------------------------------------------------------------------------
# Flow visualisation
# ---------------------------------------------------------------------------------------------------------------


def load_flow_generator(run: str | Path) -> tuple[Any, dict[str, Any]]:
    """The flow generator of a flow run, or the frozen one inside a feature run; with the run's metadata."""
    from deg_train.models.checkpoints import build_model_from_checkpoint

    model, meta = build_model_from_checkpoint(run)
    if meta["stage"] == "feature":
        model = model.flow_generator
    elif meta["stage"] != "flow":
        raise UserFacingError(f"{run}: a {meta['stage']} run has no flow generator; give a flow or feature run")
    return model.eval(), meta


def render_flow_visualisation(
    run: str | Path,
    video: str | Path,
    out_dir: str | Path,
    *,
    start: int = 0,
    frames: int = 100,
    fmt: str = "both",
    max_flow: float | None = None,
    device: str = "cpu",
    batch_size: int = 16,
) -> list[Path]:
    """Write a flow generator's flows beside the frames of ``video``; returns the files written.

    Each output frame is ``[frame t | flow t-1 -> t]`` at the run's training size, scaled up to at least 256
    pixels high. PNG: a grid of up to 8 evenly spaced frames; mp4: every frame from ``start``.
    """
    import torch

    from camera_adapters.video import VideoReader, write_video
    from deg_live.windows import causal_window_indices
    from deg_train.models.flow.base import upsample_flow
    from deg_train.training.augment import model_normalisation, prepare_clips
    from deg_train.training.flow_viz import flow_to_rgb

    model, meta = load_flow_generator(run)
    config = meta.get("config") or {}
    size = tuple((config.get("data") or {}).get("size", (128, 128)))
    T = int(model.num_frames)
    model.to(device)
    mean, std = model_normalisation(model)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with VideoReader(video, size=(int(size[0]), int(size[1]))) as reader:
        n = len(reader)
        if not 0 <= start < n:
            raise UserFacingError(f"--start {start}: the video has {n} frames")
        stop = min(n, start + max(1, frames))
        first = max(0, start - (T - 1))
        decoded = reader.read_range(first, stop)  # (M, H, W, 3) uint8
        fps = reader.fps or 25.0
    # Causal windows: the clip for frame t is t-T+1 .. t, frame 0 repeated before the video's start.
    windows = decoded[causal_window_indices(np.arange(start, stop), T) - first]  # (N, T, H, W, 3)
    flows = []
    with torch.inference_mode():
        for i in range(0, len(windows), batch_size):
            clip = torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size]))
            x = prepare_clips(clip, device, mean=mean, std=std)
            flow = upsample_flow(model(x)[0].float(), (int(size[0]), int(size[1])))[:, -2:]  # last pair: t-1 -> t
            flows.append(flow.cpu().numpy())
    flow_all = np.concatenate(flows)  # (N, 2, H, W), pixels at the run's size
    if max_flow is None:
        # One colour scale for the whole output: the 99th percentile of the speeds shown.
        max_flow = float(np.quantile(np.hypot(flow_all[:, 0], flow_all[:, 1]), 0.99)) or 1.0
    log.info("flow colour scale: %.3g px per frame = full saturation", max_flow)
    tiles = [np.concatenate([windows[k, -1], flow_to_rgb(flow_all[k], max_flow)], axis=1) for k in range(len(windows))]
    scale = max(1, int(np.ceil(256 / tiles[0].shape[0])))
    tiles = [t.repeat(scale, 0).repeat(scale, 1) for t in tiles]
    name = Path(video).stem
    written = []
    if fmt in ("png", "both"):
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        pick = np.unique(np.linspace(0, len(tiles) - 1, min(8, len(tiles))).round().astype(int))
        grid = (
            np.concatenate([tiles[k] for k in pick], axis=0)
            if len(pick) <= 4
            else np.concatenate(
                [
                    np.concatenate([tiles[k] for k in pick[: (len(pick) + 1) // 2]], axis=0),
                    np.concatenate(
                        [tiles[k] for k in pick[(len(pick) + 1) // 2 :]]
                        + [np.full_like(tiles[0], 255)] * (len(pick) % 2),
                        axis=0,
                    ),
                ],
                axis=1,
            )
        )
        path = out_dir / f"{name}_flows_{start}-{stop - 1}.png"
        with atomic_output(path) as tmp:
            plt.imsave(tmp, grid, format="png")
        written.append(path)
    if fmt in ("mp4", "both"):
        path = out_dir / f"{name}_flows_{start}-{stop - 1}.mp4"
        with atomic_output(path) as tmp:
            write_video(tmp, tiles, fps=fps)
        written.append(path)
    return written


def _flow_viz(args: argparse.Namespace) -> int:
    from deg_train.models.checkpoints import resolve_run
    from deg_train.training.trainer import resolve_device

    project = None
    try:
        project = _open_project(args.project)
    except UserFacingError:
        if args.run is None:
            raise
    run = resolve_run(project if project is not None else Path(args.project), "flow", args.run)
    video = Path(args.video)
    if not video.is_file():
        if project is None:
            raise UserFacingError(f"--video {args.video}: no such file (and no project to look the name up in)")
        video = project.video(args.video).video_path
    device = str(resolve_device(args.device))
    paths = render_flow_visualisation(
        run,
        video,
        args.out,
        start=args.start,
        frames=args.frames,
        fmt=args.format,
        max_flow=args.max_flow,
        device=device,
    )
    for path in paths:
        print(path)
    return 0
