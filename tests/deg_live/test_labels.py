from pathlib import Path

import numpy as np
import pytest

from deg_live.labels import (
    BACKGROUND,
    LabelError,
    LabelTable,
    empty_labels,
    labels_to_csv,
    read_labels,
    write_labels,
)

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
RAT_SESSIONS = ("cage1_6_23_17_5", "cage2_6_23_17_5", "cage2_6_23_21_4", "unsessioned_05")


def rat_labels(name):
    return RAT / name / f"{name}_labels.csv"


RAT_BEHAVIOURS = [
    "background",
    "face_washing",
    "genital_licking",
    "grooming",
    "head_raising",
    "rearing",
    "wall_supported_rearing",
]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_real_rat_labels():
    table = read_labels(rat_labels("cage2_6_23_21_4"), n_frames=304)
    assert table.behaviours == RAT_BEHAVIOURS
    assert table.values.shape == (304, 7) and table.values.dtype == np.int8
    assert (table.values.sum(axis=1) == 1).all()  # exactly one behaviour per frame in this data set
    assert table.labelled_frames().all() and table.fully_labelled_frames().all()
    assert table.positives().sum() == 304


def test_roundtrip_is_exact(tmp_path):
    original = read_labels(rat_labels(RAT_SESSIONS[0]))
    path = write_labels(original, tmp_path / "x_labels.csv")
    assert path.read_text().startswith(",background,face_washing,")
    again = read_labels(path)
    assert again.behaviours == original.behaviours
    np.testing.assert_array_equal(again.values, original.values)
    # Byte-identical to the source file's layout (DeepEthogram's: empty index header, integer cells).
    assert path.read_text() == rat_labels(RAT_SESSIONS[0]).read_text()


def test_deepethogram_float_cells_and_partial_labels(tmp_path):
    path = write(tmp_path / "l.csv", ",background,groom,rear\n0,1,0,-1.0\n1,0,1.0,-1.0\n2,-1,-1,-1\n")
    table = read_labels(path)
    np.testing.assert_array_equal(table.values, [[1, 0, -1], [0, 1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(table.labelled_frames(), [True, True, False])
    np.testing.assert_array_equal(table.labelled_counts(), [2, 2, 0])
    np.testing.assert_array_equal(table.labelled_mask()[:, 2], [False, False, False])


def test_missing_background_is_computed(tmp_path):
    path = write(tmp_path / "l.csv", ",groom,rear\n0,0,0\n1,1,0\n2,-1,0\n")
    table = read_labels(path)
    assert table.behaviours == [BACKGROUND, "groom", "rear"]
    np.testing.assert_array_equal(table.column(BACKGROUND), [1, 0, -1])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (",background,groom,groom\n0,1,0,0\n", "duplicate column 'groom'"),
        (",background,groom\n0,1,2\n", "line 2 (frame 0), column 'groom': '2' is not 1, 0 or -1"),
        (",background,groom\n0,1,\n", "is not 1, 0 or -1"),
        (",background,groom\n0,1,yes\n", "'yes' is not 1, 0 or -1"),
        (",background,groom\n1,1,0\n", "first column must be the frame index 0"),
        ("background,groom\n1,0\n0,1\n", "first column must be the frame index 0"),
        (",background,groom\n0,1\n", "line 2 has 2 cells, the header has 3"),
        (",background,groom\n", "no label rows"),
        ("", "empty file"),
        (",background,\n0,1,0\n", "empty name"),
        (",background,groom\n0," + "1" * 200_000 + ",0\n", "not a label CSV (field larger than field limit"),
        (",background,groom\n" + "9" * 30 + ",1,0\n", "first column must be the frame index 0"),
        (",background,groom\n0,nan,0\n", "'nan' is not 1, 0 or -1"),
    ],
)
def test_malformed_files_name_the_problem(tmp_path, text, message):
    path = write(tmp_path / "bad_labels.csv", text)
    with pytest.raises(LabelError, match=r"bad_labels.csv") as err:
        read_labels(path)
    assert message in str(err.value)


def test_row_count_must_match_the_video(tmp_path):
    with pytest.raises(LabelError, match=r"144 label rows but the video has 160 frames"):
        read_labels(rat_labels("cage1_6_23_17_5"), n_frames=160)


def test_missing_file():
    with pytest.raises(LabelError, match=r"label file not found"):
        read_labels("/nonexistent/x_labels.csv")


def test_unknown_and_missing_columns_against_project(tmp_path):
    path = write(tmp_path / "l.csv", ",background,groom,dance\n0,1,0,0\n")
    with pytest.raises(LabelError, match=r"unknown behaviour column.*dance"):
        read_labels(path, behaviours=["background", "groom"])
    path = write(tmp_path / "m.csv", ",background,groom\n0,0,1\n")
    with pytest.raises(LabelError, match=r"missing behaviour column.*rear"):
        read_labels(path, behaviours=["background", "rear", "groom"])
    table = read_labels(path, behaviours=["background", "rear", "groom"], fill_missing=-1)
    assert table.behaviours == ["background", "rear", "groom"]
    np.testing.assert_array_equal(table.values, [[0, -1, 1]])


def test_add_and_remove_behaviour_keep_labels():
    table = read_labels(rat_labels("cage2_6_23_21_4"))
    added = table.add_behaviour("sniffing")
    np.testing.assert_array_equal(added.values[:, :-1], table.values)
    assert (added.column("sniffing") == -1).all()
    assert (table.add_behaviour("sniffing", value=0).column("sniffing") == 0).all()
    with pytest.raises(LabelError, match=r"already exists"):
        table.add_behaviour("grooming")
    with pytest.raises(LabelError, match=r"unlabelled"):
        table.add_behaviour("x", value=1)

    removed = table.remove_behaviour("grooming")
    assert "grooming" not in removed.behaviours
    keep = [table.behaviours.index(b) for b in removed.behaviours if b != BACKGROUND]
    np.testing.assert_array_equal(removed.values[:, 1:], table.values[:, keep])
    # Frames that were grooming (and nothing else) are now background.
    was_grooming = table.column("grooming") == 1
    assert was_grooming.any()
    assert (removed.column(BACKGROUND)[was_grooming] == 1).all()
    assert (removed.values.sum(axis=1) == 1).all()
    with pytest.raises(LabelError, match=r"cannot be removed"):
        table.remove_behaviour(BACKGROUND)


def test_table_rejects_bad_values_and_names():
    with pytest.raises(LabelError, match=r"not 1, 0 or -1"):
        LabelTable(["background", "a"], np.array([[0, 3]]))
    with pytest.raises(LabelError, match=r"duplicate"):
        LabelTable(["background", "a", "a"], np.zeros((1, 3)))
    with pytest.raises(LabelError, match=r"comma"):
        LabelTable(["background", "a,b"], np.zeros((1, 2)))


def test_empty_labels_and_csv_text():
    table = empty_labels(["background", "a"], 3)
    assert labels_to_csv(table) == ",background,a\n0,-1,-1\n1,-1,-1\n2,-1,-1\n"
