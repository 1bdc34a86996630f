"""The student's journey, walked: from the release, the assigned tasks are filled in one at a time (from
the reference) in the order the notebooks ask for them, and the notebooks run in the quick profile
after each step.

At every step each notebook either runs clean or stops at a stub of a task not yet done, whose message
names that task, its points and its check; a stub that no task names is never reached; a notebook's stop
only moves forward; when every task is done, every notebook runs clean and the autograder gives the
submission every code point.

A notebook runs again only after the step that fills the task it stopped at: before its stop it ran
nothing the other steps change, so its stop stays where it was (each run is deterministic, seed 0).
"""

from __future__ import annotations

import re
import shutil

import nbformat
import papermill
import pytest

from course.execute import execute
from course.paths import HWLIB, REPO
from course.registry import load as load_registry
from grading.nbgrader.course_root import clone
from grading.release.strip import stub_messages, strip_source, student_modules

from .test_grading_release import shared_release

REGISTRY = load_registry()
STUB = re.compile(r"NotImplementedError: (\S+) is yours to write \((Q\d+): ")


def _short(function: str) -> str:
    """How a notebook names a function: ``SoftmaxClassifier.__init__`` -> ``SoftmaxClassifier``."""
    return function.split(".")[0]


def ask_order(folder) -> list:
    """The assigned tasks in the order the released notebooks ask for them: the first Markdown cell
    saying **Implement** next to one of the task's functions (notebook order, then cell order)."""
    where = {}
    for nb_index, stem in enumerate(REGISTRY.notebooks):
        nb = nbformat.read(folder / f"{stem}.ipynb", as_version=4)
        for cell_index, cell in enumerate(nb.cells):
            if cell.cell_type != "markdown" or "**Implement**" not in cell.source:
                continue
            for task in REGISTRY.tasks:
                if (task.question, task.name) not in where and any(f"`{_short(f)}" in cell.source for f in task.functions):
                    where[(task.question, task.name)] = (nb_index, cell_index)
    missing = [t.name for t in REGISTRY.tasks if (t.question, t.name) not in where]
    assert not missing, f"no notebook asks for the task(s) {missing} with an **Implement** cell"
    return sorted(REGISTRY.tasks, key=lambda t: where[(t.question, t.name)])


def write_hwlib(folder, done: set) -> None:
    """The student's modules of ``folder`` with the tasks in ``done`` (their functions) filled in."""
    given = set(REGISTRY.given) | done
    messages = stub_messages(REGISTRY)
    for path in student_modules(HWLIB):
        target = folder / path.relative_to(REPO)
        target.write_text(strip_source(path.read_text(), str(path), messages, given))


def run(folder, stem: str, out) -> tuple | None:
    """Run a notebook of ``folder`` (quick profile, embedded data); None when it runs clean, else
    (the function whose stub stopped it, its question, the index of the failing cell)."""
    params = {"profile": "quick", "seed": 0, "data_root": str(folder / "no-data")}
    try:
        execute(folder / f"{stem}.ipynb", out / f"{stem}.ipynb", params, timeout=900, quiet=True)
        return None
    except papermill.PapermillExecutionError as exc:
        text = f"{exc.ename}: {exc.evalue}"
        match = STUB.search(text)
        assert match, f"{stem} stopped on something other than a task's stub (cell {exc.cell_index}): {text[:500]}"
        return match.group(1), match.group(2), exc.cell_index


@pytest.mark.slow
def test_journey_from_release_to_full_points(tmp_path_factory, tmp_path):
    shared = shared_release(tmp_path_factory)
    folder = tmp_path / "hw4"
    shutil.copytree(shared["folder"], folder)
    (folder / "no-data").mkdir()
    order = ask_order(folder)
    owner = {f: t for t in order for f in t.functions}
    done: set = set()
    stops = {}
    write_hwlib(folder, done)
    for stem in REGISTRY.notebooks:
        stops[stem] = run(folder, stem, tmp_path / "runs")
    print("stops at the start:", stops)
    for task in order:
        # The notebooks stop at unfinished tasks only, each the first one it reaches.
        for stem, stop in stops.items():
            if stop is not None:
                function, question, _ = stop
                assert function in owner, f"{stem} reached a stub that no assigned task names: {function}"
                assert owner[function].question == question, (stem, function, question)
                assert not set(owner[function].functions) <= done, f"{stem} stopped at {function}, already done"
        done |= set(task.functions)
        write_hwlib(folder, done)
        for stem, stop in list(stops.items()):
            if stop is not None and stop[0] in task.functions:
                stops[stem] = new = run(folder, stem, tmp_path / "runs")
                print(f"after {task.question} {task.name}: {stem} -> {new}")
                if new is not None:
                    assert new[2] >= stop[2], f"{stem}: after {task.name} it stopped earlier ({new}) than before ({stop})"
    assert all(stop is None for stop in stops.values()), {s: v for s, v in stops.items() if v is not None}

    # The finished homework, submitted: every autograded point.
    from grading.autograde.job import Settings, autograde
    course = clone(shared["course"], tmp_path / "course")
    submissions = tmp_path / "submissions"
    shutil.copytree(folder, submissions / "journey" / "hw4", ignore=shutil.ignore_patterns("no-data"))
    results = autograde(submissions, Settings(course=course, workers=1, execute=False, nbgrader_feedback=False),
                        log=lambda *a: None)
    [result] = results
    auto = {gid: c.points for gid, c in REGISTRY.cells.items() if c.graded == "auto"}
    got = {gid: g.points if hasattr(g, "points") else g["points"] for gid, g in result.groups.items()}
    assert got == auto, {gid: (got.get(gid), p) for gid, p in auto.items() if got.get(gid) != p}
