"""Our inference with a DeepEthogram project's own models equals DeepEthogram's, on a project it built and trained.

``tests/deepethogram/conftest.py`` builds the TINY project with the real ``deepethogram`` 0.5 package (in the
environment ``$DEG_PEER_VENV``; skipped without it) and lets DeepEthogram run its own feature and sequence inference
(groups ``resnet18`` and ``tgmj`` of each ``<video>_outputs.h5``). Then, as a lab would, through our command line:

    deg-train import-deepethogram -p PROJECT
    deg-train infer -p PROJECT --feature-run <imported> --sequence-run <imported tgmj> --postprocess offline

and our groups ``deg_train_deepethogram_resnet18`` / ``deg_train_tgmj_centred`` must equal DeepEthogram's groups to
float tolerance (features and logits 1e-4, TGMJ probabilities 1e-5), on every video, starting from the video files,
while every group DeepEthogram wrote stays byte for byte as it was.

Run: ``make test-deepethogram DEG_PEER_VENV=/path/to/peer/venv`` (a few minutes: DeepEthogram trains three stages).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from deg_live.outputs import list_groups, read_outputs
from tests.deepethogram.conftest import EXTRA, SPLIT

pytestmark = pytest.mark.slow

DEG_TRAIN = [sys.executable, "-m", "deg_train.cli"]


def _cli(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*DEG_TRAIN, *args], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _group_digest(path: Path, group: str) -> str:
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        for name in sorted(f[group]):
            value = np.asarray(f[group][name][()])
            data = repr(value.tolist()).encode() if value.dtype == object else value.tobytes()  # strings: by value
            digest.update(name.encode() + str(value.dtype).encode() + str(value.shape).encode() + data)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def imported(deepethogram_project: Path, tmp_path_factory) -> dict:
    project = tmp_path_factory.mktemp("deg_import") / deepethogram_project.name
    shutil.copytree(deepethogram_project, project)
    videos = [*(v for names in SPLIT.values() for v in names), EXTRA[0]]
    before = {
        v: {g: _group_digest(project / "DATA" / v / f"{v}_outputs.h5", g) for g in ("resnet18", "tgmj")} for v in videos
    }
    out = _cli("import-deepethogram", "-p", str(project))
    feature_run = next(line.split()[2] for line in out.splitlines() if line.startswith("feature run:"))
    sequence_run = next(line.split()[2] for line in out.splitlines() if line.startswith("sequence run:"))
    _cli(
        "infer",
        "-p",
        str(project),
        "--feature-run",
        feature_run,
        "--sequence-run",
        sequence_run,
        "--postprocess",
        "offline",
        "--device",
        "cpu",
    )
    return {"project": project, "videos": videos, "before": before, "out": out}


def test_import_reads_its_lightning_checkpoints_and_flow_run(imported):
    out = imported["out"]
    assert ".ckpt" in out  # DeepEthogram's own "latest" choice: the best Lightning checkpoint
    assert "flow_generator_train" in out  # its inference takes the flow generator from the flow run


def test_features_and_logits_equal_deepethogram_on_its_videos(imported):
    for video in imported["videos"]:
        path = imported["project"] / "DATA" / video / f"{video}_outputs.h5"
        theirs = read_outputs(path, "resnet18")
        ours = read_outputs(path, "deg_train_deepethogram_resnet18")
        np.testing.assert_allclose(ours.spatial_features, theirs.spatial_features, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours.flow_features, theirs.flow_features, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours.logits, theirs.logits, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-5, rtol=0)


def test_tgmj_probabilities_equal_deepethogram(imported):
    for video in imported["videos"]:
        path = imported["project"] / "DATA" / video / f"{video}_outputs.h5"
        theirs = read_outputs(path, "tgmj", features=False)
        ours = read_outputs(path, "deg_train_tgmj_centred", features=False)
        np.testing.assert_allclose(ours.probabilities, theirs.probabilities, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ours.logits, theirs.logits, atol=1e-4, rtol=0)
        np.testing.assert_allclose(ours.thresholds, theirs.thresholds, atol=1e-6)


def test_deepethogram_reads_our_group_and_postprocesses_it_as_our_offline_mode(imported, tmp_path):
    """Its own readers on our TGMJ group: same probabilities; its postprocess_and_save == our --postprocess offline."""
    import json

    import pandas as pd

    from tests.deepethogram.conftest import peer_python

    project, group = imported["project"], "deg_train_tgmj_centred"
    ours = {
        v: pd.read_csv(project / "DATA" / v / f"{v}_predictions_deg_train.csv", index_col=0).to_numpy()
        for v in imported["videos"]
    }
    script = Path(__file__).with_name("read_with_deepethogram.py")
    out = tmp_path / "read.json"
    result = subprocess.run(
        [str(peer_python()), str(script), str(project), group, str(out)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    read = json.loads(out.read_text())
    for video in imported["videos"]:
        path = project / "DATA" / video / f"{video}_outputs.h5"
        assert group in read[video]["keys"]  # listed in its GUI's predictions drop-down
        mine = read_outputs(path, group, features=False)
        np.testing.assert_allclose(np.asarray(read[video]["probabilities"]), mine.probabilities, atol=1e-7, rtol=0)
        theirs = pd.read_csv(project / "DATA" / video / f"{video}_predictions.csv", index_col=0).to_numpy()
        mismatch = np.argwhere(theirs != ours[video])
        assert mismatch.size == 0, f"{video}: decisions differ at (frame, behaviour) {mismatch[:10].tolist()}"
    # its postprocessor == ours with the imported settings, on probabilities that switch often
    from deg_train.inference.predict import final_decisions, load_sequence

    run = next(line.split()[2] for line in imported["out"].splitlines() if line.startswith("sequence run:"))
    seq = load_sequence(run)
    probabilities = np.asarray(read["_random"]["probabilities"], np.float32)
    theirs = np.asarray(read["_random"]["decisions"], bool)
    mine = final_decisions(probabilities, seq.thresholds, seq.postprocess, "offline")
    assert np.abs(np.diff(theirs.astype(int), axis=0)).sum() > 20  # not a vacuous comparison
    mismatch = np.argwhere(mine != theirs)
    assert mismatch.size == 0, f"decisions differ at (frame, behaviour) {mismatch[:10].tolist()}"


def test_what_deepethogram_wrote_is_unchanged(imported):
    for video in imported["videos"]:
        path = imported["project"] / "DATA" / video / f"{video}_outputs.h5"
        assert {"resnet18", "tgmj"} <= set(list_groups(path))
        for group, digest in imported["before"][video].items():
            assert _group_digest(path, group) == digest, (video, group)


def test_the_labs_models_go_live(imported, tmp_path):
    """train-sequence on the causal twin, export, and deg-live on every frame == deg-train infer with those runs."""
    from deg_live.bundle import read_bundle
    from deg_live.outputs import read_predictions
    from deg_live.recorder import read_recording
    from tests.test_workflow import Children, cli, replay_lossless

    project = imported["project"]
    causal_twin = next(line.split()[2] for line in imported["out"].splitlines() if line.startswith("causal twin:"))
    video = project / "DATA" / "test_a" / "test_a.avi"
    bundle_dir, offline, record = tmp_path / "bundle", tmp_path / "offline", tmp_path / "rec"
    one_thread = ("--device", "cpu", "--threads", "1")
    children = Children(tmp_path)
    dt = cli("deg-train")
    try:
        children.run(
            "train-sequence",
            [
                *(*dt, "train-sequence", "-p", str(project), "--preset", "tiny", "--device", "cpu"),
                *("--feature-run", causal_twin, "sequence.epochs=2", "sequence.steps_per_epoch=5"),
            ],
            600,
        )
        children.run("infer", [*dt, "infer", "-p", str(project), str(video), "--out", str(offline), *one_thread], 300)
        children.run("export", [*dt, "export", str(project), "--out", str(bundle_dir), "--no-torch"], 300)
        camera, live = replay_lossless(children, video, bundle_dir, record, "lab")
        for name, proc in (("deg-camera", camera), ("deg-live", live)):
            children.wait(name, proc, 300)
    finally:
        children.stop_all()
    bundle = read_bundle(bundle_dir)
    assert Path(bundle.manifest.training["feature_run"]).name == Path(causal_twin).name  # the lab's model
    predictions = read_predictions(offline / "test_a_outputs.h5")
    rec = read_recording(record / "lab")
    assert rec["outputs"]["frame_index"].tolist() == list(range(len(predictions.probabilities)))
    live = np.asarray(rec["outputs"]["P"], np.float32)
    np.testing.assert_allclose(live, predictions.probabilities, rtol=1e-4, atol=2e-5)


def test_colour_statistics_equal_deepethogram(deepethogram_project):
    """Our add's measurement of each video and the project fold == what its add_video_to_project wrote."""
    import yaml

    from deg_train.project.normalization import fold_normalization, video_statistics

    folded = None
    for video in ("train_a", "val_a", "test_a"):  # the order its build added them in
        folder = deepethogram_project / "DATA" / video
        theirs = yaml.safe_load((folder / "stats.yaml").read_text())["normalization"]
        ours = video_statistics(folder / f"{video}.avi")
        assert ours["N"] == theirs["N"]
        np.testing.assert_allclose(ours["mean"], theirs["mean"], atol=1e-12, rtol=0)
        np.testing.assert_allclose(ours["std"], theirs["std"], atol=1e-12, rtol=0)
        folded = fold_normalization(folded, ours)
    project = yaml.safe_load((deepethogram_project / "project_config.yaml").read_text())["augs"]["normalization"]
    assert folded["N"] == project["N"]
    np.testing.assert_allclose(folded["mean"], project["mean"], atol=1e-12, rtol=0)
    np.testing.assert_allclose(folded["std"], project["std"], atol=1e-12, rtol=0)
