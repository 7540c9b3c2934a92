import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from camera_adapters.settings import ConfigError
from camera_adapters.video import VideoError, probe
from deg_live.labels import LabelError, read_labels
from deg_train.cli import main as deg_train
from deg_train.project.layout import Project, ProjectError
from deg_train.project.settings import DEFAULT_SETTINGS_FILE, ProjectSettings, load_project_settings_file
from deg_train.project.splits import Split

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
SESSIONS = ("cage1_6_23_17_5", "cage2_6_23_17_5", "cage2_6_23_21_4", "unsessioned_05")


def video(name):
    return RAT / name / f"{name}.mp4"


def labels(name):
    return RAT / name / f"{name}_labels.csv"


# -- the shared real project -------------------------------------------------------------------------------------


def test_rat_project_holds_the_sessions(rat_project):
    assert rat_project.video_names == sorted(SESSIONS)
    assert rat_project.behaviours[0] == "background" and len(rat_project.behaviours) == 7
    for record in rat_project.videos:
        assert record.video_path == record.directory / f"{record.name}.mp4"
        assert record.n_frames == probe(video(record.name)).n_frames
        assert record.labels_path.name == f"{record.name}_labels.csv"
        assert record.outputs_path == record.directory / f"{record.name}_outputs.h5"
        table = rat_project.load_labels(record.name)
        np.testing.assert_array_equal(table.values, read_labels(labels(record.name)).values)
        # DeepEthogram's record.yaml
        assert record.record["rgb"]["default"] == f"{record.name}.mp4"
        assert record.record["label"]["default"] == f"{record.name}_labels.csv"
        assert record.record["key"] == record.name


def test_rat_project_split_and_status(rat_project):
    split = rat_project.load_split()
    assert isinstance(split, Split)
    assert (len(split.train), len(split.val), len(split.test)) == (2, 1, 1)
    assert sorted(split.names) == sorted(SESSIONS)
    rows = {r.name: r for r in rat_project.status()}
    assert rows["cage2_6_23_21_4"].n_frames == 304 and rows["cage2_6_23_21_4"].labelled_frames == 304
    assert rows["unsessioned_05"].positives["background"] == 224
    assert all(r.split in ("train", "val", "test") and r.problem is None for r in rows.values())
    text = rat_project.format_status()
    assert "cage2_6_23_21_4" in text and "total" in text and "1072" in text


def test_frame_cache_through_the_project(rat_project):
    with rat_project.frame_cache("cage1_6_23_17_5", (32, 32), progress=False) as cache:
        assert len(cache) == 144 and cache.path.parent == rat_project.root / "cache"


# -- creating and opening -----------------------------------------------------------------------------------------


def test_init_writes_a_deepethogram_config(tmp_path):
    project = Project.init(tmp_path / "p", "my project", ["groom", "rear"], labeler="me")
    config = yaml.safe_load((tmp_path / "p" / "project_config.yaml").read_text())
    assert config["project"]["class_names"] == ["background", "groom", "rear"]
    assert config["project"]["data_path"] == "DATA" and config["project"]["model_path"] == "models"
    assert config["project"]["name"] == "my_project" and config["project"]["labeler"] == "me"
    assert (tmp_path / "p" / "DATA").is_dir() and (tmp_path / "p" / "models").is_dir()
    assert project.cache_dir == project.root / "cache" and project.runs_dir == project.root / "models"
    with pytest.raises(ProjectError, match=r"already a project"):
        Project.init(tmp_path / "p")
    with pytest.raises(ProjectError, match=r"duplicate"):
        Project.init(tmp_path / "q", behaviours=["a", "a"])


def test_paths_that_are_not_projects(tmp_path):
    with pytest.raises(ProjectError, match=r"no such project folder"):
        Project.open(tmp_path / "nothing")
    with pytest.raises(ProjectError, match=r"not a project \(no project_config.yaml\)"):
        Project.open(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ProjectError, match=r"not a project"):
        Project.open(tmp_path / "file.txt")
    (tmp_path / "project_config.yaml").write_text("augs: {}\n")
    with pytest.raises(ProjectError, match=r"no `project:` mapping"):
        Project.open(tmp_path)
    (tmp_path / "project_config.yaml").write_text("project: [\n")
    with pytest.raises(ProjectError, match=r"cannot read"):
        Project.open(tmp_path)
    (tmp_path / "project_config.yaml").write_text("project:\n  class_names: [groom, background]\n")
    with pytest.raises(ProjectError, match=r"must start with 'background'"):
        Project.open(tmp_path)


def test_project_settings_are_typed(tmp_path):
    project = Project.init(tmp_path / "p")
    assert project.settings == ProjectSettings()
    config = yaml.safe_load(project.config_path.read_text())
    config["deg_live"] = {"split": {"seeed": 3}}
    project.config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"deg_live: split.seeed: unknown key"):
        Project.open(tmp_path / "p")
    config["deg_live"] = {"split": {"seed": "three"}}
    project.config_path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=r"split.seed: expected an integer"):
        Project.open(tmp_path / "p")
    config["deg_live"] = {"split": {"seed": 3}}
    project.config_path.write_text(yaml.safe_dump(config))
    opened = Project.open(tmp_path / "p", overrides=["split.fractions=[0.5, 0.5, 0.0]"])
    assert opened.settings.split.seed == 3 and opened.settings.split.fractions == (0.5, 0.5, 0.0)


def test_documented_defaults_match_the_code():
    assert load_project_settings_file(DEFAULT_SETTINGS_FILE) == ProjectSettings()
    text = DEFAULT_SETTINGS_FILE.read_text()
    for key in ("schema_version:", "add_mode:", "fractions:", "seed:", "group_by:", "max_tries:", "dir:"):
        line = text.index(key)
        assert text[:line].rstrip().splitlines()[-1].lstrip().startswith("#"), f"{key} has no comment above it"


def test_opens_a_handwritten_deepethogram_project_in_place(tmp_path):
    """A project as DeepEthogram leaves it: absolute paths from another machine, its own config sections,
    record.yaml, a label file with unlabelled (-1) frames and floats, and a video in DATA/<name>/."""
    root = tmp_path / "mice_deepethogram"
    (root / "DATA" / "m1").mkdir(parents=True)
    (root / "DATA" / "m2").mkdir(parents=True)
    (root / "models").mkdir()
    config = {
        "augs": {"LR": 0.5, "UD": 0.0, "brightness": 0.25, "resize": [224, 224], "normalization": {"N": 0}},
        "compute": {"batch_size": 32, "num_workers": 8},
        "project": {
            "class_names": ["background", "face_washing", "grooming"],
            "config_file": "/old/machine/mice_deepethogram/project_config.yaml",
            "data_path": "/old/machine/mice_deepethogram/DATA",
            "labeler": "jim",
            "model_path": "/old/machine/mice_deepethogram/models",
            "name": "mice",
            "path": "/old/machine/mice_deepethogram",
            "pretrained_path": "pretrained_models",
        },
        "sequence": {"filter_length": 15},
        "split": {"file": None, "reload": True},
        "train": {"loss_weight_exp": 1.0},
    }
    (root / "project_config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(video("cage1_6_23_17_5"), root / "DATA" / "m1" / "m1.mp4")
    shutil.copy(video("cage2_6_23_17_5"), root / "DATA" / "m2" / "m2.mp4")
    # m1: partially labelled; DeepEthogram writes -1.0 for columns it added.
    rows = [",background,face_washing,grooming"]
    for i in range(144):
        rows.append(f"{i},0,1,0" if i < 20 else f"{i},-1,-1,-1.0" if i < 100 else f"{i},1,0,0")
    (root / "DATA" / "m1" / "m1_labels.csv").write_text("\n".join(rows) + "\n")
    record = {
        "flow": {"all": [], "default": []},
        "key": "m1",
        "label": {"all": ["m1_labels.csv"], "default": "m1_labels.csv"},
        "output": {"all": [], "default": []},
        "rgb": {"all": ["m1.mp4"], "default": "m1.mp4"},
        "stats": {"all": [], "default": []},
        "keypoint": {"all": [], "default": []},
    }
    (root / "DATA" / "m1" / "record.yaml").write_text(yaml.safe_dump(record))
    (root / "DATA" / "split.yaml").write_text("metadata:\n  split: [0.5, 0.5, 0.0]\ntrain: [m1]\nval: [m2]\ntest: []\n")

    project = Project.open(root)
    assert project.data_dir == root / "DATA" and project.models_dir == root / "models"
    assert project.video_names == ["m1", "m2"]
    m1, m2 = project.videos
    assert m1.labels_path == root / "DATA" / "m1" / "m1_labels.csv" and m2.labels_path is None
    assert m1.n_frames is None and project.n_frames("m1") == 144  # no cached facts: probed
    table = project.load_labels("m1")
    assert table.labelled_frames().sum() == 20 + 44
    assert (table.values[20:100] == -1).all()
    split = project.load_split()
    assert split.train == ["m1"] and split.val == ["m2"]
    rows = {r.name: r for r in project.status()}
    assert rows["m1"].labelled_frames == 64 and rows["m1"].split == "train" and rows["m2"].n_frames == 160
    assert "20/64" in project.format_status()  # face_washing: present/labelled

    project.add_behaviour("rearing")
    written = yaml.safe_load((root / "project_config.yaml").read_text())
    for section in ("augs", "compute", "sequence", "split", "train"):
        assert written[section] == config[section]  # DeepEthogram's sections untouched
    assert written["project"]["class_names"] == ["background", "face_washing", "grooming", "rearing"]
    assert written["project"]["labeler"] == "jim"
    again = Project.open(root).load_labels("m1")
    np.testing.assert_array_equal(again.values[:, :3], table.values)
    assert (again.column("rearing") == -1).all()

    added = project.add_video(video("cage2_6_23_21_4"), name="m3")
    assert added.video_path.name == "m3.mp4" and added.n_frames == 304


# -- adding videos ------------------------------------------------------------------------------------------------


def test_add_video_copy_and_link(tmp_path):
    project = Project.init(tmp_path / "p")
    copied = project.add_video(video("cage1_6_23_17_5"), labels=labels("cage1_6_23_17_5"))
    assert (
        not copied.video_path.is_symlink() and copied.video_path.read_bytes() == video("cage1_6_23_17_5").read_bytes()
    )
    assert project.behaviours == read_labels(labels("cage1_6_23_17_5")).behaviours  # taken from the first file
    linked = project.add_video(video("cage2_6_23_17_5"), mode="link")
    assert linked.video_path.is_symlink() and linked.labels_path is None
    assert project.video_names == ["cage1_6_23_17_5", "cage2_6_23_17_5"]


def _only_expected_entries(project, names):
    entries = sorted(p.name for p in project.data_dir.iterdir())
    assert entries == sorted(names), entries


def test_add_video_bad_inputs_leave_nothing_behind(fresh_rat_project, tmp_path):
    project = fresh_rat_project
    before = sorted(p.name for p in project.data_dir.iterdir())
    # Labels of another video: wrong number of rows.
    with pytest.raises(LabelError, match=r"144 label rows but the video has 512 frames"):
        project.add_video(video("unsessioned_01"), labels=labels("cage1_6_23_17_5"), name="u1")
    # Unknown column.
    bad = tmp_path / "bad_labels.csv"
    bad.write_text(labels("cage1_6_23_17_5").read_text().replace("grooming", "dancing"))
    with pytest.raises(LabelError, match=r"unknown behaviour column.*dancing"):
        project.add_video(video("cage1_6_23_17_5"), labels=bad, name="x")
    # Truncated video.
    truncated = tmp_path / "truncated.mp4"
    data = video("cage1_6_20_22_56").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"truncated.mp4"):
        project.add_video(truncated)
    # Not a video at all.
    with pytest.raises(VideoError, match=r"cannot open as a video"):
        project.add_video(bad)
    # Missing file, existing name, bad name.
    with pytest.raises(ProjectError, match=r"not found"):
        project.add_video(tmp_path / "none.mp4")
    with pytest.raises(ProjectError, match=r"already in the project"):
        project.add_video(video("cage1_6_23_17_5"))
    with pytest.raises(ProjectError, match=r"cannot name a video"):
        project.add_video(video("cage1_6_23_17_5"), name="a/b")
    _only_expected_entries(project, before)
    # The labels of the videos already there are untouched.
    np.testing.assert_array_equal(
        project.load_labels("cage1_6_23_17_5").values, read_labels(labels("cage1_6_23_17_5")).values
    )


def test_save_labels_checks_rows(fresh_rat_project):
    project = fresh_rat_project
    table = project.load_labels("cage1_6_23_17_5")
    edited = table.add_behaviour("x").remove_behaviour("x")
    edited.values[:10] = -1
    project.save_labels("cage1_6_23_17_5", edited)
    assert (project.load_labels("cage1_6_23_17_5").values[:10] == -1).all()
    with pytest.raises(LabelError, match=r"rows but the video has"):
        project.save_labels("cage2_6_23_17_5", table)
    with pytest.raises(ProjectError, match=r"no video 'nope'.*videos: cage1"):
        project.load_labels("nope")


def test_add_and_remove_behaviour_keep_labels(fresh_rat_project):
    project = fresh_rat_project
    before = {n: project.load_labels(n) for n in project.video_names}
    project.add_behaviour("sniffing", value=0)
    with pytest.raises(LabelError, match=r"already"):
        project.add_behaviour("sniffing")
    after = {n: Project.open(project.root).load_labels(n) for n in project.video_names}
    for name in before:
        np.testing.assert_array_equal(after[name].values[:, :-1], before[name].values)
        assert (after[name].column("sniffing") == 0).all()
    project.remove_behaviour("sniffing")
    project.remove_behaviour("rearing")
    assert "rearing" not in Project.open(project.root).behaviours
    for name in before:
        table = project.load_labels(name)
        assert "rearing" not in table.behaviours
        for b in table.behaviours[1:]:
            np.testing.assert_array_equal(table.column(b), before[name].column(b))
        assert (table.values.sum(axis=1) == 1).all()  # rearing frames became background
    with pytest.raises(LabelError, match=r"cannot be removed"):
        project.remove_behaviour("background")
    with pytest.raises(LabelError, match=r"no behaviour 'flying'"):
        project.remove_behaviour("flying")


def test_moved_project_still_opens(fresh_rat_project):
    # fresh_rat_project is a copy: its config still names the original folder.
    config = yaml.safe_load(fresh_rat_project.config_path.read_text())
    assert config["project"]["path"] != str(fresh_rat_project.root)
    assert fresh_rat_project.data_dir == fresh_rat_project.root / "DATA"
    assert fresh_rat_project.load_labels("unsessioned_05").n_frames == 464


# -- the command line ---------------------------------------------------------------------------------------------


def test_cli_end_to_end(tmp_path, capsys):
    p = str(tmp_path / "proj")
    assert (
        deg_train(
            [
                "init",
                p,
                "--behaviours",
                "face_washing",
                "genital_licking",
                "grooming",
                "head_raising",
                "rearing",
                "wall_supported_rearing",
            ]
        )
        == 0
    )
    vids = [str(video(n)) for n in SESSIONS[:3]]
    assert deg_train(["add", "-p", p, *vids, "--find-labels"]) == 0
    assert (
        deg_train(["add", "-p", p, str(video("unsessioned_05")), "--labels", str(labels("unsessioned_05")), "--link"])
        == 0
    )
    assert deg_train(["split", "-p", p, "--make", "--fractions", "0.5", "0.25", "0.25", "--seed", "1"]) == 0
    assert deg_train(["split", "-p", p, "--make"]) == 2  # exists: needs --force
    assert "add --force" in capsys.readouterr().err
    assert deg_train(["split", "-p", p, "--make", "--force", "split.seed=1"]) == 0
    # A video added later joins one part (a new labelled session into train); the rest of the split stays.
    before = Project.open(p).load_split()
    moved = before.test[0]
    assert deg_train(["split", "-p", p, "--assign", "train", moved]) == 0
    after = Project.open(p).load_split()
    assert after.train == sorted([*before.train, moved]) and after.val == before.val and moved not in after.test
    capsys.readouterr()
    assert deg_train(["split", "-p", p, "--assign", "training", moved]) == 2
    assert deg_train(["split", "-p", p, "--assign", "train", "no_such_video"]) == 2
    assert deg_train(["split", "-p", p, "--assign", "train"]) == 2
    err = capsys.readouterr().err
    assert "unknown split part 'training'" in err and "not videos of the project" in err and "name the videos" in err
    assert deg_train(["labels", "-p", p, "add-behaviour", "sniffing"]) == 0
    boris = tmp_path / "b.csv"
    boris.write_text("Subject,Behavior,Behavior type,Start (s),Stop (s)\n,sniffing,STATE,1.0,2.0\n")
    assert deg_train(["labels", "-p", p, "import-boris", "cage1_6_23_17_5", str(boris)]) == 0
    capsys.readouterr()
    assert deg_train(["status", "-p", p]) == 0
    out = capsys.readouterr().out
    assert "cage1_6_23_17_5" in out and "sniffing" in out and "train" in out
    table = Project.open(p).load_labels("cage1_6_23_17_5")
    assert table.column("sniffing").sum() == 25 and (table.values >= 0).all()
    assert (Project.open(p).load_labels("cage2_6_23_17_5").column("sniffing") == -1).all()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert deg_train(["status", "-p", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a project" in err and "Traceback" not in err
    assert deg_train(["init", str(tmp_path / "p")]) == 0
    assert (
        deg_train(
            [
                "add",
                "-p",
                str(tmp_path / "p"),
                str(video("cage1_6_23_17_5")),
                "--labels",
                str(labels("cage2_6_23_17_5")),
            ]
        )
        == 2
    )
    assert "160 label rows but the video has 144 frames" in capsys.readouterr().err
    assert Project.open(tmp_path / "p").videos == []


def _faststart_mp4(path, n=160):
    """A real faststart MP4 (its index at the front, as phones and web tools write them) of ``n`` frames."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(n):
            frame = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_add_refuses_a_faststart_mp4_cut_short_unless_told(fresh_rat_project, tmp_path, capsys):
    """Cut at 60 %, such a file opens and decodes to the cut without an error: only its header says 160 frames."""
    project = fresh_rat_project
    whole = _faststart_mp4(tmp_path / "whole.mp4")
    data = whole.read_bytes()
    cut = tmp_path / "cut_short.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    decodable = probe(cut).n_frames
    assert 0 < decodable < 160 and probe(cut).n_frames_metadata == 160
    before = sorted(p.name for p in project.data_dir.iterdir())
    assert deg_train(["add", "-p", str(project.root), str(cut)]) == 2
    err = capsys.readouterr().err
    assert f"declares 160 frames but only {decodable} decode" in err and "--allow-truncated" in err
    assert sorted(p.name for p in project.data_dir.iterdir()) == before  # nothing written
    assert deg_train(["add", "-p", str(project.root), str(cut), "--allow-truncated"]) == 0
    assert f"added cut_short ({decodable} frames)" in capsys.readouterr().out
    assert deg_train(["add", "-p", str(project.root), str(whole)]) == 0  # a complete file: no flag needed
