"""The question registry: one course description, read from ``course/course.toml`` and
``course/questions/*.toml`` (one file per question, in file-name order).

A question names its title and points (and parts), the **tasks** the student writes (functions that
hold solution regions, and the autograded cell awarding their points), its graded **cells** (grade_id
-> notebook, part, points, graded by hand or automatically) and, for each autograded cell, its
**hidden checks** (a check target of :mod:`hwlib.check`, a time budget, the cases). Everything that
lists questions derives from it: the nbgrader course, the release and its README, the autograder,
grades.csv, the sample submissions and the tests.

**Profiles** (``[profiles]`` in ``course.toml``) are the assignment's scopes: ``seed``, the default, is
the seed homework exactly; ``extended`` adds the cs231n-style tasks (the RNN layers, the update rules)
and derivations. A profile may also set ``strict_dtypes`` (true: an output whose dtype is not the
inputs' fails its hidden case; false, the default: it keeps its points and the feedback explains the
change; :func:`hwlib.check.judge`). A task, cell or hidden case with ``profiles = [...]`` belongs to those profiles only
(none: to all); ``points`` (of a cell or case), ``functions`` (of a task) and ``parts`` (of a question)
may be a table by profile, ``points = { seed = 5, extended = 3 }``. ``load()`` resolves one profile (the
``profile`` argument, else ``$HW4_COURSE_PROFILE``, else course.toml's ``profile``) into a flat
:class:`Registry`: every consumer sees the assignment as that profile sets it. The task functions of
other profiles that this one does not assign are its ``given`` functions: the release ships their
reference code (a solution region belonging to no task of any profile fails the release).

``load()`` checks what a typo would break: parts that do not add up, unknown graded kinds, a cell
listed twice, a task pointing at no autograded cell of its question, hidden checks of a cell that is
not autograded, case points that do not add up to their cell's points, unknown profiles, a
profile-valued entry that misses the profile being loaded, and a profile setting that is unknown or
of the wrong type.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .paths import COURSE_PACKAGE, NOTEBOOKS

__all__ = ["Question", "Task", "Cell", "Registry", "RegistryError", "load", "profiles", "profile_cells",
           "graded_cells", "PROFILE_ENV", "ONLY_PREFIX", "PROFILE_SETTINGS"]

PROFILE_ENV = "HW4_COURSE_PROFILE"   # overrides course.toml's profile (tests, one-off builds)
ONLY_PREFIX = "only-"                # a notebook cell tagged only-<profile> belongs to that profile


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
    points: float                      # for an extra-credit question: the most extra credit it gives
    graded: str                        # "manual" or "auto"
    extra_credit: bool = False         # its points are extra credit (nbgrader: a 0-point cell, the TA
                                       # enters them as extra credit)

    @property
    def nbgrader_points(self) -> float:
        """The points nbgrader's metadata gives the cell (0 for extra credit: it is not in the max)."""
        return 0 if self.extra_credit else self.points


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
    profile: str = "seed"              # the profile this registry resolves
    profiles: dict = field(default_factory=dict)   # every profile -> its description
    given: tuple = ()                  # task functions of other profiles that this one ships as given code
    strict_dtypes: bool = False        # an output whose dtype is not the inputs' fails its hidden case

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


def _pick(value, profile: str, names: set, where: str):
    """``value``, or its entry for ``profile`` when it is a table by profile."""
    if isinstance(value, dict) and value and set(value) <= names:
        if profile not in value:
            raise RegistryError(f"{where}: no value for profile {profile!r} (it gives {sorted(value)})")
        return value[profile]
    return value


def _member(entry: dict, profile: str, names: set, where: str) -> bool:
    """Whether ``entry`` (a task, cell or case) belongs to ``profile``."""
    chosen = entry.get("profiles")
    if chosen is None:
        return True
    unknown = sorted(set(chosen) - names)
    if unknown:
        raise RegistryError(f"{where}: unknown profile(s) {unknown}; course.toml defines {sorted(names)}")
    return profile in chosen


def _question(path: Path, data: dict, cells: dict, tasks: list, hidden: dict, profile: str, names: set) -> Question:
    where = path.name
    try:
        name, title, points = data["id"], data["title"], data["points"]
    except KeyError as exc:
        raise RegistryError(f"{where}: missing key {exc.args[0]!r} (every question has id, title, points)") from None
    extra = bool(data.get("extra_credit", False))
    parts = dict(_pick(data.get("parts", {}), profile, names, f"{where}: parts"))
    if parts and sum(parts.values()) != points:
        raise RegistryError(f"{where}: the parts of {name} add up to {sum(parts.values())}, not {points}")
    for grade_id, c in data.get("cells", {}).items():
        if not _member(c, profile, names, f"{where}: cell {grade_id}"):
            continue
        if grade_id in cells:
            raise RegistryError(f"{where}: cell {grade_id} is already listed by {cells[grade_id].question}")
        if c.get("graded") not in ("manual", "auto"):
            raise RegistryError(f"{where}: cell {grade_id}: graded must be 'manual' or 'auto', got {c.get('graded')!r}")
        cell_points = _pick(c["points"], profile, names, f"{where}: cell {grade_id}: points")
        cells[grade_id] = Cell(grade_id, c["notebook"], name, c.get("part", ""), cell_points, c["graded"], extra)
    for task_name, t in data.get("tasks", {}).items():
        if not _member(t, profile, names, f"{where}: task {task_name}"):
            continue
        cell = cells.get(t["cell"])
        if cell is None or cell.question != name or cell.graded != "auto":
            raise RegistryError(f"{where}: task {task_name} names cell {t['cell']!r}, which is not an autograded "
                                f"cell of {name} in profile {profile!r}")
        functions = _pick(t["functions"], profile, names, f"{where}: task {task_name}: functions")
        tasks.append(Task(task_name, name, t["module"], tuple(functions), t["cell"]))
    for grade_id, h in data.get("hidden", {}).items():
        cell = cells.get(grade_id)
        if cell is None and grade_id in data.get("cells", {}):
            continue                      # the cell is not in this profile
        if cell is None or cell.question != name or cell.graded != "auto":
            raise RegistryError(f"{where}: hidden checks for {grade_id!r}, which is not an autograded cell of {name}")
        cases = [{**case, "points": _pick(case["points"], profile, names, f"{where}: {grade_id}/{case.get('id')}")}
                 for case in h.get("cases", []) if _member(case, profile, names, f"{where}: {grade_id}/{case.get('id')}")]
        cases = [{k: v for k, v in case.items() if k != "profiles"} for case in cases]
        total = sum(case["points"] for case in cases)
        if total != cell.points:
            raise RegistryError(f"{where}: the hidden cases of {grade_id} are worth {total} points in profile "
                                f"{profile!r}; the cell is worth {cell.points}")
        hidden[grade_id] = {**h, "cases": cases, "question": name}
    return Question(name, title, points, parts, extra, f"course/questions/{where}")


def _all_task_functions(datas: list, names: set) -> set:
    """Every function any task of any profile names."""
    found = set()
    for data in datas:
        for t in data.get("tasks", {}).values():
            value = t.get("functions", [])
            for functions in (value.values() if isinstance(value, dict) and set(value) <= names else [value]):
                found.update(functions)
    return found


# What a [profiles.<name>] table of course.toml may set, and its type.
PROFILE_SETTINGS = {"description": str, "strict_dtypes": bool}


def _settings(head: dict) -> dict:
    """Every profile's settings (name -> table), checked against :data:`PROFILE_SETTINGS`."""
    found = head.get("profiles", {})
    for name, table in found.items():
        if not isinstance(table, dict):
            raise RegistryError(f"course.toml: profiles.{name} must be a table ([profiles.{name}])")
        for key, value in table.items():
            kind = PROFILE_SETTINGS.get(key)
            if kind is None:
                raise RegistryError(f"course.toml: [profiles.{name}] sets {key!r}, which is not a profile setting "
                                    f"(expected one of {', '.join(PROFILE_SETTINGS)})")
            if not isinstance(value, kind):
                raise RegistryError(f"course.toml: [profiles.{name}] {key} must be "
                                    f"{'true or false' if kind is bool else 'a string'}; got {value!r}")
    return found


def profiles(folder: Path = COURSE_PACKAGE) -> tuple[dict, str]:
    """The course's profiles (name -> description) and its default profile, from ``course.toml``."""
    head = tomllib.loads((Path(folder) / "course.toml").read_text())
    _settings(head)
    defined = {name: p.get("description", "") for name, p in head.get("profiles", {}).items()} or {"seed": ""}
    default = head.get("profile", next(iter(defined)))
    if default not in defined:
        raise RegistryError(f"course.toml: profile = {default!r} is not one of its [profiles] {sorted(defined)}")
    return defined, default


def load(folder: Path = COURSE_PACKAGE, profile: str | None = None) -> Registry:
    """Read and check the course description in ``folder`` (``course.toml`` + ``questions/*.toml``),
    resolved for ``profile`` (None: ``$HW4_COURSE_PROFILE``, else course.toml's ``profile``)."""
    folder = Path(folder)
    head = tomllib.loads((folder / "course.toml").read_text())
    defined, default = profiles(folder)
    profile = profile or os.environ.get(PROFILE_ENV) or default
    if profile not in defined:
        raise RegistryError(f"profile {profile!r} is not defined; course.toml defines {sorted(defined)} "
                            f"(set course.toml's profile or ${PROFILE_ENV} to one of them)")
    names = set(defined)
    questions, cells, tasks, hidden, datas = {}, {}, [], {}, []
    for path in sorted((folder / "questions").glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"{path.name}: not valid TOML: {exc}") from None
        datas.append(data)
        question = _question(path, data, cells, tasks, hidden, profile, names)
        if question.name in questions:
            raise RegistryError(f"{path.name}: question {question.name} is already defined by "
                                f"{questions[question.name].source}")
        questions[question.name] = question
    for cell in cells.values():
        if cell.graded == "auto" and cell.grade_id not in hidden:
            raise RegistryError(f"{cell.question}: autograded cell {cell.grade_id} has no hidden checks "
                                f"(add [hidden.{cell.grade_id}] to its question's file)")
    for q in questions.values():
        total = sum(c.points for c in cells.values() if c.question == q.name)
        if cells and total != q.points and any(c.question == q.name for c in cells.values()):
            raise RegistryError(f"{q.source}: the cells of {q.name} are worth {total:g} points in profile "
                                f"{profile!r}; the question is worth {q.points:g}")
    assigned = {f for t in tasks for f in t.functions}
    given = tuple(sorted(_all_task_functions(datas, names) - assigned))
    strict = _settings(head).get(profile, {}).get("strict_dtypes", False)
    return Registry(head["assignment"], head.get("title", ""), questions, cells, tuple(tasks), hidden,
                    profile, defined, given, strict)


def profile_cells(nb, registry: Registry):
    """``nb`` (an nbformat notebook, changed in place and returned) as ``registry``'s profile has it: no
    cell tagged ``only-<profile>`` of another profile (the text and checks of tasks this profile does
    not assign, or says differently), no graded cell the profile does not list, and every graded
    cell's nbgrader points the profile's (0 for extra credit: it is entered as extra credit, out of
    nbgrader's maximum)."""
    others = {ONLY_PREFIX + name for name in registry.profiles if name != registry.profile}
    kept = []
    for cell in nb.cells:
        if set(cell.metadata.get("tags", [])) & others:
            continue
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            listed = registry.cells.get(meta.get("grade_id"))
            if listed is None:
                continue
            meta["points"] = listed.nbgrader_points
        kept.append(cell)
    nb.cells = kept
    return nb


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
