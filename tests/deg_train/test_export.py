"""``deg-train export``: run directories -> bundle, checked against ``deg-train infer`` on a real rat video.

One tiny project with a feature run and a causal GRU sequence run (random weights, saved with the real checkpoint
code, thresholds picked into thresholds.json) is exported once through the CLI; the tests then hold the bundle
against the offline reference. The GRU keeps its state as (layers, B, H), which the export must turn batch-first.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deg_train.export as export_module
from camera_adapters.video import VideoReader
from deg_live.bundle import BUNDLE_SCHEMA_VERSION, BundleError, backup_path, read_bundle, write_bundle
from deg_live.postprocess import CausalPostprocessor, PostprocessSettings
from deg_train.cli import main as deg_train_main
from deg_train.export import (
    ExportError,
    check_encoder,
    export_bundle,
    export_from_path,
    publish_bundle,
    recover_interrupted_publish,
)
from deg_train.inference.predict import infer_video, write_thresholds_file
from deg_train.models.checkpoints import mark_done, new_run_dir, save_checkpoint
from deg_train.models.frame_encoder import FrameEncoder, SequenceStep
from deg_train.models.registry import create_model

VIDEO = os.path.join(os.path.dirname(__file__), "..", "data", "rat_behavior", "cage1_6_23_17_5", "cage1_6_23_17_5.mp4")
REPO = Path(__file__).resolve().parents[2]
BEHAVIOURS = ["background", "grooming", "rearing"]
THRESHOLDS = [0.45, 0.5, 0.55]
POSTPROCESS = PostprocessSettings(
    hysteresis=0.05, min_duration_frames=2, background_index=0, exclusive_background=False
)
TWO_STREAM = {
    "num_classes": 3,
    "flow_generator": "tinymotionnet",
    "num_frames": 3,
    "width": 0.25,
    "flow_generator_kwargs": {"width": 0.25},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project directory with one finished feature run and one finished causal GRU sequence run."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export") / "rats"
    models = root / "models"
    config = {
        "data": {"size": [32, 32], "frames_per_window": 3},
        "feature": {"arch": "resnet18"},
        "sequence": {"arch": "gru", "causal": True},
        "postprocess": {"hysteresis": 0.0},
    }
    two_stream = create_model("two_stream", "hidden_two_stream", **TWO_STREAM).eval()
    feature_run = new_run_dir(models, "feature", "resnet18")
    save_checkpoint(
        feature_run / "checkpoint_best.pt", model=two_stream, stage="feature", arch="hidden_two_stream",
        model_kwargs=TWO_STREAM, behaviours=BEHAVIOURS, config=config, epoch=3, metrics={"val_f1": 0.42},
        extra={"train_videos": ["a"], "val_videos": ["b"]},
    )  # fmt: skip
    mark_done(feature_run, {})
    seq_kwargs = {"input_dim": two_stream.num_features, "num_classes": 3, "hidden_size": 8, "num_layers": 2}
    gru = create_model("sequence", "gru", **seq_kwargs).eval()
    with torch.no_grad():  # sharper than random init, so thresholds are crossed and events happen
        for p in gru.parameters():
            p.mul_(4.0)
    sequence_run = new_run_dir(models, "sequence", "gru")
    save_checkpoint(
        sequence_run / "checkpoint_best.pt", model=gru, stage="sequence", arch="gru", model_kwargs=seq_kwargs,
        behaviours=BEHAVIOURS, config=config, epoch=7, metrics={"val_f1": 0.5},
        extra={"feature_run": str(feature_run), "latent_name": "resnet18"},
    )  # fmt: skip
    mark_done(sequence_run, {})
    write_thresholds_file(sequence_run, BEHAVIOURS, np.asarray(THRESHOLDS), POSTPROCESS, picked_on=["b"])
    # A newer centred run (train-all trains one for the comparison): the project export must skip it.
    centred_kwargs = {**seq_kwargs, "causal": False}
    centred = new_run_dir(models, "sequence", "gru-centred")
    save_checkpoint(
        centred / "checkpoint_best.pt", model=create_model("sequence", "gru", **centred_kwargs), stage="sequence",
        arch="gru", model_kwargs=centred_kwargs, behaviours=BEHAVIOURS, config=config, epoch=7,
        extra={"feature_run": str(feature_run)},
    )  # fmt: skip
    mark_done(centred, {})
    return root, feature_run, sequence_run


@pytest.fixture(scope="module")
def exported(project):
    root, _, _ = project
    out = root.parent / "bundle"
    assert deg_train_main(["export", str(root), "--out", str(out), "--check-video", VIDEO]) == 0
    return read_bundle(out)


@pytest.fixture(scope="module")
def reference(project):
    _, feature_run, sequence_run = project
    return infer_video(VIDEO, feature_run, sequence_run, batch_size=16)


def test_manifest_says_everything_live_needs(exported, project):
    _, feature_run, sequence_run = project
    m = exported.manifest
    assert m.behaviours == BEHAVIOURS
    assert m.thresholds == pytest.approx(THRESHOLDS)
    assert PostprocessSettings.from_dict(m.postprocess) == POSTPROCESS
    assert (m.input.height, m.input.width, m.input.frames_per_window) == (32, 32, 3)
    assert m.sequence.kind == "recurrent" and m.sequence.receptive_field is None
    # GRU hidden state (layers, B, H) is exported batch-first.
    assert [s.shape for s in m.sequence.state] == [["batch", 2, 8]]
    assert m.encoder.inputs[0].shape == ["batch", 3, 32, 32, 3] and m.encoder.inputs[0].dtype == "uint8"
    assert set(m.files) == {"encoder.onnx", "encoder.pt2", "sequence_step.onnx", "sequence_step.pt2"}
    assert m.training["feature_run"] == str(feature_run) and m.training["sequence_run"] == str(sequence_run)
    assert m.training["sequence"]["epoch"] == 7 and m.training["feature"]["metrics"]["val_f1"] == 0.42
    assert m.training["thresholds"]["picked_on"] == ["b"]
    assert m.schema_version == BUNDLE_SCHEMA_VERSION and m.producer.startswith("deg_train")
    assert (exported.directory / "manifest.sha256").is_file()  # the manifest is covered by a hash


def test_bundle_reproduces_deg_train_infer_on_a_real_video(exported, reference):
    import onnxruntime as ort

    with VideoReader(VIDEO, size=(32, 32)) as video:
        frames = video.read_range(0, len(video))
    assert len(frames) == reference.n_frames == 144
    t = 3
    idx = np.clip(np.arange(len(frames))[:, None] + np.arange(-t + 1, 1)[None, :], 0, None)
    encoder = ort.InferenceSession(str(exported.model_file("encoder")), providers=["CPUExecutionProvider"])
    features, logits = encoder.run(["features", "logits"], {"frames": frames[idx]})
    np.testing.assert_allclose(features, reference.features, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, reference.feature_logits, atol=1e-4, rtol=1e-4)
    step = ort.InferenceSession(str(exported.model_file("sequence")), providers=["CPUExecutionProvider"])
    state = np.zeros((1, 2, 8), np.float32)
    probs = []
    for f in features:
        p, state = step.run(["probs", "state0_out"], {"features": f[None], "state0": state})
        probs.append(p[0])
    probs = np.stack(probs)
    np.testing.assert_allclose(probs, reference.probabilities, atol=2e-5, rtol=1e-4)
    assert reference.probabilities.std(axis=0).max() > 1e-2  # the comparison is not trivially constant
    # The same decisions and events as offline, with the bundle's own thresholds and settings.
    decisions, transitions = CausalPostprocessor(exported.thresholds, exported.postprocess_settings()).run(probs)
    np.testing.assert_array_equal(decisions, reference.decisions)
    key = lambda tr: (tr.behaviour, tr.kind, tr.frame_index, tr.bout_start_frame)  # noqa: E731
    assert [key(tr) for tr in transitions] == [key(tr) for tr in reference.transitions]
    assert len(transitions) >= 2
    np.testing.assert_allclose(
        [tr.probability for tr in transitions], [tr.probability for tr in reference.transitions], atol=2e-5
    )


def test_export_refuses_to_overwrite_and_leaves_nothing_on_failure(exported, project, tmp_path):
    root, _, _ = project
    with pytest.raises(ExportError, match="already exists"):
        export_from_path(root, exported.directory)
    assert read_bundle(exported.directory)  # untouched

    class Untraceable(torch.nn.Module):
        def forward(self, frames):
            if frames.float().mean() > 100:  # data-dependent control flow cannot be exported
                return frames.float().mean((1, 2, 3)), frames.float().mean((1, 2, 3, 4))[:, None]
            return frames.float().sum((1, 2, 3)), frames.float().sum((1, 2, 3, 4))[:, None]

    seq = create_model("sequence", "gru", input_dim=3, num_classes=1, hidden_size=4)
    out = tmp_path / "bad"
    with pytest.raises(ExportError):
        export_bundle(Untraceable(), SequenceStep(seq), out, behaviours=["a"], height=8, width=8, frames_per_window=2)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_check_fails_loudly_when_the_graph_differs(exported):
    other = FrameEncoder(create_model("two_stream", "hidden_two_stream", **TWO_STREAM)).eval()
    windows = np.random.default_rng(0).integers(0, 256, (2, 3, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ExportError, match="does not reproduce the torch module"):
        check_encoder(other, exported.directory, windows, torch_programs=False)


def test_cli_errors_are_one_line(project, tmp_path, capsys):
    _, feature_run, _ = project
    assert deg_train_main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "b")]) == 2
    assert deg_train_main(["export", str(feature_run), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "no such run" in err[0] and "feature run" in err[1]
    assert not (tmp_path / "b").exists()


def test_manifest_is_plain_json(exported):
    data = json.loads((exported.directory / "manifest.json").read_text())
    assert next(iter(data)) == "schema_version"


def _bundle_copy(exported, path):
    return shutil.copytree(exported.directory, path, ignore=shutil.ignore_patterns("engines"))


def test_overwrite_keeps_the_old_bundle_when_killed_between_the_renames(exported, tmp_path):
    """A real process is killed after moving the old bundle aside and before moving the new one in."""
    out = _bundle_copy(exported, tmp_path / "bundle")
    old = read_bundle(out).thresholds
    new = _bundle_copy(exported, tmp_path / ".bundle.new")
    manifest = read_bundle(new).manifest
    manifest.thresholds = [0.25] * len(old)
    write_bundle(new, manifest)
    script = f"""
import os, signal
from pathlib import Path
import deg_train.export as export
calls = []
def rename(src, dst):
    calls.append(dst)
    if len(calls) == 2:  # the old bundle is already at its backup name
        os.kill(os.getpid(), signal.SIGKILL)
    os.replace(src, dst)
export._rename = rename
export.publish_bundle(Path({str(new)!r}), Path({str(out)!r}))
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not out.exists() and backup_path(out).is_dir()  # both bundles still exist, neither is lost
    with pytest.raises(BundleError, match=r"\.bundle\.previous holds the previous bundle.*interrupted"):
        read_bundle(out)
    recover_interrupted_publish(out)  # what the next export does first
    assert read_bundle(out).thresholds == old and not backup_path(out).exists()
    publish_bundle(new, out)  # uninterrupted: the new bundle in place, nothing else left
    assert read_bundle(out).thresholds == [0.25] * len(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_failed_overwrite_leaves_the_old_bundle_in_place(exported, project, tmp_path, monkeypatch):
    root, _, _ = project
    out = _bundle_copy(exported, tmp_path / "bundle")
    before = (out / "manifest.json").read_bytes()

    def failing_rename(src, dst):
        if Path(dst) == out and Path(src) != backup_path(out):
            raise OSError(errno.EIO, "injected: the disk failed while moving the new bundle in")
        os.replace(src, dst)

    monkeypatch.setattr(export_module, "_rename", failing_rename)
    with pytest.raises(OSError, match="injected"):
        export_from_path(root, out, overwrite=True)
    assert (out / "manifest.json").read_bytes() == before and read_bundle(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary or backup folder left
