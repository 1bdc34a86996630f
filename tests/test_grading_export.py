"""The grade files (grading/autograde/export.py) and the summary's distributions (distribution.py).

Fast: the grade rows are made here (as feedback.scores makes them, the late policy's fields included),
so no grading runs; tests/test_grading_late_run.py writes the same files from a real run.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import datetime, timedelta, UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from course.paths import REPO
from course.registry import load as load_registry
from grading.autograde import distribution, export, feedback
from grading.autograde.deadlines import Policy, late_fields

POLICY = Policy(due=datetime(2026, 4, 10, 23, 59, tzinfo=ZoneInfo("America/Detroit")),
                tz=ZoneInfo("America/Detroit"), grace=timedelta(minutes=15), percent_per_day=10, max_percent=50)


def _row(student: str, per_question: dict, late_hours: float | None = None, flags=()) -> dict:
    points = load_registry()
    row = {"student": student, "cells": {}, "manual_pending": 0, "problems": [],
           **{q: float(per_question.get(q, 0)) for q in points.questions}}
    submission = {}
    if late_hours is not None:
        when = POLICY.due + timedelta(hours=late_hours)
        submission = {"submitted_at": when.astimezone(UTC).isoformat(), "time_source": "zip entry times"}
    row.update(late_fields(POLICY, student, submission, sum(row[q] for q in points.questions)))
    row["flags"] = row["late_flags"] + list(flags)
    return row


@pytest.fixture
def rows(monkeypatch):
    made = [_row("doejane_12345", {"Q1": 20, "Q2": 20, "Q3": 15, "Q4": 20, "Q5": 20}, late_hours=-1),   # 95, on time
            _row("roerichard_67890", {"Q1": 10, "Q2": 20, "Q3": 20, "Q4": 20, "Q5": 20, "Q6": 6}, late_hours=20),
            _row("smithz", {"Q1": 20, "Q2": 20}, late_hours=24 * 8, flags=("numpy-only: torch in conv_forward",))]
    monkeypatch.setattr(feedback, "scores", lambda course: made)
    return made


def _read(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def test_the_rows_apply_the_late_policy(rows):
    assert [(r["total"], r["late_days"], r["late_penalty"]) for r in rows] == [(95, 0, 0), (86.4, 1, 9.6), (20, 8, 20)]


def test_plain_keeps_the_full_lms_id_and_the_late_columns(tmp_path, rows):
    written = export.write(tmp_path, "plain", log=lambda *a: None)
    table = _read(written["plain"])
    assert table[0] == ["student", "Q1", "Q2", "Q3", "Q4", "Q5", "Q6", "total", "max", "manual_pending",
                        "before_late_penalty", "days_late", "late_penalty", "submitted", "time_source", "flags",
                        "problems"]
    assert table[2] == ["roerichard_67890", "10", "20", "20", "20", "20", "6", "86.4", "100", "0", "96", "1", "9.6",
                        "2026-04-11 19:59 EDT", "zip entry times", "", ""]
    assert table[3][-2] == "numpy-only: torch in conv_forward" and table[3][7] == "20"


def test_canvas_without_a_roster_uses_the_ids(tmp_path, rows):
    logged = []
    path = export.write(tmp_path, "canvas", canvas_assignment="123456", log=logged.append)["canvas"]
    assert _read(path) == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW4 (123456)"],
                           ["doejane", "12345", "", "", "", "95"],
                           ["roerichard", "67890", "", "", "", "86.4"],
                           ["smithz", "", "", "smithz", "", "20"]]        # no numeric id: the login
    assert not logged


def test_canvas_with_its_own_gradebook_export_as_the_roster(tmp_path, rows):
    roster = tmp_path / "canvas.csv"
    roster.write_text('Student,ID,SIS User ID,SIS Login ID,Section,HW3 (111),HW4 (123456)\n'
                      '    Points Possible,,,,,100,100\n'
                      '"Doe, Jane",12345,U001,doejane,EECS 545 001,90,\n'
                      '"Roe, Richard",67890,U002,roerich,EECS 545 002,80,\n')
    logged = []
    path = export.write(tmp_path, ["canvas"], roster=roster, log=logged.append)["canvas"]
    assert _read(path) == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW4 (123456)"],
                           ["Doe, Jane", "12345", "U001", "doejane", "EECS 545 001", "95"],
                           ["Roe, Richard", "67890", "U002", "roerich", "EECS 545 002", "86.4"],
                           ["smithz", "", "", "smithz", "", "20"]]
    assert logged == [f"not in the roster {roster} (1): smithz; written from their ids"]


def test_canvas_warns_when_the_column_has_no_assignment_id(tmp_path, rows):
    logged = []
    path = export.write(tmp_path, "canvas", log=logged.append)["canvas"]
    assert _read(path)[0][-1] == "HW4" and "Canvas would add a new assignment" in logged[0]


def test_gradescope(tmp_path, rows):
    roster = tmp_path / "people.csv"
    roster.write_text("First Name,Last Name,SID,Email\nZoe,Smith,smithz,zsmith@example.edu\n")
    path = export.write(tmp_path, "gradescope", roster=roster, log=lambda *a: None)["gradescope"]
    points = load_registry()
    questions = [f"{q}: {x.title} ({x.points:.1f} pts)" for q, x in points.questions.items()]
    assert _read(path) == [
        ["Name", "SID", "Email", "Total Score", "Max Points", "Late Penalty", *questions],
        ["doejane", "12345", "", "95", "100", "0", "20", "20", "15", "20", "20", "0"],
        ["roerichard", "67890", "", "86.4", "100", "9.6", "10", "20", "20", "20", "20", "6"],
        ["Zoe Smith", "smithz", "zsmith@example.edu", "20", "100", "20", "20", "20", "0", "0", "0", "0"]]


def test_all_formats_by_default(tmp_path, rows):
    written = export.write(tmp_path, log=lambda *a: None)
    assert {f: p.name for f, p in written.items()} == {"plain": "grades.csv", "canvas": "grades_canvas.csv",
                                                         "gradescope": "grades_gradescope.csv"}


def test_bad_formats_and_rosters_say_what_to_do(tmp_path):
    assert export.parse_formats("all") == export.FORMATS
    assert export.parse_formats("canvas, plain") == ("canvas", "plain")
    with pytest.raises(ValueError, match=r"unknown export format\(s\) \['blackboard'\]: choose from plain, canvas"):
        export.parse_formats("plain,blackboard")
    (tmp_path / "r.csv").write_text("Name,Score\nx,1\n")
    with pytest.raises(ValueError, match="has none of the columns ID, SID, SIS User ID, SIS Login ID, Email"):
        export.read_roster(tmp_path / "r.csv")


def test_cli_refuses_an_unknown_format():
    proc = subprocess.run([sys.executable, "-m", "grading", "export", "--format", "moodle"], cwd=REPO,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "unknown export format(s) ['moodle']" in proc.stderr


# --- summary.html's distributions ---------------------------------------------------------------

def test_histogram_is_a_png_counting_the_values():
    import matplotlib.image
    png = distribution.histogram_png([10, 10, 55, 100], 100, "total")
    image = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 100 and image.shape[1] > 200


def test_late_counts_and_flags(rows):
    counts = distribution.late_counts(rows)
    assert {k: v for k, v in counts.items() if k != "flags"} == {
        "submissions": 3, "on time": 1, "late": 2, "penalty at the cap": 1, "points deducted": 29.6,
        "extensions": 0, "times set by the overrides file": 0}
    assert dict(counts["flags"]) == {"numpy-only: torch in conv_forward": 1}
    html = distribution.section(rows)
    points = load_registry()
    assert html.count("<img alt=") == 1 + len(points.questions)
    assert "<td>1 day(s) late</td><td>1</td>" in html and "<td>8 day(s) late</td><td>1</td>" in html
    assert "<td>numpy-only: torch in conv_forward</td><td>1</td>" in html
