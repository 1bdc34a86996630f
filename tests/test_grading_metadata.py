"""grading/autograde/metadata.py: a submission's nbgrader cell metadata and locked cells put back as released.

Hand-made notebooks (fast): every edit that made nbgrader's autograde fail, or went unnoticed, is undone
and recorded; what nbgrader then reads is metadata it accepts (one cell per grade id, each the release's).
"""

from __future__ import annotations

import copy
import hashlib

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from nbgrader.nbgraderformat import MetadataValidator

from grading.autograde import metadata
from grading.autograde.compose import _nbgrader_error
from grading.autograde.metadata import (Flag, details, flags, is_restore_flag, restore_notebook,
                                        restore_submission)

NAME = "01_layers.ipynb"
TEST_SOURCE = '"""fc (10 points)."""\ncheck("fc")\nprint("fc: public checks pass")'


def _nbgrader(grade_id, *, grade=False, solution=False, locked=False, points=None, cell_type="code"):
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "cell_type": cell_type, "checksum": hashlib.md5(grade_id.encode()).hexdigest()}
    if points is not None:
        meta["points"] = points
    return meta


def _release():
    """A small release notebook: intro, a locked question, its answer cell, a code cell, a test cell."""
    cells = [
        new_markdown_cell("# Q1", id="intro"),
        new_markdown_cell("**Question 1.1** (5 points)", id="question",
                          metadata={"nbgrader": _nbgrader("q1-question", locked=True, cell_type="markdown"),
                                    "editable": False, "deletable": False}),
        new_markdown_cell("YOUR ANSWER HERE", id="answer",
                          metadata={"nbgrader": _nbgrader("q1-answer", grade=True, solution=True, points=5,
                                                          cell_type="markdown")}),
        new_code_cell("x = 1", id="given"),
        new_code_cell(TEST_SOURCE, id="test",
                      metadata={"nbgrader": _nbgrader("q1-test", grade=True, locked=True, points=10),
                                "editable": False, "deletable": False}),
        new_markdown_cell("The end.", id="outro"),
    ]
    return new_notebook(cells=cells)


def _submission():
    """The release as a student saves it: the answer written, outputs in the code cells."""
    nb = copy.deepcopy(_release())
    _cell(nb, "q1-answer").source = "The gradient is $x^T$."
    _cell(nb, "q1-test").outputs = [nbformat.v4.new_output("stream", text="fc: public checks pass\n")]
    return nb


def _cell(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def _graded_ids(nb) -> list[str]:
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]


def _accepted_by_nbgrader(nb) -> None:
    """What made nbgrader's sanitizing fail: metadata without a grade id, a grade id twice, an invalid cell."""
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            assert cell.metadata["nbgrader"].get("grade_id"), cell
    ids = _graded_ids(nb)
    assert len(ids) == len(set(ids)), ids
    MetadataValidator().validate_nb(nb)
    nbformat.validate(nb)


def _restore(nb):
    changes = restore_notebook(nb, _release(), NAME)
    _accepted_by_nbgrader(nb)
    return changes


# --- nothing to undo ---------------------------------------------------------------------------

def test_an_untouched_submission_is_left_as_it_is():
    nb = _submission()
    before = copy.deepcopy(nb)
    assert _restore(nb) == [] and nb == before


def test_whitespace_in_a_locked_cell_is_no_edit():
    nb = _submission()
    _cell(nb, "q1-test").source = TEST_SOURCE.replace("\n", "   \r\n\n") + "\n\n"
    assert _restore(nb) == []


def test_empty_nbgrader_metadata_is_dropped_silently():
    """Metadata claiming nothing (no grade id, no mark) made nbgrader fail too (KeyError: 'grade_id')."""
    nb = _submission()
    nb.cells[0].metadata["nbgrader"] = {"grade": False, "locked": False, "solution": False}
    nb.cells[3].metadata["nbgrader"] = {}
    assert _restore(nb) == []
    assert "nbgrader" not in nb.cells[0].metadata and "nbgrader" not in nb.cells[3].metadata


# --- item 3: nbgrader metadata edited ----------------------------------------------------------

def test_points_edited_are_restored_and_flagged():
    nb = _submission()
    _cell(nb, "q1-test").metadata["nbgrader"]["points"] = 500
    _cell(nb, "q1-answer").metadata["nbgrader"]["points"] = "50"
    changes = _restore(nb)
    assert _cell(nb, "q1-test").metadata["nbgrader"]["points"] == 10
    assert _cell(nb, "q1-answer").metadata["nbgrader"]["points"] == 5
    assert _cell(nb, "q1-answer").source == "The gradient is $x^T$."     # the answer stays the student's
    assert [(c.grade_id, c.kind) for c in changes] == [("q1-answer", "metadata"), ("q1-test", "metadata")]
    assert flags(changes) == ["nbgrader metadata edited in 01_layers.ipynb: restored"]
    assert all(isinstance(f, Flag) for f in flags(changes))
    assert details(changes) == [
        '01_layers.ipynb: cell q1-answer: nbgrader metadata edited (points "50" (the assignment\'s: 5)): restored',
        "01_layers.ipynb: cell q1-test: nbgrader metadata edited (points 500 (the assignment's: 10)): restored"]


def test_equal_points_written_as_float_are_no_edit():
    nb = _submission()
    _cell(nb, "q1-test").metadata["nbgrader"]["points"] = 10.0
    assert _restore(nb) == []


def test_a_locked_question_turned_into_a_graded_cell_is_restored():
    nb = _submission()
    meta = _cell(nb, "q1-question").metadata["nbgrader"]
    meta.update(grade=True, points=50)
    changes = _restore(nb)
    assert _cell(nb, "q1-question").metadata["nbgrader"] == _release().cells[1].metadata["nbgrader"]
    assert [c.kind for c in changes] == ["metadata"]
    assert "grade true (the assignment's: false)" in changes[0].detail and "points 50" in changes[0].detail


def test_a_500_point_cell_added_becomes_a_plain_cell():
    nb = _submission()
    bonus = new_code_cell("print('bonus')", id="bonus-cell",
                          metadata={"nbgrader": _nbgrader("bonus", grade=True, points=500)})
    nb.cells.insert(3, bonus)
    changes = _restore(nb)
    assert nb.cells[3].source == "print('bonus')" and "nbgrader" not in nb.cells[3].metadata   # kept, plain
    assert _graded_ids(nb) == ["q1-question", "q1-answer", "q1-test"]
    assert [(c.grade_id, c.kind) for c in changes] == [("bonus", "unknown")]
    assert flags(changes) == ["nbgrader metadata edited in 01_layers.ipynb: restored"]
    assert details(changes) == [('01_layers.ipynb: a cell worth 500 points with grade id "bonus", which the '
                                 "assignment does not define: kept as a plain cell, worth no points")]


def test_a_duplicated_grade_id_keeps_the_original_and_makes_the_copy_plain():
    """The copy may come first (nbgrader keeps the last of two); the original is the cell the release gave."""
    nb = _submission()
    copy_cell = copy.deepcopy(_cell(nb, "q1-test"))
    copy_cell["id"], copy_cell.source = "copied", 'print("fc: public checks pass")'
    nb.cells.insert(1, copy_cell)
    changes = _restore(nb)
    original = next(c for c in nb.cells if c.get("id") == "test")
    assert original.metadata["nbgrader"]["grade_id"] == "q1-test"
    assert nb.cells[1].get("id") == "copied" and "nbgrader" not in nb.cells[1].metadata
    assert nb.cells[1].source == 'print("fc: public checks pass")'
    assert [(c.grade_id, c.kind) for c in changes] == [("q1-test", "duplicate")]
    assert flags(changes) == ["nbgrader metadata edited in 01_layers.ipynb: restored"]
    assert details(changes) == [("01_layers.ipynb: a second cell with grade id q1-test (a copy): kept as a plain "
                                 "cell, worth no points")]


def test_a_duplicate_without_cell_ids_keeps_the_copy_with_the_release_content():
    nb = _submission()
    for cell in nb.cells:
        cell.pop("id")
    nb.nbformat_minor = 4
    edited = copy.deepcopy(_cell(nb, "q1-test"))
    edited.source = "pass"
    nb.cells.insert(4, edited)           # the edited copy first, the original (release content) after it
    changes = _restore(nb)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1-test"]
    assert [c.source for c in graded] == [TEST_SOURCE]
    assert [c.kind for c in changes] == ["duplicate"]


def test_a_renamed_grade_id_is_matched_by_cell_id():
    nb = _submission()
    _cell(nb, "q1-test").metadata["nbgrader"]["grade_id"] = "mine"
    changes = _restore(nb)
    assert _graded_ids(nb) == ["q1-question", "q1-answer", "q1-test"]
    assert [(c.grade_id, c.kind) for c in changes] == [("q1-test", "metadata")]
    assert 'grade_id "mine"' in changes[0].detail


def test_a_cell_whose_metadata_and_id_were_removed_is_matched_by_content():
    nb = _submission()
    test = _cell(nb, "q1-test")
    del test.metadata["nbgrader"]
    test["id"] = "new-id"
    changes = _restore(nb)
    assert next(c for c in nb.cells if c.get("id") == "new-id").metadata["nbgrader"]["grade_id"] == "q1-test"
    assert [(c.grade_id, c.kind, c.detail) for c in changes] == [("q1-test", "metadata", "its nbgrader metadata removed")]
    assert len(nb.cells) == len(_release().cells)           # matched, not added a second time


def test_metadata_that_is_not_a_table_is_replaced():
    nb = _submission()
    _cell(nb, "q1-test").metadata["nbgrader"] = "q1-test"       # the student's JSON may hold anything
    nb.cells[0].metadata["nbgrader"] = ["grade", 500]
    changes = _restore(nb)
    assert nb.cells[4].metadata["nbgrader"]["grade_id"] == "q1-test" and "nbgrader" not in nb.cells[0].metadata
    assert sorted(c.kind for c in changes) == ["metadata", "unknown"]


def test_a_changed_cell_type_is_restored():
    nb = _submission()
    test = nb.cells[4]
    test["cell_type"] = "markdown"
    del test["outputs"], test["execution_count"]
    changes = _restore(nb)
    assert nb.cells[4].cell_type == "code" and nb.cells[4].outputs == []
    assert changes[0].kind == "metadata" and "cell type markdown (the assignment's: code)" in changes[0].detail


# --- item 5: locked cells edited ---------------------------------------------------------------

def test_an_edited_test_cell_is_flagged():
    nb = _submission()
    _cell(nb, "q1-test").source = 'print("fc: public checks pass")'
    changes = _restore(nb)
    assert [(c.grade_id, c.kind) for c in changes] == [("q1-test", "edited")]
    assert flags(changes) == ["locked cell q1-test edited in 01_layers.ipynb: restored from the source"]
    assert details(changes) == []      # the flag says it all (nbgrader restores the source)


def test_an_edited_locked_question_is_flagged_and_an_answer_is_not():
    nb = _submission()
    _cell(nb, "q1-question").source = "**Question 1.1** (500 points)"
    changes = _restore(nb)
    assert flags(changes) == ["locked cell q1-question edited in 01_layers.ipynb: restored from the source"]


def test_metadata_and_source_edited_together_give_both_flags():
    nb = _submission()
    test = _cell(nb, "q1-test")
    test.source, test.metadata["nbgrader"]["locked"] = "pass", False
    changes = _restore(nb)
    assert flags(changes) == ["nbgrader metadata edited in 01_layers.ipynb: restored",
                              "locked cell q1-test edited in 01_layers.ipynb: restored from the source"]


# --- deleted graded cells ----------------------------------------------------------------------

def test_a_deleted_answer_after_a_locked_question_is_added_back():
    """nbgrader's own re-adding failed here (KeyError: the locked question before it is no graded cell)."""
    nb = _submission()
    nb.cells = [c for c in nb.cells if c.get("id") != "answer"]
    changes = _restore(nb)
    assert [c.get("id") for c in nb.cells] == [c.get("id") for c in _release().cells]
    assert nb.cells[2].source == "YOUR ANSWER HERE"
    assert [(c.grade_id, c.kind) for c in changes] == [("q1-answer", "deleted")] and flags(changes) == []
    assert details(changes) == [("01_layers.ipynb: answer cell q1-answer was deleted: added back as released "
                                 "(unanswered)")]


def test_a_deleted_test_cell_is_added_back_and_flagged():
    nb = _submission()
    nb.cells = [c for c in nb.cells if c.get("id") not in ("test", "given")]
    changes = _restore(nb)
    assert [c.get("id") for c in nb.cells] == ["intro", "question", "answer", "test", "outro"]
    assert nb.cells[3].source == TEST_SOURCE and nb.cells[3].outputs == []
    assert flags(changes) == ["locked cell q1-test deleted in 01_layers.ipynb: restored from the source"]


def test_every_cell_deleted_gives_the_graded_ones_back_in_order():
    nb = _submission()
    nb.cells = []
    _restore(nb)
    assert [c.get("id") for c in nb.cells] == ["answer", "test"]


def test_a_cell_added_back_to_a_notebook_without_cell_ids_gets_none():
    nb = _submission()
    for cell in nb.cells:
        cell.pop("id")
    nb.nbformat_minor = 4
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "q1-test"]
    _restore(nb)
    assert all("id" not in c for c in nb.cells) and _graded_ids(nb)[-1] == "q1-test"


# --- flags, files ------------------------------------------------------------------------------

def test_the_flags_are_recognised_as_such():
    changes = [metadata.Change(NAME, "q1-test", "edited", locked=True), metadata.Change(NAME, "x", "unknown"),
               metadata.Change(NAME, "q1-test", "deleted", locked=True)]
    assert all(is_restore_flag(f) for f in flags(changes))
    assert not is_restore_flag("policy: Q3 conv breaks NumPy only (zero)")
    assert not is_restore_flag("isolation: graded without full isolation (limits), allowed by --allow-weak-isolation")


def test_restore_submission_rewrites_changed_notebooks_only(tmp_path):
    submitted, release = tmp_path / "submitted", tmp_path / "release"
    submitted.mkdir(), release.mkdir()
    nbformat.write(_release(), release / NAME)
    nbformat.write(_release(), release / "02_other.ipynb")
    edited = _submission()
    _cell(edited, "q1-test").metadata["nbgrader"]["points"] = 500
    nbformat.write(edited, submitted / NAME)
    (submitted / "02_other.ipynb").write_text(nbformat.writes(_submission()) + "\n\n")   # unchanged: not rewritten
    untouched = (submitted / "02_other.ipynb").read_bytes()
    (submitted / "03_broken.ipynb").write_text("{not json")                                 # nbgrader's business
    (submitted / "04_unknown.ipynb").write_text(nbformat.writes(edited))                    # no release: left alone
    changes = restore_submission(submitted, release)
    assert [(c.notebook, c.grade_id, c.kind) for c in changes] == [(NAME, "q1-test", "metadata")]
    restored = nbformat.read(submitted / NAME, as_version=4)
    assert _cell(restored, "q1-test").metadata["nbgrader"]["points"] == 10
    assert _cell(restored, "q1-test").outputs       # the saved outputs stay (keep_saved_outputs reads them)
    assert (submitted / "02_other.ipynb").read_bytes() == untouched
    assert (submitted / "03_broken.ipynb").read_text() == "{not json"


def test_a_failed_nbgrader_run_names_its_exception():
    """nbgrader's own error says only "Please see the above traceback": the problem line names the exception."""
    def log(exception):
        return ("[ERROR] There was an error processing assignment\n[ERROR] Traceback (most recent call last):\n"
                '      File "x.py", line 1, in f\n        grade_id = cell.metadata.nbgrader["grade_id"]\n'
                f"    {exception}\n    \n[WARNING] Removing failed assignment: /c/autograded/s/hw4\n"
                "[ERROR] Please see the the above traceback for details on the specific errors\n")

    error = "Traceback...\nnbgrader.converters.base.NbGraderException: Please see the the above traceback"
    assert _nbgrader_error({"log": log("KeyError: 'grade_id'"), "error": error}) == "KeyError: 'grade_id'"
    missing = "nbgrader.api.MissingEntry: No such grade cell: hw4/01_layers/q1-fc-question"
    assert _nbgrader_error({"log": log(missing), "error": error}) == missing
    assert _nbgrader_error({"log": "", "error": error}).startswith("nbgrader.converters.base.NbGraderException")
    assert _nbgrader_error({}) == "no error message"


@pytest.mark.parametrize("value", [None, 0, False, "", {}])
def test_a_claim_needs_a_value(value):
    assert not metadata._claims({"grade_id": value, "points": value, "grade": value})


# --- the pipeline, on the samples (slow: one autograde run of five submissions) -----------------

SAMPLES = {   # sample -> the flags it must carry
    "meta-points": ["nbgrader metadata edited in 01_layers.ipynb: restored"],
    "meta-graded-cell": ["nbgrader metadata edited in 01_layers.ipynb: restored"],
    "meta-duplicate-id": ["nbgrader metadata edited in 01_layers.ipynb: restored"],
    "deleted-answer": [],
    "edited-tests": ["locked cell q1-fc-test edited in 01_layers.ipynb: restored from the source"],
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from grading.autograde.job import Settings, autograde
    from grading.autograde.sandbox import isolation
    from grading.nbgrader.course_root import clone
    from grading.samples import write_samples

    from .test_grading_release import shared_release

    shared = shared_release(tmp_path_factory)
    base = tmp_path_factory.mktemp("metadata")
    course = clone(shared["course"], base / "course")
    made = write_samples(base / "submissions", release=shared["folder"], only=set(SAMPLES))
    settings = Settings(course=course, workers=2, execute=False, nbgrader_feedback=False, budget_scale=0.3,
                        allow_weak_isolation=isolation()["level"] != "full")
    with pytest.MonkeyPatch.context() as patch:   # grading code, not punctuality (test_grading_autograde.py)
        policy = base / "no_deadline.toml"
        policy.write_text("# no [deadline] table\n")
        from grading.autograde.deadlines import POLICY_ENV
        patch.setenv(POLICY_ENV, str(policy))
        results = autograde(base / "submissions", settings, log=lambda *a: None)
        from grading.autograde.feedback import scores
        rows = {r["student"]: r for r in scores(course)}
    return {"course": course, "samples": {s.student: s for s in made}, "rows": rows,
            "results": {r.student: r for r in results}}


@pytest.mark.slow
def test_every_notebook_is_autograded_and_scores_stay_exact(graded):
    from course.registry import load as load_registry
    from grading.autograde import hidden
    from grading.nbgrader.course_root import ASSIGNMENT
    from grading.samples import expected_points

    groups = hidden.load()
    manual = [c for c in load_registry().cells.values() if c.graded == "manual" and (c.points > 0 or c.extra_credit)]
    for name, sample in graded["samples"].items():
        autograded = sorted(p.name for p in (graded["course"] / "autograded" / name / ASSIGNMENT).glob("*.ipynb"))
        assert len(autograded) == 6, (name, autograded)
        assert not [p for p in graded["results"][name].problems if "nbgrader could not" in p], name
        row = graded["rows"][name]
        if name == "edited-tests":   # its bug's other cells: tests/test_grading_autograde.py (every sample, exact)
            assert row["cells"]["q1-fc-test"] == 0, "the edited test cell rescued the bug"
        else:
            assert {gid: row["cells"][gid] for gid in groups} == expected_points(sample, groups), name
        # Every derivation waits for the TA, none added; the deleted one is back unanswered: 0, as nbgrader
        # scores an answer cell left as released ("No response").
        unanswered = {"q1-relu-derivation"} if name == "deleted-answer" else set()
        assert row["manual_pending"] == len(manual) - len(unanswered), name
        assert all(row["cells"][gid] == 0 for gid in unanswered), name


@pytest.mark.slow
def test_the_flags_reach_grades_csv_the_summary_and_the_report(graded):
    import csv
    import html

    from grading.nbgrader.course_root import ASSIGNMENT

    course = graded["course"]
    with open(course / "grades.csv", newline="") as fh:
        csv_flags = {row["student"]: row["flags"] for row in csv.DictReader(fh)}
    summary = html.unescape((course / "summary.html").read_text())
    def restore_flags(found):   # a machine without bubblewrap adds its isolation flag to every student
        return [f for f in found if f and not f.startswith("isolation:")]
    for name, want in SAMPLES.items():
        assert restore_flags(graded["results"][name].flags) == want, name
        assert restore_flags(csv_flags[name].split(" | ")) == want, name
        report = html.unescape((course / "feedback" / name / ASSIGNMENT / "grading_report.html").read_text())
        for flag in want:
            assert f"<li class='fail'>{flag}</li>" in report, name
            assert flag in summary
        assert ("Cells restored before grading" in report) == bool(want), name
    problems = {name: graded["results"][name].problems for name in SAMPLES}
    assert "01_layers.ipynb: cell q1-fc-test: nbgrader metadata edited (points 500 (the assignment's: 10)): " \
           "restored" in problems["meta-points"]
    assert any('grade id "bonus"' in p for p in problems["meta-graded-cell"])
    assert any("a second cell with grade id q1-fc-test" in p for p in problems["meta-duplicate-id"])
    assert any("answer cell q1-relu-derivation was deleted" in p for p in problems["deleted-answer"])
    assert problems["edited-tests"] == []


@pytest.mark.slow
def test_the_ta_keeps_what_the_student_added_as_plain_cells(graded):
    from grading.nbgrader.course_root import ASSIGNMENT

    def notebook(name):
        return nbformat.read(graded["course"] / "autograded" / name / ASSIGNMENT / "01_layers.ipynb", as_version=4)

    bonus = next(c for c in notebook("meta-graded-cell").cells if c.get("id") == "bonus-cell")
    assert "nbgrader" not in bonus.metadata and "bonus question" in bonus.source
    dup = notebook("meta-duplicate-id")
    graded_ids = [c.get("id") for c in dup.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1-fc-test"]
    copies = [c for c in dup.cells if c.get("id", "").endswith("-copy")]
    assert len(graded_ids) == 1 and not graded_ids[0].endswith("-copy")            # the original is graded
    assert len(copies) == 1 and "nbgrader" not in copies[0].metadata and "public checks pass" in copies[0].source
    points = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
              for c in notebook("meta-points").cells if "nbgrader" in c.metadata}
    assert points["q1-fc-test"] == 10 and points["q1-fc-question"] is None
    edited = next(c for c in notebook("edited-tests").cells
                  if c.metadata.get("nbgrader", {}).get("grade_id") == "q1-fc-test")
    assert 'check("fc")' in edited.source    # nbgrader put the test back
