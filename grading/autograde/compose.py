"""Composing the submission the sandbox sees, after nbgrader has sanitized its notebooks.

:func:`sanitize` first puts the release's nbgrader cell metadata back, recording the student's edits of
it and of locked cells (grading/autograde/metadata.py), then runs nbgrader's autograde *without
execution* (trusted: restores edited locked cells, re-adds deleted test cells, records the submission);
:func:`compose` then assembles, in a private folder, the student's files with the kit's given modules
reset to the kit's version (the student modules are kept, as nbgrader does with
``Autograde.exclude_overwriting``) and the sanitized notebooks; :func:`tools_dir` holds the scripts the
sandbox runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..nbgrader.course_root import ASSIGNMENT, load_config, run_converter, student_modules
from . import metadata
from .notebooks import keep_saved_outputs
from .isolation import BLOCKER
from .sandbox import copy_regular_files

__all__ = ["SANDBOX_SCRIPTS", "sanitize", "compose", "tools_dir"]

SANDBOX_SCRIPTS = ("sandbox_runner.py", "sandbox_exec.py", "protocol.py")
HERE = Path(__file__).resolve().parent
# The __init__.py of a package hidden from a sandbox (isolation.py mounts it in the package's place).
BLOCKED_PACKAGE = (
    'raise ImportError(f"{__name__} cannot be imported here: this question is graded NumPy only (the course\'s '
    'policy), so its code runs where PyTorch and the other frameworks are not installed")\n')


def sanitize(course: Path, student: str) -> list[str]:
    """The nbgrader metadata and locked cells of the submitted notebooks checked against the release,
    edits undone and recorded (:func:`metadata.restore_submission`: nbgrader would fail on a cell
    claiming a grade id it does not know, and would restore an edited locked cell without a word);
    then nbgrader autograde without execution (restore locked cells, re-add deleted ones, record the
    submission), then the student's saved outputs, which nbgrader clears, put back as data
    (:func:`notebooks.keep_saved_outputs`). Return problems; the flags for the instructor among them
    are :class:`metadata.Flag` (job.py moves them to the result's flags). Workers run it concurrently:
    its gradebook transactions are short."""
    course = Path(course)
    changes = metadata.restore_submission(course / "submitted" / student / ASSIGNMENT,
                                          course / "release" / ASSIGNMENT)
    found = [*metadata.flags(changes), *metadata.details(changes)]
    res = run_converter("autograde", course, student=student, config=load_config(course))
    keep_saved_outputs(course, student)
    if res["success"]:
        return found
    return [*found, (f"nbgrader could not process the notebooks ({_nbgrader_error(res)}): none of them was "
                     "autograded, so formgrader shows none")]


def _nbgrader_error(res: dict) -> str:
    """The exception behind a failed nbgrader run: the last line of the last traceback in its log (its own
    error only says "see the traceback above"), else the last line of its error."""
    log = res.get("log") or ""
    at = log.rfind("Traceback (most recent call last):")
    lines = []
    for line in log[at:].splitlines()[1:] if at >= 0 else []:
        if line.startswith("["):      # the next log record
            break
        lines.append(line.strip())
    last = [line for line in lines if line][-1:] or (res.get("error") or "").strip().splitlines()[-1:]
    return last[0].strip()[:300] if last else "no error message"


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


def tools_dir(run_dir: Path) -> Path:
    tools = run_dir / "tools"
    if not tools.exists():
        tools.mkdir()
        for name in SANDBOX_SCRIPTS:
            shutil.copyfile(HERE / name, tools / name)
        (tools / BLOCKER).write_text(BLOCKED_PACKAGE)
        for p in [tools, *tools.iterdir()]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return tools
