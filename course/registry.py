"""The question registry: one course description, read from ``course/course.toml`` and
``course/questions/*.toml`` (one file per question, in file-name order).

A question names its title and points (and parts), the **tasks** the student writes (functions that
hold solution regions, and the autograded cell awarding their points), its graded **cells** (grade_id
-> notebook, part, points, graded by hand or automatically) and, for each autograded cell, its
**hidden checks** (a check target of :mod:`hwlib.check`, a time budget, the cases). Everything that
lists questions derives from it: the nbgrader course, the release and its README, the autograder,
grades.csv, the sample submissions and the tests.

``load()`` checks what a typo would break: parts that do not add up, unknown graded kinds, a cell
listed twice, a task pointing at no autograded cell of its question, hidden checks of a cell that is
not autograded, and case points that do not add up to their cell's points.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .paths import COURSE_PACKAGE, NOTEBOOKS

__all__ = ["Question", "Task", "Cell", "Registry", "RegistryError", "load", "graded_cells"]


class RegistryError(ValueError):
    """The course description is inconsistent (the message names the file and the entry)."""


@dataclass(frozen=True)
class Task:
    name: str                          # "fc"
    question: str                      # "Q1"
    module: str                        # "hwlib/layers.py" (relative to the repository)
    functions: tuple[str, ...]         # "fc_forward", "SoftmaxClassifier.loss", ...
    cell: str                          # grade_id of the autograded cell awarding its points


@dataclass(frozen=True)
class Cell:
    grade_id: str
    notebook: str                      # notebook stem, e.g. "01_layers"
    question: str
    part: str
    points: float
    graded: str                        # "manual" or "auto"


@dataclass(frozen=True)
class Question:
    name: str                          # "Q1"
    title: str
    points: float
    parts: dict = field(default_factory=dict)      # part -> points (optional)
    extra_credit: bool = False
    source: str = ""                   # its file, relative to the repository


@dataclass(frozen=True)
class Registry:
    assignment: str
    title: str
    questions: dict                    # name -> Question, in order
    cells: dict                        # grade_id -> Cell, questions in order, cells in file order
    tasks: tuple                       # Task, in order
    hidden: dict                       # grade_id -> the cell's hidden checks, as written (a dict)

    def cells_of(self, question: str) -> list[Cell]:
        return [c for c in self.cells.values() if c.question == question]

    def notebooks_of(self, question: str) -> list[str]:
        return sorted({c.notebook for c in self.cells_of(question)})

    @property
    def notebooks(self) -> list[str]:
        """Every notebook stem of the course, in order (``01_layers`` ...)."""
        return sorted({c.notebook for c in self.cells.values()})

    @property
    def notebook_paths(self) -> list[Path]:
        """The course notebooks' files (``notebooks/01_layers.ipynb`` ...), in order."""
        return [NOTEBOOKS / f"{stem}.ipynb" for stem in self.notebooks]

    @property
    def auto_cells(self) -> list[Cell]:
        return [c for c in self.cells.values() if c.graded == "auto"]

    @property
    def max_total(self) -> float:
        """Full marks without the extra credit."""
        return sum(q.points for q in self.questions.values() if not q.extra_credit)

    def tasks_of(self, question: str) -> list[Task]:
        return [t for t in self.tasks if t.question == question]


def _question(path: Path, data: dict, cells: dict, tasks: list, hidden: dict) -> Question:
    where = path.name
    try:
        name, title, points = data["id"], data["title"], data["points"]
    except KeyError as exc:
        raise RegistryError(f"{where}: missing key {exc.args[0]!r} (every question has id, title, points)") from None
    parts = dict(data.get("parts", {}))
    if parts and sum(parts.values()) != points:
        raise RegistryError(f"{where}: the parts of {name} add up to {sum(parts.values())}, not {points}")
    for grade_id, c in data.get("cells", {}).items():
        if grade_id in cells:
            raise RegistryError(f"{where}: cell {grade_id} is already listed by {cells[grade_id].question}")
        if c.get("graded") not in ("manual", "auto"):
            raise RegistryError(f"{where}: cell {grade_id}: graded must be 'manual' or 'auto', got {c.get('graded')!r}")
        cells[grade_id] = Cell(grade_id, c["notebook"], name, c.get("part", ""), c["points"], c["graded"])
    for task_name, t in data.get("tasks", {}).items():
        cell = cells.get(t["cell"])
        if cell is None or cell.question != name or cell.graded != "auto":
            raise RegistryError(f"{where}: task {task_name} names cell {t['cell']!r}, which is not an autograded "
                                f"cell of {name}")
        tasks.append(Task(task_name, name, t["module"], tuple(t["functions"]), t["cell"]))
    for grade_id, h in data.get("hidden", {}).items():
        cell = cells.get(grade_id)
        if cell is None or cell.question != name or cell.graded != "auto":
            raise RegistryError(f"{where}: hidden checks for {grade_id!r}, which is not an autograded cell of {name}")
        total = sum(case["points"] for case in h.get("cases", []))
        if total != cell.points:
            raise RegistryError(f"{where}: the hidden cases of {grade_id} are worth {total} points; the cell is "
                                f"worth {cell.points}")
        hidden[grade_id] = {**h, "question": name}
    return Question(name, title, points, parts, bool(data.get("extra_credit", False)), f"course/questions/{where}")


def load(folder: Path = COURSE_PACKAGE) -> Registry:
    """Read and check the course description in ``folder`` (``course.toml`` + ``questions/*.toml``)."""
    folder = Path(folder)
    head = tomllib.loads((folder / "course.toml").read_text())
    questions, cells, tasks, hidden = {}, {}, [], {}
    for path in sorted((folder / "questions").glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path.name}: not valid TOML: {exc}") from None
        question = _question(path, data, cells, tasks, hidden)
        if question.name in questions:
            raise RegistryError(f"{path.name}: question {question.name} is already defined by "
                                f"{questions[question.name].source}")
        questions[question.name] = question
    for cell in cells.values():
        if cell.graded == "auto" and cell.grade_id not in hidden:
            raise RegistryError(f"{cell.question}: autograded cell {cell.grade_id} has no hidden checks "
                                f"(add [hidden.{cell.grade_id}] to its question's file)")
    return Registry(head["assignment"], head.get("title", ""), questions, cells, tuple(tasks), hidden)


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
