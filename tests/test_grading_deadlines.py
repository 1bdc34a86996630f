"""The late policy (grading/autograde/deadlines.py) and intake's ids, times and duplicates (intake.py).

Fast: no grading here. The policy graded end to end on sample submissions is in
tests/test_grading_late_run.py.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import time
import zipfile
from datetime import datetime, timedelta, UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import nbformat
import pytest

from grading.autograde import deadlines
from grading.autograde.deadlines import (
    Policy,
    assess,
    late_fields,
    load_policy,
    nbgrader_time,
    zip_time,
)
from grading.autograde.intake import collect, lms_marks_late, student_id_of

DETROIT = ZoneInfo("America/Detroit")
DUE = datetime(2026, 4, 10, 23, 59, tzinfo=DETROIT)        # 2026-04-11 03:59 UTC (EDT, UTC-4)
POLICY_TOML = """
[deadline]
due = 2026-04-10T23:59:00
timezone = "America/Detroit"
grace_minutes = 15
percent_per_day = 10
max_percent = 50
overrides = "times.toml"
[deadline.extensions]
ext_days_1 = 2
ext_date_2 = 2026-04-14T12:00:00
"""


@pytest.fixture
def policy(tmp_path) -> Policy:
    (tmp_path / "deadline.toml").write_text(POLICY_TOML)
    return load_policy(tmp_path / "deadline.toml")


def _at(**delta) -> dict:
    """What intake records for a submission handed in at DUE + delta."""
    return {"submitted_at": (DUE + timedelta(**delta)).astimezone(UTC).isoformat(),
            "time_source": "zip entry times"}


# --- the policy ---------------------------------------------------------------------------------

def test_policy_reads_the_course_description(policy):
    assert policy.due == DUE and policy.due.utcoffset() == timedelta(hours=-4)
    assert policy.grace == timedelta(minutes=15) and policy.percent_per_day == 10 and policy.max_percent == 50
    assert policy.extensions == {"ext_days_1": DUE + timedelta(days=2),
                                 "ext_date_2": datetime(2026, 4, 14, 12, 0, tzinfo=DETROIT)}


def test_the_kits_course_toml_has_a_valid_policy():
    policy = load_policy()
    assert policy.due is not None and policy.due.tzinfo is not None and policy.max_percent <= 100


def test_the_policy_file_can_be_swapped_by_environment(tmp_path, monkeypatch):
    (tmp_path / "other.toml").write_text("[deadline]\ndue = 2026-01-02T03:04:05Z\npercent_per_day = 5\n")
    monkeypatch.setenv(deadlines.POLICY_ENV, str(tmp_path / "other.toml"))
    policy = load_policy()
    assert policy.due == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and policy.percent_per_day == 5
    (tmp_path / "none.toml").write_text("title = 'no deadline'\n")
    monkeypatch.setenv(deadlines.POLICY_ENV, str(tmp_path / "none.toml"))
    assert load_policy().due is None


@pytest.mark.parametrize("line, message", [
    ("max_percnt = 50", r"unknown key\(s\) \['max_percnt'\]"),
    ("timezone = 'Mars/Olympus'", "unknown timezone 'Mars/Olympus'; use an IANA name"),
    ("percent_per_day = 150", "percent_per_day must be a number, 0 to 100; got 150"),
    ("grace_minutes = -5", "grace_minutes must be a number, 0 or more; got -5"),
])
def test_a_bad_policy_says_what_is_expected(tmp_path, line, message):
    (tmp_path / "d.toml").write_text(f"[deadline]\ndue = 2026-04-10T23:59:00\n{line}\n")
    with pytest.raises(ValueError, match=message):
        load_policy(tmp_path / "d.toml")


def test_a_due_date_needs_a_time(tmp_path):
    (tmp_path / "d.toml").write_text("[deadline]\ndue = 2026-04-10\n")
    with pytest.raises(ValueError, match=r"due: expected a date and time such as 2026-04-10T23:59:00"):
        load_policy(tmp_path / "d.toml")


def test_an_override_needs_a_time_and_a_reason(tmp_path, policy):
    (tmp_path / "times.toml").write_text("[doe_1]\nsubmitted = 2026-04-10T23:00:00\n")
    with pytest.raises(ValueError, match=r"\[doe_1\] needs `submitted = <date and time>` and `reason"):
        load_policy(tmp_path / "deadline.toml")


# --- lateness -----------------------------------------------------------------------------------

@pytest.mark.parametrize("delta, days, percent", [
    (dict(hours=-1), 0, 0),
    (dict(minutes=15), 0, 0),                           # the last minute of grace
    (dict(minutes=16), 1, 10),                          # a started day
    (dict(hours=24, minutes=15), 1, 10),                # exactly one day after due + grace
    (dict(hours=24, minutes=15, seconds=1), 2, 20),
    (dict(days=4, hours=20), 5, 50),                    # at the cap
    (dict(days=9), 9, 50),                              # past it: capped
])
def test_lateness_counts_started_days_after_grace(policy, delta, days, percent):
    late = assess(policy, "someone", _at(**delta))
    assert (late.days, late.percent) == (days, percent)
    assert late.capped == (days * 10 >= 50)


def test_times_compare_across_timezones(policy):
    # 03:58 UTC on the 11th is 23:58 in Detroit on the 10th: on time; 04:20 UTC is 00:20, past grace.
    assert assess(policy, "x", {"submitted_at": "2026-04-11T03:58:00+00:00"}).days == 0
    assert assess(policy, "x", {"submitted_at": "2026-04-11T04:20:00+00:00"}).days == 1


def test_the_penalty_is_a_percent_of_the_points_earned_and_lowers_the_total(policy):
    fields = late_fields(policy, "someone", _at(hours=20), earned=95.0)        # 1 day late
    assert fields["late_penalty"] == 9.5 and fields["total"] == 85.5 and fields["points_before_penalty"] == 95
    assert fields["submitted"] == "2026-04-11 19:59 EDT"
    assert "1 day(s) late, 10% of the 95 points earned: -9.5 points" in fields["late_summary"]
    capped = late_fields(policy, "someone", _at(days=12), earned=80.0)
    assert capped["late_penalty"] == 40 and capped["total"] == 40 and "12 day(s) late, 50% (the cap) of the 80 points earned: -40 points." in capped["late_summary"]
    assert late_fields(policy, "someone", _at(hours=-2), earned=80.0)["total"] == 80


def test_extensions_move_the_due_date(policy):
    assert assess(policy, "ext_days_1", _at(days=1, hours=23)).days == 0
    late = assess(policy, "ext_days_1", _at(days=2, hours=1))
    assert late.days == 1 and late.extension
    assert assess(policy, "ext_date_2", _at(days=3, hours=12)).days == 0          # 2026-04-14 11:59
    assert assess(policy, "ext_date_2", _at(days=3, hours=13)).days == 1
    assert "(your extension)" in late_fields(policy, "ext_days_1", _at(days=2, hours=1), 10)["late_summary"]


def test_the_overrides_file_settles_a_disputed_time(tmp_path):
    (tmp_path / "deadline.toml").write_text(POLICY_TOML)
    (tmp_path / "times.toml").write_text('[doe_1]\nsubmitted = 2026-04-10T23:30:00\nreason = "LMS outage"\n')
    policy = load_policy(tmp_path / "deadline.toml")
    late = assess(policy, "doe_1", {**_at(days=3), "lms_late": True})
    assert late.days == 0 and late.source == "overrides file: LMS outage" and not late.flags
    assert assess(policy, "roe_2", _at(days=3)).days == 3                         # others unaffected


def test_flags_for_a_missing_time_and_a_late_marker_the_time_contradicts(policy):
    assert assess(policy, "x", {}).flags == ("no submission time found: graded as on time",)
    flagged = assess(policy, "x", {**_at(hours=-1), "lms_late": True})
    assert flagged.days == 0 and "the LMS marks it late but its time says on time" in flagged.flags[0]
    assert assess(policy, "x", {**_at(hours=30), "lms_late": True}).flags == ()
    assert assess(Policy(), "x", {}).flags == ()                                   # no deadline, no flag


# --- submission times ---------------------------------------------------------------------------

def test_nbgrader_timestamp_as_its_exchange_writes_it(tmp_path):
    from dateutil.tz import gettz
    from nbgrader.exchange.abc.exchange import Exchange
    fmt = Exchange.timestamp_format.default_value                     # nbgrader's own default format
    when = datetime(2026, 4, 11, 1, 2, 3, 456789, tzinfo=gettz("UTC"))
    (tmp_path / "timestamp.txt").write_text(when.strftime(fmt))
    assert nbgrader_time(tmp_path) == when
    deadlines.write_timestamp(tmp_path, DUE)
    assert nbgrader_time(tmp_path) == DUE
    (tmp_path / "timestamp.txt").write_text("yesterday-ish")
    assert nbgrader_time(tmp_path) is None
    assert nbgrader_time(tmp_path / "absent") is None


def _zip(path: Path, entries: dict, when: tuple = (2026, 4, 11, 0, 30, 0)) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


def test_zip_local_times_are_read_in_the_course_timezone(tmp_path):
    _zip(tmp_path / "a.zip", {"hw4/x.py": b"1", "hw4/y.py": b"2"})
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zip_time(zf.infolist(), DETROIT) == datetime(2026, 4, 11, 4, 30, tzinfo=UTC)


def test_zip_extended_timestamps_are_utc(tmp_path):
    stamp = int(datetime(2026, 4, 11, 2, 0, tzinfo=UTC).timestamp())
    info = zipfile.ZipInfo("hw4/x.py", date_time=(1999, 1, 1, 0, 0, 0))   # a local time that must be ignored
    info.extra = struct.pack("<HHBI", 0x5455, 5, 1, stamp)               # Info-ZIP's "UT" field: flags, mtime
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr(info, b"1")
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        assert zip_time(zf.infolist(), DETROIT) == datetime(2026, 4, 11, 2, 0, tzinfo=UTC)


def test_zip_times_written_by_info_zip(tmp_path):
    """A zip made by Info-ZIP on a machine in another timezone: its "UT" field gives the true time."""
    if shutil.which("zip") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Info-ZIP's zip is missing (apt-get install zip)")
        pytest.skip("Info-ZIP's zip is not installed")
    (tmp_path / "hw4").mkdir()
    (tmp_path / "hw4" / "x.py").write_text("1")
    stamp = int(datetime(2026, 4, 11, 2, 0, tzinfo=UTC).timestamp())
    os.utime(tmp_path / "hw4" / "x.py", (stamp, stamp))
    subprocess.run(["zip", "-q", "-r", "c.zip", "hw4"], cwd=tmp_path, check=True, env={**os.environ, "TZ": "Asia/Tokyo"})
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        assert zip_time(zf.infolist(), DETROIT) == datetime(2026, 4, 11, 2, 0, tzinfo=UTC)


# --- intake: ids, duplicates, one student -------------------------------------------------------

@pytest.mark.parametrize("name, sid, late", [
    ("doejane_12345_67890_hw4_submission.zip", "doejane_12345", False),       # Canvas
    ("doejane_LATE_12345_67891_hw4_submission-1.zip", "doejane_12345", True),  # Canvas, late, resubmitted
    ("doejane_12345_hw4.zip", "doejane_12345", False),
    ("doejane_hw4.zip", "doejane", False),
    ("doe jane (x)_777_1_a.zip", "doe-jane-x-_777", False),
    ("doejane_12345", "doejane_12345", False),                                # a folder: as it is
    ("bug-fc-db", "bug-fc-db", False),
])
def test_student_ids_keep_the_lms_id(name, sid, late):
    assert student_id_of(name) == sid and lms_marks_late(name) == late


def _notebook() -> bytes:
    return nbformat.writes(nbformat.v4.new_notebook()).encode()


def _canvas_zip(folder: Path, name: str, marker: str, when: tuple) -> Path:
    return _zip(folder / name, {"hw4/01_layers.ipynb": _notebook(), "hw4/hwlib/layers.py": marker.encode(),
                                "hw4/timestamp.txt": b"2000-01-01 00:00:00.000000 UTC"}, when)


def test_duplicates_the_latest_wins_and_the_run_goes_on(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "submitted"
    src.mkdir()
    _canvas_zip(src, "doejane_12345_500_hw4.zip", "first", (2026, 4, 10, 20, 0, 0))
    _canvas_zip(src, "doejane_LATE_12345_501_hw4-1.zip", "second", (2026, 4, 11, 9, 0, 0))
    _canvas_zip(src, "roe_777_502_hw4.zip", "roe", (2026, 4, 10, 9, 0, 0))
    intakes = {i.student: i for i in collect(src, dest, "hw4", tz=DETROIT)}
    assert set(intakes) == {"doejane_12345", "roe_777"}
    doe = intakes["doejane_12345"]
    assert (dest / "doejane_12345" / "hw4" / "hwlib" / "layers.py").read_text() == "second"
    assert doe.left_out == ["doejane_12345_500_hw4.zip"] and doe.lms_late
    assert "2 submissions for doejane_12345: graded doejane_LATE_12345_501_hw4-1.zip" in doe.problems[0]
    assert "the latest wins" in doe.problems[0]
    # The time comes from the zip's entries (the student's own timestamp.txt is not trusted) and is
    # written as nbgrader's exchange writes it, so nbgrader records it too.
    assert doe.submitted_at == datetime(2026, 4, 11, 13, 0, tzinfo=UTC)
    assert nbgrader_time(dest / "doejane_12345" / "hw4") == doe.submitted_at
    assert doe.submission()["submitted_at"] == "2026-04-11T13:00:00+00:00"


def test_duplicates_with_equal_times_are_ordered_by_name(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _zip(src / "doe_1_9_hw4-2.zip", {"hw4/01_layers.ipynb": _notebook(), "hw4/a.txt": b"9"})
    _zip(src / "doe_1_10_hw4-10.zip", {"hw4/01_layers.ipynb": _notebook(), "hw4/a.txt": b"10"})
    intakes = collect(src, tmp_path / "submitted", "hw4", tz=DETROIT)
    assert [i.student for i in intakes] == ["doe_1"]
    assert (tmp_path / "submitted" / "doe_1" / "hw4" / "a.txt").read_text() == "10"   # 10 after 9 (not as text)


def test_one_student_is_collected_without_touching_the_others(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "submitted"
    (src / "alice" / "hw4").mkdir(parents=True)
    (src / "alice" / "hw4" / "01_layers.ipynb").write_bytes(_notebook())
    deadlines.write_timestamp(src / "alice" / "hw4", DUE - timedelta(hours=2))
    _canvas_zip(src, "bob_2_3_hw4.zip", "bob", (2026, 4, 10, 9, 0, 0))
    collect(src, dest, "hw4", tz=DETROIT)
    bob_before = (dest / "bob_2" / "hw4" / "hwlib" / "layers.py").stat().st_mtime_ns
    time.sleep(0.01)
    (only,) = collect(src, dest, "hw4", tz=DETROIT, students={"alice"})
    assert only.student == "alice" and only.submitted_at == DUE - timedelta(hours=2)
    assert only.time_source == "nbgrader timestamp.txt"
    assert (dest / "bob_2" / "hw4" / "hwlib" / "layers.py").stat().st_mtime_ns == bob_before
    with pytest.raises(ValueError, match=r"no submission for carol in .*\(student ids there: alice, bob_2\)"):
        collect(src, dest, "hw4", students={"carol"})


def test_zip_entries_without_type_bits_are_files_and_links_are_refused(tmp_path):
    """Python's ``writestr`` (what hwlib.submit uses for re-run notebooks) records no file type."""
    src = tmp_path / "src"
    src.mkdir()
    link = zipfile.ZipInfo("hw4/hwlib/solution.py")
    link.external_attr = 0o120777 << 16                                  # a symbolic link
    with zipfile.ZipFile(src / "doe_hw4.zip", "w") as zf:
        zf.writestr("hw4/01_layers.ipynb", _notebook())                  # external_attr 0o600 << 16
        zf.writestr(link, "/work/main/hwlib/layers.py")
    (intake,) = collect(src, tmp_path / "submitted", "hw4")
    assert (tmp_path / "submitted" / "doe" / "hw4" / "01_layers.ipynb").exists()
    assert not (tmp_path / "submitted" / "doe" / "hw4" / "hwlib" / "solution.py").exists()
    assert intake.problems == ["skipped a link or special file in the zip: hw4/hwlib/solution.py"]
