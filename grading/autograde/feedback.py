"""Grades, feedback and the class summary, from the gradebook and the saved hidden-check results.

* :func:`generate`: nbgrader's feedback (the autograded notebooks as HTML, hidden tests cleared) plus
  ``grading_report.html`` per student: each autograded cell's points and, for every failed hidden
  case, what went wrong (the error your code raised, or which output differs, where, by how much:
  the worst relative error and the first bad index), with the case's dtype and shapes. Neither the
  hidden checks' source nor the reference code appears: only messages and numbers.
* :func:`export_csv`: ``grades.csv``, one row per student, points per question (derivations count
  once a TA has graded them; ``manual_pending`` says how many are still open).
* :func:`class_summary`: ``summary.html``: what was not graded (entries of the submissions folder that
  are no submission, refused submissions, older duplicates left out), pass rate of every hidden case,
  most common failures (counted in students), timeouts and crashes, mean points per question.
"""

from __future__ import annotations

import csv
import html
import re
from collections import Counter, defaultdict
from pathlib import Path

from course.registry import load as load_registry

from ..nbgrader.course_root import ASSIGNMENT, run_converter
from . import deadlines, distribution, rerun
from .gradebook import gradebook, load_results
from .intake import not_graded as intake_not_graded
from .metadata import is_restore_flag
from .policy import flags as policy_flags

__all__ = ["generate", "feedback_one", "student_report", "export_csv", "scores", "class_summary"]

CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
.ok{color:#176d2c}.fail{color:#a11}.muted{color:#666}code,pre{background:#f5f5f5;padding:.1rem .3rem;white-space:pre-wrap}"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")


def _e(text) -> str:
    return html.escape(str(text))


# --- scores from the gradebook -----------------------------------------------------------------

def scores(course: Path) -> list[dict]:
    """One dict per student: points per question and per cell, pending manual cells, problems, and the
    late policy's fields (``total`` is after the late penalty: grading/autograde/deadlines.py)."""
    from nbgrader.api import MissingEntry

    points = load_registry()
    policy = deadlines.load_policy()
    results = load_results(course)
    rows = []
    with gradebook(course) as gb:
        students = sorted(set(results) | {s.id for s in gb.students})
        for student in students:
            res = results.get(student, {})
            row = {"student": student, "cells": {}, "manual_pending": 0, "problems": list(res.get("problems", []))}
            for cell in points.cells.values():
                score, pending = 0.0, False
                try:
                    grade = gb.find_grade(cell.grade_id, cell.notebook, ASSIGNMENT, student)
                    value = grade.manual_score if grade.manual_score is not None else grade.auto_score
                    # An optional 0-point cell (the seed's Q1 convolution proof) waits for nobody.
                    pending = bool(grade.needs_manual_grade) and (cell.points > 0 or cell.extra_credit)
                    # Extra credit is entered in formgrader's "extra credit" box (the cell is worth 0
                    # points in nbgrader, so it stays out of the maximum); at most the cell's points.
                    extra = min(float(grade.extra_credit or 0.0), cell.points) if cell.extra_credit else float(grade.extra_credit or 0.0)
                    score = float(value or 0.0) + extra
                except MissingEntry:
                    if cell.graded == "auto" and cell.grade_id in res.get("groups", {}):
                        score = float(res["groups"][cell.grade_id]["points"])
                row["cells"][cell.grade_id] = score
                row["manual_pending"] += int(pending)
            for q in points.questions:
                row[q] = sum(row["cells"][c.grade_id] for c in points.cells_of(q))
            row["total"] = sum(row[q] for q in points.questions)
            row.update(deadlines.late_fields(policy, student, res.get("submission") or {}, row["total"]))
            row["flags"] = row["late_flags"] + list(res.get("flags", [])) + policy_flags(res)
            rows.append(row)
    return rows


def export_csv(course: Path, path: Path | None = None, rows: list[dict] | None = None) -> Path:
    """Write ``grades.csv`` (per-question points, total after the late penalty, pending manual cells, the
    late policy's columns, flags, problems); the other LMS formats are in grading/autograde/export.py."""
    points = load_registry()
    path = Path(path or Path(course) / "grades.csv")
    questions = list(points.questions)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", *questions, "total", "max", "manual_pending", "before_late_penalty",
                         "days_late", "late_penalty", "submitted", "time_source", "flags", "problems"])
        for row in rows if rows is not None else scores(course):
            writer.writerow([row["student"], *(f"{row[q]:g}" for q in questions), f"{row['total']:g}",
                             f"{points.max_total:g}", row["manual_pending"], f"{row['points_before_penalty']:g}",
                             row["late_days"], f"{row['late_penalty']:g}", row["submitted"], row["time_source"],
                             " | ".join(row["flags"]), " | ".join(row["problems"])])
    return path


# --- per-student report ------------------------------------------------------------------------

def student_report(course: Path, student: str, row: dict | None = None, res: dict | None = None) -> str:
    """The HTML report of one student (``row``: their :func:`scores` row; ``res``: their saved results)."""
    points = load_registry()
    res = res if res is not None else load_results(course).get(student, {})
    row = row if row is not None else next((r for r in scores(course) if r["student"] == student), None)
    parts = []
    if row is not None:
        pending = f" ({row['manual_pending']} derivation(s) still to be graded by hand)" if row["manual_pending"] else ""
        parts.append(f"<p>Points so far: <b>{row['total']:g}</b> of {points.max_total:g}"
                     f" (+{sum(q.points for q in points.questions.values() if q.extra_credit):g} extra credit){_e(pending)}.</p>")
        if row.get("late_summary"):   # the late policy (grading/autograde/deadlines.py): when, due, penalty
            cls = "fail" if row["late_penalty"] else "muted"
            parts.append(f"<p class='{cls}'>Late policy: {_e(row['late_summary'])}</p>")
    breaches = [entry for g in res.get("groups", {}).values() for entry in g.get("policy", [])]
    if breaches:   # the tasks' code policy (grading/autograde/policy.py)
        parts.append("<h2>Code policy</h2><ul>" + "".join(f"<li class='fail'>{_e(b['message'])}</li>" for b in breaches)
                     + "</ul>")
    restored = [f for f in res.get("flags", []) if is_restore_flag(f)]
    if restored:   # edits of locked cells and of nbgrader's cell metadata, undone (grading/autograde/metadata.py)
        parts.append("<h2>Cells restored before grading</h2><p>Cells of the notebooks were changed where the "
                     "assignment does not allow it: locked cells, or the grading metadata of cells. They were put "
                     "back as released before grading (the change earns no points and costs none), and the change "
                     "is on record for the instructor. What the metadata said, if anything, is under the problems "
                     "below.</p><ul>" + "".join(f"<li class='fail'>{_e(f)}</li>" for f in restored) + "</ul>")
    if res.get("problems"):
        parts.append("<h2>Problems with the submission</h2><ul>"
                     + "".join(f"<li>{_e(p)}</li>" for p in res["problems"]) + "</ul>")
    parts.append("<h2>Points per question</h2><table><tr><th>question</th><th>cell</th><th>graded</th>"
                 "<th>points</th></tr>")
    for qname, q in points.questions.items():
        for cell in points.cells_of(qname):
            score = row["cells"].get(cell.grade_id, 0.0) if row else 0.0
            kind = "hidden checks" if cell.graded == "auto" else "by hand"
            parts.append(f"<tr><td>{_e(qname)} {_e(q.title)}</td><td>{_e(cell.grade_id)}</td><td>{kind}</td>"
                         f"<td>{score:g} / {cell.points:g}</td></tr>")
    parts.append("</table>")
    groups = res.get("groups", {})
    failed = [(gid, g) for gid, g in groups.items() if g["points"] < g["max_points"]]
    parts.append("<h2>Hidden checks</h2>")
    if not groups:
        parts.append("<p class='muted'>No hidden checks ran.</p>")
    elif not failed:
        parts.append("<p class='ok'>Every hidden check passed.</p>")
    for gid, g in failed:
        parts.append(f"<h3>{_e(gid)}: {g['points']:g} / {g['max_points']:g}</h3>")
        if g["status"] != "ok":
            parts.append(f"<p class='fail'>{_e(g['message'])}</p>")
        parts.append("<table><tr><th>case</th><th>inputs</th><th>result</th></tr>")
        for c in g["cases"]:
            verdict = (f"<span class='ok'>passed</span> ({c['points']:g} pt)" if c["passed"] else
                       f"<span class='fail'>failed</span> (0 / {c['max_points']:g} pt): <code>{_e(c['message'] or 'failed')}</code>")
            parts.append(f"<tr><td>{_e(c['id'])}</td><td><code>{_e(c['describe'])}</code></td><td>{verdict}</td></tr>")
        parts.append("</table>")
    runs = res.get("notebooks", [])
    if runs:
        parts.append("<h2>Notebook runs</h2><table><tr><th>notebook</th><th>status</th><th>seconds</th></tr>")
        for r in runs:
            cls = "ok" if r["status"] == "ok" else "fail"
            parts.append(f"<tr><td>{_e(r['name'])}</td><td class='{cls}'>{_e(r['status'])} {_e(r['message'])}</td>"
                         f"<td>{r['wall_s']:.0f}</td></tr>")
        parts.append("</table>")
        parts.append(rerun.report_section(runs))
    notes = sorted({c["note"] for g in res.get("groups", {}).values() for c in g.get("cases", []) if c.get("note")})
    if notes:   # what passed cases should still tell the student (a dtype change where it is not deducted)
        parts.append("<h2>Notes from the hidden checks</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in notes)
                     + "</ul>")
    parts.append("<p class='muted'>Hidden checks use other shapes, seeds, dtypes and memory layouts (transposed "
                 "and strided views) than the public checks, and require that your functions leave their inputs "
                 "unchanged (and, where the course says so, keep the inputs' dtype). A failed case names the output that differs, the worst "
                 "relative error against the threshold and the first index over it, or the input changed in place "
                 "and where. The other files of this folder are the notebooks with the outputs saved with the "
                 "submission.</p>")
    return _page(f"HW4 grading report: {student}", "\n".join(parts))


def feedback_one(course: Path, student: str, row: dict | None = None, res: dict | None = None,
                 nbgrader: bool = True) -> bool:
    """nbgrader's feedback for one student (unless ``nbgrader`` is false), then ``grading_report.html``."""
    ok = run_converter("generate_feedback", course, student=student)["success"] if nbgrader else True
    folder = Path(course) / "feedback" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grading_report.html").write_text(student_report(course, student, row, res))
    return ok


def generate(course: Path, students: list[str], pool=None, nbgrader: bool = True) -> None:
    """Feedback for each student (in ``pool``, a process pool, when given)."""
    rows = {r["student"]: r for r in scores(course)}
    results = load_results(course)
    if pool is None:
        for student in students:
            feedback_one(course, student, rows.get(student), results.get(student, {}), nbgrader)
        return
    futures = [pool.submit(feedback_one, course, s, rows.get(s), results.get(s, {}), nbgrader) for s in students]
    for fut in futures:
        fut.result()


# --- class summary -----------------------------------------------------------------------------

def _pattern(message: str) -> str:
    """A failure message with its numbers and indices blanked, so equal mistakes count together."""
    text = re.sub(r"\(\d+(, \d+)*,?\)", "(…)", message)
    text = re.sub(r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
    return text[:160]


def _not_graded(course: Path, results: dict) -> list[tuple[str, str]]:
    """``(entry or student, why)`` for everything of the last intake that was not graded: entries that
    are no submission (intake.py's ``not_graded.json``), refused submissions, duplicates left out."""
    out = [(e.get("entry", "?"), e.get("reason", "")) for e in intake_not_graded(course)]
    for student, res in sorted(results.items()):
        submission = res.get("submission") or {}
        if submission.get("refused"):
            out.append((f"{student} ({submission.get('source', '')})", f"refused: {submission['refused']}"))
        out.extend((name, f"an older submission of {student}: the latest wins")
                   for name in submission.get("left_out", []))
    return out


def class_summary(course: Path) -> Path:
    points = load_registry()
    results = load_results(course)
    rows = scores(course)
    n = len(results)
    passes, totals, statuses = defaultdict(int), defaultdict(int), Counter()
    failing = defaultdict(set)    # (cell, message pattern) -> the students with such a failure (not cases)
    for student, res in results.items():
        for gid, g in res["groups"].items():
            if g["status"] != "ok":
                statuses[(gid, g["status"])] += 1
            for c in g["cases"]:
                totals[(gid, c["id"])] += 1
                passes[(gid, c["id"])] += int(c["passed"])
                if not c["passed"]:
                    failing[(gid, _pattern(c["message"]))].add(student)
    parts = [f"<p>{n} submission(s).</p>"]
    skipped = _not_graded(course, results)
    if skipped:
        parts.append("<h2>Not graded</h2><table><tr><th>entry</th><th>why</th></tr>" + "".join(
            f"<tr><td>{_e(entry)}</td><td>{_e(why)}</td></tr>" for entry, why in skipped) + "</table>")
    parts.append("<h2>Mean points per question</h2><table><tr><th>question</th><th>mean</th><th>max</th></tr>")
    for q, question in points.questions.items():
        mean = sum(r[q] for r in rows) / len(rows) if rows else 0.0
        parts.append(f"<tr><td>{_e(q)} {_e(question.title)}</td><td>{mean:.1f}</td><td>{question.points:g}</td></tr>")
    parts.append("</table><p class='muted'>Derivations count once graded by hand.</p>")
    parts.append(distribution.section(rows))   # histograms, late policy and flags (distribution.py)
    parts.append("<h2>Pass rate per hidden case</h2><table><tr><th>cell</th><th>case</th><th>passed</th></tr>")
    for (gid, cid), total in sorted(totals.items()):
        parts.append(f"<tr><td>{_e(gid)}</td><td>{_e(cid)}</td><td>{passes[(gid, cid)]}/{total}"
                     f" ({100 * passes[(gid, cid)] / total:.0f}%)</td></tr>")
    parts.append("</table><h2>Most common failures</h2><table><tr><th>cell</th><th>message</th><th>students</th></tr>")
    for (gid, msg), who in sorted(failing.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:15]:
        parts.append(f"<tr><td>{_e(gid)}</td><td><code>{_e(msg)}</code></td><td>{len(who)}</td></tr>")
    parts.append("</table>")
    if statuses:
        parts.append("<h2>Timeouts and crashes</h2><table><tr><th>cell</th><th>status</th><th>students</th></tr>")
        for (gid, status), count in sorted(statuses.items()):
            parts.append(f"<tr><td>{_e(gid)}</td><td>{_e(status)}</td><td>{count}</td></tr>")
        parts.append("</table>")
    path = Path(course) / "summary.html"
    path.write_text(_page("HW4 class summary", "\n".join(parts)), encoding="utf-8")
    return path
