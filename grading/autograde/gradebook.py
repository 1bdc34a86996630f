"""The gradebook side of a run: what a submission's grading produced, saved and recorded.

* :class:`StudentResult` (with its notebook runs, :class:`NotebookRun`): the hidden checks' group results, the
  notebook runs and the problems of one submission; saved as ``<course>/results/<student>.json``;
* :func:`record_scores`: the autograded cells' scores set in nbgrader's gradebook from the hidden checks;
* :func:`gradebook`: nbgrader's gradebook of the course, opened with the course's configuration.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from course.registry import load as load_registry

from ..nbgrader.course_root import ASSIGNMENT, load_config
from . import hidden

__all__ = ["NotebookRun", "StudentResult", "results_dir", "gradebook", "record_scores", "save_result",
           "load_results", "group_result"]


@dataclass
class NotebookRun:
    name: str
    status: str                               # "ok", "timeout", "crash", "error"
    wall_s: float
    message: str = ""
    headlines: list = field(default_factory=list)   # rerun.Headline dicts: saved against re-run, with verdicts


@dataclass
class StudentResult:
    student: str
    groups: dict                              # grade_id -> hidden.GroupResult (as a dict once saved)
    notebooks: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    wall_s: float = 0.0
    checks_s: float = 0.0
    isolation: str = ""
    submission: dict = field(default_factory=dict)  # intake's record: submitted_at (ISO, UTC), time_source,
                                                    # lms_late, source (the file graded); see deadlines.py
    flags: list = field(default_factory=list)       # policy flags for the instructor (counted in the summary)


def results_dir(course: Path) -> Path:
    return Path(course) / "results"


def gradebook(course: Path):
    from nbgrader.api import Gradebook
    config = load_config(course)
    return Gradebook(f"sqlite:///{Path(course) / 'gradebook.db'}", config.CourseDirectory.course_id)


def record_scores(course: Path, result: StudentResult) -> list[str]:
    """Set the autograded cells' scores from the hidden checks; return problems (cells not found)."""
    from nbgrader.api import MissingEntry
    points = load_registry()
    missing = []
    with gradebook(course) as gb:
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



def group_result(data: dict) -> hidden.GroupResult:
    """A saved (JSON) group result back as a :class:`hidden.GroupResult`."""
    cases = [hidden.CaseResult(**c) for c in data["cases"]]
    return hidden.GroupResult(**{**data, "cases": cases})
