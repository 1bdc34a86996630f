"""``python -m grading autograde DIR``: grade a folder of submissions, each in its own sandbox.

For every submission (nbgrader's ``submitted/<student>/hw4/`` layout, or per-student zips):

1. **intake** (trusted, main process): a safe copy into ``build/course/submitted/<student>/hw4/``
   (grading/intake.py);
2. **in a worker process per submission, in parallel** (default 2 workers):
   a. nbgrader autograde *without execution* (trusted): restores edited locked cells, re-adds
      deleted test cells, records the submission and its manually graded cells in the gradebook
      (nbgrader's own Execute is switched off in grading/nbgrader_config.py);
   b. the submission is composed in a private folder: the student's files, with the kit's given
      modules reset to the kit's version (the student modules are kept, as nbgrader does with
      ``Autograde.exclude_overwriting``);
   c. the hidden checks (grading/hidden.py): inputs drawn here, the student's functions run in the
      sandbox (grading/sandbox.py), outputs compared here;
   d. the notebooks run in the sandbox too (grading/sandbox_exec.py: per-cell timeout, a budget per
      notebook), for the TA and the feedback; their outputs are merged back into the autograded
      notebooks as data;
3. **scores** (trusted, main process): the points of every autograded test cell are set in the
   gradebook from the hidden checks; the derivations wait for the TA (formgrader);
4. **outputs**: nbgrader feedback plus ``grading_report.html`` per student (in the workers),
   ``grades.csv`` and the class summary (``summary.html``), all under the course folder.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nbformat

from hwlib.progress import progress

from . import hidden
from .course import ASSIGNMENT, COURSE, GRADING, load_config, run_converter, student_modules
from .points import load as load_points
from .sandbox import Limits, Sandbox, copy_regular_files, isolation, site_packages

__all__ = ["Settings", "NotebookRun", "StudentResult", "autograde", "grade_submission", "record_scores",
           "load_results", "results_dir"]

SANDBOX_SCRIPTS = ("sandbox_runner.py", "sandbox_exec.py")
ALLOWED_MIME = ("text/plain", "image/png", "image/jpeg", "text/markdown", "text/latex")
MAX_TEXT = 100_000


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


@dataclass
class NotebookRun:
    name: str
    status: str                               # "ok", "timeout", "crash", "error"
    wall_s: float
    message: str = ""


@dataclass
class StudentResult:
    student: str
    groups: dict                              # grade_id -> hidden.GroupResult (as a dict once saved)
    notebooks: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    wall_s: float = 0.0
    checks_s: float = 0.0
    isolation: str = ""


def results_dir(course: Path) -> Path:
    return Path(course) / "results"


# --- composing the submission the sandbox sees -------------------------------------------------

def compose(course: Path, student: str, dest: Path) -> list[str]:
    """The submission as graded: the student's files, the kit's given modules, the sanitized notebooks."""
    submitted = course / "submitted" / student / ASSIGNMENT
    source = course / "source" / ASSIGNMENT
    autograded = course / "autograded" / student / ASSIGNMENT
    dest.mkdir(parents=True, exist_ok=True)
    problems = []
    if submitted.is_dir():
        copy_regular_files(submitted, dest)
    shutil.rmtree(dest / ".invalid", ignore_errors=True)
    keep = set(student_modules(course))
    for path in (source / "hwlib").rglob("*"):
        rel = path.relative_to(source).as_posix()
        if path.is_file() and rel not in keep:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
    for rel in sorted(keep):
        if not (dest / rel).exists():
            problems.append(f"{rel} is missing from the submission")
    for nb in dest.glob("*.ipynb"):
        nb.unlink()
    if autograded.is_dir():
        for nb in autograded.glob("*.ipynb"):
            shutil.copyfile(nb, dest / nb.name)
    return problems


def _tools_dir(run_dir: Path) -> Path:
    tools = run_dir / "tools"
    if not tools.exists():
        tools.mkdir()
        for name in SANDBOX_SCRIPTS:
            shutil.copyfile(GRADING / name, tools / name)
        for p in [tools, *tools.iterdir()]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return tools


# --- notebooks ---------------------------------------------------------------------------------

def parameterize(nb, parameters: dict):
    """A copy of ``nb`` with a cell assigning ``parameters`` after the cell tagged ``parameters``.

    As papermill does (its cell tag, ``injected-parameters``): the notebook's defaults stay visible,
    the grader's values win. Without a tagged cell the assignments go first.
    """
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if not parameters:
        return nb
    lines = ["# Parameters injected by the autograder"] + [f"{k} = {v!r}" for k, v in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
    nb.cells.insert(0 if index is None else index + 1, cell)
    return nb


def _clean_output(out) -> dict | None:
    """An output of the untrusted notebook, rebuilt from plain values (no HTML, no scripts)."""
    kind = out.get("output_type")
    try:
        if kind == "stream":
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else str(text)
            return nbformat.v4.new_output("stream", name="stderr" if out.get("name") == "stderr" else "stdout",
                                          text=text[-MAX_TEXT:])
        if kind in ("display_data", "execute_result"):
            data = {}
            for mime in ALLOWED_MIME:
                if mime in out.get("data", {}):
                    value = out["data"][mime]
                    value = "".join(value) if isinstance(value, list) else str(value)
                    data[mime] = value[: 4 * MAX_TEXT if mime.startswith("image/") else MAX_TEXT]
            if not data:
                return None
            if kind == "execute_result":
                return nbformat.v4.new_output("execute_result", data=data, execution_count=None)
            return nbformat.v4.new_output("display_data", data=data)
        if kind == "error":
            tb = [str(line)[:5000] for line in list(out.get("traceback", []))[:50]]
            return nbformat.v4.new_output("error", ename=str(out.get("ename", ""))[:200],
                                          evalue=str(out.get("evalue", ""))[:5000], traceback=tb)
    except (TypeError, AttributeError):
        return None
    return None


def merge_outputs(trusted, executed) -> int:
    """Copy outputs of ``executed`` into the code cells of ``trusted`` with the same id and source."""
    by_id = {c.get("id"): c for c in executed.get("cells", []) if isinstance(c, dict)}
    merged = 0
    for cell in trusted.cells:
        if cell.cell_type != "code":
            continue
        ex = by_id.get(cell.get("id"))
        source = ex.get("source") if ex is not None else None
        if isinstance(source, list):
            source = "".join(str(s) for s in source)
        if source != cell.source:
            continue
        outs = [o for o in (_clean_output(o) for o in ex.get("outputs", []) if isinstance(o, dict)) if o]
        cell.outputs = outs
        count = ex.get("execution_count")
        cell.execution_count = count if isinstance(count, int) else None
        merged += 1
    return merged


def _run_notebook(box: Sandbox, nb_path: Path, settings: Settings) -> NotebookRun:
    name = nb_path.stem
    trusted = nbformat.read(nb_path, as_version=4)
    params = parameterize(trusted, settings.parameters)
    io_dir = box.workdir / "io"
    io_dir.mkdir(exist_ok=True)
    src, out = io_dir / f"{name}.in.ipynb", io_dir / f"{name}.out.ipynb"
    out.unlink(missing_ok=True)
    nbformat.write(params, src)
    box.refresh()
    argv = box.python("sandbox_exec.py", f"{box.root}/io/{src.name}", f"{box.root}/io/{out.name}",
                      str(settings.cell_timeout), f"{box.root}/submission")
    res = box.run(argv, timeout=settings.notebook_budget, env={"HW4_SITE_PACKAGES": os.pathsep.join(site_packages())},
                  log_dir=box.workdir.parent / f"{box.workdir.name}.{name}.log")
    status, message = "ok", ""
    if res.timed_out:
        status, message = "timeout", f"the notebook ran past its budget of {settings.notebook_budget:.0f} s and was stopped"
    elif res.returncode != 0:
        status, message = "error", f"the notebook runner exited with code {res.returncode}"
    executed = None
    try:
        if out.exists() and out.stat().st_size < 100 << 20:
            executed = json.loads(out.read_text())
    except (OSError, ValueError) as exc:
        status, message = "error", f"the executed notebook could not be read: {exc}"
    if isinstance(executed, dict):
        merge_outputs(params, executed)
        dead = [c for c in params.cells if c.cell_type == "code"
                and any(o.get("ename") == "DeadKernelError" for o in c.outputs)]
        if dead and status == "ok":
            status, message = "crash", "the kernel died while running the notebook (later cells were not run)"
    nbformat.write(params, nb_path)
    return NotebookRun(name, status, res.wall_s, message)


# --- one submission (runs in a worker process) -------------------------------------------------

def sanitize(course: Path, student: str) -> list[str]:
    """nbgrader autograde without execution (restore locked cells, re-add deleted ones, record the
    submission); return problems. Workers run it concurrently: its gradebook transactions are short."""
    res = run_converter("autograde", course, student=student, config=load_config(course))
    if res["success"]:
        return []
    last = (res.get("error") or "").strip().splitlines()[-1:]
    return ["nbgrader could not process the notebooks" + (f": {last[0][:300]}" if last else "")]


def grade_submission(student: str, slot: int, settings: Settings, run_dir: Path, problems: list) -> StudentResult:
    start = time.perf_counter()
    course = Path(settings.course)
    problems = list(problems) + sanitize(course, student)
    workdir = run_dir / student
    problems += compose(course, student, workdir / "submission")
    box = Sandbox(workdir, slot=slot, tools=_tools_dir(run_dir), limits=settings.limits, data_root=settings.data_root)
    try:
        groups = list(hidden.load().values())
        t = time.perf_counter()
        saved_path = results_dir(course) / f"{student}.json"
        saved = json.loads(saved_path.read_text()) if settings.reuse_checks and saved_path.exists() else None
        if saved and set(saved["groups"]) == {g.grade_id for g in groups}:
            results = {gid: _group_result(g) for gid, g in saved["groups"].items()}
        else:
            results = hidden.run_checks(box, groups, budget_scale=settings.budget_scale)
        checks_s = time.perf_counter() - t
        runs = []
        if settings.execute and (settings.execute_students is None or student in settings.execute_students):
            for nb in sorted((course / "autograded" / student / ASSIGNMENT).glob("*.ipynb")):
                if settings.notebooks is None or nb.stem in settings.notebooks:
                    runs.append(_run_notebook(box, nb, settings))
    finally:
        box.close()
        if not settings.keep_sandboxes:
            shutil.rmtree(workdir, ignore_errors=True)
    return StudentResult(student, results, runs, problems, time.perf_counter() - start, checks_s, box.mode)


def _group_result(data: dict) -> hidden.GroupResult:
    """A saved (JSON) group result back as a :class:`hidden.GroupResult`."""
    cases = [hidden.CaseResult(**c) for c in data["cases"]]
    return hidden.GroupResult(**{**data, "cases": cases})


# --- the gradebook -----------------------------------------------------------------------------

def _gradebook(course: Path):
    from nbgrader.api import Gradebook
    config = load_config(course)
    return Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}", config.CourseDirectory.course_id)


def record_scores(course: Path, result: StudentResult) -> list[str]:
    """Set the autograded cells' scores from the hidden checks; return problems (cells not found)."""
    from nbgrader.api import MissingEntry
    points = load_points()
    missing = []
    with _gradebook(course) as gb:
        for cell in points.cells.values():
            if cell.graded != "auto" or cell.grade_id not in result.groups:
                continue
            try:
                grade = gb.find_grade(cell.grade_id, cell.notebook, ASSIGNMENT, result.student)
            except MissingEntry:
                missing.append(cell.grade_id)
                continue
            group = result.groups[cell.grade_id]
            grade.auto_score = group.points if isinstance(group, hidden.GroupResult) else group["points"]
            grade.needs_manual_grade = False
        gb.db.commit()
    return missing


def save_result(course: Path, result: StudentResult) -> None:
    folder = results_dir(course)
    folder.mkdir(parents=True, exist_ok=True)
    data = asdict(result)
    (folder / f"{result.student}.json").write_text(json.dumps(data, indent=1))


def load_results(course: Path) -> dict[str, dict]:
    folder = results_dir(course)
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}


# --- the whole run -----------------------------------------------------------------------------

def autograde(source: Path, settings: Settings | None = None, log=print) -> list[StudentResult]:
    from . import feedback
    from .intake import collect

    settings = settings or Settings()
    course = Path(settings.course).resolve()
    settings.course = course
    if not (course / "gradebook.db").exists() or not (course / "release" / ASSIGNMENT).is_dir():
        raise SystemExit(f"no released assignment in {course}: run `make release` (python -m grading release) first")
    level = isolation()
    log(f"isolation: {level['level']}" + (f" ({level['reason']})" if level["reason"] else ""))
    t0 = time.perf_counter()
    intakes = collect(Path(source), course / "submitted", ASSIGNMENT)
    if not intakes:
        raise SystemExit(f"no submissions found in {source}")
    problems = {i.student: list(i.problems) for i in intakes}
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
            futures = {pool.submit(grade_submission, i.student, slot, settings, run_dir, problems[i.student]): i.student
                       for slot, i in enumerate(order, start=1)}
            bar = progress(total=len(futures), desc="autograde", unit="submission")
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update(1)
            bar.close()
            results.sort(key=lambda r: r.student)
            phases["nbgrader and sandboxed grading"] = time.perf_counter() - t
            t = time.perf_counter()
            for result in results:
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
    csv_path = feedback.export_csv(course)
    summary = feedback.class_summary(course)
    phases["csv and summary"] = time.perf_counter() - t
    log("time per phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    log(f"graded {len(results)} submission(s) in {time.perf_counter() - t0:.1f} s "
        f"({settings.workers} worker(s)); grades: {csv_path}; summary: {summary}")
    return results
