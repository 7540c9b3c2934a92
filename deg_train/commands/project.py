"""``deg-train init | add | status | labels | split | cache``: make and inspect projects.

Examples:
    deg-train init my_project --behaviours grooming rearing
    deg-train add -p my_project videos/mouse1.mp4 videos/mouse2.mp4 --find-labels
    deg-train labels -p my_project import-boris mouse1 mouse1_events.tsv --subject mouse
    deg-train split -p my_project --make --fractions 0.7 0.15 0.15 --seed 1
    deg-train status -p my_project
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from camera_adapters.errors import UserFacingError
from camera_adapters.progress import progress_bar
from camera_adapters.video import probe
from deg_train.project.layout import Project, ProjectError

log = logging.getLogger(__name__)


def _add_project_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-p",
        "--project",
        default=".",
        metavar="DIR",
        help="the project folder (or its project_config.yaml); default: the current folder",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the project commands to ``deg-train``."""
    p = subparsers.add_parser(
        "init",
        help="create a new project (DeepEthogram layout)",
        description="Create a project folder with project_config.yaml, DATA/ and models/, in DeepEthogram's layout.",
    )
    p.add_argument("path", metavar="DIR", help="the project folder to create (may exist, empty)")
    p.add_argument("--name", help="the project's name (default: the folder name)")
    p.add_argument(
        "--behaviours",
        "--behaviors",
        nargs="+",
        default=[],
        metavar="NAME",
        help="behaviour names ('background' is added first); may be left out and taken from the first label file",
    )
    p.add_argument("--labeler", help="who labels (recorded as DeepEthogram does)")
    p.set_defaults(func=_init)

    p = subparsers.add_parser(
        "add",
        help="add videos (and their label CSVs) to a project",
        description="Copy (or link) videos into DATA/<name>/, checking that each decodes to the end, as many frames "
        "as its header declares, and that its labels have one row per frame and the project's behaviour columns. "
        "Nothing is written for a video that fails a check.",
    )
    _add_project_option(p)
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files to add")
    p.add_argument(
        "--labels",
        nargs="+",
        metavar="CSV",
        help="label CSVs (DeepEthogram layout), one per video, in the same order",
    )
    p.add_argument(
        "--find-labels",
        action="store_true",
        help="use <video>_labels.csv beside each video when it exists",
    )
    p.add_argument("--link", action="store_true", help="link to the videos instead of copying them")
    p.add_argument(
        "--fill-missing",
        type=int,
        choices=(-1, 0),
        default=None,
        help="value for project behaviours a label file lacks: -1 (unlabelled) or 0 (absent); default: error",
    )
    p.add_argument(
        "--allow-truncated",
        action="store_true",
        help="add a video whose header declares more frames than decode (cut short) with the frames that decode, "
        "and a warning; by default such a video is refused",
    )
    p.set_defaults(func=_add)

    p = subparsers.add_parser(
        "status",
        help="show videos, frames, labelled frames per behaviour and split",
        description="A table of the project's videos: frames, labelled frames, frames where each behaviour is "
        "present (present/labelled where partly labelled), and each video's split part.",
    )
    _add_project_option(p)
    p.set_defaults(func=_status)

    p = subparsers.add_parser(
        "labels",
        help="edit behaviours and import labels (CSV, BORIS)",
        description="Add or remove behaviours without losing labels, and import label files.",
    )
    _add_project_option(p)
    sub = p.add_subparsers(dest="labels_command", metavar="ACTION", required=True)
    q = sub.add_parser("add-behaviour", help="add a behaviour; existing label files get a new column")
    q.add_argument("name", help="the behaviour's name")
    q.add_argument(
        "--value",
        type=int,
        choices=(-1, 0),
        default=-1,
        help="its value in existing label files: -1 unlabelled (default) or 0 absent (only if you know it is)",
    )
    q.set_defaults(func=_add_behaviour)
    q = sub.add_parser("remove-behaviour", help="remove a behaviour and its column from every label file")
    q.add_argument("name", help="the behaviour's name")
    q.set_defaults(func=_remove_behaviour)
    q = sub.add_parser("import-csv", help="set a video's labels from a CSV (DeepEthogram layout)")
    q.add_argument("video", help="the video's name in the project")
    q.add_argument("csv", help="the label CSV")
    q.add_argument(
        "--fill-missing",
        type=int,
        choices=(-1, 0),
        default=None,
        help="value for project behaviours the file lacks: -1 (unlabelled) or 0 (absent); default: error",
    )
    q.set_defaults(func=_import_csv)
    q = sub.add_parser("import-boris", help="set a video's labels from a BORIS events export (CSV/TSV)")
    q.add_argument("video", help="the video's name in the project")
    q.add_argument("export", help="BORIS 'Export events' or 'Export aggregated events' file (.csv or .tsv)")
    q.add_argument("--subject", help="the subject to import when the file has several ('all' merges them)")
    q.add_argument("--observation", help="the observation id when the file has several ('all' merges them)")
    q.add_argument(
        "--add-missing",
        action="store_true",
        help="add behaviours the project lacks (other videos get -1, unlabelled) instead of stopping",
    )
    q.add_argument(
        "--observed",
        nargs=2,
        type=float,
        metavar=("START_S", "STOP_S"),
        help="the coded part of the video in seconds (default: all of it)",
    )
    q.add_argument(
        "--observed-events",
        action="store_true",
        help="the coded part runs from the first event to the last (instead of the whole video)",
    )
    q.add_argument(
        "--outside",
        type=int,
        choices=(-1, 0),
        default=-1,
        help="label of frames outside the coded part: -1 unlabelled (default) or 0 absent",
    )
    q.add_argument("--fps", type=float, help="frame rate to convert seconds to frames (default: the video's)")
    q.set_defaults(func=_import_boris)

    p = subparsers.add_parser(
        "split",
        help="show or make the train/validation/test split (DATA/split.yaml)",
        description="Without --make, show the split. With --make, split videos (or sessions) so that every "
        "behaviour is in train and validation where possible; reproducible from the seed. Settings default to "
        "the project's (configs/project.yaml documents them); KEY=VALUE overrides such as split.seed=3 apply.",
    )
    _add_project_option(p)
    p.add_argument("--make", action="store_true", help="make a new split and save it")
    p.add_argument(
        "--assign",
        nargs="+",
        metavar=("PART", "VIDEO"),
        help="put videos into train, val or test, leaving the rest of the split as it is (e.g. a new labelled "
        "session into train: --assign train SESSION)",
    )
    p.add_argument("--force", action="store_true", help="with --make, replace an existing split")
    p.add_argument("--fractions", nargs=3, type=float, metavar=("TRAIN", "VAL", "TEST"), help="shares, sum 1")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument(
        "--group-by",
        metavar="REGEX",
        help="keep sessions together: regex whose first group (or match) names a video's session",
    )
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="project setting overrides, e.g. split.seed=3")
    p.set_defaults(func=_split)

    p = subparsers.add_parser(
        "cache",
        help="build the frame caches of the project's videos at a training size",
        description="Decode every video once at HEIGHT x WIDTH into cache/ (reused by training; rebuilt only when "
        "a video changes).",
    )
    _add_project_option(p)
    p.add_argument("--size", nargs=2, type=int, default=(128, 128), metavar=("H", "W"), help="frame size")
    p.add_argument("--videos", nargs="+", metavar="NAME", help="only these videos (default: all)")
    p.set_defaults(func=_cache)


# -- handlers ------------------------------------------------------------------------------------------------------


def _init(args: argparse.Namespace) -> int:
    project = Project.init(args.path, args.name, args.behaviours, labeler=args.labeler)
    print(f"created project {project.name} at {project.root}")
    print(f"behaviours: {', '.join(project.behaviours) or 'none yet (taken from the first label file added)'}")
    print(f"next: deg-train add -p {args.path} VIDEO... --labels CSV...")
    return 0


def _add(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    videos = [Path(v) for v in args.videos]
    if args.labels and args.find_labels:
        raise ProjectError("give --labels or --find-labels, not both")
    if args.labels and len(args.labels) != len(videos):
        raise ProjectError(f"{len(videos)} videos but {len(args.labels)} label files; give one label file per video")
    labels: list[Path | None]
    if args.labels:
        labels = [Path(x) for x in args.labels]
    elif args.find_labels:
        labels = [v.with_name(f"{v.stem}_labels.csv") for v in videos]
        labels = [x if x.is_file() else None for x in labels]
    else:
        labels = [None] * len(videos)
    failed = 0
    for video, label in progress_bar(
        list(zip(videos, labels)), desc="adding videos", unit="video", disable=len(videos) < 3
    ):
        try:
            record = project.add_video(
                video,
                labels=label,
                mode="link" if args.link else None,
                fill_missing=args.fill_missing,
                allow_truncated=args.allow_truncated,
            )
        except UserFacingError as err:
            failed += 1
            print(f"not added: {err}", file=sys.stderr)
            continue
        what = f"with labels {label.name}" if label else "without labels"
        progress_bar.write(f"added {record.name} ({record.n_frames} frames) {what}")
    if failed:
        print(f"{failed} of {len(videos)} videos not added (see above); the others are in the project", file=sys.stderr)
        return 2
    return 0


def _status(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    print(project.format_status())
    return 0


def _add_behaviour(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    project.add_behaviour(args.name, args.value)
    print(f"added {args.name!r}; behaviours: {', '.join(project.behaviours)}")
    return 0


def _remove_behaviour(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    project.remove_behaviour(args.name)
    print(f"removed {args.name!r}; behaviours: {', '.join(project.behaviours)}")
    return 0


def _import_csv(args: argparse.Namespace) -> int:
    from deg_live.labels import read_labels

    project = Project.open(args.project)
    record = project.video(args.video)
    n = project.n_frames(args.video, exact=True)
    table = read_labels(args.csv, n_frames=n, behaviours=project.behaviours or None, fill_missing=args.fill_missing)
    path = project.save_labels(record.name, table)
    print(f"wrote {path} ({table.n_frames} frames, {int(table.labelled_frames().sum())} labelled)")
    return 0


def _import_boris(args: argparse.Namespace) -> int:
    from deg_train.project.boris import import_boris

    project = Project.open(args.project)
    record = project.video(args.video)
    info = record.info or {}
    n = project.n_frames(args.video, exact=True)
    fps = args.fps or info.get("fps") or probe(record.video_path, exact=False).fps
    if args.observed and args.observed_events:
        raise ProjectError("give --observed START STOP or --observed-events, not both")
    observed = tuple(args.observed) if args.observed else "events" if args.observed_events else "video"
    table = import_boris(
        args.export,
        n,
        fps,
        project.behaviours or None,
        subject=args.subject,
        observation=args.observation,
        add_missing=args.add_missing,
        observed=observed,
        outside=args.outside,
    )
    for name in table.behaviours:
        if project.behaviours and name not in project.behaviours:
            project.add_behaviour(name, -1)
            print(f"added behaviour {name!r} to the project (unlabelled in the other videos)")
    path = project.save_labels(record.name, table)
    positives = ", ".join(f"{b} {int(c)}" for b, c in zip(table.behaviours, table.positives()))
    print(f"wrote {path}: {table.n_frames} frames, {int(table.labelled_frames().sum())} labelled; present: {positives}")
    return 0


def _split(args: argparse.Namespace) -> int:
    project = Project.open(args.project, overrides=args.overrides)
    if args.assign:
        if args.make:
            raise ProjectError("give either --make or --assign, not both")
        part, names = args.assign[0], args.assign[1:]
        if not names:
            raise ProjectError(f"--assign {part}: name the videos to put there")
        unknown = [n for n in names if n not in project.video_names]
        if unknown:
            raise ProjectError(f"--assign: {unknown} are not videos of the project ({', '.join(project.video_names)})")
        split = project.load_split()
        if split is None:
            raise ProjectError(f"no split yet ({project.split_path}); make one with --make first")
        split = split.assign(part, names)
        split.save(project.split_path)
        print(f"wrote {project.split_path}")
        _print_split(project, split)
        return 0
    if not args.make:
        split = project.load_split()
        if split is None:
            print(f"no split yet ({project.split_path}); make one with deg-train split -p {args.project} --make")
            return 0
        _print_split(project, split)
        return 0
    if project.split_path.exists() and not args.force:
        raise ProjectError(f"{project.split_path} exists; add --force to replace it")
    split = project.make_split(args.fractions, args.seed, args.group_by)
    print(f"wrote {project.split_path}")
    _print_split(project, split)
    return 0


def _print_split(project: Project, split) -> None:
    known = set(project.video_names)
    for part in ("train", "val", "test"):
        names = getattr(split, part)
        print(f"{part:5s} ({len(names)}): {', '.join(names) or '-'}")
    unassigned = sorted(known - set(split.names))
    if unassigned:
        print(
            f"not in the split (added later): {', '.join(unassigned)}; put them in a part with --assign PART "
            "VIDEO..., or remake the split with --make --force"
        )
    gone = sorted(set(split.names) - known)
    if gone:
        print(f"in the split but not in the project: {', '.join(gone)}")
    for part, behaviours in split.missing.items():
        print(f"note: {part} has no frames of: {', '.join(behaviours)}")
    if split.seed is not None:
        print(f"fractions {list(split.fractions)}, seed {split.seed}, group_by {split.group_by}")


def _cache(args: argparse.Namespace) -> int:
    project = Project.open(args.project)
    names = args.videos or project.video_names
    size = (int(args.size[0]), int(args.size[1]))
    for name in progress_bar(names, desc="frame caches", unit="video"):
        with project.frame_cache(name, size) as cache:
            progress_bar.write(f"{name}: {len(cache)} frames at {size[0]}x{size[1]} in {cache.path}")
    return 0
