"""Where does held-out accuracy go? Stage by stage, on a trained project.

For a feature run (stage 2) and a sequence run (stage 3) of a project, prints:

1. *Consistency*: stage-2 logits of validation frames computed the way training validates (frame cache ->
   ``prepare_clips`` -> model) against the ones offline extraction saved in ``<video>_outputs.h5`` (video decode
   -> ``FrameEncoder``). They must agree to float tolerance; a gap here is a defect, not a modelling problem.
2. *Generalisation*: macro F1 (behaviours present, background excluded) of each stage on the train, validation
   and test videos, with thresholds picked on validation ("val thr") and with each part's own best thresholds
   ("oracle"). Train >> val ~ test: over-fitting; val >> test with oracle test close to val: thresholds that do not
   transfer (calibration); val >> test even with oracle thresholds: the features do not generalise.

Usage::

    python benchmarks/stage_diagnosis.py -p PROJECT [--feature-run RUN] [--sequence-run RUN] [--frames 256]

Writes nothing into the project; prints tables (markdown) to stdout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deg_live.outputs import read_outputs
from deg_train.evaluation.metrics import threshold_search
from deg_train.inference.extract import is_exclusive, load_encoder, probabilities
from deg_train.inference.predict import load_sequence, run_sequence
from deg_train.models.checkpoints import build_model_from_checkpoint, resolve_run
from deg_train.project.layout import Project
from deg_train.training.augment import model_normalisation, prepare_clips
from deg_train.training.data import ClipDataset


def macro_present(probs: list[np.ndarray], labels: list[np.ndarray], thresholds: np.ndarray, names: list[str]) -> float:
    """Macro F1 over behaviours present in ``labels`` (background excluded), decisions ``p > thresholds``."""
    return macro_present_decisions([p > thresholds for p in probs], labels, names)


def argmax_decisions(probs: np.ndarray) -> np.ndarray:
    """One class per frame, the most probable (background included): an exclusive model's threshold-free rule."""
    d = np.zeros(probs.shape, bool)
    d[np.arange(len(probs)), np.argmax(probs, axis=1)] = True
    return d


def macro_present_decisions(decisions: list[np.ndarray], labels: list[np.ndarray], names: list[str]) -> float:
    """Macro F1 over behaviours present in ``labels`` (background excluded) of binary ``decisions``."""
    d, y = np.concatenate(decisions), np.concatenate(labels)
    f1s = []
    for k, name in enumerate(names):
        pos = y[:, k] == 1
        if name == "background" or not pos.any():
            continue
        tp = (d[:, k] & pos).sum()
        fp = (d[:, k] & (y[:, k] == 0)).sum()
        fn = (~d[:, k] & pos).sum()
        f1s.append(2 * tp / max(2 * tp + fp + fn, 1))
    return float(np.mean(f1s)) if f1s else float("nan")


def consistency(project: Project, feature_run: Path, names: list[str], frames: int) -> float:
    """Largest |logit difference| between the training-validation path and the saved extraction, val frames."""
    model, meta = build_model_from_checkpoint(feature_run, expect_stage="feature")
    model.eval()
    size = tuple((meta.get("config") or {}).get("data", {}).get("size", (128, 128)))
    data = ClipDataset(project, names, size, model.num_frames, labels=True, progress=False)
    mean, std = model_normalisation(model)
    rng = np.random.default_rng(0)
    idx = rng.choice(len(data), size=min(frames, len(data)), replace=False)
    worst = 0.0
    latent = load_encoder(feature_run).latent_name
    saved = {n: read_outputs(project.video(n).outputs_path, latent) for n in names}
    for start in range(0, len(idx), 32):
        items = data.__getitems__(idx[start : start + 32].tolist())
        clip = torch.stack([it["clip"] for it in items])
        with torch.inference_mode():
            logits = model(prepare_clips(clip, "cpu", mean=mean, std=std))["logits"].numpy()
        for it, row in zip(items, logits):
            ref = saved[data.names[it["video"]]].logits[it["frame"]]
            worst = max(worst, float(np.abs(ref - row).max()))
    return worst


def clip_offsets(clips_dir: Path, name: str, n: int) -> np.ndarray | None:
    """Each frame's offset inside its source clip (``<name>_clips.csv``: start_frame, n_frames), or None."""
    path = clips_dir / name / f"{name}_clips.csv"
    if not path.is_file():
        return None
    import pandas as pd

    table = pd.read_csv(path)
    offsets = np.full(n, -1, np.int64)
    for start, length in zip(table["start_frame"], table["n_frames"]):
        offsets[start : start + length] = np.arange(min(length, max(n - start, 0)))
    return offsets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-p", "--project", required=True)
    ap.add_argument("--feature-run", default=None, help="default: the newest finished feature run")
    ap.add_argument("--sequence-run", default=None, help="default: the newest finished sequence run")
    ap.add_argument("--frames", type=int, default=256, help="validation frames in the consistency check")
    ap.add_argument(
        "--clips-dir",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "tests" / "data" / "rat_behavior",
        help="where <video>/<video>_clips.csv say where each source clip starts (the rat data's cuts)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    project = Project.open(args.project)
    split = project.load_split()
    parts = {p: [n for n in getattr(split, p) if project.video(n).labels_path] for p in ("train", "val", "test")}
    feature_run = resolve_run(project, "feature", args.feature_run)
    seq = load_sequence(resolve_run(project, "sequence", args.sequence_run))
    names = list(seq.behaviours)
    latent = load_encoder(feature_run).latent_name
    exclusive = seq.exclusive

    print(f"project {project.root}; feature run {feature_run.name}; sequence run {seq.run_dir.name}")
    print(f"mode: {'exclusive (softmax)' if exclusive else 'multi-label (sigmoid)'}")
    print(
        f"\n1. consistency: max |logit(train-validation path) - logit(saved extraction)| on {args.frames} val frames: "
        f"{consistency(project, feature_run, parts['val'], args.frames):.2e}"
    )

    stage_probs: dict[str, dict[str, list[np.ndarray]]] = {"features": {}, "sequence": {}}
    labels: dict[str, list[np.ndarray]] = {}
    for part, videos in parts.items():
        labels[part] = [np.asarray(project.load_labels(n).values) for n in videos]
        groups = [read_outputs(project.video(n).outputs_path, latent) for n in videos]
        stage_probs["features"][part] = [probabilities(g.logits, is_exclusive(seq.meta) and exclusive) for g in groups]
        stage_probs["sequence"][part] = [seq.probabilities(run_sequence(seq.model, g.features)) for g in groups]

    print("\n2. macro F1 (behaviours present, background excluded), plain thresholds\n")
    print("| stage | train (val thr) | val (val thr) | test (val thr) | train (oracle) | test (oracle) |")
    print("|---|---|---|---|---|---|")
    for stage, probs in stage_probs.items():
        val_thr = threshold_search(probs["val"], labels["val"]).thresholds
        cells = [macro_present(probs[p], labels[p], val_thr, names) for p in ("train", "val", "test")]
        for p in ("train", "test"):
            own = threshold_search(probs[p], labels[p]).thresholds
            cells.append(macro_present(probs[p], labels[p], own, names))
        print(f"| {stage} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    if exclusive:
        # An exclusive (softmax) model can decide without thresholds: the most probable class. If that transfers to
        # new sessions better than thresholds picked on validation, the gap is the decision rule, not the features.
        print("\n2b. exclusive decision rules, test macro F1 (present): thresholds picked on validation vs argmax\n")
        print("| stage | val thresholds | argmax (no thresholds) | oracle thresholds |")
        print("|---|---|---|---|")
        for stage, probs in stage_probs.items():
            val_thr = threshold_search(probs["val"], labels["val"]).thresholds
            own = threshold_search(probs["test"], labels["test"]).thresholds
            cells = [
                macro_present(probs["test"], labels["test"], val_thr, names),
                macro_present_decisions([argmax_decisions(p) for p in probs["test"]], labels["test"], names),
                macro_present(probs["test"], labels["test"], own, names),
            ]
            print(f"| {stage} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")

    # 3. What the cuts cost: a T-frame causal window ending at offset < T-1 of its clip spans a cut.
    T = int(load_encoder(feature_run).frames_per_window)
    offsets = {p: [clip_offsets(args.clips_dir, n, len(y)) for n, y in zip(parts[p], labels[p])] for p in parts}
    if all(o is not None for p in ("val", "test") for o in offsets[p]):
        print(f"\n3. test macro F1 (val thresholds) by where the {T}-frame window ends in its 16-frame source clip\n")
        print(f"| stage | window spans a cut (offset < {T - 1}) | clean window (offset >= {T - 1}) | offset 15 |")
        print("|---|---|---|---|")
        for stage, probs in stage_probs.items():
            val_thr = threshold_search(probs["val"], labels["val"]).thresholds
            cells = []
            for keep in (lambda o: o < T - 1, lambda o: o >= T - 1, lambda o: o == 15):
                masks = [keep(o) for o in offsets["test"]]
                cells.append(
                    macro_present(
                        [p[m] for p, m in zip(probs["test"], masks)],
                        [y[m] for y, m in zip(labels["test"], masks)],
                        val_thr,
                        names,
                    )
                )
            print(f"| {stage} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
