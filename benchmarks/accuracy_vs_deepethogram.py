#!/usr/bin/env python3
"""Train DeepEthogram 0.5 and ours on the same split of the bundled rat sessions; print both results side by side.

Both systems are scored the same way, with deg_train's own metric code: per-frame probabilities are read from each
system's ``<video>_outputs.h5``, per-behaviour thresholds are picked on the validation videos (max F1,
:func:`deg_train.evaluation.threshold_search`), and the test videos are scored frame-level: per-behaviour F1, macro
F1 over (a) the behaviours present in the test videos and (b) all non-background behaviours (absent = 0), and the
number of predicted vs labelled bouts. Every stage is scored: DeepEthogram's feature extractor (``resnet18``) and
sequence model (``tgmj``); ours' feature extractor and causal sequence model.

Usage (from the repository root)::

    python benchmarks/accuracy_vs_deepethogram.py --peer-venv /path/to/deg_venv          # both sides
    python benchmarks/accuracy_vs_deepethogram.py --only deepethogram --peer-venv PEER      # DeepEthogram only
    python benchmarks/accuracy_vs_deepethogram.py --only ours --preset deg_f_fast --seeds 0 1 2
    python benchmarks/accuracy_vs_deepethogram.py --score-only                              # rescore finished runs

Layout under ``--out`` (default ``runs/accuracy_benchmark``)::

    project/                 our project built from tests/data/rat_behavior, with the session split (DATA/split.yaml)
    ours/<preset>_seed<S>/   one copy of the project per seed (videos hard-linked), trained with deg-train train-all
    deepethogram/            DeepEthogram's own project (rat_deepethogram/), built with its Python API
    logs/                    one log file per stage of each system (progress is visible there)
    results.md, results.json the side-by-side table and every number

Finished stages are reused (resume): rerunning the command only trains what is missing, then rescores.

DeepEthogram (``--peer-venv``, default ``$DEG_PEER_VENV``) lives in its own virtual environment, never in ours;
``--install-peer`` creates it as ``../shared/peer/README.md`` says (uv, ``deepethogram==0.5.0``, the CPU patch).
Its schedule is the bounded one of issue 11: flow generator 300 steps x 8 clips, feature extractor 3 epochs x 200
steps x 8 clips, TGMJ 30 epochs, 128 x 128 input, from scratch (``feature_extractor.reload_imagenet=false``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.peer_env import (  # noqa: E402  (the venv helpers both DeepEthogram comparisons share)
    DEFAULT_PEER_PATCH,
    default_peer_venv,
    install_peer,
    log,
    machine_description,
    peer_python,
    run_logged,
)

DATA = REPO / "tests" / "data" / "rat_behavior"
GROUP_BY = "^cage[0-9]+_([0-9_]+)$"
DEG_FEATURE_GROUP = "resnet18"  # DeepEthogram deg_f's feature extractor arch = its outputs.h5 group
DEG_SEQUENCE_GROUP = "tgmj"


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def threads_env(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"  # progress bars reach the log files as they go
    return env


def load_yaml(path: Path) -> dict:
    import yaml

    with open(path) as f:
        return yaml.safe_load(f)


class StageLog:
    """``stages.json``: which stages finished and their wall times (what resume reuses)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def done(self, stage: str) -> bool:
        return stage in self.data

    def record(self, stage: str, wall_s: float, **extra) -> None:
        self.data[stage] = {"wall_s": round(wall_s, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"), **extra}
        if hasattr(os, "getloadavg"):  # the 1, 5 and 15 minute load averages as the stage ends: others' jobs count
            self.data[stage]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2))

    def wall(self, stages: list[str] | None = None) -> float:
        return float(sum(v["wall_s"] for k, v in self.data.items() if stages is None or k in stages))


# ---------------------------------------------------------------------------------------------------------------
# Our project and its split
# ---------------------------------------------------------------------------------------------------------------


def deg_train_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "deg-train"
    if exe.is_file():
        return [str(exe)]
    venv = REPO / ".venv" / "bin" / "deg-train"
    if venv.is_file():
        return [str(venv)]
    return [sys.executable, "-m", "deg_train.cli"]


def build_our_project(project: Path, logs: Path) -> None:
    """deg-train init / add / split --make with the session split used everywhere in this repo."""
    if (project / "DATA" / "split.yaml").is_file():
        log(f"reusing our project {project}")
        return
    if project.exists():
        shutil.rmtree(project)  # a half-built project of ours (no split yet)
    dt = deg_train_cmd()
    logfile = logs / "ours_project.log"
    run_logged([*dt, "init", str(project), "--name", "rat_benchmark"], logfile, cwd=REPO)
    videos, labels = [], []
    for d in sorted(p for p in DATA.iterdir() if p.is_dir()):
        videos.append(str(d / f"{d.name}.mp4"))
        labels.append(str(d / f"{d.name}_labels.csv"))
    run_logged([*dt, "add", "--project", str(project), *videos, "--labels", *labels], logfile, cwd=REPO)
    run_logged(
        [
            *dt,
            "split",
            "--project",
            str(project),
            "--make",
            "--fractions",
            "0.6",
            "0.2",
            "0.2",
            "--seed",
            "0",
            "--group-by",
            GROUP_BY,
        ],
        logfile,
        cwd=REPO,
    )


def read_split(project: Path) -> dict[str, list[str]]:
    split = load_yaml(project / "DATA" / "split.yaml")
    return {k: list(split.get(k) or []) for k in ("train", "val", "test")}


def find_label_csv(video_dir: Path) -> Path:
    hits = sorted(video_dir.glob("*_labels.csv")) or sorted(video_dir.glob("*label*.csv"))
    if not hits:
        raise FileNotFoundError(f"no label CSV in {video_dir}")
    return hits[0]


def find_video(video_dir: Path) -> Path:
    for ext in (".mp4", ".avi", ".mov", ".mkv"):
        hits = sorted(p for p in video_dir.glob(f"*{ext}") if "flow" not in p.name)
        if hits:
            return hits[0]
    raise FileNotFoundError(f"no video in {video_dir}")


def read_labels(csv: Path) -> tuple[list[str], np.ndarray]:
    """Behaviour names (background first when present) and the (T, K) int label array (-1 = unlabelled)."""
    import pandas as pd

    df = pd.read_csv(csv)
    first = str(df.columns[0])
    if first == "" or first.startswith("Unnamed"):
        df = df.drop(columns=[df.columns[0]])
    return [str(c) for c in df.columns], df.to_numpy().astype(np.int64)


# ---------------------------------------------------------------------------------------------------------------
# DeepEthogram side
# ---------------------------------------------------------------------------------------------------------------

# Run with the peer venv's python: builds DEG's project with DEG's own API. argv: spec.json
_DEG_BUILD = r"""
import json, sys
from deepethogram import projects, utils
spec = json.load(open(sys.argv[1]))
cfg = projects.initialize_project(spec["root"], spec["name"], spec["behaviours"], make_subdirectory=True)
# add_video folds each video's colour statistics into augs.normalization: add train and validation videos first,
# keep that normalisation, then add the test videos and restore it, so test statistics never reach training.
def add(name):
    new = projects.add_video_to_project(cfg, spec["videos"][name], mode="copy")
    projects.add_label_to_project(spec["labels"][name], new)
for name in spec["split"]["train"] + spec["split"]["val"]:
    add(name)
norm = dict(cfg["augs"]["normalization"])
for name in spec["split"]["test"]:
    add(name)
cfg["augs"]["normalization"] = norm
utils.save_dict_to_yaml(cfg, cfg["project"]["config_file"])
split = {"metadata": {"split": spec["fractions"]}, **spec["split"]}
utils.save_dict_to_yaml(split, spec["split_file"])
print("normalisation (train+val videos):", norm)
print("DeepEthogram project:", cfg["project"]["path"])
"""


def deg_common(deg_project: Path, args) -> list[str]:
    split_file = deg_project / "DATA" / "split.yaml"
    return [
        f"project.path={deg_project}",
        "preset=deg_f",
        f"split.file={split_file}",
        "split.reload=true",
        f"augs.resize=[{args.size},{args.size}]",
        f"compute.num_workers={args.workers}",
    ]


def run_deepethogram(args, project: Path, out: Path, logs: Path) -> dict:
    """Build DeepEthogram's project on our split, train its three stages, run its inference. Resumable."""
    py = str(peer_python(args.peer_venv))
    deg_root = out / "deepethogram"
    deg_project = deg_root / "rat_deepethogram"
    stages = StageLog(deg_root / "stages.json")
    env = threads_env(args.threads)
    split = read_split(project)

    if not stages.done("build"):
        if deg_project.exists():
            shutil.rmtree(deg_project)  # a half-built one: DeepEthogram refuses to add a video twice
        deg_root.mkdir(parents=True, exist_ok=True)
        names = split["train"] + split["val"] + split["test"]
        videos = {n: str(find_video(project / "DATA" / n).resolve()) for n in names}
        labels = {n: str(find_label_csv(project / "DATA" / n).resolve()) for n in names}
        behaviours, _ = read_labels(Path(labels[names[0]]))
        if behaviours[0] != "background":
            behaviours = ["background"] + [b for b in behaviours if b != "background"]
        spec = {
            "root": str(deg_root.resolve()),
            "name": "rat",
            "behaviours": behaviours,
            "videos": videos,
            "labels": labels,
            "split": split,
            "fractions": [0.6, 0.2, 0.2],
            "split_file": str((deg_project / "DATA" / "split.yaml").resolve()),
        }
        spec_file = deg_root / "build_spec.json"
        spec_file.write_text(json.dumps(spec, indent=2))
        script = deg_root / "build_project.py"
        script.write_text(_DEG_BUILD)
        wall = run_logged([py, str(script), str(spec_file)], logs / "deepethogram_build.log", env=env)
        stages.record("build", wall)

    # DeepEthogram insists on a pretrained-weights folder (its docs have users download weights there); training
    # from scratch, it stays empty.
    (deg_project / "models" / "pretrained_models").mkdir(parents=True, exist_ok=True)
    common = deg_common(deg_project.resolve(), args)
    bs = str(args.deg_batch)
    plan = [
        (
            "flow_generator",
            "deepethogram.flow_generator.train",
            [
                "flow_generator.weights=null",
                "reload.latest=false",
                f"compute.batch_size={bs}",
                "train.num_epochs=1",
                f"train.steps_per_epoch.train={args.deg_flow_steps}",
                f"train.steps_per_epoch.val={args.deg_flow_val_steps}",
            ],
        ),
        (
            "feature_extractor",
            "deepethogram.feature_extractor.train",
            [
                "flow_generator.weights=latest",
                "feature_extractor.weights=null",
                "feature_extractor.reload_imagenet=false",
                f"compute.batch_size={bs}",
                f"train.num_epochs={args.deg_feature_epochs}",
                f"train.steps_per_epoch.train={args.deg_feature_steps}",
                f"train.steps_per_epoch.val={args.deg_feature_val_steps}",
            ],
        ),
        (
            "feature_inference",
            "deepethogram.feature_extractor.inference",
            [
                "flow_generator.weights=latest",
                "feature_extractor.weights=latest",
                "inference.directory_list=all",
                "inference.overwrite=true",
                f"compute.batch_size={bs}",
            ],
        ),
        (
            "sequence",
            "deepethogram.sequence.train",
            [
                "sequence.weights=null",
                f"train.num_epochs={args.deg_sequence_epochs}",
                f"compute.batch_size={args.deg_sequence_batch}",
            ],
        ),
        (
            "sequence_inference",
            "deepethogram.sequence.inference",
            [
                "sequence.weights=latest",
                "inference.directory_list=all",
                "inference.overwrite=true",
            ],
        ),
    ]
    for stage, module, overrides in plan:
        if stages.done(stage):
            log(f"DeepEthogram {stage}: finished earlier ({stages.data[stage]['wall_s'] / 60:.1f} min), reused")
            continue
        log(f"DeepEthogram {stage} ...")
        cmd = [py, "-m", module, *common, *overrides]
        wall = run_logged(cmd, logs / f"deepethogram_{stage}.log", env=env, cwd=deg_root)
        stages.record(stage, wall, command=" ".join(cmd))
    return {"project": str(deg_project), "stages": stages.data}


# ---------------------------------------------------------------------------------------------------------------
# Our side
# ---------------------------------------------------------------------------------------------------------------


def copy_project(src: Path, dst: Path) -> None:
    """A copy of our project without its trained models or outputs; videos hard-linked (copied across devices)."""

    def ignore(directory: str, names: list[str]) -> list[str]:
        d = Path(directory)
        skip = [n for n in names if n.endswith(("_outputs.h5", "_predictions.csv", "_predictions_deg_train.csv"))]
        if d == src:
            skip += [n for n in names if n in ("models", "cache", "runs", "reports")]
        return skip

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, ignore=ignore, copy_function=link)
    (dst / "models").mkdir(exist_ok=True)


def run_ours(args, project: Path, out: Path, logs: Path) -> dict:
    """deg-train train-all per seed, each seed in its own copy of the project (outputs.h5 groups are per video)."""
    runs = {}
    for seed in args.seeds:
        name = f"{args.preset}_seed{seed}"
        seed_project = out / "ours" / name
        stages = StageLog(out / "ours" / f"{name}.stages.json")
        if not stages.done("train_all"):
            if not (seed_project / "project_config.yaml").is_file():
                seed_project.parent.mkdir(parents=True, exist_ok=True)
                copy_project(project, seed_project)
            # train-all resumes its own finished stages when rerun in the same project
            cmd = [
                *deg_train_cmd(),
                "train-all",
                "-p",
                str(seed_project),
                "--preset",
                args.preset,
                f"train.seed={seed}",
                *args.ours_override,
            ]
            wall = run_logged(cmd, logs / f"ours_{name}.log", env=threads_env(args.threads), cwd=REPO)
            stages.record("train_all", wall + stages.wall(), command=" ".join(cmd))
        runs[seed] = {"project": str(seed_project), "stages": stages.data}
    return runs


# ---------------------------------------------------------------------------------------------------------------
# Scoring (the same for both systems, with deg_train's metric code)
# ---------------------------------------------------------------------------------------------------------------


def _metrics_api():
    """deg_train's metric functions, from its front door where they are exported (modules are being moved)."""
    try:
        from deg_train.evaluation import threshold_search
    except ImportError:  # older layout
        from deg_train.metrics import threshold_search  # type: ignore[no-redef]
    try:
        from deg_train.evaluation.metrics import bout_stats, frame_metrics
    except ImportError:
        from deg_train.metrics import bout_stats, frame_metrics  # type: ignore[no-redef]
    return threshold_search, frame_metrics, bout_stats


def score_stage(
    val_probs: list[np.ndarray],
    val_labels: list[np.ndarray],
    test_probs: list[np.ndarray],
    test_labels: list[np.ndarray],
    behaviours: list[str],
) -> dict:
    """Thresholds on validation (max F1 per behaviour), frame-level scores on test: the same for every system.

    Returns per-behaviour F1 / precision / recall / bouts and two macro F1s over the non-background behaviours:
    ``macro_f1_present`` over those with a positive test frame, ``macro_f1_all`` over all of them (absent = 0);
    and ``macro_f1_argmax_present``: the same frames decided without thresholds, one class per frame, the most
    probable (the natural rule for mutually exclusive behaviours, whichever system's probabilities).
    """
    threshold_search, frame_metrics, bout_stats = _metrics_api()
    search = threshold_search(val_probs, val_labels)
    thr = search.thresholds
    decisions = [np.asarray(p) > thr for p in test_probs]
    fm = frame_metrics(np.concatenate(decisions), np.concatenate(test_labels), np.concatenate(test_probs))
    bs = bout_stats(decisions, test_labels)
    fg = [i for i, b in enumerate(behaviours) if b != "background"]
    present = [i for i in fg if fm["positives"][i] > 0]
    f1 = np.nan_to_num(np.asarray(fm["f1"], dtype=np.float64), nan=0.0)
    val_present = [i for i in fg if not search.no_positives[i]]
    # The threshold-free exclusive rule: each frame is its most probable class (background included).
    argmax = []
    for p in test_probs:
        d = np.zeros(np.shape(p), bool)
        d[np.arange(len(p)), np.argmax(p, axis=1)] = True
        argmax.append(d)
    fa = frame_metrics(np.concatenate(argmax), np.concatenate(test_labels), np.concatenate(test_probs))
    f1_argmax = np.nan_to_num(np.asarray(fa["f1"], dtype=np.float64), nan=0.0)

    def fl(x) -> float | None:
        x = float(x)
        return None if np.isnan(x) else round(x, 4)

    return {
        "macro_f1_present": fl(np.mean(f1[present])) if present else None,
        "macro_f1_all": fl(np.mean(f1[fg])) if fg else None,
        "macro_f1_argmax_present": fl(np.mean(f1_argmax[present])) if present else None,
        "val_macro_f1_present": fl(np.mean(search.f1[val_present])) if val_present else None,
        "present": [behaviours[i] for i in present],
        "bouts_predicted": int(np.sum(bs["bouts_predicted"][fg])),
        "bouts_labelled": int(np.sum(bs["bouts_labelled"][fg])),
        "per_behaviour": {
            behaviours[i]: {
                "f1": fl(f1[i]),
                "precision": fl(fm["precision"][i]),
                "recall": fl(fm["recall"][i]),
                "threshold": fl(thr[i]),
                "test_frames_positive": int(fm["positives"][i]),
                "bouts_predicted": int(bs["bouts_predicted"][i]),
                "bouts_labelled": int(bs["bouts_labelled"][i]),
            }
            for i in range(len(behaviours))
        },
    }


def _labels_for(project: Path, name: str, behaviours: list[str]) -> np.ndarray:
    cols, values = read_labels(find_label_csv(project / "DATA" / name))
    missing = [b for b in behaviours if b not in cols]
    if missing:
        raise ValueError(f"{name}: labels lack {missing}")
    return values[:, [cols.index(b) for b in behaviours]]


def read_deg_probs(deg_project: Path, name: str, group: str) -> tuple[list[str], np.ndarray]:
    import h5py

    path = deg_project / "DATA" / name / f"{name}_outputs.h5"
    with h5py.File(path, "r") as f:
        if group not in f:
            raise KeyError(f"{path}: no group {group!r} (groups: {list(f.keys())})")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f[group]["class_names"][()]]
        return names, np.asarray(f[group]["P"][()], dtype=np.float64)


def deg_validation_curves(deg_project: Path) -> dict:
    """DeepEthogram's own validation macro F1 (no background) per epoch, from its runs' metrics files."""
    import h5py

    curves = {}
    for run in sorted((deg_project / "models").glob("*_train")):
        for h5 in run.glob("*metrics*.h5"):
            try:
                with h5py.File(h5, "r") as f:
                    for split in ("train", "val"):
                        if split in f and "f1_class_mean_nobg" in f[split]:
                            v = np.asarray(f[split]["f1_class_mean_nobg"][()], dtype=np.float64).ravel()
                            curves.setdefault(run.name, {})[split + "_f1_class_mean_nobg"] = [
                                round(float(x), 4) for x in v
                            ]
            except OSError:
                continue
    return curves


def score_deepethogram(project: Path, out: Path, split: dict) -> dict | None:
    deg_root = out / "deepethogram"
    deg_project = deg_root / "rat_deepethogram"
    stages = StageLog(deg_root / "stages.json")
    result = {
        "project": str(deg_project),
        "stage_wall_s": {k: v["wall_s"] for k, v in stages.data.items()},
        "stages": {},
    }
    for stage, group, needs in (
        ("feature extractor", DEG_FEATURE_GROUP, "feature_inference"),
        ("sequence (TGMJ)", DEG_SEQUENCE_GROUP, "sequence_inference"),
    ):
        if not stages.done(needs):
            log(f"DeepEthogram {stage}: no finished inference yet ({needs}), not scored")
            continue
        probs, labels = {}, {}
        for part in ("val", "test"):
            probs[part], labels[part] = [], []
            for name in split[part]:
                behaviours, p = read_deg_probs(deg_project, name, group)
                y = _labels_for(project, name, behaviours)
                if len(p) != len(y):
                    raise ValueError(f"DeepEthogram {name}: {len(p)} probability rows but {len(y)} label rows")
                probs[part].append(p)
                labels[part].append(y)
        result["stages"][stage] = score_stage(probs["val"], labels["val"], probs["test"], labels["test"], behaviours)
    train = ["flow_generator", "feature_extractor", "sequence"]
    result["train_wall_s"] = stages.wall(train) if all(stages.done(s) for s in train) else None
    result["total_wall_s"] = stages.wall()
    result["validation_during_training"] = deg_validation_curves(deg_project)
    return result if result["stages"] else None


def _ours_runs(seed_project: Path) -> tuple[dict, float | None]:
    """The train-all pipeline's runs (models/train_all.json) and its total stage time."""
    state_file = seed_project / "models" / "train_all.json"
    if not state_file.is_file():
        return {}, None
    state = json.loads(state_file.read_text())
    st = state.get("stages", {})
    total = sum(float(v.get("seconds", 0.0)) for v in st.values())
    return st, (total if state.get("finished") else None)


def score_ours_seed(seed_project: Path, split: dict) -> dict | None:
    try:
        from deg_train.evaluation.evaluate import run_scores
    except ImportError:
        from deg_train.evaluate import run_scores  # type: ignore[no-redef]
    from deg_train.inference import load_sequence
    from deg_train.project import Project

    st, total = _ours_runs(seed_project)
    if not (st.get("sequence", {}).get("done") and st.get("extract", {}).get("done")):
        log(f"ours {seed_project.name}: train-all not finished, not scored")
        return None
    project = Project.open(seed_project)
    result = {
        "project": str(seed_project),
        "train_all_s": total,
        "stage_s": {k: round(float(v.get("seconds", 0.0)), 1) for k, v in st.items()},
        "stages": {},
    }
    variants = [("sequence (causal)", st["sequence"]["run"])]
    if st.get("sequence_centred", {}).get("done"):
        variants.append(("sequence (centred)", st["sequence_centred"]["run"]))
    for i, (stage, run) in enumerate(variants):
        seq = load_sequence(run)
        post = getattr(seq, "postprocess", None)
        result.setdefault("exclusive", bool(getattr(post, "exclusive", False)))  # softmax model, if the project is
        scores = {part: run_scores(project, seq, split[part]) for part in ("val", "test")}
        behaviours = list(seq.behaviours)
        if i == 0:
            result["stages"]["feature extractor"] = score_stage(
                [s.feature_probabilities for s in scores["val"]],
                [s.labels for s in scores["val"]],
                [s.feature_probabilities for s in scores["test"]],
                [s.labels for s in scores["test"]],
                behaviours,
            )
        result["stages"][stage] = score_stage(
            [s.probabilities for s in scores["val"]],
            [s.labels for s in scores["val"]],
            [s.probabilities for s in scores["test"]],
            [s.labels for s in scores["test"]],
            behaviours,
        )
    return result


def aggregate(seed_results: dict[int, dict]) -> dict:
    """Mean and spread (sample std, min, max) over seeds of every macro and per-behaviour F1, per stage."""
    out = {}
    stages = sorted({s for r in seed_results.values() for s in r["stages"]}, key=_stage_order)
    for stage in stages:
        rs = [r["stages"][stage] for r in seed_results.values() if stage in r["stages"]]
        agg = {"seeds": len(rs)}
        keys = ["macro_f1_present", "macro_f1_all", "macro_f1_argmax_present", "val_macro_f1_present"]
        keys += ["bouts_predicted", "bouts_labelled"]
        for k in keys:
            v = np.array([r[k] for r in rs if r.get(k) is not None], dtype=np.float64)
            agg[k] = _spread(v)
        agg["per_behaviour"] = {
            b: _spread(np.array([r["per_behaviour"][b]["f1"] or 0.0 for r in rs])) for b in rs[0]["per_behaviour"]
        }
        agg["present"] = rs[0]["present"]
        out[stage] = agg
    walls = np.array([r["train_all_s"] for r in seed_results.values() if r.get("train_all_s")], dtype=np.float64)
    out["_train_all_s"] = _spread(walls)
    return out


def _spread(v: np.ndarray) -> dict:
    if v.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {
        "mean": round(float(v.mean()), 4),
        "std": round(float(v.std(ddof=1)), 4) if v.size > 1 else 0.0,
        "min": round(float(v.min()), 4),
        "max": round(float(v.max()), 4),
        "n": int(v.size),
    }


def _stage_order(stage: str) -> int:
    return 0 if stage.startswith("feature") else (1 if "causal" in stage or "TGMJ" in stage else 2)


# ---------------------------------------------------------------------------------------------------------------
# The side-by-side table
# ---------------------------------------------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _fmt_spread(s: dict, digits: int = 3) -> str:
    if s is None or s.get("mean") is None:
        return "-"
    if s["n"] > 1:
        return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"
    return f"{s['mean']:.{digits}f}"


def _minutes(seconds) -> str:
    return "-" if not seconds else f"{seconds / 60:.0f} min"


def render_table(results: dict) -> str:
    behaviours: list[str] = []
    present: set[str] = set()
    for sysres in (results.get("deepethogram"), *(results.get("ours", {}).get("seeds", {}).values())):
        for st in (sysres or {}).get("stages", {}).values():
            for b in st["per_behaviour"]:
                if b != "background" and b not in behaviours:
                    behaviours.append(b)
            present.update(st["present"])
    header = ["system", "stage", "macro F1 (present)", "macro F1 (all)", "macro F1 argmax (present)"]
    header += [b if b in present else f"{b} (absent)" for b in behaviours]
    header += ["bouts pred/labelled", "val macro F1", "train wall time"]
    rows = []
    deg = results.get("deepethogram")
    if deg:
        for stage, st in deg["stages"].items():
            rows.append(
                ["DeepEthogram 0.5 (deg_f, 1 run)", stage, _fmt(st["macro_f1_present"]), _fmt(st["macro_f1_all"])]
                + [_fmt(st.get("macro_f1_argmax_present"))]
                + [_fmt(st["per_behaviour"].get(b, {}).get("f1")) for b in behaviours]
                + [
                    f"{st['bouts_predicted']}/{st['bouts_labelled']}",
                    _fmt(st["val_macro_f1_present"]),
                    _minutes(deg.get("train_wall_s")),
                ]
            )
    ours = results.get("ours")
    if ours and ours.get("seeds"):
        agg = ours["aggregate"]
        n = len(ours["seeds"])
        label = f"ours ({ours['preset']}, {n} seed{'s' if n > 1 else ''}{', mean ± std' if n > 1 else ''})"
        for stage in [s for s in agg if not s.startswith("_")]:
            a = agg[stage]
            bp, bl = a["bouts_predicted"], a["bouts_labelled"]
            rows.append(
                [label, stage, _fmt_spread(a["macro_f1_present"]), _fmt_spread(a["macro_f1_all"])]
                + [_fmt_spread(a.get("macro_f1_argmax_present"))]
                + [_fmt_spread(a["per_behaviour"].get(b)) for b in behaviours]
                + [
                    f"{_fmt(bp['mean'], 0)}/{_fmt(bl['mean'], 0)}",
                    _fmt_spread(a["val_macro_f1_present"]),
                    _minutes(agg["_train_all_s"]["mean"]),
                ]
            )
        if n > 1:
            for seed, r in ours["seeds"].items():
                for stage, st in r["stages"].items():
                    rows.append(
                        [f"ours seed {seed}", stage, _fmt(st["macro_f1_present"]), _fmt(st["macro_f1_all"])]
                        + [_fmt(st.get("macro_f1_argmax_present"))]
                        + [_fmt(st["per_behaviour"].get(b, {}).get("f1")) for b in behaviours]
                        + [
                            f"{st['bouts_predicted']}/{st['bouts_labelled']}",
                            _fmt(st["val_macro_f1_present"]),
                            _minutes(r.get("train_all_s")),
                        ]
                    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def score_all(args, project: Path, out: Path, split: dict, machine: dict, do_deg: bool, do_ours: bool) -> dict:
    results: dict = {
        "machine": machine,
        "split": split,
        "project": str(project),
        "scoring": "thresholds per behaviour maximising F1 on the validation videos (deg_train "
        "threshold_search), decisions p > threshold, frame-level on the test videos; macro "
        "over non-background behaviours",
    }
    if do_deg:
        deg = score_deepethogram(project, out, split)
        if deg:
            results["deepethogram"] = deg
    if do_ours:
        seeds = {}
        for seed in args.seeds:
            r = score_ours_seed(out / "ours" / f"{args.preset}_seed{seed}", split)
            if r:
                seeds[seed] = r
        if seeds:
            results["ours"] = {"preset": args.preset, "seeds": seeds, "aggregate": aggregate(seeds)}
    if not results.get("deepethogram") and not results.get("ours"):
        log("nothing finished to score yet")
        return {}
    table = render_table(results)
    title = (
        f"Accuracy on held-out rat sessions (test: {', '.join(split['test'])}; thresholds picked on "
        f"validation: {', '.join(split['val'])}); machine: {machine['cpu']}, {machine['cores']} cores"
        + (
            f" (load average {machine['load_average_at_start'][0]:.1f} when scoring; training walls depend on load)"
            if machine.get("load_average_at_start")
            else ""
        )
    )
    text = f"{title}\n\n{table}\n"
    print("\n" + text, flush=True)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    log(f"wrote {out / 'results.md'} and {out / 'results.json'}")
    return results


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "accuracy_benchmark", help="output folder")
    ap.add_argument(
        "--project",
        type=Path,
        default=None,
        help="an existing project of ours with a split (DATA/split.yaml); default: build OUT/project "
        "from tests/data/rat_behavior",
    )
    ap.add_argument("--only", choices=["ours", "deepethogram"], default=None, help="run and score one side only")
    ap.add_argument("--score-only", action="store_true", help="train nothing; score the finished runs found in OUT")
    ap.add_argument("--skip-score", action="store_true", help="train (resuming), do not score")
    ap.add_argument("--threads", type=int, default=2, help="torch/OpenMP threads per training process (default 2)")
    # ours
    ap.add_argument(
        "--preset",
        default="live_cpu_hour",
        help="our training preset (configs/presets); default live_cpu_hour, the 2-core CPU preset "
        "scripts/train_rat.sh trains the rat sessions with (cpu_hour: DeepEthogram's deg_f models)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="our seeds (one project copy each)")
    ap.add_argument(
        "--ours-override",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra training-config overrides for deg-train train-all",
    )
    # DeepEthogram
    ap.add_argument(
        "--peer-venv",
        type=Path,
        default=default_peer_venv(),
        help="DeepEthogram 0.5's own venv (default: $DEG_PEER_VENV)",
    )
    ap.add_argument("--install-peer", action="store_true", help="create --peer-venv with uv first")
    ap.add_argument(
        "--peer-patch",
        type=Path,
        default=DEFAULT_PEER_PATCH,
        help="DeepEthogram's CPU patch (default ../shared/peer/apply_cpu_patch.py)",
    )
    ap.add_argument("--size", type=int, default=128, help="DeepEthogram input size (augs.resize), default 128")
    ap.add_argument("--workers", type=int, default=2, help="DeepEthogram dataloader workers (compute.num_workers)")
    ap.add_argument("--deg-batch", type=int, default=8, help="clips per batch, flow generator and feature extractor")
    ap.add_argument("--deg-flow-steps", type=int, default=300)
    ap.add_argument("--deg-flow-val-steps", type=int, default=20)
    ap.add_argument("--deg-feature-epochs", type=int, default=3)
    ap.add_argument("--deg-feature-steps", type=int, default=200)
    ap.add_argument("--deg-feature-val-steps", type=int, default=50)
    ap.add_argument("--deg-sequence-epochs", type=int, default=30)
    ap.add_argument(
        "--deg-sequence-batch",
        default="8",
        help="TGMJ batch size (default 8 sequences of 180 frames; DeepEthogram's own default 'auto' fails without a "
        "GPU: Lightning's batch-size finder raises 'Field batch_size not found in both model and model.hparams')",
    )
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    log(f"machine: {machine['cpu']}, {machine['cores']} logical cores")
    if args.project is not None:
        project = args.project.resolve()
        if not (project / "DATA" / "split.yaml").is_file():
            raise SystemExit(f"{project} has no split (DATA/split.yaml): run deg-train split --make first")
    else:
        project = out / "project"
        build_our_project(project, logs)
    split = read_split(project)
    log("split: " + ", ".join(f"{k} {len(v)}" for k, v in split.items()))

    do_deg = args.only in (None, "deepethogram")
    do_ours = args.only in (None, "ours")
    if not args.score_only:
        if do_deg:
            if args.install_peer:
                if args.peer_venv is None:
                    raise SystemExit("--install-peer needs --peer-venv PATH")
                install_peer(args.peer_venv, args.peer_patch, logs)
            run_deepethogram(args, project, out, logs)
        if do_ours:
            run_ours(args, project, out, logs)
    if args.skip_score:
        return 0
    results = score_all(args, project, out, split, machine, do_deg, do_ours)
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
