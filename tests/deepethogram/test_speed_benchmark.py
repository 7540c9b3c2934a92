"""``benchmarks/speed_vs_deepethogram.py``: the side-by-side speed command against DeepEthogram 0.5.

The fast tests need no DeepEthogram: our worker process answers a measurement request over its JSON-line protocol,
and bad input (no venv, a venv without DeepEthogram, a missing video, bad numbers) gets one clear error. The slow
test runs the whole command for real, tiny, against DeepEthogram's own venv (``$DEG_PEER_VENV``; skipped without).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import speed_vs_deepethogram as bench
from tests.deepethogram.conftest import peer_python

SCRIPT = Path(bench.__file__)
TINY = ["--threads", "1", "--rounds", "1", "--iters", "1", "--warmup", "1", "--size", "64", "--batch", "2"]
TINY += ["--forward-batch", "2", "--infer-frames", "16"]


def test_our_worker_answers_a_measurement_request():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    video = bench.DEFAULT_VIDEO
    setup = {
        "cmd": "setup",
        "threads": 1,
        "size": 64,
        "batch": 2,
        "forward_batch": 2,
        "video": str(video),
        "labels": str(bench.labels_for(video)),
        "infer_video": str(video),
        "infer_batch": 16,
        "workers": 0,
        "amp": False,
    }
    requests = [
        setup,
        {"cmd": "run", "measurement": "forward", "iters": 2},
        {"cmd": "run", "measurement": "nope", "iters": 1},
    ]
    lines = "".join(json.dumps(r) + "\n" for r in [*requests, {"cmd": "quit"}])
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--worker"], input=lines, capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    info, forward, bad = (json.loads(line) for line in result.stdout.splitlines())  # stdout holds only replies
    assert info["ok"] and "float32" in info["info"]["arithmetic"]  # amp false: no bf16 autocast
    assert forward["ok"] and forward["items"] == 2 and len(forward["times"]) == 2
    assert all(t > 0 for t in forward["times"])
    assert not bad["ok"] and "nope" in bad["error"]


def _main_error(*argv: str) -> str:
    with pytest.raises(SystemExit) as err:
        bench.main(list(argv))
    return str(err.value.code)


def test_bad_input_gets_one_clear_error(tmp_path, capsys):
    repo = SCRIPT.parents[1]
    missing = _main_error("--peer-venv", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert "no DeepEthogram venv at" in missing and "--install-peer" in missing
    # our own venv exists but has no DeepEthogram
    no_deg = _main_error("--peer-venv", str(Path(sys.executable).parents[1]), "--out", str(tmp_path / "o"))
    assert "has no working DeepEthogram" in no_deg
    video = _main_error("--video", str(tmp_path / "missing.mp4"), "--peer-venv", str(repo / ".venv"))
    assert "no video file at" in video and "missing.mp4" in video
    assert _main_error("--size", "100") == "2"  # argparse: one line on stderr, exit status 2
    assert "--size must be a multiple of 32" in capsys.readouterr().err
    assert _main_error("--iters", "0") == "2"
    assert "--iters must be at least 1" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_runs_both_sides_alternately(tmp_path):
    venv = peer_python().parents[1]
    out = tmp_path / "speed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(SCRIPT), "--peer-venv", str(venv), "--out", str(out), *TINY]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results["measurements"]) == set(bench.MEASUREMENTS)
    for name, sides in results["measurements"].items():
        for side in bench.SIDES:
            assert sides[side]["iterations"] == 1 and sides[side]["throughput"] > 0, (name, side)
    assert results["measurements"]["infer"]["ours"]["items_per_iteration"] == 16
    assert results["measurements"]["infer"]["deepethogram"]["items_per_iteration"] == 16
    assert set(results["measurements"]["train_flow"]["ours"]["parts_median_s"]) == set(bench.PARTS)
    assert results["workers"]["deepethogram"]["torch"] != ""
    table = (out / "results.md").read_text()
    assert results["machine"]["cpu"] in table and "ours / DeepEthogram" in table
    log = (out / "speed.log").read_text()
    assert "round 1/1 infer" in log and "round 1/1 train_feature" in log  # one progress line per round
    assert (out / "worker_deepethogram.log").is_file() and (out / "worker_ours.log").is_file()
