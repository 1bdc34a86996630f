"""Grade files for the LMS: ``python -m grading export --format plain,canvas,gradescope``.

All three come from the same grade rows (:func:`grading.autograde.feedback.scores`: per-question points
and the total after the late penalty, see deadlines.py) and are written to the course folder:

* ``plain`` -> ``grades.csv``: one row per student, the id exactly as intake made it (``doejane_12345``:
  Canvas's numeric user id kept), points per question, total, the late policy's columns, problems;
* ``canvas`` -> ``grades_canvas.csv``: Canvas's gradebook import (``Student, ID, SIS User ID, SIS Login
  ID, Section``, then the assignment's column, e.g. ``HW4 (123456)``). Canvas matches a row by ``ID``
  (the numeric part of the student id), ``SIS User ID`` or ``SIS Login ID``: pass the roster (Canvas:
  Grades -> Export) so every column is Canvas's own;
* ``gradescope`` -> ``grades_gradescope.csv``: ``Name, SID, Email, Total Score, Max Points, Late Penalty``
  then one column per question (``Q1: <title> (20.0 pts)``), as Gradescope lays out its grade files.

A **roster** is any CSV with a header naming some of ``Student``/``Name``, ``First Name``/``Last Name``,
``ID``, ``SID``, ``SIS User ID``, ``SIS Login ID``, ``Email``, ``Section`` (Canvas's gradebook export
qualifies); a row belongs to a student when one of its id columns equals the student id or its numeric
part. Students not in the roster are still written, from their id alone, and listed in the log.
Both sides are compared in Unicode normal form NFC (intake's ids are NFC; a roster saved on a Mac may
spell ``José`` decomposed), and a roster value also matches as the id intake makes of it (a login
``a b`` matches the id ``a-b~<hash>``: grading/autograde/intake.py). The files are written in UTF-8.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from functools import cache
from pathlib import Path

from course.registry import load as load_registry

from .intake import student_id_of

__all__ = ["FORMATS", "FILES", "parse_formats", "lms_user_id", "read_roster", "write"]

FORMATS = ("plain", "canvas", "gradescope")
FILES = {"plain": "grades.csv", "canvas": "grades_canvas.csv", "gradescope": "grades_gradescope.csv"}
_ID_COLUMNS = ("ID", "SID", "SIS User ID", "SIS Login ID", "Email")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"plain,canvas"`` or ``"all"`` -> the formats, checked."""
    names = FORMATS if text.strip() == "all" else tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown export format(s) {unknown or [text]}: choose from {', '.join(FORMATS)} "
                         "(comma-separated) or all")
    return names


def lms_user_id(student: str) -> str:
    """The LMS's numeric user id within a student id (``doejane_12345`` -> ``12345``; none: ``""``)."""
    match = re.search(r"_(\d+)$", student)
    return match.group(1) if match else ""


def read_roster(path: Path) -> list[dict]:
    """The roster's rows (Canvas's ``Points Possible`` row left out); a clear error if it is none."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise ValueError(f"cannot read the roster {path}: {exc}") from None
    header = set(rows[0]) if rows else set()
    if not header & set(_ID_COLUMNS):
        raise ValueError(f"the roster {path} has none of the columns {', '.join(_ID_COLUMNS)}: export it "
                         "from the LMS (Canvas: Grades -> Export) or add one")
    return [r for r in rows if not (r.get("Student") or "").strip().startswith("Points Possible")]


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text.strip())


@cache
def _forms(value: str) -> frozenset:
    """What a roster value matches: itself (NFC), an email's local part, and the id intake makes of it."""
    value = _nfc(value)
    forms = {value} | ({value.split("@")[0]} if "@" in value else set())
    return frozenset(forms | {student_id_of(v) for v in forms if v}) - {""}


def _entry(roster: list[dict], student: str) -> dict | None:
    keys = {_nfc(student), lms_user_id(student)} - {""}
    for row in roster:
        if any(keys & _forms(row.get(c) or "") for c in _ID_COLUMNS):
            return row
    return None


def _name(entry: dict | None, student: str) -> str:
    if entry:
        if entry.get("Student") or entry.get("Name"):
            return (entry.get("Student") or entry.get("Name")).strip()
        if entry.get("First Name") or entry.get("Last Name"):
            return f"{entry.get('First Name', '')} {entry.get('Last Name', '')}".strip()
    return student.rsplit("_", 1)[0] if lms_user_id(student) else student


def _canvas_column(roster: list[dict] | None, canvas_assignment: str | None, assignment: str) -> str:
    if canvas_assignment:
        return f"{assignment.upper()} ({canvas_assignment})" if canvas_assignment.isdigit() else canvas_assignment
    for column in (roster[0] if roster else {}):
        if re.fullmatch(rf"{re.escape(assignment)}\b.*\(\d+\)", column.strip(), re.IGNORECASE):
            return column
    return assignment.upper()


def _canvas(rows: list[dict], path: Path, roster, column: str) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        for row in rows:
            student, entry = row["student"], _entry(roster or [], row["student"])
            e = entry or {}
            login = e.get("SIS Login ID", "") if entry else ("" if lms_user_id(student) else student)
            writer.writerow([_name(entry, student), e.get("ID") or lms_user_id(student), e.get("SIS User ID", ""),
                             login, e.get("Section", ""), f"{row['total']:g}"])


def _gradescope(rows: list[dict], path: Path, roster) -> None:
    points = load_registry()
    questions = [(q, f"{q}: {question.title} ({question.points:.1f} pts)") for q, question in points.questions.items()]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Name", "SID", "Email", "Total Score", "Max Points", "Late Penalty", *(h for _, h in questions)])
        for row in rows:
            student, entry = row["student"], _entry(roster or [], row["student"])
            e = entry or {}
            sid = e.get("SID") or e.get("SIS User ID") or lms_user_id(student) or student
            writer.writerow([_name(entry, student), sid, e.get("Email", ""), f"{row['total']:g}",
                             f"{points.max_total:g}", f"{row.get('late_penalty', 0):g}",
                             *(f"{row[q]:g}" for q, _ in questions)])


def write(course: Path, formats=FORMATS, *, roster: Path | None = None, canvas_assignment: str | None = None,
          log=print) -> dict[str, Path]:
    """Write the grade files of ``formats``; return ``{format: path}``."""
    from .feedback import export_csv, scores
    course = Path(course)
    formats = parse_formats(formats) if isinstance(formats, str) else tuple(formats)
    rows = scores(course)
    people = read_roster(roster) if roster else None
    if people is not None:
        absent = [r["student"] for r in rows if _entry(people, r["student"]) is None]
        if absent:
            log(f"not in the roster {roster} ({len(absent)}): {', '.join(absent[:20])}"
                + (" ..." if len(absent) > 20 else "") + "; written from their ids")
    written = {}
    for fmt in formats:
        path = course / FILES[fmt]
        if fmt == "plain":
            export_csv(course, path, rows=rows)
        elif fmt == "canvas":
            column = _canvas_column(people, canvas_assignment, load_registry().assignment)
            if not re.search(r"\(\d+\)$", column):
                log(f"Canvas column {column!r} has no assignment id: Canvas would add a new assignment; pass "
                    "--canvas-assignment 'HW4 (<id>)' (or a roster exported from Canvas) to fill the existing one")
            _canvas(rows, path, people, column)
        else:
            _gradescope(rows, path, people)
        written[fmt] = path
    return written
