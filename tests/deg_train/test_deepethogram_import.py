"""``import-deepethogram`` on a project written in DeepEthogram 0.5's real on-disk formats (no DeepEthogram needed).

The files are as DeepEthogram writes them: run folders ``models/<stamp>_<model>_train/`` with ``config.yaml``
(``run.model``), ``checkpoint.pt`` and Lightning ``lightning_checkpoints/epoch=*.ckpt`` / ``last.ckpt`` whose
``hyper_parameters`` is a pickled OmegaConf ``DictConfig`` (a stand-in package that exists only while the file is
written, so loading goes through the restricted unpickler's config path), ``model.``-prefixed state dicts and
``criterion.*`` tensors. Parity of the numbers with DeepEthogram itself is ``tests/deepethogram`` (needs the peer
venv); a crafted checkpoint that tries to run code is refused in ``test_weights.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from deg_train.cli import main as deg_train_main
from deg_train.inference.deepethogram import DeepEthogramImportError, import_deepethogram, latest_weights
from deg_train.inference.extract import iter_centred_windows, load_encoder
from deg_train.inference.predict import load_sequence
from deg_train.models.checkpoints import build_model_from_checkpoint
from deg_train.models.registry import create_model
from tests.deg_train.test_weights import DEG_F_TABLE, fake_state, write_deg_checkpoint

BEHAVIOURS = ["background", "a", "b", "c"]  # DEG_F_TABLE's heads have 4 classes
TGMJ_TABLE = """
tgm_layers.0.center 8
tgm_layers.0.delta 8
tgm_layers.0.gamma 8
tgm_layers.0.soft_attn 8x8
tgm_layers.1.center 8
tgm_layers.1.delta 8
tgm_layers.1.gamma 8
tgm_layers.1.soft_attn 64x8
tgm_layers.1.cls_attn 1x8x8x1x1
tgm_layers.2.center 8
tgm_layers.2.delta 8
tgm_layers.2.gamma 8
tgm_layers.2.soft_attn 64x8
tgm_layers.2.cls_attn 1x8x8x1x1
h.weight 128x1024x1
h.bias 128
h2.weight 128x1024x1
h2.bias 128
classify1.0.weight 4x128x1
classify1.1.weight 4
classify1.1.bias 4
classify1.1.running_mean 4
classify1.1.running_var 4
classify1.1.num_batches_tracked -
classify2.0.weight 4x128x1
classify2.1.weight 4
classify2.1.bias 4
classify2.1.running_mean 4
classify2.1.running_var 4
classify2.1.num_batches_tracked -
"""


def _run(project: Path, name: str, config: dict) -> Path:
    run = project / "models" / name
    (run / "lightning_checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def _positive_vars(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in state.items()}


def with_final_bn(state: dict[str, torch.Tensor], k: int = 4) -> dict[str, torch.Tensor]:
    """A DeepEthogram deg_f state as its final_bn: true models have it (bias-free last layers, then BatchNorm1d)."""
    g = torch.Generator().manual_seed(7)
    out = {key: v for key, v in state.items() if key not in ("spatial_classifier.1.bias", "flow_classifier.1.bias")}
    for stream in ("spatial_classifier", "flow_classifier"):
        out[f"{stream}.2.weight"] = torch.rand(k, generator=g) + 0.5
        out[f"{stream}.2.bias"] = torch.randn(k, generator=g)
        out[f"{stream}.2.running_mean"] = torch.randn(k, generator=g)
        out[f"{stream}.2.running_var"] = torch.rand(k, generator=g) + 0.5
        out[f"{stream}.2.num_batches_tracked"] = torch.tensor(40)
    return out


def make_project(root: Path, *, final_bn: bool = False) -> dict:
    """A DeepEthogram project with a flow run, a feature extractor run and a TGMJ run, in its formats."""
    project = root / "rats_deepethogram"
    (project / "DATA" / "v1").mkdir(parents=True)
    config = {
        "project": {"name": "rats", "class_names": BEHAVIOURS, "path": str(project)},
        "augs": {"normalization": {"N": 10, "mean": [0.2, 0.3, 0.4], "std": [0.1, 0.2, 0.3]}, "resize": [32, 32]},
        "postprocessor": {"type": "min_bout", "min_bout_length": 2},
    }
    (project / "project_config.yaml").write_text(yaml.safe_dump(config))
    full = _positive_vars(fake_state(DEG_F_TABLE, seed=1))
    if final_bn:  # each stream: Sequential(cnn, Linear(bias=False), BatchNorm1d(K))
        full = with_final_bn(full)
    flow_only = {k[len("flow_generator.") :]: v + 1.0 for k, v in full.items() if k.startswith("flow_generator.")}
    flow_run = _run(
        project, "250101_000000_flow_generator_train", {"run": {"model": "flow_generator", "type": "train"}}
    )
    write_deg_checkpoint(flow_run / "checkpoint.pt", flow_only, prefix="")
    fe_config = {
        "run": {"model": "feature_extractor", "type": "train"},
        "feature_extractor": {"arch": "resnet18", "fusion": "average", "final_activation": "sigmoid",
                              "dropout_p": 0.25, "n_flows": 10, "final_bn": final_bn},
        "flow_generator": {"arch": "TinyMotionNet", "n_rgb": 11},
    }  # fmt: skip
    fe_run = _run(project, "250101_000100_feature_extractor_train", fe_config)
    best = write_deg_checkpoint(fe_run / "lightning_checkpoints" / "epoch=3-step=40.ckpt", full, lightning=True)
    other = _positive_vars(fake_state(DEG_F_TABLE, seed=2))
    write_deg_checkpoint(fe_run / "lightning_checkpoints" / "last.ckpt", other, lightning=True)
    write_deg_checkpoint(fe_run / "checkpoint.pt", other)
    tgmj = _positive_vars(fake_state(TGMJ_TABLE, seed=3))
    seq_run = _run(project, "250101_000200_sequence_train", {"run": {"model": "sequence", "type": "train"}})
    write_deg_checkpoint(seq_run / "lightning_checkpoints" / "last.ckpt", tgmj, lightning=True)
    return {"project": project, "full": full, "flow": flow_only, "best": best, "tgmj": tgmj}


def test_import_writes_ready_runs_with_its_settings(tmp_path):
    made = make_project(tmp_path)
    project = made["project"]
    assert latest_weights(project, "feature_extractor") == made["best"]  # DeepEthogram's "best" .ckpt first
    runs = import_deepethogram(project)
    assert runs.latent_name == "deg_train_deepethogram_resnet18"
    assert runs.sequence_run is not None and runs.sequence_run.name.endswith("_sequence_tgmj-centred")

    enc = load_encoder(runs.feature_run)
    assert enc.size == (32, 32) and enc.frames_per_window == 11 and enc.behaviours == BEHAVIOURS
    assert enc.window == "deepethogram_centred" and enc.pad_rgb == (51, 76, 102)  # uint8(mean * 255)
    model, _meta = build_model_from_checkpoint(runs.feature_run, expect_stage="feature")
    assert model.spatial_frame == "deepethogram"
    np.testing.assert_allclose(model.input_mean.numpy(), [0.2, 0.3, 0.4])
    np.testing.assert_allclose(model.input_std.numpy(), [0.1, 0.2, 0.3])
    own = model.state_dict()
    for key in ("spatial_classifier.0.conv1.weight", "flow_classifier.1.weight"):
        ours = key.replace("spatial_classifier.0.", "spatial_encoder.").replace("flow_classifier.1.", "flow_head.")
        assert torch.equal(own[ours], made["full"][key])
    # the flow generator comes from the flow run (what DeepEthogram's inference loads), not the feature file
    assert torch.equal(own["flow_generator.conv1.0.weight"], made["flow"]["conv1.0.weight"])

    twin = load_encoder(runs.causal_feature_run)  # same weights on our causal window, for live use
    assert twin.window == "causal" and twin.latent_name == "deg_train_deepethogram_resnet18_causal"
    twin_model, _ = build_model_from_checkpoint(runs.causal_feature_run, expect_stage="feature")
    assert twin_model.spatial_frame == "last"
    assert all(torch.equal(v, own[k]) for k, v in twin_model.state_dict().items())

    seq = load_sequence(runs.sequence_run)
    assert not seq.causal and seq.output_name == "deg_train_tgmj_centred"
    assert seq.latent_name == runs.latent_name
    assert list(seq.postprocess.per_behaviour("min_bout_length", 4)) == [3, 3, 3, 3]  # removes bouts <= 2
    features = torch.randn(1, 200, 1024)
    logits = seq.model(features)
    assert logits.shape == (1, 200, 4) and torch.isfinite(logits).all()


def test_command_line_and_refusals(tmp_path, capsys):
    from deg_train.inference.videos import resolve_sequence_run
    from deg_train.models.checkpoints import CheckpointError
    from deg_train.project.layout import Project

    made = make_project(tmp_path / "a")
    with pytest.raises(CheckpointError, match="import-deepethogram"):  # only DeepEthogram trained: say what to do
        resolve_sequence_run(Project.open(made["project"]), None)
    assert deg_train_main(["import-deepethogram", "-p", str(made["project"])]) == 0
    with pytest.raises(CheckpointError, match="tgmj-centred"):  # its TGMJ is never "the latest causal run"
        resolve_sequence_run(Project.open(made["project"]), None)
    out = capsys.readouterr().out
    assert "feature run:" in out and "sequence run:" in out and "epoch=3-step=40.ckpt" in out
    # final_bn: true (a BatchNorm1d after each stream's bias-free last layer) imports with it, logits included.
    made_bn = make_project(tmp_path / "b", final_bn=True)
    model, _ = build_model_from_checkpoint(import_deepethogram(made_bn["project"]).feature_run, expect_stage="feature")
    assert model.final_bn and model.spatial_head.bias is None
    full = made_bn["full"]
    x = torch.randn(5, 512)
    with torch.no_grad():
        spatial, _flow = model.eval().stream_logits(x, x)
        bn = {n: full[f"spatial_classifier.2.{n}"] for n in ("weight", "bias", "running_mean", "running_var")}
        expected = (x @ full["spatial_classifier.1.weight"].T - bn["running_mean"]) / torch.sqrt(
            bn["running_var"] + 1e-5
        )
    torch.testing.assert_close(spatial, expected * bn["weight"] + bn["bias"])
    with pytest.raises(DeepEthogramImportError, match=r"project_config\.yaml"):
        import_deepethogram(tmp_path / "nothing")
    assert deg_train_main(["import-deepethogram", "-p", str(tmp_path / "nothing")]) == 2  # one clear line


def test_centred_windows_are_deepethogram_clips():
    frames = np.arange(7, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    chunks = iter([frames[:3], frames[3:5], frames[5:]])
    windows = np.concatenate(list(iter_centred_windows(chunks, 5, (200, 201, 202))))
    assert windows.shape == (7, 5, 2, 2, 3)
    pad = np.array([200, 201, 202], np.uint8)
    for t in range(7):
        for j, s in enumerate(range(t - 2, t + 3)):
            expected = frames[s, 0, 0] if 0 <= s < 7 else pad
            np.testing.assert_array_equal(windows[t, j, 0, 0], expected)


@pytest.mark.parametrize("stream", ["spatial", "flow"])
def test_a_per_stream_file_loads_into_that_stream_only(tmp_path, stream):
    """DeepEthogram's curriculum writes ``spatial/`` and ``flow/checkpoint.pt``: ``Sequential(cnn, Linear)``."""
    from deg_train.models.feature.two_stream import TwoStream
    from deg_train.models.weights import load_weights

    full = fake_state(DEG_F_TABLE, seed=4)
    prefix = f"{stream}_classifier."
    part = {k[len(prefix) :]: v for k, v in full.items() if k.startswith(prefix)}  # keys 0.* and 1.*
    path = write_deg_checkpoint(tmp_path / "checkpoint.pt", part)
    model = TwoStream(num_classes=4, flow_generator="tinymotionnet", backbone="resnet18", num_frames=11)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = load_weights(model, path)
    assert report.source == "deepethogram" and len(report.loaded) == len(part)
    after = model.state_dict()
    assert torch.equal(after[f"{stream}_encoder.conv1.weight"], part["0.conv1.weight"])
    assert torch.equal(after[f"{stream}_head.weight"], part["1.weight"])
    other = "flow" if stream == "spatial" else "spatial"
    assert torch.equal(after[f"{other}_encoder.conv1.weight"], before[f"{other}_encoder.conv1.weight"])
    assert torch.equal(after["flow_generator.conv1.0.weight"], before["flow_generator.conv1.0.weight"])


def test_tgmj_file_maps_every_tensor_its_forward_pass_uses(tmp_path):
    from deg_train.models.weights import load_weights

    state = _positive_vars(fake_state(TGMJ_TABLE, seed=5))
    path = write_deg_checkpoint(tmp_path / "last.ckpt", state, lightning=True)
    model = create_model("sequence", "tgmj", input_dim=1024, num_classes=4)
    report = load_weights(model, path)
    skipped = {s.split(":")[0] for s in report.skipped}
    assert skipped == {"h2.weight", "h2.bias"} | {f"tgm_layers.{i}.delta" for i in range(3)}
    own = model.state_dict()
    assert torch.equal(own["classify1.weight"], state["classify1.0.weight"][..., 0])
    assert torch.equal(own["bn2.running_var"], state["classify2.1.running_var"])
    assert torch.equal(own["tgm_layers.1.cls_attn"], state["tgm_layers.1.cls_attn"][0, :, :, 0, 0])
    with pytest.raises(ValueError, match="centred"):
        create_model("sequence", "tgmj", input_dim=8, num_classes=2, causal=True)
