"""Point weights of HW4, read from ``grading/points.toml`` (the single source of truth).

``load()`` gives the questions (Q1 ... Q6, with their points and parts) and the graded cells
(grade_id -> notebook, question, part, points, manual or auto). ``graded_cells(notebook)`` reads the
nbgrader metadata of a notebook, so tests and the autograder can hold the two against each other.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

__all__ = ["POINTS_FILE", "Question", "Cell", "Points", "load", "graded_cells"]

POINTS_FILE = Path(__file__).with_name("points.toml")


@dataclass(frozen=True)
class Question:
    name: str                      # "Q1"
    title: str
    points: float
    parts: dict = field(default_factory=dict)   # part -> points (optional)
    extra_credit: bool = False


@dataclass(frozen=True)
class Cell:
    grade_id: str
    notebook: str                  # notebook stem, e.g. "01_layers"
    question: str
    part: str
    points: float
    graded: str                    # "manual" or "auto"


@dataclass(frozen=True)
class Points:
    assignment: str
    questions: dict                # name -> Question, in order
    cells: dict                    # grade_id -> Cell, in file order

    def cells_of(self, question: str) -> list[Cell]:
        return [c for c in self.cells.values() if c.question == question]

    def notebooks_of(self, question: str) -> list[str]:
        return sorted({c.notebook for c in self.cells_of(question)})

    @property
    def max_total(self) -> float:
        """Full marks without the extra credit."""
        return sum(q.points for q in self.questions.values() if not q.extra_credit)


def load(path: Path = POINTS_FILE) -> Points:
    """Parse and sanity-check the points file (unknown questions, bad kinds, parts that do not add up)."""
    data = tomllib.loads(Path(path).read_text())
    questions = {}
    for name, q in data["questions"].items():
        questions[name] = Question(name, q["title"], q["points"], dict(q.get("parts", {})), bool(q.get("extra_credit", False)))
        if questions[name].parts and sum(questions[name].parts.values()) != q["points"]:
            raise ValueError(f"{path}: parts of {name} add up to {sum(q['parts'].values())}, not {q['points']}")
    cells = {}
    for grade_id, c in data.get("cells", {}).items():
        if c["question"] not in questions:
            raise ValueError(f"{path}: cell {grade_id} names unknown question {c['question']!r}")
        if c["graded"] not in ("manual", "auto"):
            raise ValueError(f"{path}: cell {grade_id}: graded must be 'manual' or 'auto', got {c['graded']!r}")
        cells[grade_id] = Cell(grade_id, c["notebook"], c["question"], c.get("part", ""), c["points"], c["graded"])
    return Points(data["assignment"], questions, cells)


def graded_cells(notebook: Path) -> dict[str, tuple[float, str]]:
    """grade_id -> (points, "manual" | "auto") for the graded cells of a notebook's nbgrader metadata.

    A graded Markdown cell, or a graded code cell the student writes (solution), is graded by hand;
    a graded code cell that is not a solution (a locked test cell) is autograded.
    """
    nb = nbformat.read(notebook, as_version=4)
    found = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("grade"):
            continue
        auto = cell.cell_type == "code" and not meta.get("solution")
        found[meta["grade_id"]] = (meta.get("points", 0), "auto" if auto else "manual")
    return found
