"""deg_live.outputs: the `<video>_outputs.h5` round trip, DeepEthogram's layout, other groups kept intact."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from deg_live.outputs import (
    FOREIGN,
    OUTPUTS_SCHEMA_VERSION,
    PRODUCER,
    OutputsAppender,
    OutputsError,
    RowColumn,
    group_attrs,
    group_producer,
    list_groups,
    our_group_name,
    outputs_path_for,
    read_group,
    read_outputs,
    read_predictions,
    write_outputs,
    write_thresholds,
)

BEHAVIOURS = ["background", "grooming", "rearing"]


def _arrays(n=50, k=3, ds=8, df=6, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)).astype(np.float32)
    return dict(
        spatial_features=rng.normal(size=(n, ds)).astype(np.float32),
        flow_features=rng.normal(size=(n, df)).astype(np.float32),
        logits=logits,
        probabilities=1 / (1 + np.exp(-logits)),
    )


def test_round_trip(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    write_outputs(
        path, "resnet18", thresholds=[0.3, 0.4, 0.5], behaviours=BEHAVIOURS, attrs={"run": "r1", "x": [1]}, **a
    )
    out = read_outputs(path, "resnet18")
    assert out.behaviours == BEHAVIOURS
    np.testing.assert_array_equal(out.logits, a["logits"])
    np.testing.assert_array_equal(out.probabilities, a["probabilities"])
    np.testing.assert_allclose(out.thresholds, [0.3, 0.4, 0.5])
    np.testing.assert_array_equal(out.features, np.concatenate([a["spatial_features"], a["flow_features"]], 1))
    assert out.n_frames == 50
    assert out.attrs["run"] == "r1" and out.attrs["x"] == [1]
    assert out.attrs["schema_version"] == OUTPUTS_SCHEMA_VERSION
    assert group_attrs(path, "resnet18")["run"] == "r1"
    assert group_attrs(path, "nope") is None
    # the only group is picked when no name is given
    assert read_outputs(path).latent_name == "resnet18"


def test_deepethogram_layout(tmp_path):
    """Read the file the way DeepEthogram's projects.import_outputfile does: plain h5py, its dataset names."""
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **a)
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["resnet18"]
        g = f["resnet18"]
        assert set(g.keys()) == {"P", "logits", "thresholds", "class_names", "spatial_features", "flow_features"}
        for name in ("P", "logits", "thresholds", "spatial_features", "flow_features"):
            assert g[name].dtype == np.float32
        assert g["P"].shape == (50, 3) and g["thresholds"].shape == (3,)
        names = g["class_names"][:]
        assert isinstance(names[0], bytes)
        assert [n.decode("utf-8") for n in names] == BEHAVIOURS
        np.testing.assert_allclose(g["thresholds"][:], 0.5)


def test_other_group_kept_intact(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a, b = _arrays(seed=1), _arrays(seed=2)
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **a)
    # a sequence model's group: no features
    write_outputs(
        path, "tgm", logits=b["logits"], probabilities=b["probabilities"], thresholds=[0.2] * 3, behaviours=BEHAVIOURS
    )
    assert list_groups(path) == ["resnet18", "tgm"]
    np.testing.assert_array_equal(read_outputs(path, "resnet18").spatial_features, a["spatial_features"])
    seq = read_outputs(path, "tgm")
    assert seq.spatial_features is None
    with pytest.raises(OutputsError, match="no features"):
        _ = seq.features
    # replacing one group keeps the other and does not grow the file without bound
    size = path.stat().st_size
    for _ in range(3):
        write_outputs(
            path, "tgm", logits=a["logits"], probabilities=a["probabilities"], thresholds=None, behaviours=BEHAVIOURS
        )
    assert path.stat().st_size <= size * 1.2
    np.testing.assert_array_equal(read_outputs(path, "resnet18").flow_features, a["flow_features"])
    np.testing.assert_array_equal(read_outputs(path, "tgm").logits, a["logits"])
    write_thresholds(path, "tgm", [0.1, 0.2, 0.3])
    np.testing.assert_allclose(read_outputs(path, "tgm").thresholds, [0.1, 0.2, 0.3])
    with pytest.raises(OutputsError, match="say which one"):
        read_outputs(path)


def test_failed_write_leaves_file_untouched(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **a)
    before = path.read_bytes()
    with pytest.raises(OutputsError, match="must both be"):
        write_outputs(
            path,
            "resnet18",
            logits=a["logits"][:, :2],
            probabilities=a["probabilities"],
            thresholds=None,
            behaviours=BEHAVIOURS,
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rat_outputs.h5"]  # no temp file left behind


def test_errors(tmp_path):
    with pytest.raises(OutputsError, match="not found"):
        read_outputs(tmp_path / "missing_outputs.h5")
    bad = tmp_path / "bad_outputs.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(OutputsError, match="not a readable HDF5"):
        read_outputs(bad)
    path = tmp_path / "x_outputs.h5"
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **_arrays())
    with pytest.raises(OutputsError, match="no group 'tgm'"):
        read_outputs(path, "tgm")
    with h5py.File(path, "r+") as f:
        f["resnet18"].attrs["schema_version"] = OUTPUTS_SCHEMA_VERSION + 1
    with pytest.raises(OutputsError, match="upgrade"):
        read_outputs(path, "resnet18")


def test_outputs_path_for(tmp_path):
    assert outputs_path_for(tmp_path / "DATA" / "rat1" / "rat1.mp4") == tmp_path / "DATA" / "rat1" / "rat1_outputs.h5"


def test_read_predictions_picks_the_sequence_group_and_reads_any_group_with_p(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **a)
    seq = {k: v for k, v in a.items() if k in ("logits", "probabilities")}
    write_outputs(path, "tgm", thresholds=[0.2, 0.3, 0.4], behaviours=BEHAVIOURS, **seq)
    picked = read_predictions(path)
    assert picked.group == "tgm" and picked.behaviours == BEHAVIOURS
    np.testing.assert_array_equal(picked.probabilities, a["probabilities"])
    np.testing.assert_allclose(picked.thresholds, [0.2, 0.3, 0.4])
    assert read_predictions(path, "resnet18").group == "resnet18"
    with pytest.raises(OutputsError, match=r"no prediction group 'nope' \(it holds \['resnet18', 'tgm'\]"):
        read_predictions(path, "nope")
    # A recorder-style group: P, decisions and row indices, no logits.
    with h5py.File(path, "a") as f:
        g = f.create_group("deg_live")
        g.create_dataset("P", data=a["probabilities"][:5])
        g.create_dataset("decisions", data=a["probabilities"][:5] > 0.5)
        g.create_dataset("frame_index", data=np.arange(5) * 2)
    rec = read_predictions(path, "deg_live")
    assert rec.behaviours == ["b0", "b1", "b2"] and rec.thresholds.tolist() == [0.5, 0.5, 0.5]
    assert rec.rows["decisions"].dtype == bool and rec.rows["frame_index"].tolist() == [0, 2, 4, 6, 8]


def _deepethogram_group(path, name, a):
    """A group as DeepEthogram 0.5 writes it: its datasets, no attributes at all."""
    with h5py.File(path, "a") as f:
        g = f.create_group(name)
        for key in ("spatial_features", "flow_features", "logits"):
            g.create_dataset(key, data=a[key])
        g.create_dataset("P", data=a["probabilities"])
        g.create_dataset("thresholds", data=np.full(3, 0.5, np.float32))
        g.create_dataset("class_names", data=[b.encode() for b in BEHAVIOURS], dtype=h5py.string_dtype())


def test_our_group_names_never_collide_with_deepethogram():
    assert our_group_name("resnet18") == "deg_train_resnet18"
    assert our_group_name("tgm", centred=True) == "deg_train_tgm_centred"
    assert our_group_name("deg_train_tgm") == "deg_train_tgm"  # idempotent


def test_a_group_deepethogram_wrote_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    theirs, ours = _arrays(seed=1), _arrays(seed=2)
    _deepethogram_group(path, "resnet18", theirs)
    assert group_producer(path, "resnet18") == FOREIGN and group_producer(path, "tgmj") is None
    with pytest.raises(OutputsError, match="another program"):
        write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, **ours)
    np.testing.assert_array_equal(read_outputs(path, "resnet18").spatial_features, theirs["spatial_features"])
    write_outputs(path, our_group_name("resnet18"), thresholds=None, behaviours=BEHAVIOURS, **ours)
    assert group_producer(path, "deg_train_resnet18") == PRODUCER
    np.testing.assert_array_equal(read_outputs(path, "resnet18").spatial_features, theirs["spatial_features"])
    write_outputs(path, "resnet18", thresholds=None, behaviours=BEHAVIOURS, overwrite=True, **ours)  # asked for
    np.testing.assert_array_equal(read_outputs(path, "resnet18").spatial_features, ours["spatial_features"])


def test_groups_older_versions_of_ours_wrote_are_still_ours_and_read(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    write_outputs(path, "tgm", thresholds=[0.2] * 3, behaviours=BEHAVIOURS, logits=a["logits"],
                  probabilities=a["probabilities"])  # fmt: skip
    with h5py.File(path, "a") as f:
        del f["tgm"].attrs["producer"]  # as written before the producer attribute existed
    assert group_producer(path, "tgm") == PRODUCER
    assert read_predictions(path).group == "tgm"
    write_outputs(path, "tgm", thresholds=[0.3] * 3, behaviours=BEHAVIOURS, logits=a["logits"],
                  probabilities=a["probabilities"])  # fmt: skip
    np.testing.assert_allclose(read_outputs(path, "tgm").thresholds, [0.3] * 3)


ROW_COLUMNS = (RowColumn("P", np.float32, per_behaviour=True), RowColumn("decisions", np.uint8, per_behaviour=True),
               RowColumn("frame_index", np.int64))  # fmt: skip


def test_appender_grows_a_group_readable_while_it_grows_and_after(tmp_path):
    """The recorder's live group: rows appended and flushed are readable by another reader before the close."""
    path = tmp_path / "s_outputs.h5"
    out = OutputsAppender(path, "deg_live", behaviours=BEHAVIOURS, thresholds=[0.5, 0.4, 0.6], columns=ROW_COLUMNS,
                          producer="deg_live", attrs={"stream_ids": "[]"})  # fmt: skip
    rows = [(np.full(3, i / 10, np.float32), np.array([0, i > 4, 0], np.uint8), 2 * i) for i in range(8)]
    assert out.append(rows[:5]) == 5 and out.append([]) == 0
    out.set_attr("stream_ids", '["s1"]')
    out.flush()
    datasets, attrs = read_group(path, "deg_live")  # while the writer still holds the file
    assert datasets["P"].shape == (5, 3) and attrs["stream_ids"] == '["s1"]'
    out.append(rows[5:])
    assert out.column("frame_index").tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    out.put("video_frame", np.arange(8))
    out.put("video_frame", np.arange(8) + 1)  # replaced, not added twice
    out.close()
    out.close()  # idempotent
    assert out.closed
    picked = read_predictions(path)  # the viewer's reader
    assert picked.group == "deg_live" and picked.behaviours == BEHAVIOURS
    np.testing.assert_allclose(picked.thresholds, [0.5, 0.4, 0.6])
    assert picked.rows["decisions"][:, 1].tolist() == [i > 4 for i in range(8)]
    assert picked.rows["video_frame"].tolist() == list(range(1, 9))
    datasets, attrs = read_group(path, "deg_live")
    assert [n.decode() for n in datasets["class_names"]] == BEHAVIOURS  # fixed-length ascii, as always
    assert attrs["latent_name"] == "deg_live" and attrs["schema_version"] == OUTPUTS_SCHEMA_VERSION
    with pytest.raises(OutputsError, match=r"no group 'nope' \(it holds \['deg_live'\]\)"):
        read_group(path, "nope")
    with pytest.raises(OutputsError, match="not found"):
        read_group(tmp_path / "missing_outputs.h5", "deg_live")


def test_appender_never_replaces_a_file_holding_deepethogram_groups(tmp_path):
    path = tmp_path / "s_outputs.h5"
    _deepethogram_group(path, "resnet18", _arrays())
    with pytest.raises(OutputsError, match=r"groups \['resnet18'\] that another program"):
        OutputsAppender(path, "deg_live", behaviours=BEHAVIOURS, thresholds=[0.5] * 3, columns=ROW_COLUMNS)
    assert list_groups(path) == ["resnet18"]
    with pytest.raises(OutputsError, match=r"thresholds have shape \(2,\)"):
        OutputsAppender(tmp_path / "t_outputs.h5", "g", behaviours=BEHAVIOURS, thresholds=[0.5] * 2, columns=())
    (tmp_path / "u_outputs.h5").write_bytes(b"cut short")  # not HDF5: nothing readable to keep
    OutputsAppender(tmp_path / "u_outputs.h5", "g", behaviours=BEHAVIOURS, thresholds=[0.5] * 3, columns=()).close()
    assert list_groups(tmp_path / "u_outputs.h5") == ["g"]


def test_a_recording_older_recorders_wrote_is_read_the_same(tmp_path):
    """The live group exactly as the recorder wrote it with its own h5py code, before deg_live.outputs did."""
    from deg_live.recorder import read_recording

    folder = tmp_path / "old"
    folder.mkdir()
    with h5py.File(folder / "old_outputs.h5", "w") as f:
        f.attrs["schema_version"] = 1
        f.attrs["producer"] = "deg_live"
        g = f.create_group("deg_live")
        g.attrs.update(schema_version=1, latent_name="deg_live", created="2026-01-01T00:00:00+00:00")
        g.attrs["stream_ids"] = '["s1"]'
        g.create_dataset("P", data=np.full((4, 3), 0.25, np.float32), maxshape=(None, 3), chunks=(256, 3))
        g.create_dataset("decisions", data=np.ones((4, 3), np.uint8), maxshape=(None, 3), chunks=(256, 3))
        for name, dtype in (("frame_index", np.int64), ("stream", np.int32), ("video_frame", np.int64)):
            g.create_dataset(name, data=np.arange(4, dtype=dtype))
        g.create_dataset("thresholds", data=np.full(3, 0.5, np.float32))
        g.create_dataset("class_names", data=np.array(BEHAVIOURS, dtype="S"))
    (folder / "old_frames.csv").write_text("video_frame,frame_index,source_frame,camera_timestamp_ns,"
                                           "capture_time_ns,publish_time_ns,receive_time_ns,stream_id\n")  # fmt: skip
    (folder / "old_events.csv").write_text("camera_id,behaviour\n")
    (folder / "old_recording.json").write_text('{"status": "complete"}')
    data = read_recording(folder)
    assert data["outputs"]["stream_ids"] == ["s1"] and data["outputs"]["P"].shape == (4, 3)
    assert data["outputs"]["frame_index"].tolist() == [0, 1, 2, 3]
    assert read_predictions(folder / "old_outputs.h5").rows["video_frame"].tolist() == [0, 1, 2, 3]


def deepethogram_gui_default(path, sequence_arch="tgmj", feature_arch="resnet18") -> str:
    """The group DeepEthogram 0.5's GUI opens an outputs file on (``projects.import_outputfile`` with no name and a
    project_config.yaml without ``sequence.latent_name``): its sequence arch's group, else its feature extractor's,
    else the first group of the file as h5py lists it."""
    with h5py.File(path, "r") as f:
        keys = list(f.keys())
    return next((k for k in (sequence_arch, feature_arch) if k in keys), keys[0])


def test_deepethogram_gui_opens_on_our_causal_sequence_group_where_only_we_ran(tmp_path):
    path = tmp_path / "rat_outputs.h5"
    a = _arrays()
    seq = {"logits": a["logits"], "probabilities": a["probabilities"]}
    write_outputs(path, "deg_train_resnet18", thresholds=None, behaviours=BEHAVIOURS, attrs={"stage": "feature"}, **a)
    write_outputs(path, "deg_train_deepethogram_resnet18", thresholds=None, behaviours=BEHAVIOURS, **a)
    assert deepethogram_gui_default(path) == "deg_train_resnet18"  # no sequence group yet: the first written
    write_outputs(path, "deg_train_tgm_centred", thresholds=None, behaviours=BEHAVIOURS,
                  attrs={"stage": "sequence", "causal": False}, **seq)  # fmt: skip
    write_outputs(path, "deg_train_tgm", thresholds=None, behaviours=BEHAVIOURS,
                  attrs={"stage": "sequence", "causal": True}, **seq)  # fmt: skip
    assert deepethogram_gui_default(path) == "deg_train_tgm"
    write_thresholds(path, "deg_train_resnet18", [0.4] * 3)  # later writes keep it first
    write_outputs(path, "deg_train_tgm_centred", thresholds=None, behaviours=BEHAVIOURS,
                  attrs={"stage": "sequence", "causal": False}, **seq)  # fmt: skip
    assert deepethogram_gui_default(path) == "deg_train_tgm"
    assert list_groups(path) == sorted(list_groups(path))  # our own listing stays by name
    # where DeepEthogram ran too, its GUI opens on its own tgmj, which we keep as it was
    _deepethogram_group(path, "tgmj", a)
    write_thresholds(path, "deg_train_tgm", [0.6] * 3)
    assert deepethogram_gui_default(path) == "tgmj" and group_producer(path, "tgmj") == FOREIGN
    np.testing.assert_array_equal(read_outputs(path, "tgmj", features=False).logits, a["logits"])
