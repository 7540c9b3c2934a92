"""`deg-train train-all` end to end on real rat frames with the tiny preset: every stage runs, the report is
written, a second call resumes (skips everything), and other settings are refused without --fresh."""

from __future__ import annotations

import json

import pytest
import torch

from deg_live.outputs import list_groups
from deg_train.cli import main
from deg_train.models.checkpoints import is_done
from deg_train.recipe import STATE_FILE

SESSIONS = ("cage1_6_23_17_5", "cage2_6_23_17_5", "cage2_6_23_21_4")


@pytest.mark.slow
def test_train_all_tiny(rat_project_builder, tmp_path, capsys):
    torch.set_num_threads(1)
    project = rat_project_builder(tmp_path / "rats", sessions=SESSIONS)
    root = str(project.root)
    assert main(["train-all", "--project", root, "--preset", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "[7/7] evaluate" in out and "macro" in out and "Causality costs" in out

    state = json.loads((project.models_dir / STATE_FILE).read_text())
    assert all(
        state["stages"][s]["done"]
        for s in ("flow", "feature", "extract", "sequence", "sequence_centred", "thresholds", "evaluate")
    )
    runs = {s: state["stages"][s]["run"] for s in ("flow", "feature", "sequence", "sequence_centred")}
    assert all(is_done(r) for r in runs.values())
    assert runs["sequence_centred"].endswith("-centred")
    for record in project.videos:  # every video's features were extracted
        assert "deg_train_resnet18" in list_groups(record.outputs_path)
    report = project.models_dir / runs["sequence"].split("/")[-1] / "evaluation"
    assert (report / "report.md").is_file() and len(list(report.glob("*.png"))) == 3
    assert (project.models_dir / runs["sequence"].split("/")[-1] / "thresholds.json").is_file()

    # Resuming: nothing is trained again.
    assert main(["train-all", "--project", root, "--preset", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("skipped") >= 4
    again = json.loads((project.models_dir / STATE_FILE).read_text())
    assert {s: again["stages"][s]["run"] for s in runs} == runs

    # Other settings: refused (exit 2, one line) unless --fresh.
    assert main(["train-all", "--project", root, "--preset", "tiny", "sequence.arch=gru"]) == 2
    assert "--fresh" in capsys.readouterr().err
