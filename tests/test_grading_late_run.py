"""The late policy, duplicates, one-student regrades, exports and temp-folder cleanup in real runs.

One autograde run (hidden checks only) grades the perfect sample handed in three times under this
file's policy (due 2026-04-10 23:59 Detroit, 15 minutes' grace, 10% per started day, at most 50%):

* ``ontime``: nbgrader's layout, its exchange's ``timestamp.txt`` an hour before the due date;
* ``late_1001``: a Canvas zip marked ``LATE``, its entries 20 hours after the due date: 1 day, -10%;
* ``capped_2002``: two Canvas zips, an on-time one holding the untouched release and a resubmission
  8 days late: the latest wins, and 8 days is past the cap: -50%.

The perfect sample earns every autograded point (its derivations wait for a TA), ``P`` below: the
stated totals are ``P``, ``P - 0.1 P`` and ``P - 0.5 P``. A second run regrades ``ontime`` alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from course.paths import REPO
from course.registry import load as load_registry
from grading.autograde import deadlines, export, hidden
from grading.autograde.feedback import scores
from grading.autograde.gradebook import gradebook
from grading.autograde.job import Settings, autograde
from grading.nbgrader.course_root import ASSIGNMENT, clone, load_config
from grading.samples import expected_points, samples

from .test_grading_release import shared_release

pytestmark = pytest.mark.slow
DETROIT = ZoneInfo("America/Detroit")
DUE = datetime(2026, 4, 10, 23, 59, tzinfo=DETROIT)
POLICY = """[deadline]
due = 2026-04-10T23:59:00
timezone = "America/Detroit"
grace_minutes = 15
percent_per_day = 10
max_percent = 50
overrides = "times.toml"
"""


def _zip(path: Path, files: dict, when: datetime) -> None:
    """A zip as a student's machine in Detroit writes it: entries stamped with local time."""
    stamp = when.astimezone(DETROIT).timetuple()[:6]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(f"{ASSIGNMENT}/{rel}", date_time=stamp), data)


def _private_tmp() -> Path:
    """A temp folder of our own (other tests share /tmp), traversable like /tmp for the sandboxes."""
    tmp = Path(tempfile.mkdtemp(prefix="late-run-tmp-"))
    os.chmod(tmp, 0o711)
    return tmp


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    shared = shared_release(tmp_path_factory)
    base = tmp_path_factory.mktemp("late")
    course = clone(shared["course"], base / "course")
    made = {s.student: s for s in samples(shared["folder"])}
    subs = base / "submissions"
    folder = subs / "ontime" / ASSIGNMENT
    for rel, data in made["perfect"].files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    deadlines.write_timestamp(folder, DUE - timedelta(hours=1))
    _zip(subs / "late_LATE_1001_5001_hw4_submission.zip", made["perfect"].files, DUE + timedelta(hours=20))
    _zip(subs / "capped_2002_6001_hw4_submission.zip", made["release"].files, DUE - timedelta(days=2))
    _zip(subs / "capped_2002_6002_hw4_submission-1.zip", made["perfect"].files, DUE + timedelta(days=8))
    (base / "deadline.toml").write_text(POLICY)
    tmp = _private_tmp()
    patch = pytest.MonkeyPatch()
    patch.setenv(deadlines.POLICY_ENV, str(base / "deadline.toml"))
    patch.setenv("TMPDIR", str(tmp))                 # the spawned workers' temp folder
    patch.setattr(tempfile, "tempdir", str(tmp))     # this process's
    logged = []
    settings = Settings(course=course, workers=2, execute=False, nbgrader_feedback=False, budget_scale=0.3)
    results = autograde(subs, settings, log=logged.append)
    earned = sum(expected_points(made["perfect"], hidden.load()).values())
    yield {"course": course, "subs": subs, "base": base, "tmp": tmp, "logged": logged, "made": made,
           "results": {r.student: r for r in results}, "P": earned}
    patch.undo()
    for path in sorted(tmp.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    tmp.rmdir()


def _rows(course: Path) -> dict:
    return {r["student"]: r for r in scores(course)}


def test_the_late_policy_gives_the_stated_scores(run):
    p = run["P"]
    assert p > 0
    rows = _rows(run["course"])
    got = {s: (rows[s]["points_before_penalty"], rows[s]["late_days"], rows[s]["late_penalty"], rows[s]["total"])
           for s in ("ontime", "late_1001", "capped_2002")}
    assert got == {"ontime": (p, 0, 0, p),
                   "late_1001": (p, 1, round(0.1 * p, 2), round(0.9 * p, 2)),
                   "capped_2002": (p, 8, round(0.5 * p, 2), round(0.5 * p, 2))}
    assert rows["capped_2002"]["late_capped"] and not rows["late_1001"]["late_capped"]
    assert rows["ontime"]["time_source"] == "nbgrader timestamp.txt"
    assert rows["late_1001"]["submitted"] == "2026-04-11 19:59 EDT"


def test_duplicates_are_reported_and_the_latest_is_graded(run):
    problems = " ".join(run["results"]["capped_2002"].problems)
    assert ("2 submissions for capped_2002: graded capped_2002_6002_hw4_submission-1.zip (2026-04-18T23:59-04:00), "
            "left out capped_2002_6001_hw4_submission.zip (2026-04-08T23:59-04:00): the latest wins") in problems
    assert any("left out capped_2002_6001_hw4_submission.zip" in line for line in run["logged"])


def test_the_penalty_shows_in_grades_feedback_and_summary(run):
    course, p = run["course"], run["P"]
    plain = (course / "grades.csv").read_text().splitlines()
    late = next(line for line in plain if line.startswith("late_1001,")).split(",")
    assert late[7] == f"{round(0.9 * p, 2):g}" and late[10:13] == [f"{p:g}", "1", f"{round(0.1 * p, 2):g}"]
    report = (course / "feedback" / "late_1001" / ASSIGNMENT / "grading_report.html").read_text()
    assert (f"Late policy: Submitted 2026-04-11 19:59 EDT (zip entry times); due 2026-04-10 23:59 EDT with 15 "
            f"minutes&#x27; grace: 1 day(s) late, 10% of the {p:g} points earned: -{round(0.1 * p, 2):g} points.") in report
    assert "on time." in (course / "feedback" / "ontime" / ASSIGNMENT / "grading_report.html").read_text()
    summary = (course / "summary.html").read_text()
    assert summary.count("src='data:image/png;base64,") == 1 + len(load_registry().questions)   # totals, each question
    for what, count in (("on time", 1), ("late", 2), ("penalty at the cap", 1), ("1 day(s) late", 1),
                        ("8 day(s) late", 1), ("points deducted", f"{round(0.6 * p, 2):g}")):
        assert f"<tr><td>{what}</td><td>{count}</td></tr>" in summary, what


def test_the_lms_files_keep_the_lms_ids(run):
    course, p = run["course"], run["P"]
    canvas = (course / "grades_canvas.csv").read_text().splitlines()
    assert f"late,1001,,,,{round(0.9 * p, 2):g}" in canvas and f"capped,2002,,,,{round(0.5 * p, 2):g}" in canvas
    gradescope = (course / "grades_gradescope.csv").read_text().splitlines()
    assert gradescope[0].startswith("Name,SID,Email,Total Score,Max Points,Late Penalty,Q1: ")
    assert any(line.startswith(f"late,1001,,{round(0.9 * p, 2):g},100,{round(0.1 * p, 2):g},") for line in gradescope)


def test_nbgrader_records_the_time_and_applies_no_penalty_of_its_own(run):
    from nbgrader.plugins import LateSubmissionPlugin
    assert LateSubmissionPlugin(config=load_config(run["course"])).penalty_method == "none"
    with gradebook(run["course"]) as gb:
        sub = gb.find_submission(ASSIGNMENT, "late_1001")
        assert sub.timestamp == datetime(2026, 4, 11, 23, 59)           # UTC, from intake's timestamp.txt
        assert all(not nb.late_submission_penalty for nb in sub.notebooks)


def test_an_override_changes_the_grade_without_a_regrade(run):
    times = run["base"] / "times.toml"
    times.write_text('[late_1001]\nsubmitted = 2026-04-10T23:50:00\nreason = "LMS outage, confirmed"\n')
    try:
        export.write(run["course"], "plain", log=lambda *a: None)
        row = _rows(run["course"])["late_1001"]
        assert (row["total"], row["late_days"]) == (run["P"], 0)
        assert row["time_source"] == "overrides file: LMS outage, confirmed"
        # No late flag left (a machine without bubblewrap adds its isolation flag to every row).
        assert not [f for f in row["flags"] if not f.startswith("isolation:")], row["flags"]
    finally:
        times.unlink()


def test_the_run_leaves_no_temporary_folder(run):
    assert sorted(p.name for p in run["tmp"].iterdir()) == []


def test_the_isolation_probe_leaves_no_temporary_folder():
    """``python -m grading isolation`` probes in a fresh process (nothing cached) with its own TMPDIR."""
    tmp = _private_tmp()
    try:
        proc = subprocess.run([sys.executable, "-m", "grading", "isolation"], cwd=REPO, capture_output=True,
                              text=True, env={**os.environ, "TMPDIR": str(tmp)}, timeout=300, check=False)
        assert proc.returncode == 0 and "level:" in proc.stdout, proc.stderr[-2000:]
        assert sorted(p.name for p in tmp.iterdir()) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- one student regraded -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def regraded(run):
    course = run["course"]
    results = course / "results"
    before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    reports = {s: (course / "feedback" / s / ASSIGNMENT / "grading_report.html").stat().st_mtime_ns
               for s in ("late_1001", "capped_2002")}
    # ontime hands in the untouched release's layers.py instead: every Q1 point goes
    stub = run["made"]["release"].files["hwlib/layers.py"]
    (run["subs"] / "ontime" / ASSIGNMENT / "hwlib" / "layers.py").write_bytes(stub)
    settings = Settings(course=course, workers=2, execute=False, nbgrader_feedback=False, budget_scale=0.3,
                        students=("ontime",))
    autograde(run["subs"], settings, log=lambda *a: None)
    return {**run, "before": before, "reports": reports}


def test_regrading_one_student_leaves_the_others_alone(regraded):
    course = regraded["course"]
    after = {p.name: p.read_bytes() for p in (course / "results").glob("*.json")}
    assert set(after) == set(regraded["before"])
    for name in ("late_1001.json", "capped_2002.json"):
        assert after[name] == regraded["before"][name], name
    for student, mtime in regraded["reports"].items():
        assert (course / "feedback" / student / ASSIGNMENT / "grading_report.html").stat().st_mtime_ns == mtime
    rows = _rows(course)
    assert set(rows) == {"ontime", "late_1001", "capped_2002"}
    assert rows["ontime"]["Q1"] == 0 < rows["late_1001"]["Q1"] and rows["ontime"]["Q5"] == rows["late_1001"]["Q5"]
    saved = json.loads(after["ontime.json"])
    assert saved["submission"]["time_source"] == "nbgrader timestamp.txt"
    assert [line.split(",")[0] for line in (course / "grades.csv").read_text().splitlines()[1:]] == \
        ["capped_2002", "late_1001", "ontime"]


def test_regrading_an_unknown_student_stops_with_the_ids_there(run):
    settings = Settings(course=run["course"], workers=1, execute=False, students=("nobody",))
    with pytest.raises(SystemExit, match=r"no submission for nobody in .*capped_2002, late_1001, ontime"):
        autograde(run["subs"], settings, log=lambda *a: None)
