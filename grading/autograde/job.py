"""``python -m grading autograde DIR``: grade a folder of submissions, each in its own sandbox.

For every submission (nbgrader's ``submitted/<student>/hw4/`` layout, or per-student zips):

1. **intake** (trusted, main process): a safe copy into ``build/course/submitted/<student>/hw4/``
   with its submission time; duplicates resolved, the latest wins (grading/autograde/intake.py);
   ``Settings.students`` takes only those ids: the others' results stay as they are;
2. **in a worker process per submission, in parallel** (default 2 workers):
   a. the release's nbgrader cell metadata put back first (grading/autograde/metadata.py: a cell
      claiming points or a grade id the assignment does not define, a copied grade id, would make
      nbgrader fail), edits of it and of locked cells flagged for the instructor; then nbgrader
      autograde *without execution* (trusted): restores edited locked cells, re-adds
      deleted test cells, records the submission and its manually graded cells in the gradebook
      (nbgrader's own Execute is switched off in grading/nbgrader/nbgrader_config.py); the outputs
      the student saved, which nbgrader clears, are put back as data (text and images);
   b. the submission is composed in a private folder: the student's files, with the kit's given
      modules reset to the kit's version (the student modules are kept, as nbgrader does with
      ``Autograde.exclude_overwriting``);
   c. the hidden checks (grading/autograde/hidden.py): inputs drawn here, the student's functions run in the
      sandbox (grading/autograde/sandbox.py), outputs compared here;
   d. the notebooks run in the sandbox too (grading/autograde/sandbox_exec.py: per-cell timeout, a budget per
      notebook), for the TA and the feedback: the re-run goes to ``<course>/rerun/<student>/``, its
      headline results beside the saved ones in the grading report (grading/autograde/rerun.py);
3. **scores** (trusted, main process): the points of every autograded test cell are set in the
   gradebook from the hidden checks; the derivations wait for the TA (formgrader);
4. **outputs**: nbgrader feedback plus ``grading_report.html`` per student (in the workers), the
   exports (``grades.csv`` and the LMS files: grading/autograde/export.py) and the class summary
   (``summary.html``), all under the course folder, from every student's saved results; the late
   policy (grading/autograde/deadlines.py) applies when they are written.

:func:`grade_submission` is the unit of work: a top-level function of picklable arguments returning a
picklable :class:`StudentResult`, so any executor can run it; only the coordinating process writes
the gradebook and the files above. With ``Settings.scheduler`` the workers of a Dask cluster run it
(grading/autograde/distribute.py): step 2a-b stays here, 2c-d runs there.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from course.paths import COURSE
from hwlib.progress import progress

from ..nbgrader.course_root import ASSIGNMENT, load_config
from . import deadlines, export, feedback, hidden
from .compose import compose, sanitize, tools_dir
from .distribute import Cluster
from .gradebook import StudentResult, group_result, record_scores, results_dir, save_result
from .intake import collect
from .metadata import Flag
from .notebooks import run_notebook
from .sandbox import Limits, Sandbox, isolation

__all__ = ["Settings", "autograde", "grade_submission"]


@dataclass
class Settings:
    course: Path = COURSE
    workers: int = 2
    execute: bool = True                      # run the notebooks (in the sandbox) for the TA and the feedback
    notebooks: tuple | None = None            # notebook stems to run (None: all)
    execute_students: tuple | None = None     # students whose notebooks run (None: everyone's)
    cell_timeout: float = 60.0                # seconds per notebook cell
    notebook_budget: float = 900.0            # seconds per notebook
    parameters: dict = field(default_factory=lambda: {"profile": "quick"})
    data_root: Path | None = None             # mounted read-only at /data in the sandbox
    keep_sandboxes: bool = False
    limits: Limits = field(default_factory=Limits)
    budget_scale: float = 1.0                 # multiplies the hidden checks' time budgets
    reuse_checks: bool = False                # keep a student's saved hidden-check results (re-run notebooks only)
    feedback: bool = True                     # grading_report.html per student
    nbgrader_feedback: bool = True            # nbgrader's feedback HTML of the notebooks (slow: nbconvert)
    students: tuple | None = None             # grade only these ids (None: every submission in the folder)
    exports: tuple = export.FORMATS           # which grade files to write (export.py)
    roster: Path | None = None                # the LMS's roster CSV (names, SIS ids, sections, emails)
    canvas_assignment: str | None = None      # Canvas's column for the assignment, e.g. "HW4 (123456)"
    scheduler: str | None = None              # a Dask scheduler's address: grade on its workers (distribute.py)
    # Grade below full isolation (here, or on Dask workers); every student graded so is flagged. Default:
    # refused, unless $HW4_ALLOW_WEAK_ISOLATION is 1 (tests/conftest.py sets it where bubblewrap is missing).
    allow_weak_isolation: bool = field(default_factory=lambda: os.environ.get("HW4_ALLOW_WEAK_ISOLATION") == "1")



def prepare(course: Path, student: str, workdir: Path) -> list[str]:
    """The trusted steps that need the course folder: nbgrader's sanitizing (it writes the gradebook)
    and the submission as graded, composed in ``workdir/submission``; return the problems found."""
    return sanitize(course, student) + compose(course, student, workdir / "submission")


def grade_submission(student: str, slot: int, settings: Settings, run_dir: Path, problems: list,
                     prepared: bool = False) -> StudentResult:
    """Grade one submission; ``prepared``: :func:`prepare` already ran (a Dask worker: distribute.py)."""
    start = time.perf_counter()
    course = Path(settings.course)
    workdir = run_dir / student
    problems = list(problems) + ([] if prepared else prepare(course, student, workdir))
    flags = [p for p in problems if isinstance(p, Flag)]   # sanitize's flags (metadata.py) travel with them
    problems = [p for p in problems if not isinstance(p, Flag)]
    box = Sandbox(workdir, slot=slot, tools=tools_dir(run_dir), limits=settings.limits, data_root=settings.data_root)
    try:
        groups = list(hidden.load().values())
        t = time.perf_counter()
        saved_path = results_dir(course) / f"{student}.json"
        saved = json.loads(saved_path.read_text()) if settings.reuse_checks and saved_path.exists() else None
        if saved and set(saved["groups"]) == {g.grade_id for g in groups}:
            results = {gid: group_result(g) for gid, g in saved["groups"].items()}
        else:
            results = hidden.run_checks(box, groups, budget_scale=settings.budget_scale)
        checks_s = time.perf_counter() - t
        runs = []
        if settings.execute and (settings.execute_students is None or student in settings.execute_students):
            for nb in sorted((course / "autograded" / student / ASSIGNMENT).glob("*.ipynb")):
                if settings.notebooks is None or nb.stem in settings.notebooks:
                    runs.append(run_notebook(box, nb, settings.parameters, settings.cell_timeout,
                                                settings.notebook_budget))
    finally:
        box.close()
        if not settings.keep_sandboxes:
            shutil.rmtree(workdir, ignore_errors=True)
    result = StudentResult(student, results, runs, problems, time.perf_counter() - start, checks_s, box.mode,
                           flags=[str(f) for f in flags])
    if box.mode != "full":
        result.flags.append(WEAK_LOCAL_FLAG.format(level=box.mode))
    return result



# --- the whole run -----------------------------------------------------------------------------

def autograde(source: Path, settings: Settings | None = None, log=print) -> list[StudentResult]:
    settings = settings or Settings()
    course = Path(settings.course).resolve()
    settings.course = course
    level = None
    if not settings.scheduler:   # student code runs here: first of all, the sandbox must hold (Dask: its workers')
        level = isolation()
        log(f"isolation: {level['level']}" + (f" ({level['reason']})" if level["reason"] else ""))
        if level["level"] != "full" and not settings.allow_weak_isolation:
            raise SystemExit(weak_isolation_refusal(level))
    if not (course / "gradebook.db").exists() or not (course / "release" / ASSIGNMENT).is_dir():
        raise SystemExit(f"no released assignment in {course}: run `make release` (python -m grading release) first")
    configured = load_config(course).CourseDirectory.get("root")
    if configured and Path(configured).resolve() != course:
        # A course folder copied by hand still names its old place: nbgrader would grade there.
        raise SystemExit(f"error: {course} is a copy of the course at {configured} (its nbgrader_config.py points "
                         "there, so nbgrader would write that course's gradebook): copy a course with "
                         "grading.nbgrader.course_root.clone(SRC, DEST), or build it in place (python -m grading release)")
    try:
        policy = deadlines.load_policy()
        if settings.roster:
            export.read_roster(settings.roster)       # a bad roster stops the run now, not after grading
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    with ExitStack() as stack:
        if settings.scheduler:  # the workers' isolation is what counts: vetted before anything is written
            cluster = stack.enter_context(Cluster(settings.scheduler, settings.allow_weak_isolation, log))
        else:
            cluster = None
        return _run(source, settings, policy, cluster, log)


WEAK_LOCAL_FLAG = "isolation: graded without full isolation ({level}), allowed by --allow-weak-isolation"


def weak_isolation_refusal(level: dict) -> str:
    """Why student code will not run here, and the two ways on."""
    reason = level["reason"] or "see python -m grading isolation"
    return (f"error: this machine gives sandbox isolation '{level['level']}', not 'full' ({reason}): student "
            "code would run able to read the hidden checks and the reference and to change other submissions. Install bubblewrap (as root: apt-get install bubblewrap; python -m grading isolation "
            "should then say 'level: full'), or pass --allow-weak-isolation to grade anyway (every student "
            "graded so is flagged in grades.csv and the summary)")


def _run(source: Path, settings: Settings, policy, cluster: Cluster | None, log) -> list[StudentResult]:
    """Intake, grading (in the local pool, or on ``cluster``), scores, feedback, grade files."""
    course = settings.course
    log(f"late policy: due {policy.local(policy.due)}, {policy.percent_per_day:g}% per day after "
        f"{policy.grace.total_seconds() / 60:g} minutes' grace, at most {policy.max_percent:g}% ({policy.source})"
        if policy.due else f"late policy: none (no [deadline] due date in {policy.source})")
    t0 = time.perf_counter()
    try:
        intakes = collect(Path(source), course / "submitted", ASSIGNMENT, tz=policy.tz,
                          students=set(settings.students) if settings.students else None)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    for entry in intakes.not_graded:   # entries that are no submission (intake.py): named, never dropped
        log(f"not graded: {entry['entry']}: {entry['reason']}")
    if not intakes:
        raise SystemExit(f"no submissions found in {source}")
    for intake in intakes:
        if intake.left_out:
            log(f"{intake.student}: graded {intake.submission()['source']}, left out {', '.join(intake.left_out)} "
                "(duplicates: the latest wins)")
        if intake.refused:
            log(f"{intake.student}: not graded: {intake.refused}")
    problems = {i.student: list(i.problems) for i in intakes}
    submissions = {i.student: i.submission() for i in intakes}
    phases = {"intake": time.perf_counter() - t0}
    t = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="hw4-grading-"))
    os.chmod(run_dir, 0o711)  # sandbox uids may traverse to their own (mode 700) folder, nothing more
    results: list[StudentResult] = []
    try:
        with ProcessPoolExecutor(max_workers=max(1, settings.workers), mp_context=get_context("spawn")) as pool:
            # Submissions whose notebooks run are the long jobs: start them first, so that the other
            # workers grade the rest meanwhile instead of waiting on one long job at the end.
            executes = settings.execute and settings.execute_students is not None
            order = sorted(intakes, key=lambda i: executes and i.student not in settings.execute_students)
            if cluster is not None:  # this pool prepares, the Dask workers grade (distribute.py)
                results = cluster.grade([i.student for i in order], settings, problems, run_dir, pool,
                                        prepare=prepare, grade=grade_submission)
            else:
                futures = {pool.submit(grade_submission, i.student, slot, settings, run_dir, problems[i.student]):
                           i.student for slot, i in enumerate(order, start=1)}
                bar = progress(total=len(futures), desc="autograde", unit="submission")
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update(1)
                bar.close()
            results.sort(key=lambda r: r.student)
            phases["nbgrader and sandboxed grading"] = time.perf_counter() - t
            t = time.perf_counter()
            for result in results:
                result.submission = submissions[result.student]
                missing = record_scores(course, result)
                if missing:
                    result.problems.append(f"not in the gradebook (notebook missing or unreadable): "
                                           f"{', '.join(missing)}; their code points count in grades.csv")
                save_result(course, result)
            phases["gradebook"] = time.perf_counter() - t
            t = time.perf_counter()
            if settings.feedback:
                feedback.generate(course, [r.student for r in results], pool=pool, nbgrader=settings.nbgrader_feedback)
            phases["feedback"] = time.perf_counter() - t
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    t = time.perf_counter()
    written = export.write(course, settings.exports, roster=settings.roster,
                           canvas_assignment=settings.canvas_assignment, log=log)
    summary = feedback.class_summary(course)
    phases["csv and summary"] = time.perf_counter() - t
    log("time per phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    where = f"{len(cluster.profiles)} Dask worker(s) at {cluster.address}" if cluster else \
        f"{settings.workers} worker(s)"
    log(f"graded {len(results)} submission(s) in {time.perf_counter() - t0:.1f} s "
        f"({where}); grades: {', '.join(map(str, written.values()))}; summary: {summary}")
    return results
