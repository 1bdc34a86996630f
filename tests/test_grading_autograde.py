"""make autograde on the generated sample submissions: every score exact, isolation holds, no leaks.

One autograde run grades every sample (hidden checks, no notebook execution, quick budgets); a second
run re-grades three of them with the Q1 notebook executed in the sandbox and nbgrader's feedback.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import nbformat
import pytest

from course.paths import REPO
from course.registry import load as load_registry
from grading.autograde import hidden
from grading.autograde.feedback import export_csv, scores
from grading.autograde.gradebook import load_results
from grading.autograde.job import Settings, autograde
from grading.autograde.notebooks import rerun_dir
from grading.autograde.sandbox import isolation
from grading.nbgrader.course_root import ASSIGNMENT, clone
from grading.release.leaks import scan
from grading.sample_code import SYMLINK_WAS_HERE
from grading.samples import expected_points, samples, write_samples

from .test_grading_release import shared_release

pytestmark = pytest.mark.slow
FULL = isolation()["level"] == "full"
MARKER = "HOSTILE_WAS_HERE"
SAVED_TEXT = "saved by the student: test accuracy 0.9876 \u2713\n"
# Feedback must hold none of these. (Not "module": the names of the grading files are no secret in a
# feedback file, and the hostile sample prints them itself.)
NOT_SECRET_FROM_STUDENTS = ("hidden-test", "hidden-check", "marker")


def _snapshot(*folders: Path) -> dict:
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and ".pytest_cache" not in path.parts:
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _kit_files() -> dict:
    """Every file of the checkout but the build products, the environment and caches: what no
    submission may change (the hostile samples aim at README.md and at new files in the checkout)."""
    skip = {"build", ".venv", ".git", ".pytest_cache", "__pycache__", ".ruff_cache", "data"}
    out = {}
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO).parts
        if not skip & set(rel) and path.is_file() and not path.is_symlink():
            out[str(path)] = path.stat().st_size
    return out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    shared = shared_release(tmp_path_factory)
    base = tmp_path_factory.mktemp("autograde")
    course = clone(shared["course"], base / "course")
    made = samples(shared["folder"])
    if not FULL:   # the hostile samples' code never runs without full isolation (grading refuses, by default)
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must grade with full isolation: {isolation()['reason']}")
        made = [s for s in made if not (s.hostile or s.needs_full)]
    subs = base / "submissions"
    write_samples(subs, release=shared["folder"], only={s.student for s in made})
    # Half of them as per-student zips (doe_hw4.zip style names: no numeric LMS id, so the id is the
    # name up to the first underscore; Canvas names are graded in tests/test_grading_late_run.py).
    for sample in made[::2]:
        folder = subs / sample.student
        with zipfile.ZipFile(subs / f"{sample.student}_{ASSIGNMENT}.zip", "w") as zf:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(subs).as_posix())
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    # What the hostile sample aims at: the hidden checks (grading/) and the other submissions. (Not the
    # whole repository: other work may edit it while the tests run.)
    watched = _snapshot(REPO / "grading", REPO / "course", subs)
    readme, kit = _snapshot(REPO / "README.md"), _kit_files()
    settings = Settings(course=course, workers=2, execute=False, nbgrader_feedback=False, budget_scale=0.3,
                        allow_weak_isolation=not FULL)
    # Every temporary folder of the run in one place of its own, to see that none is left.
    tmp, saved = base / "tmp", (tempfile.tempdir, os.environ.get("TMPDIR"))
    tmp.mkdir()
    tempfile.tempdir, os.environ["TMPDIR"] = str(tmp), str(tmp)
    try:
        results = autograde(subs, settings, log=lambda *a: None)
    finally:
        tempfile.tempdir = saved[0]
        os.environ.pop("TMPDIR") if saved[1] is None else os.environ.__setitem__("TMPDIR", saved[1])
    return {"course": course, "samples": {s.student: s for s in made}, "results": {r.student: r for r in results},
            "subs": subs, "watched": watched, "shared": shared, "readme": readme, "kit": kit,
            "tmp_left": sorted(p.name for p in tmp.iterdir())}


def _auto_scores(course: Path) -> dict:
    points = load_registry()
    return {row["student"]: {gid: row["cells"][gid] for gid, c in points.cells.items() if c.graded == "auto"}
            for row in scores(course)}


def test_every_sample_scores_exactly_as_expected(graded):
    groups = hidden.load()
    got = _auto_scores(graded["course"])
    assert set(got) == set(graded["samples"])
    wrong = {}
    for name, sample in graded["samples"].items():
        want = expected_points(sample, groups)
        if got[name] != want:
            wrong[name] = {gid: (got[name][gid], want[gid]) for gid in want if got[name][gid] != want[gid]}
    assert not wrong, f"(got, expected) per cell: {wrong}"


def test_each_bug_costs_its_own_question_only(graded):
    points = load_registry()
    rows = {r["student"]: r for r in scores(graded["course"])}
    full = {q: sum(c.points for c in points.cells_of(q) if c.graded == "auto") for q in points.questions}
    for name, sample in graded["samples"].items():
        if not name.startswith("bug-") and name not in ("hang", "crash", "edited-tests"):
            continue
        auto = {q: sum(rows[name]["cells"][c.grade_id] for c in points.cells_of(q) if c.graded == "auto")
                for q in points.questions}
        short = {q for q in points.questions if auto[q] < full[q]}
        assert short == {points.cells[gid].question for gid in sample.loses}, (name, auto)
        # A mistake the course's profile does not deduct (bug-pool-float64 where strict_dtypes is off) costs none.
        assert len(short) == (1 if sample.loses else 0), name


def test_the_perfect_submission_gets_full_marks(graded):
    from nbgrader.api import Gradebook
    course = graded["course"]
    points = load_registry()
    # A TA grades the derivations (formgrader's grade API writes these two fields).
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "eecs545") as gb:
        for cell in points.cells.values():
            if cell.graded == "manual":
                grade = gb.find_grade(cell.grade_id, cell.notebook, ASSIGNMENT, "perfect")
                # Extra credit goes in formgrader's extra-credit box (the cell is worth 0 in nbgrader).
                grade.manual_score = 0 if cell.extra_credit else cell.points
                grade.extra_credit = cell.points if cell.extra_credit else None
                grade.needs_manual_grade = False
        gb.db.commit()
    rows = {r["student"]: r for r in scores(course)}
    perfect = rows["perfect"]
    assert {q: perfect[q] for q in points.questions} == {q: p.points for q, p in points.questions.items()}
    assert perfect["total"] == points.max_total + 6 and perfect["manual_pending"] == 0
    csv_text = export_csv(course).read_text()
    questions = points.questions.values()
    extra = sum(q.points for q in questions if q.extra_credit)
    assert csv_text.splitlines()[0].startswith(",".join(["student", *points.questions, "total", "max"]))
    assert ",".join(["perfect", *(f"{q.points:g}" for q in questions), f"{points.max_total + extra:g}",
                     f"{points.max_total:g}", "0,"]) in csv_text
    # nothing answered, nothing pending
    assert ",".join(["release", *("0" for _ in questions), "0", f"{points.max_total:g}", "0,"]) in csv_text


def test_hang_and_crash_cost_their_cell_and_the_run_goes_on(graded):
    res = graded["results"]
    assert res["hang"].groups["q1-relu-test"].status == "timeout"
    assert res["crash"].groups["q1-fc-test"].status == "crash"
    assert "exited with code 3" in res["crash"].groups["q1-fc-test"].message
    for name in ("hang", "crash"):
        others = [g for gid, g in res[name].groups.items() if gid not in ("q1-relu-test", "q1-fc-test")]
        assert all(g.status == "ok" for g in others), name


def test_broken_submissions_are_reported(graded):
    problems = {name: " ".join(r.problems) for name, r in graded["results"].items()}
    assert "01_layers.ipynb is not a valid notebook" in problems["invalid-json"]
    assert "hwlib/layers.py is missing" in problems["missing-files"]
    report = (graded["course"] / "feedback" / "invalid-json" / ASSIGNMENT / "grading_report.html").read_text()
    assert "not a valid notebook" in report


@pytest.mark.skipif(not FULL, reason="hostile submissions are contained only with full isolation (root)")
def test_hostile_submission_is_contained(graded, tmp_path):
    course = graded["course"]
    result = graded["results"]["hostile"]
    assert all(g.points == g.max_points for g in result.groups.values()), "it cheated: an attempt got out"
    for place in (REPO, REPO / "build", REPO / "build" / "course", course, course.parent, Path("/tmp"),
                  graded["subs"]):
        assert not (place / MARKER).exists(), place
    after = _snapshot(REPO / "grading", REPO / "course", graded["subs"])
    assert after == graded["watched"], "files outside the sandbox changed during grading"


@pytest.mark.skipif(not FULL, reason="hostile submissions are graded only with full isolation (root)")
def test_attacks_on_the_trusted_side_are_contained_and_named(graded):
    """Links, pipes and bombs in place of result files, PyTorch from a helper module or from the kit's
    own references, a CPU hog: each costs its own groups (exact scores: the test above), says what it
    did, changes no file of the kit and leaves no temporary folder; the run finishes."""
    res = graded["results"]
    said = {"hostile-symlink": "the result file was replaced by a symbolic link",
            "hostile-fifo": "the result file was replaced by a named pipe",
            "hostile-bomb": "a decompression bomb?"}
    for name, words in said.items():
        fc = res[name].groups["q1-fc-test"]
        assert fc.status == "error" and words in fc.message and "0 points for this group" in fc.message, (name, fc.message)
    for name in ("policy-torch-helper", "policy-reference", "policy-torch-conv"):
        conv = res[name].groups["q3-conv"]
        assert conv.points == 0 and all("graded NumPy only" in c.message for c in conv.cases), \
            (name, [c.message for c in conv.cases])
    assert any("hwlib/fastconv.py" in p["message"] for p in res["policy-torch-helper"].groups["q3-conv"].policy)
    assert res["hostile-hog"].groups["q1-relu-test"].status == "timeout"
    assert _snapshot(REPO / "README.md") == graded["readme"] and _kit_files() == graded["kit"]
    assert not (REPO / SYMLINK_WAS_HERE).exists()
    assert graded["tmp_left"] == [], graded["tmp_left"]


def test_feedback_explains_failures_without_leaking(graded):
    course = graded["course"]
    for name in graded["samples"]:
        assert (course / "feedback" / name / ASSIGNMENT / "grading_report.html").exists(), name
    report = (course / "feedback" / "bug-fc-db" / ASSIGNMENT / "grading_report.html").read_text()
    assert "db" in report and "relative error" in report and "x(5, 4, 3)" in report
    assert "timed out" in (course / "feedback" / "hang" / ASSIGNMENT / "grading_report.html").read_text()
    leaks = scan(course / "feedback", kinds=NOT_SECRET_FROM_STUDENTS)
    assert not leaks, [(leak.path, leak.secret.kind, leak.secret.text[:60]) for leak in leaks[:10]]
    release_leaks = scan(course / "feedback" / "release")
    assert not release_leaks, [(leak.path, leak.secret.text[:60]) for leak in release_leaks[:10]]


def test_feedback_names_inputs_changed_in_place_layouts_and_dtypes(graded):
    """The checks that look beyond the returned values say what they saw, case by case."""
    def report(name):
        return html.unescape((graded["course"] / "feedback" / name / ASSIGNMENT / "grading_report.html").read_text())

    assert "relu_forward changed its input x in place at (0, 1): -1.06109 became 0.0; return a new array" \
        in report("bug-relu-inplace")
    assert report("bug-conv-dout").count("conv_backward changed its input dout in place at (0, 0, 0, 0)") == 4
    c_order = report("bug-conv-c-order")
    assert re.search(r"Fortran-ordered</code></td><td><span class='fail'>failed</span>[^\n]*conv out: worst relative error",
                     c_order), c_order
    assert re.search(r"w\(2, 2, 6, 6\)</code></td><td><span class='ok'>passed", c_order)       # C-ordered: right
    pool = report("bug-pool-float64")
    if load_registry().strict_dtypes:        # the profile deducts a dtype change: the float32 cases fail
        assert pool.count("pool out has dtype float64; expected float32, the dtype of the inputs") == 2
        assert "ConvNet.loss scores has dtype float64; expected float32" in pool     # the model case too
    else:   # the points kept; the saved result carries, for the feedback, what the change costs
        saved = load_results(graded["course"])["bug-pool-float64"]["groups"]
        notes = {c["id"]: c["note"] for gid in ("q3-pool", "q3-model") for c in saved[gid]["cases"] if c.get("note")}
        assert sorted(notes) == ["loss-small-float32", "pool-3x3-s1-float32", "pool-4x4-s4-float32"], notes
        assert all("dtype float64 for" in n and "costs no points" in n and "2x slower" in n for n in notes.values())


def test_class_summary(graded):
    text = (graded["course"] / "summary.html").read_text()
    for group in hidden.load().values():
        for case in group.cases:
            assert case.id in text
    assert "NotImplementedError" in text and "timeout" in text


# --- second run: notebooks executed in the sandbox, nbgrader feedback ----------------------------

@pytest.fixture(scope="module")
def executed(graded):
    before = {name: dict(vals) for name, vals in _auto_scores(graded["course"]).items()}
    subs = graded["subs"].parent / "executed"
    subs.mkdir()
    # With full isolation also the hostile ones: the original, and the one planting links where the
    # grader once wrote each notebook's parameters (the notebooks run after the hidden checks).
    wanted = ("release", "crash") + (("hostile", "hostile-symlink") if FULL else ())
    write_samples(subs, release=graded["shared"]["folder"], only=set(wanted))
    for entry in subs.iterdir():
        if entry.is_dir() and entry.name not in wanted:
            for path in sorted(entry.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            entry.rmdir()
    # The release sample saved outputs: they stay in its autograded notebook (as data), the re-run goes beside.
    saved_path = next(subs.glob("release/**/01_layers.ipynb"))
    saved = nbformat.read(saved_path, as_version=4)
    first = next(c for c in saved.cells if c.cell_type == "code")
    first.outputs = [nbformat.v4.new_output("stream", name="stdout", text=SAVED_TEXT),
                     nbformat.v4.new_output("display_data", data={"text/html": "<script>steal()</script>"})]
    first.execution_count = 3
    nbformat.write(saved, saved_path)
    settings = Settings(course=graded["course"], workers=2, execute=True, notebooks=("01_layers",),
                        cell_timeout=30, notebook_budget=300, budget_scale=0.3, reuse_checks=True)
    results = autograde(subs, settings, log=lambda *a: None)
    return {**graded, "before": before, "results": {r.student: r for r in results}}


def _outputs(course: Path, student: str, folder: str = "rerun") -> list[str]:
    """The texts of 01_layers' outputs: re-run in the sandbox (``rerun``) or as autograded (``autograded``)."""
    path = (rerun_dir(course) / student if folder == "rerun" else course / "autograded" / student / ASSIGNMENT)
    nb = nbformat.read(path / "01_layers.ipynb", as_version=4)
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") or f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return texts


def test_executed_scores_are_unchanged(executed):
    after = _auto_scores(executed["course"])
    for name in ("release", "crash") + (("hostile", "hostile-symlink") if FULL else ()):
        assert after[name] == executed["before"][name], name


def test_crash_kills_the_kernel_not_the_run(executed):
    run = executed["results"]["crash"].notebooks
    assert [r.status for r in run] == ["crash"]
    texts = _outputs(executed["course"], "crash")
    assert any(t.startswith("DeadKernelError") for t in texts) and any(t.startswith("NotExecuted") for t in texts)


@pytest.mark.skipif(not FULL, reason="needs full isolation")
def test_hostile_notebook_run_is_contained(executed):
    text = "\n".join(_outputs(executed["course"], "hostile"))
    assert "HOSTILE: blocked: read" in text and "HOSTILE: blocked: connect 1.1.1.1:53" in text
    succeeded = [line for line in text.splitlines() if "HOSTILE: succeeded" in line]
    assert succeeded == ["HOSTILE: succeeded: write /tmp (private to the sandbox)"], succeeded
    assert not Path("/tmp", MARKER).exists()


def test_release_notebook_ran_and_feedback_holds_no_secret(executed):
    texts = _outputs(executed["course"], "release")
    assert any("NotImplementedError" in t for t in texts) and SAVED_TEXT not in texts
    # formgrader's notebook keeps what the student saved (text byte for byte, no HTML), not the re-run
    assert _outputs(executed["course"], "release", "autograded") == [SAVED_TEXT]
    feedback = executed["course"] / "feedback"
    for name in ("release", "crash") + (("hostile",) if FULL else ()):
        assert (feedback / name / ASSIGNMENT / "01_layers.html").exists(), name
    leaks = scan(feedback, kinds=NOT_SECRET_FROM_STUDENTS) + scan(feedback / "release")
    assert not leaks, [(leak.path, leak.secret.kind, leak.secret.text[:60]) for leak in leaks[:10]]
    saved = load_results(executed["course"])["crash"]
    assert json.dumps(saved)  # results are plain data (for grading/autograde/feedback.py and instructors)


@pytest.fixture(scope="module", autouse=True)
def _no_deadline(tmp_path_factory):
    """These runs grade code, not punctuality: the zips above carry today's file times, which the
    course's due date may be long past. No late policy here (tests/test_grading_late_run.py has it)."""
    from grading.autograde.deadlines import POLICY_ENV
    path = tmp_path_factory.mktemp("policy") / "no_deadline.toml"
    path.write_text("# no [deadline] table: no late penalty\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(POLICY_ENV, str(path))
        yield


def test_a_course_folder_copied_by_hand_is_refused_not_graded_elsewhere(tmp_path):
    """A course folder copied with cp still names its old place in nbgrader_config.py: nbgrader would
    write that course's gradebook. The run refuses it before intake, naming both and the way to copy."""
    course = tmp_path / "copy"
    (course / "release" / ASSIGNMENT).mkdir(parents=True)
    (course / "gradebook.db").write_bytes(b"")
    (course / "nbgrader_config.py").write_text(f"c.CourseDirectory.root = {str(tmp_path / 'original')!r}\n")
    with pytest.raises(SystemExit, match=r"is a copy of the course at .*original.*clone\(SRC, DEST\)"):
        autograde(tmp_path / "no-submissions-needed", Settings(course=course))
    assert not (course / "submitted").exists()
