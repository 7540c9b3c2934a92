"""The shared training loop: deterministic with a seed, resumes after a crash exactly, stops early."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from deg_train.models.checkpoints import BEST, LAST, load_checkpoint
from deg_train.training.config import FlowConfig, LoopConfig
from deg_train.training.trainer import CheckpointInfo, Task, fit, read_metrics

torch.set_num_threads(1)


class Points(torch.utils.data.Dataset):
    """y = x @ w + noise, generated from a fixed seed."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 8, generator=g)
        self.y = self.x @ torch.linspace(-1, 1, 8).view(8, 1) + 0.1 * torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]


class Regression(Task):
    monitor = "val_loss"
    mode = "min"

    def __init__(self, crash_at_epoch: int | None = None, constant_val: float | None = None) -> None:
        self.crash_at_epoch = crash_at_epoch
        self.constant_val = constant_val
        self.epoch = 0

    def collate(self, items):
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def train_step(self, model, batch, device):
        x, y = (t.to(device) for t in batch)
        loss = nn.functional.mse_loss(model(x), y)
        return loss, {}

    def val_step(self, model, batch, device):
        x, y = (t.to(device) for t in batch)
        return {"sse": float(((model(x) - y) ** 2).sum()), "n": len(x)}

    def val_epoch(self, outputs):
        self.epoch += 1
        if self.crash_at_epoch is not None and self.epoch > self.crash_at_epoch:
            raise RuntimeError("simulated crash")
        if self.constant_val is not None:
            return {"val_loss": self.constant_val}
        return {"val_loss": sum(o["sse"] for o in outputs) / sum(o["n"] for o in outputs)}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))


def _settings(**kw) -> tuple[FlowConfig, LoopConfig]:
    """The stage section and ``train:`` section :func:`fit` takes, from one set of keyword arguments."""
    base = dict(
        epochs=4,
        lr=1e-2,
        batch_size=8,
        steps_per_epoch=5,
        val_steps=None,
        seed=3,
        device="cpu",
        patience=5,
        early_stop_patience=None,
    )
    base.update(kw)
    stage_keys = ("epochs", "lr", "weight_decay", "batch_size", "steps_per_epoch", "val_steps")
    stage = FlowConfig(**{k: v for k, v in base.items() if k in stage_keys})
    return stage, LoopConfig(**{k: v for k, v in base.items() if k not in stage_keys})


def _info() -> CheckpointInfo:
    return CheckpointInfo(stage="flow", arch="mlp", model_kwargs={}, behaviours=[], config={"test": True})


def _run(tmp_path, name, task=None, **kw):
    model = _model()
    result = fit(model, task or Regression(), Points(64, 0), Points(32, 1), tmp_path / name, *_settings(**kw), _info())
    return model, result


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_same_seed_same_weights_and_files(tmp_path):
    a, ra = _run(tmp_path, "a")
    b, _rb = _run(tmp_path, "b")
    assert _same_weights(a, b)
    assert ra.epochs_run == 4 and ra.stop_reason == "epochs"
    for name in (LAST, BEST, "metrics.csv", "train.log", "done.json"):
        assert (tmp_path / "a" / name).is_file(), name
    rows = read_metrics(tmp_path / "a")
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert {"lr", "train_loss", "val_loss", "time_s"} <= set(rows[0])
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]  # it learns
    ckpt = load_checkpoint(tmp_path / "a" / LAST)
    assert ckpt["epoch"] == 3 and ckpt["stage"] == "flow" and ckpt["schema_version"] == 1
    # A different seed gives different weights (the test can fail).
    c, _ = _run(tmp_path, "c", seed=4)
    assert not _same_weights(a, c)


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    reference, _ = _run(tmp_path, "ref")
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(tmp_path, "crashy", task=Regression(crash_at_epoch=2))  # dies in epoch 2, after 2 checkpoints
    assert load_checkpoint(tmp_path / "crashy" / LAST)["epoch"] == 1
    assert not (tmp_path / "crashy" / "done.json").exists()
    resumed, result = _run(tmp_path, "crashy")
    assert result.epochs_run == 4
    assert _same_weights(reference, resumed)
    ref_rows = read_metrics(tmp_path / "ref")
    rows = read_metrics(tmp_path / "crashy")
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    for r0, r1 in zip(ref_rows, rows):
        assert r0["val_loss"] == pytest.approx(r1["val_loss"], rel=1e-9)
        assert r0["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-9)
    # A finished run is not trained again.
    _again, result = _run(tmp_path, "crashy")
    assert result.stop_reason == "already finished"


def test_early_stop_and_plateau(tmp_path):
    _, result = _run(tmp_path, "flat", task=Regression(constant_val=1.0), epochs=50, early_stop_patience=3, patience=1)
    # Epoch 0 sets the best; 3 epochs without improvement follow.
    assert result.epochs_run == 4
    assert "early_stop_patience" in result.stop_reason
    rows = read_metrics(tmp_path / "flat")
    assert rows[-1]["lr"] < rows[0]["lr"]  # the plateau schedule reduced the rate
    done = json.loads((tmp_path / "flat" / "done.json").read_text())
    assert done["best_epoch"] == 0


def test_stops_when_learning_rate_falls_below_min_lr(tmp_path):
    _, result = _run(
        tmp_path, "lr", task=Regression(constant_val=1.0), epochs=50, patience=0, reduce_factor=0.1, min_lr=1e-4
    )
    # lr 1e-2 -> 1e-3 -> 1e-4 -> 1e-5 < min_lr: stops after the reduction below 1e-4.
    assert "min_lr" in result.stop_reason
    assert result.epochs_run <= 5


def test_without_validation_data_the_training_loss_decides(tmp_path):
    model = _model()
    result = fit(model, Regression(), Points(64, 0), None, tmp_path / "noval", *_settings(epochs=3), _info())
    assert result.epochs_run == 3 and result.best_epoch >= 0
    assert (tmp_path / "noval" / BEST).is_file()
    assert json.loads((tmp_path / "noval" / "done.json").read_text())["monitor"] == "train_loss"


def test_progress_lines_reach_train_log_without_a_terminal(tmp_path):
    """Issue 15 item 5: where stderr is no terminal, train.log gets step, clips/s, loss and time left."""
    _run(tmp_path, "progress", epochs=2, progress_every_s=0.0)
    lines = [line for line in (tmp_path / "progress" / "train.log").read_text().splitlines() if " step " in line]
    assert lines, "no progress line in train.log"
    first = lines[0]
    assert "flow epoch 1/2: step 1/" in first and "clips/s" in first and "loss" in first and "left" in first
    assert any("epoch 2/2" in line for line in lines)


def test_progress_lines_are_rate_limited(tmp_path):
    _run(tmp_path, "quiet", epochs=2, progress_every_s=3600.0)
    assert " step " not in (tmp_path / "quiet" / "train.log").read_text()


def test_cosine_schedule_decays_every_epoch_and_ignores_min_lr(tmp_path):
    # A constant validation value would stop a plateau run at min_lr; the cosine run decays lr -> lr/100 regardless.
    _run(tmp_path, "cos", task=Regression(constant_val=1.0), epochs=5, lr_schedule="cosine", patience=0, min_lr=5e-3)
    lrs = [row["lr"] for row in read_metrics(tmp_path / "cos")]
    assert len(lrs) == 5 and lrs[0] == pytest.approx(1e-2)
    assert all(b < a for a, b in itertools.pairwise(lrs))
    assert lrs[-1] >= 1e-4


def test_unknown_lr_schedule_is_a_config_error():
    with pytest.raises(ValueError, match="lr_schedule"):
        LoopConfig(lr_schedule="linear")


class NanAt(Regression):
    """Regression whose loss is NaN on the listed training steps (counted across epochs)."""

    def __init__(self, bad_steps) -> None:
        super().__init__()
        self.bad_steps, self.step = set(bad_steps), 0

    def train_step(self, model, batch, device):
        loss, logs = super().train_step(model, batch, device)
        self.step += 1
        return (loss * float("nan") if self.step in self.bad_steps else loss), logs


def test_a_step_with_non_finite_gradients_is_skipped_and_the_weights_stay_finite(tmp_path, caplog):
    model, result = _run(tmp_path, "nan", task=NanAt({2}), epochs=2)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert result.epochs_run == 2
    assert "step 2 skipped" in (tmp_path / "nan" / "train.log").read_text()


def test_an_epoch_of_only_non_finite_steps_is_one_clear_error(tmp_path):
    from camera_adapters.errors import UserFacingError

    with pytest.raises(UserFacingError, match="non-finite gradients"):
        _run(tmp_path, "diverged", task=NanAt(range(1, 100)), epochs=2)
