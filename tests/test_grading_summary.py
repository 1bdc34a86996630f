"""summary.html (grading/autograde/feedback.class_summary): failures counted in students, whole-number
histogram ticks (distribution.py), and everything intake did not grade listed by name.

Fast: saved results and grade rows are made here, no grading runs.
"""

from __future__ import annotations

import json
import re

from grading.autograde import distribution, feedback
from grading.autograde.intake import NOT_GRADED

from .test_grading_export import _row

NOT_DONE = "NotImplementedError: fc_forward is not implemented"


def _case(cid: str, passed: bool, message: str = "") -> dict:
    return {"id": cid, "passed": passed, "message": "" if passed else message, "points": float(passed),
            "max_points": 1.0, "describe": "x(2, 3)"}


def _result(student: str, cases: list[dict], submission: dict | None = None, status: str = "ok") -> dict:
    group = {"grade_id": "q1-fc-test", "status": status, "message": "", "cases": cases,
             "points": float(sum(c["passed"] for c in cases)), "max_points": float(len(cases))}
    return {"student": student, "groups": {"q1-fc-test": group}, "notebooks": [], "problems": [],
            "submission": submission or {}, "flags": []}


def _summary(tmp_path, monkeypatch, results: dict, not_graded: list | None = None) -> str:
    (tmp_path / "results").mkdir()
    for student, res in results.items():
        (tmp_path / "results" / f"{student}.json").write_text(json.dumps(res))
    if not_graded is not None:
        (tmp_path / NOT_GRADED).write_text(json.dumps(not_graded))
    rows = [_row(s, {"Q1": 5}) for s in results]
    monkeypatch.setattr(feedback, "scores", lambda course: rows)
    return feedback.class_summary(tmp_path).read_text(encoding="utf-8")


def _failures(html: str) -> list[tuple[str, str, int]]:
    table = html.split("<h2>Most common failures</h2>", 1)[1].split("</table>", 1)[0]
    return [(cell, msg, int(n)) for cell, msg, n in
            re.findall(r"<tr><td>([^<]*)</td><td><code>([^<]*)</code></td><td>(\d+)</td></tr>", table)]


def test_most_common_failures_count_students_not_cases(tmp_path, monkeypatch):
    four = [_case(f"c{k}", False, NOT_DONE) for k in range(4)]
    results = {"release": _result("release", four),                                    # untouched: 4 failed cases
               "halfway": _result("halfway", [_case("c0", False, NOT_DONE)] + [_case(f"c{k}", True) for k in (1, 2, 3)]),
               "perfect": _result("perfect", [_case(f"c{k}", True) for k in range(4)]),
               "other": _result("other", [_case("c0", False, "fc out: worst relative error 3.1e-2 at (0, 1)")]
                                + [_case(f"c{k}", True) for k in (1, 2, 3)])}
    html = _summary(tmp_path, monkeypatch, results)
    assert "<th>students</th></tr>" in html.split("<h2>Most common failures</h2>", 1)[1]
    failures = _failures(html)
    assert failures[0] == ("q1-fc-test", feedback._pattern(NOT_DONE), 2)   # release and halfway, not 4 + 1
    assert [n for _, _, n in failures] == [2, 1]


def test_the_summary_names_what_was_not_graded(tmp_path, monkeypatch):
    results = {"José": _result("José", [_case("c0", True)]),
               "big": _result("big", [_case("c0", False, "ModuleNotFoundError")],
                              {"source": "big_hw4.zip", "refused": "the submission holds 210.3 MiB, over the limit "
                               "of 200.0 MiB", "left_out": []}),
               "dup": _result("dup", [_case("c0", True)], {"source": "dup_hw4-1.zip", "refused": "",
                                                           "left_out": ["dup_hw4.zip"]})}
    html = _summary(tmp_path, monkeypatch, results,
                    not_graded=[{"entry": "notes.txt", "reason": "not a folder or a .zip file"},
                                {"entry": "a b'; <i>x.txt", "reason": "not a folder or a .zip file"}])
    section = html.split("<h2>Not graded</h2>", 1)[1].split("</table>", 1)[0]
    assert "<td>notes.txt</td><td>not a folder or a .zip file</td>" in section
    assert "<td>a b&#x27;; &lt;i&gt;x.txt</td>" in section and "<i>" not in section       # escaped
    assert "<td>big (big_hw4.zip)</td><td>refused: the submission holds 210.3 MiB, over the limit of 200.0 MiB" \
        in section
    assert "<td>dup_hw4.zip</td><td>an older submission of dup: the latest wins</td>" in section
    assert "José" not in section and "<p>3 submission(s).</p>" in html


def test_nothing_to_report_no_section(tmp_path, monkeypatch):
    html = _summary(tmp_path, monkeypatch, {"a": _result("a", [_case("c0", True)])})
    assert "<h2>Not graded</h2>" not in html


def test_histogram_counts_students_in_whole_numbers():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import MaxNLocator

    fig = distribution.histogram_figure([10, 20, 20], 100, "Q1")          # at most 2 students in a bar
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    assert isinstance(ax.yaxis.get_major_locator(), MaxNLocator)
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"\d+", lab.replace("\u2212", "-")) for lab in labels), labels
