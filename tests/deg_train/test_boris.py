from pathlib import Path

import numpy as np
import pytest

from deg_live.labels import LabelError, read_labels
from deg_train.project.boris import boris_to_labels, import_boris, read_boris

RAT = Path(__file__).resolve().parents[1] / "data" / "rat_behavior"
FPS = 25.0

EVENTS_HEADER = [
    "Observation id",
    "Observation date",
    "Description",
    "Observation duration",
    "Observation type",
    "Source",
    "Time offset (s)",
    "Media duration (s)",
    "FPS",
    "Subject",
    "Behavior",
    "Behavioral category",
    "Behavior type",
    "Time",
    "Media file name",
    "Image index",
    "Image file path",
    "Comment",
]
AGGREGATED_HEADER = [
    "Observation id",
    "Observation date",
    "Description",
    "Observation type",
    "Source",
    "Total length",
    "FPS",
    "Subject",
    "Observation duration by subject by observation",
    "Behavior",
    "Behavioral category",
    "Modifiers",
    "Behavior type",
    "Start (s)",
    "Stop (s)",
    "Duration (s)",
    "Image index start",
    "Image index stop",
    "Image file path start",
    "Image file path stop",
    "Comment start",
    "Comment stop",
]


def events_file(path, events, subject="No focal subject", obs="obs1", sep="\t"):
    """A BORIS 'Export events' table; events: (behaviour, type, time[, subject])."""
    lines = [sep.join(EVENTS_HEADER)]
    for event in events:
        behaviour, kind, time = event[:3]
        who = event[3] if len(event) > 3 else subject
        row = [
            obs,
            "2024-05-01 10:00:00",
            "",
            "10.000",
            "Media file(s)",
            "player #1:x.mp4",
            "0",
            "10.000",
            "25.000",
            who,
            behaviour,
            "",
            kind,
            f"{time:.3f}",
            "x.mp4",
            str(round(time * FPS)),
            "NA",
            "",
        ]
        lines.append(sep.join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def aggregated_file(path, bouts, sep=","):
    """A BORIS 'Export aggregated events' table; bouts: (behaviour, STATE|POINT, start, stop)."""
    lines = [sep.join(AGGREGATED_HEADER)]
    for behaviour, kind, start, stop in bouts:
        stop_text = "NA" if kind == "POINT" else f"{stop:.3f}"
        duration = "NA" if kind == "POINT" else f"{stop - start:.3f}"
        row = [
            "obs1",
            "2024-05-01 10:00:00",
            "",
            "Media file",
            "player #1:x.mp4",
            "10.000",
            "25.000",
            "No focal subject",
            "5.0",
            behaviour,
            "",
            "",
            kind,
            f"{start:.3f}",
            stop_text,
            duration,
            "NA",
            "NA",
            "NA",
            "NA",
            "",
            "",
        ]
        lines.append(sep.join(row))
    path.write_text("\n".join(lines) + "\n")
    return path


BEHAVIOURS = ["background", "groom", "rear", "sniff"]


def test_events_export_to_frames(tmp_path):
    path = events_file(
        tmp_path / "e.tsv",
        [
            ("groom", "START", 1.0),
            ("rear", "POINT", 1.5),
            ("groom", "STOP", 2.0),
            ("rear", "START", 3.02),
            ("rear", "STOP", 3.5),
        ],
    )
    events = read_boris(path)
    assert events.kind == "events" and events.fps == 25.0 and events.media_duration == 10.0
    assert set(events.behaviours) == {"groom", "rear"}
    table = boris_to_labels(events, n_frames=250, fps=FPS, behaviours=BEHAVIOURS)
    assert table.behaviours == BEHAVIOURS
    groom, rear, sniff = table.column("groom"), table.column("rear"), table.column("sniff")
    assert np.flatnonzero(groom).tolist() == list(range(25, 50))
    assert np.flatnonzero(rear).tolist() == [38, *range(76, 88)]  # 1.5 s * 25 = 37.5 -> 38 (half up); 75.5 -> 76
    assert (sniff == 0).all()  # coded video, never seen: absent
    background = table.column("background")
    assert background[0] == 1 and background[30] == 0 and (table.values >= 0).all()


def test_aggregated_export_gives_the_same_labels(tmp_path):
    events = events_file(
        tmp_path / "e.tsv",
        [
            ("groom", "START", 1.0),
            ("rear", "POINT", 1.5),
            ("groom", "STOP", 2.0),
            ("rear", "START", 3.02),
            ("rear", "STOP", 3.5),
        ],
    )
    aggregated = aggregated_file(
        tmp_path / "a.csv",
        [
            ("groom", "STATE", 1.0, 2.0),
            ("rear", "POINT", 1.5, None),
            ("rear", "STATE", 3.02, 3.5),
        ],
    )
    assert read_boris(aggregated).kind == "aggregated"
    a = import_boris(events, 250, FPS, BEHAVIOURS)
    b = import_boris(aggregated, 250, FPS, BEHAVIOURS)
    np.testing.assert_array_equal(a.values, b.values)


def test_real_labels_survive_a_trip_through_boris(tmp_path):
    """Rat labels -> BORIS aggregated bouts (seconds) -> frames again: identical."""
    name = "unsessioned_05"
    truth = read_labels(RAT / name / f"{name}_labels.csv")
    bouts = []
    for k, behaviour in enumerate(truth.behaviours):
        if behaviour == "background":
            continue
        on = np.flatnonzero(np.diff(np.r_[0, truth.values[:, k] == 1, 0].astype(int)) != 0).reshape(-1, 2)
        bouts += [(behaviour, "STATE", a / FPS, b / FPS) for a, b in on]
    assert len(bouts) >= 10
    path = aggregated_file(tmp_path / "rat.tsv", bouts, sep="\t")
    table = import_boris(path, truth.n_frames, FPS, truth.behaviours)
    np.testing.assert_array_equal(table.values, truth.values)


def test_old_export_with_preamble_and_status_column(tmp_path):
    text = (
        "Observation id,old_obs\n"
        "Media file(s),x.mp4\n"
        "\n"
        "Time,Media file path,Total length,FPS,Subject,Behavior,Behavioral category,Comment,Status\n"
        "0.400,x.mp4,8.0,25,,groom,,,START\n"
        "0.800,x.mp4,8.0,25,,groom,,,STOP\n"
    )
    path = tmp_path / "old.csv"
    path.write_text(text)
    table = import_boris(path, 200, FPS, BEHAVIOURS)
    assert np.flatnonzero(table.column("groom")).tolist() == list(range(10, 20))


def test_unknown_behaviours_error_or_added(tmp_path):
    path = events_file(tmp_path / "e.tsv", [("dig", "POINT", 1.0), ("groom", "POINT", 2.0), ("fly", "POINT", 3.0)])
    with pytest.raises(LabelError, match=r"behaviours not in the project: dig, fly") as err:
        import_boris(path, 250, FPS, BEHAVIOURS)
    assert "--add-missing" in str(err.value)
    table = import_boris(path, 250, FPS, BEHAVIOURS, add_missing=True)
    assert table.behaviours == [*BEHAVIOURS, "dig", "fly"]
    assert table.column("dig")[25] == 1


def test_subjects_and_observations_must_be_chosen(tmp_path):
    path = events_file(
        tmp_path / "e.tsv",
        [
            ("groom", "START", 1.0, "mouse A"),
            ("groom", "STOP", 2.0, "mouse A"),
            ("rear", "START", 1.0, "mouse B"),
            ("rear", "STOP", 2.0, "mouse B"),
        ],
    )
    with pytest.raises(LabelError, match=r"several subjects.*--subject"):
        import_boris(path, 250, FPS, BEHAVIOURS)
    a = import_boris(path, 250, FPS, BEHAVIOURS, subject="mouse A")
    assert a.column("groom")[30] == 1 and a.column("rear")[30] == 0
    both = import_boris(path, 250, FPS, BEHAVIOURS, subject="all")
    assert both.column("groom")[30] == 1 and both.column("rear")[30] == 1
    with pytest.raises(LabelError, match=r"no subject 'mouse C'"):
        import_boris(path, 250, FPS, BEHAVIOURS, subject="mouse C")
    with pytest.raises(LabelError, match=r"no observation 'x'"):
        import_boris(path, 250, FPS, BEHAVIOURS, subject="all", observation="x")


def test_observed_interval_and_outside_value(tmp_path):
    path = events_file(tmp_path / "e.tsv", [("groom", "START", 2.0), ("groom", "STOP", 3.0), ("rear", "POINT", 4.0)])
    table = import_boris(path, 250, FPS, BEHAVIOURS, observed="events")
    labelled = np.flatnonzero(table.labelled_frames())
    assert labelled[0] == 50 and labelled[-1] == 100  # from the first start to the last event (a point: 1 frame)
    assert (table.values[:50] == -1).all()
    zero = import_boris(path, 250, FPS, BEHAVIOURS, observed=(1.0, 5.0), outside=0)
    assert (zero.values >= 0).all() and zero.column("background")[0] == 1
    with pytest.raises(LabelError, match=r"-1 .* or 0"):
        import_boris(path, 250, FPS, BEHAVIOURS, outside=1)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([("groom", "START", 1.0)], "never stops"),
        ([("groom", "STOP", 1.0)], "never started"),
        ([("groom", "START", 1.0), ("groom", "START", 2.0)], "starts again"),
        ([("groom", "WHAT", 1.0)], "not START, STOP or POINT"),
    ],
)
def test_unpaired_events(tmp_path, events, message):
    path = events_file(tmp_path / "bad.tsv", events)
    with pytest.raises(LabelError, match=message):
        read_boris(path)


def test_event_after_the_end_of_the_video(tmp_path):
    path = events_file(tmp_path / "e.tsv", [("groom", "POINT", 20.0)])
    with pytest.raises(LabelError, match=r"after the end of the video"):
        import_boris(path, 250, FPS, BEHAVIOURS)


def test_not_a_boris_file(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text(",background,groom\n0,1,0\n")
    with pytest.raises(LabelError, match=r"not a BORIS events export"):
        read_boris(path)
    with pytest.raises(LabelError, match=r"not found"):
        read_boris(tmp_path / "none.tsv")
