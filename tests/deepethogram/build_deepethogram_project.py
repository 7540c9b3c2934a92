"""Build and train a tiny DeepEthogram 0.5 project with the real ``deepethogram`` package (run with ITS python).

Run by ``tests/deepethogram/conftest.py`` with the peer environment's interpreter (``$DEG_PEER_VENV/bin/python``),
never imported by our code: DeepEthogram is not a dependency of ours. Usage::

    $DEG_PEER_VENV/bin/python tests/deepethogram/build_deepethogram_project.py SPEC.json

``SPEC.json`` names the folder to build in, the videos and label files, the split and the input size. The script
builds the project with DeepEthogram's own Python API, trains its three stages for a handful of steps with its own
training modules (``python -m deepethogram.<stage>.train``), runs its feature and sequence inference (its
``<video>_outputs.h5`` groups ``resnet18`` and ``tgmj``), adds ``extra_videos`` (not trained on, at their own size:
DeepEthogram resizes them) and runs its inference on them too, and dumps, for the parity tests, the exact frames its
inference fed the model (``<video>_deg_frames.npy``: DeepEthogram's own reader and resize, uint8 (N, H, W, 3)).
Everything is kept TINY (64x64 frames, a few steps): the machine is small and shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def build(spec: dict) -> Path:
    from deepethogram import projects, utils

    cfg = projects.initialize_project(spec["root"], spec["name"], spec["behaviours"], make_subdirectory=True)
    cfg["augs"]["resize"] = [spec["size"], spec["size"]]  # the project's own input size, as a lab would set it
    for name, video in spec["videos"].items():
        new = projects.add_video_to_project(cfg, video, mode="copy")
        projects.add_label_to_project(spec["labels"][name], new)
    utils.save_dict_to_yaml(cfg, cfg["project"]["config_file"])
    project = Path(cfg["project"]["path"])
    split = {"metadata": {"split": [0.34, 0.33, 0.33]}, **spec["split"]}
    utils.save_dict_to_yaml(split, str(project / "DATA" / "split.yaml"))
    (project / "models" / "pretrained_models").mkdir(parents=True, exist_ok=True)
    return project


def run(module: str, project: Path, spec: dict, *overrides: str) -> None:
    size = spec["size"]
    common = [
        f"project.path={project}",
        "preset=deg_f",
        f"split.file={project / 'DATA' / 'split.yaml'}",
        "split.reload=true",
        f"augs.resize=[{size},{size}]",
        "compute.num_workers=0",
        "compute.metrics_workers=0",
        "train.viz_examples=0",
        "train.viz_metrics=false",
    ]
    cmd = [sys.executable, "-m", module, *common, *overrides]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=project.parent)


def train(project: Path, spec: dict) -> None:
    steps = spec.get("steps", 3)
    run(
        "deepethogram.flow_generator.train",
        project,
        spec,
        "flow_generator.weights=null",
        "reload.latest=false",
        "compute.batch_size=2",
        "train.num_epochs=1",
        f"train.steps_per_epoch.train={steps}",
        "train.steps_per_epoch.val=2",
    )
    run(
        "deepethogram.feature_extractor.train",
        project,
        spec,
        "flow_generator.weights=latest",
        "feature_extractor.weights=null",
        "feature_extractor.reload_imagenet=false",
        "compute.batch_size=2",
        "train.num_epochs=1",
        f"train.steps_per_epoch.train={steps}",
        "train.steps_per_epoch.val=2",
    )
    run(
        "deepethogram.feature_extractor.inference",
        project,
        spec,
        "flow_generator.weights=latest",
        "feature_extractor.weights=latest",
        "inference.directory_list=all",
        "inference.overwrite=true",
        "compute.batch_size=4",
    )
    run(
        "deepethogram.sequence.train",
        project,
        spec,
        "sequence.weights=null",
        "train.num_epochs=2",
        "compute.batch_size=2",
    )
    run(
        "deepethogram.sequence.inference",
        project,
        spec,
        "sequence.weights=latest",
        "inference.directory_list=all",
        "inference.overwrite=true",
    )


def add_unseen_videos(project: Path, spec: dict) -> None:
    """Videos at their own size (DeepEthogram resizes them): added after training, inferred with the same weights.

    Its add_video folds each video's colours into ``augs.normalization``; the value the models were trained and run
    with is put back, as a lab adding new videos to an existing project would see its earlier videos' outputs stay.
    """
    from deepethogram import projects, utils

    extra = spec.get("extra_videos") or {}
    if not extra:
        return
    config_file = project / "project_config.yaml"
    normalization = utils.load_yaml(str(config_file))["augs"]["normalization"]
    cfg = projects.get_config_from_path(str(project))
    for video in extra.values():
        projects.add_video_to_project(cfg, video, mode="copy")
    saved = utils.load_yaml(str(config_file))
    saved["augs"]["normalization"] = normalization
    utils.save_dict_to_yaml(saved, str(config_file))
    # only the new videos are inferred (inference.overwrite=false keeps every existing group)
    run(
        "deepethogram.feature_extractor.inference",
        project,
        spec,
        "flow_generator.weights=latest",
        "feature_extractor.weights=latest",
        "inference.directory_list=all",
        "inference.overwrite=false",
        "compute.batch_size=4",
    )
    run(
        "deepethogram.sequence.inference",
        project,
        spec,
        "sequence.weights=latest",
        "inference.directory_list=all",
        "inference.overwrite=false",
    )


def dump_frames(project: Path, spec: dict) -> None:
    """The frames DeepEthogram's inference feeds its model: its reader, then its CPU transforms (the resize)."""
    import numpy as np
    from deepethogram.data.augs import get_cpu_transforms
    from omegaconf import OmegaConf
    from vidio import VideoReader

    augs = OmegaConf.create({"crop_size": None, "resize": [spec["size"], spec["size"]], "pad": None})
    transform = get_cpu_transforms(augs)["val"]
    for name in spec["videos"]:
        video = project / "DATA" / name / Path(spec["videos"][name]).name
        frames = []
        with VideoReader(str(video)) as reader:
            for i in range(len(reader)):
                frames.append(transform(reader[i]).transpose(1, 2, 0))  # (3, H, W) -> (H, W, 3)
        np.save(project / "DATA" / name / f"{name}_deg_frames.npy", np.stack(frames).astype(np.uint8))


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    project = build(spec)
    train(project, spec)
    add_unseen_videos(project, spec)
    dump_frames(project, spec)
    (project / "BUILT").write_text(json.dumps(spec))
    print("built", project)
    return 0


if __name__ == "__main__":
    sys.exit(main())
