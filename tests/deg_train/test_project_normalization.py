"""``deg-train add`` on a DeepEthogram project measures each video's colours and folds them into
``augs.normalization`` exactly as DeepEthogram 0.5's ``add_video_to_project`` does (its ``zscore`` module: every 10th
frame, per-channel mean and population std of RGB/255, an N-weighted running average over videos), writing its
``DATA/<video>/stats.yaml``. Against DeepEthogram itself: ``tests/deepethogram`` (equal to 1e-12 on its own project).
"""

from __future__ import annotations

import numpy as np
import yaml

from deg_train.project.layout import Project
from deg_train.project.normalization import fold_normalization, video_statistics
from tests.deepethogram.conftest import write_lossless_video


def _video(path, seed, n=23):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n, 16, 24, 3), dtype=np.uint8)
    frames[..., seed % 3] //= 2  # channels differ
    return write_lossless_video(path, frames), frames


def _reference(frames):
    x = frames[::10].reshape(-1, 3).astype(np.float64) / 255
    return x.mean(0), x.std(0), len(frames[::10])


def _deepethogram_project(root):
    root.mkdir()
    config = {
        "project": {"name": "p", "class_names": ["background", "a"], "data_path": "DATA", "model_path": "models"},
        "augs": {"normalization": {"N": 0, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}, "resize": [16, 16]},
    }  # as its initialize_project writes it (augs from its defaults)
    (root / "project_config.yaml").write_text(yaml.safe_dump(config))
    (root / "DATA").mkdir()
    return Project.open(root)


def test_add_folds_colour_statistics_like_deepethogram(tmp_path):
    project = _deepethogram_project(tmp_path / "deg")
    (p1, f1), (p2, f2) = _video(tmp_path / "v1.avi", 1), _video(tmp_path / "v2.avi", 2, n=41)
    project.add_video(p1)
    project.add_video(p2)
    m1, s1, n1 = _reference(f1)
    m2, s2, n2 = _reference(f2)
    stats = yaml.safe_load((project.root / "DATA" / "v2" / "stats.yaml").read_text())["normalization"]
    np.testing.assert_allclose(stats["mean"], m2, atol=1e-12)
    np.testing.assert_allclose(stats["std"], s2, atol=1e-12)
    assert stats["N"] == n2 == 5
    saved = yaml.safe_load((project.root / "project_config.yaml").read_text())["augs"]["normalization"]
    assert saved["N"] == n1 + n2
    np.testing.assert_allclose(saved["mean"], (n1 * m1 + n2 * m2) / (n1 + n2), atol=1e-12)
    np.testing.assert_allclose(saved["std"], (n1 * s1 + n2 * s2) / (n1 + n2), atol=1e-12)  # its average of stds
    record = yaml.safe_load((project.root / "DATA" / "v1" / "record.yaml").read_text())
    assert record["stats"]["default"] == "stats.yaml"  # listed as DeepEthogram lists it
    assert video_statistics(p1)["N"] == n1


def test_our_own_projects_are_not_touched(tmp_path):
    project = Project.init(tmp_path / "ours", behaviours=["background", "a"])
    path, _ = _video(tmp_path / "v.avi", 3)
    project.add_video(path)
    assert not (project.root / "DATA" / "v" / "stats.yaml").exists()
    assert "augs" not in yaml.safe_load((project.root / "project_config.yaml").read_text())


def test_fold_starts_from_deepethogram_empty_statistics():
    new = {"N": 4, "mean": [0.1, 0.2, 0.3], "std": [0.2, 0.2, 0.2]}
    assert fold_normalization({"N": 0, "mean": [0.5] * 3, "std": [0.5] * 3}, new)["mean"] == [0.1, 0.2, 0.3]
    assert fold_normalization(None, new)["N"] == 4
