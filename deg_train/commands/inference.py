"""``deg-train extract | infer | evaluate | train-all``: features on disk, predictions, reports, the whole pipeline.

- ``extract``: run a feature run's frame encoder over the project's videos, saving features to
  ``<video>_outputs.h5`` (what ``train-sequence`` trains on).
- ``infer``: the full offline pipeline on any videos (project videos or paths), writing ``<video>_outputs.h5``
  and ``<video>_predictions_deg_train.csv`` (DeepEthogram's format under our name: its own ``_predictions.csv`` is
  kept); ``--shard i/n`` splits the list across machines.
- ``evaluate``: pick thresholds on validation, score held-out videos, print a table, write plots and a report.
- ``train-all``: flow -> features -> extract -> sequence (causal, plus the centred comparison) -> thresholds ->
  evaluate, resuming whatever already finished.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="torch device: auto (CUDA if available, else CPU), cpu, cuda, cuda:1 ... (default: auto)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice, the number of cores)"
    )


def _add_batch(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="encoder arithmetic: fp32 (default; the reference live inference is compared with) or bf16 "
        "(about 1.5-2x faster on CPUs with AVX512-BF16/AMX and on GPUs; features differ by ~1e-2)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="frames (causal windows) per encoder call; larger is faster until memory runs out (default: 32)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract``, ``infer``, ``evaluate`` and ``train-all`` subcommands."""
    # -- extract ------------------------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "extract",
        help="save stage-2 features of the project's videos to <video>_outputs.h5",
        description="Run a trained feature extractor (stage 2) over the project's videos on the causal window of "
        "each frame and save spatial/flow features, logits and probabilities to DATA/<video>/<video>_outputs.h5 "
        "(DeepEthogram's layout). Videos that already hold this run's features are skipped.",
    )
    p.add_argument("-p", "--project", required=True, help="the project folder (holding project_config.yaml)")
    p.add_argument(
        "--feature-run",
        default=None,
        help="stage-2 run directory or its name under models/ (default: the latest finished one)",
    )
    p.add_argument("--videos", nargs="+", default=None, metavar="NAME", help="only these project videos (default: all)")
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="process only shard I of N (0-based) of the sorted video list, e.g. 0/4 on the first of "
        "four machines; the N shards cover every video exactly once",
    )
    p.add_argument("--overwrite", action="store_true", help="redo videos whose features are already saved")
    _add_batch(p)
    _add_device(p)
    p.set_defaults(func=_extract)

    # -- infer --------------------------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "infer",
        help="predict behaviours for videos: <video>_outputs.h5 and <video>_predictions_deg_train.csv",
        description="The offline pipeline (decode, causal windows, feature extractor, sequence model, "
        "thresholds, causal postprocessing) on project videos or any video files. Writes <video>_outputs.h5 "
        "(features group + sequence group, DeepEthogram's layout) and <video>_predictions_deg_train.csv (frame index, "
        "then one 0/1 column per behaviour) beside each video, or into --out.",
    )
    p.add_argument(
        "videos",
        nargs="*",
        metavar="VIDEO",
        help="video files, or names of project videos (default with --project: every project video)",
    )
    p.add_argument(
        "-p",
        "--project",
        default=None,
        help="a project folder: its videos are the default input and its latest runs the default models",
    )
    p.add_argument(
        "--feature-run",
        default=None,
        help="stage-2 run directory (default: the one the sequence run was trained on, else the project's latest)",
    )
    p.add_argument(
        "--sequence-run",
        default=None,
        help="stage-3 run directory (default: the project's latest finished sequence run)",
    )
    p.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="process only shard I of N (0-based) of the sorted video list; N machines with "
        "0/N .. N-1/N together cover every video exactly once",
    )
    p.add_argument(
        "--out", default=None, metavar="DIR", help="write outputs and predictions into DIR instead of beside each video"
    )
    p.add_argument(
        "--postprocess",
        choices=("causal", "offline"),
        default="causal",
        help="causal: the live postprocessor (thresholds, hysteresis, minimum durations counted "
        "forward); offline: DeepEthogram's minimum-bout cleanup, which looks ahead (default: causal)",
    )
    p.add_argument(
        "--no-outputs", action="store_true", help="write only <video>_predictions_deg_train.csv, not <video>_outputs.h5"
    )
    _add_batch(p)
    _add_device(p)
    p.set_defaults(func=_infer)

    # -- evaluate -----------------------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "evaluate",
        help="pick thresholds on validation, score held-out videos, write a table and plots",
        description="Scores a sequence run on the project's held-out videos: per behaviour and macro F1, "
        "precision, recall, AUROC, average precision, onset delay and bout count error, with the causal "
        "(live) postprocessing and with DeepEthogram's offline cleanup. Thresholds are picked on the validation "
        "videos to maximise F1 (saved as thresholds.json in the run) unless already picked. Writes "
        "report.md, metrics.csv, report.json and PNG plots (training curves, F1 per behaviour, an ethogram).",
    )
    p.add_argument("-p", "--project", required=True, help="the project folder")
    p.add_argument(
        "--sequence-run", default=None, help="stage-3 run to evaluate (default: the latest finished causal one)"
    )
    p.add_argument(
        "--compare",
        default="auto",
        metavar="RUN",
        help="a second sequence run (e.g. the centred, non-causal one) reported side by side: how much F1 "
        "causality costs and how many frames of onset delay it adds. Default 'auto': the centred run train-all "
        "trained beside the evaluated run, if any; 'none' for no comparison",
    )
    p.add_argument(
        "--part",
        choices=("test", "val", "train"),
        default="test",
        help="which split part to score (default: test; falls back to val if test is empty)",
    )
    p.add_argument(
        "--pick-thresholds",
        action="store_true",
        help="pick thresholds on validation again even if the run already has thresholds.json",
    )
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: <sequence run>/evaluation)")
    p.add_argument("--video", default=None, help="the video drawn in the ethogram plot (default: the first scored)")
    _add_device(p)
    p.set_defaults(func=_evaluate)

    # -- train-all ----------------------------------------------------------------------------------------------
    p = subparsers.add_parser(
        "train-all",
        help="train all three stages, extract features, pick thresholds and evaluate, resuming finished stages",
        description="flow generator -> feature extractor -> extract features -> sequence model (causal, plus the "
        "centred DeepEthogram-style model for comparison) -> thresholds on validation -> evaluation on held-out "
        "videos. Progress and the state of each stage are kept in models/train_all.json: running it again "
        "resumes where it stopped (a crashed stage resumes from its last checkpoint).",
    )
    p.add_argument("-p", "--project", required=True, help="the project folder")
    p.add_argument(
        "--preset",
        default="deg_f",
        help="training preset name (configs/presets, e.g. deg_f, live_cpu_hour, cpu_hour, demo_fast, tiny; an "
        "unknown name lists them all) or a YAML file (default: deg_f)",
    )
    p.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. flow.epochs=2 sequence.arch=tcn"
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start a new pipeline instead of resuming the one recorded in models/train_all.json",
    )
    p.add_argument(
        "--no-compare",
        action="store_true",
        help="skip training the centred (non-causal) sequence model used for the causality comparison",
    )
    _add_batch(p)
    _add_device(p)
    p.set_defaults(func=_train_all)


# ---------------------------------------------------------------------------------------------------------------
# command bodies
# ---------------------------------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> str:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))
    device = getattr(args, "device", "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _open_project(path: str):
    from deg_train.project.layout import Project

    return Project.open(path)


def _extract(args: argparse.Namespace) -> int:
    from deg_train.inference.extract import extract_features, parse_shard
    from deg_train.models.checkpoints import resolve_run

    device = _setup(args)
    project = _open_project(args.project)
    shard = parse_shard(args.shard) if args.shard else None
    run = resolve_run(project, "feature", args.feature_run)
    paths = extract_features(
        project, run, args.videos, shard, batch_size=args.batch_size, device=device, overwrite=args.overwrite
    )
    print(f"features of {len(paths)} videos from {run.name}:")
    for path in paths:
        print(f"  {path}")
    return 0


def _infer(args: argparse.Namespace) -> int:
    from deg_train.inference.videos import infer_videos

    device = _setup(args)
    written = infer_videos(
        project=args.project,
        videos=args.videos or None,
        feature_run=args.feature_run,
        sequence_run=args.sequence_run,
        shard=args.shard,
        out_dir=args.out,
        postprocess_mode=args.postprocess,
        write_h5=not args.no_outputs,
        batch_size=args.batch_size,
        device=device,
        precision=args.precision,
    )
    for video, csv in written:
        print(f"{video} -> {csv}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from deg_train.evaluation.evaluate import evaluate_run
    from deg_train.inference.videos import resolve_sequence_run
    from deg_train.recipe import recorded_comparison

    device = _setup(args)
    project = _open_project(args.project)
    run = resolve_sequence_run(project, args.sequence_run)
    compare = {"auto": recorded_comparison(project, run), "none": None}.get(args.compare, args.compare)
    report = evaluate_run(
        project,
        run,
        compare_run=compare,
        part=args.part,
        repick=args.pick_thresholds,
        out_dir=Path(args.out) if args.out else None,
        ethogram_video=args.video,
        device=device,
    )
    print(report.text)
    print(f"\nreport: {report.out_dir}")
    return 0


def _train_all(args: argparse.Namespace) -> int:
    from deg_train.recipe import train_all

    device = _setup(args)
    report = train_all(
        args.project,
        preset=args.preset,
        overrides=list(args.overrides),
        fresh=args.fresh,
        compare=not args.no_compare,
        batch_size=args.batch_size,
        device=device,
        precision=args.precision,
    )
    print(report.text)
    print(f"\nreport: {report.out_dir}")
    return 0
