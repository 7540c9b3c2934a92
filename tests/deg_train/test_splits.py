import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from deg_live.labels import read_labels
from deg_train.project.splits import Split, SplitError, make_split

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"


@pytest.fixture(scope="module")
def rat_tables():
    return {d.name: read_labels(d / f"{d.name}_labels.csv") for d in sorted(RAT.iterdir()) if d.is_dir()}


def test_real_sessions_every_behaviour_in_train_and_val(rat_tables):
    behaviours = next(iter(rat_tables.values())).behaviours
    split = make_split(rat_tables, fractions=(0.7, 0.15, 0.15), seed=0, behaviours=behaviours)
    assert sorted(split.names) == sorted(rat_tables)
    assert (len(split.train), len(split.val), len(split.test)) == (11, 3, 2)
    assert "train" not in split.missing and "val" not in split.missing
    for part in ("train", "val"):
        total = sum(rat_tables[n].positives() for n in getattr(split, part))
        assert (total > 0).all(), part


def test_reproducible_from_the_seed(rat_tables):
    a = make_split(rat_tables, seed=3)
    b = make_split(rat_tables, seed=3)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    others = {tuple(make_split(rat_tables, seed=s).val) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_sessions_stay_together():
    counts = {f"mouse{m}_day{d}": [5, 1] for m in range(6) for d in range(3)}
    split = make_split(counts, fractions=(0.5, 0.25, 0.25), seed=1, group_by=r"^(mouse\d+)_")
    for part in ("train", "val", "test"):
        mice = {name.split("_")[0] for name in getattr(split, part)}
        for mouse in mice:
            assert all(f"{mouse}_day{d}" in getattr(split, part) for d in range(3))
    assert split.group_by == r"^(mouse\d+)_"
    by_function = make_split(counts, fractions=(0.5, 0.25, 0.25), seed=1, group_by=lambda n: n.split("_")[0])
    assert by_function.train == split.train


def test_finds_the_rare_good_split():
    # 12 videos; behaviour 1 is in only two of them, so most random splits miss it in train or val.
    counts = {f"v{i:02d}": [100, 0] for i in range(12)}
    counts["v03"] = [100, 4]
    counts["v09"] = [100, 4]
    split = make_split(counts, fractions=(0.75, 0.25, 0.0), seed=0, behaviours=["background", "rare"])
    assert split.missing == {}
    assert split.test == []
    assert {"v03", "v09"} & set(split.train) and {"v03", "v09"} & set(split.val)


def test_impossible_coverage_terminates_and_says_what_is_missing():
    counts = {f"v{i}": [10, 0] for i in range(200)}
    counts["v7"] = [10, 3]  # one video cannot be in train and val at once
    start = time.perf_counter()
    split = make_split(counts, seed=0, behaviours=["background", "only_once"], max_tries=500)
    assert time.perf_counter() - start < 10
    missing = [part for part, names in split.missing.items() if "only_once" in names]
    assert len(missing) == 2  # absent from two of the three parts
    assert len(split.names) == 200


def test_unlabelled_videos_still_get_a_part():
    split = make_split({"a": [3, 1], "b": None, "c": [2, 2], "d": None}, fractions=(0.5, 0.5, 0.0), seed=0)
    assert sorted(split.names) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ((0.5, 0.5, 0.5), "sum to 1"),
        ((0.7, 0.3), "three numbers"),
        ((1.2, -0.1, -0.1), ">= 0"),
        ((0.0, 0.5, 0.5), "train fraction"),
        (("a", 0.5, 0.5), "numbers"),
    ],
)
def test_bad_fractions(fractions, message):
    with pytest.raises(SplitError, match=message):
        make_split({"a": [1], "b": [1], "c": [1]}, fractions=fractions)


def test_impossible_requests():
    with pytest.raises(SplitError, match=r"2 videos cannot fill 3 parts"):
        make_split({"a": [1], "b": [1]}, fractions=(0.6, 0.2, 0.2))
    with pytest.raises(SplitError, match=r"1 sessions cannot fill 2 parts"):
        make_split({"s1_a": [1], "s1_b": [1]}, fractions=(0.5, 0.5, 0.0), group_by=r"^(s\d+)")
    with pytest.raises(SplitError, match=r"no videos"):
        make_split({})
    with pytest.raises(SplitError, match=r"regular expression"):
        make_split({"a": [1], "b": [1]}, fractions=(0.5, 0.5, 0), group_by="(")
    with pytest.raises(SplitError, match=r"different numbers of behaviours"):
        make_split({"a": [1, 2], "b": [1]}, fractions=(0.5, 0.5, 0))


def test_two_videos_fill_train_and_val():
    split = make_split({"a": [1, 1], "b": [1, 1]}, fractions=(0.8, 0.2, 0.0), seed=0)
    assert len(split.train) == 1 and len(split.val) == 1 and split.test == []


def test_save_and_load_deepethogram_format(tmp_path, rat_tables):
    split = make_split(rat_tables, seed=2)
    path = split.save(tmp_path / "split.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["metadata"]["split"] == [0.7, 0.15, 0.15]
    assert set(data) == {"metadata", "train", "val", "test"}
    loaded = Split.load(path)
    assert (loaded.train, loaded.val, loaded.test, loaded.seed) == (split.train, split.val, split.test, 2)
    assert loaded.part_of(split.val[0]) == "val" and loaded.part_of("nope") is None


def test_loads_a_deepethogram_split_file(tmp_path):
    path = tmp_path / "split.yaml"
    path.write_text("metadata:\n  split: [0.6, 0.2, 0.2]\ntrain: [m1, m2, m3]\nval: [m4]\ntest: []\n")
    split = Split.load(path)
    assert split.train == ["m1", "m2", "m3"] and split.val == ["m4"] and split.test == []
    assert split.fractions == (0.6, 0.2, 0.2) and split.seed is None


def test_malformed_split_files(tmp_path):
    path = tmp_path / "split.yaml"
    path.write_text("train: [a, b]\nval: [b]\n")
    with pytest.raises(SplitError, match=r"both train and val"):
        Split.load(path)
    path.write_text("train: a\n")
    with pytest.raises(SplitError, match=r"list of video names"):
        Split.load(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(SplitError, match=r"mapping"):
        Split.load(path)
    with pytest.raises(SplitError, match=r"not found"):
        Split.load(tmp_path / "none.yaml")
    path.write_text("train: " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(SplitError, match=r"nested too deeply"):
        Split.load(path)
    path.write_bytes(b"train: \xff\xfe")
    with pytest.raises(SplitError, match=r"cannot read the split"):
        Split.load(path)


def test_part_sizes_follow_fractions():
    counts = {f"v{i}": np.array([1]) for i in range(20)}
    split = make_split(counts, fractions=(0.6, 0.25, 0.15), seed=0)
    assert (len(split.train), len(split.val), len(split.test)) == (12, 5, 3)
