"""Multi-process training through torch.distributed: two CPU processes on gloo, launched by torchrun."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from deg_train.models.checkpoints import load_checkpoint

WORKER = textwrap.dedent(
    """
    import os, sys
    import torch
    from torch import nn
    from deg_train.training.config import FlowConfig, LoopConfig
    from deg_train.training.trainer import CheckpointInfo, Task, fit

    torch.set_num_threads(1)
    out = sys.argv[1]

    class Points(torch.utils.data.Dataset):
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.x = torch.randn(n, 8, generator=g)
            self.y = self.x.sum(1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
        def __len__(self):
            return len(self.x)
        def __getitem__(self, i):
            return self.x[i], self.y[i]

    class Regression(Task):
        def collate(self, items):
            return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])
        def train_step(self, model, batch, device):
            x, y = batch
            return nn.functional.mse_loss(model(x), y), {}
        def val_step(self, model, batch, device):
            x, y = batch
            return {"sse": float(((model(x) - y) ** 2).sum()), "n": len(x), "rank": int(os.environ["RANK"])}
        def val_epoch(self, outputs):
            ranks = sorted({o["rank"] for o in outputs})
            return {"val_loss": sum(o["sse"] for o in outputs) / sum(o["n"] for o in outputs),
                    "val_ranks": len(ranks)}

    # Each rank builds its model from a DIFFERENT seed: DDP must broadcast rank 0's weights at the start.
    torch.manual_seed(100 + int(os.environ["RANK"]))
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    stage = FlowConfig(epochs=2, lr=1e-2, batch_size=4, steps_per_epoch=3)
    loop = LoopConfig(seed=0, device="cpu")
    info = CheckpointInfo(stage="flow", arch="mlp", model_kwargs={}, behaviours=[], config={})
    result = fit(model, Regression(), Points(64, 0), Points(16, 1), os.path.join(out, "run"), stage, loop, info)
    torch.save({"state": model.state_dict(), "history": result.history},
               os.path.join(out, f"rank{os.environ['RANK']}.pt"))
    """
)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_cpu_processes_on_gloo_end_with_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(script),
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    for name, tensor in r0["state"].items():
        assert torch.equal(tensor, r1["state"][name]), name
    # Both ranks saw the gathered validation results and took the same decisions.
    assert [h["val_loss"] for h in r0["history"]] == [h["val_loss"] for h in r1["history"]]
    assert r0["history"][-1]["val_ranks"] == 2
    # Rank 0 wrote the run; its checkpoint holds the shared weights.
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint_last.pt")  # as deg-train reads it: no code from the file
    for name, tensor in r0["state"].items():
        assert torch.equal(tensor, ckpt["state_dict"][name]), name
    assert (tmp_path / "run" / "done.json").is_file()
