"""The question registry (course/registry.py): tasks match the solution regions of hwlib, a broken
description fails with a message naming the file and the entry, and the release README lists it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from course.paths import COURSE_PACKAGE, REPO
from course.registry import RegistryError, load, profiles
from grading.release.build import student_readme
from grading.release.strip import region_functions

REGISTRY = load()


def test_tasks_are_exactly_the_solution_regions_of_hwlib():
    """Every function holding a solution region is a task of some question, and every task's
    function holds one: no stub reaches students that no question announces and grades."""
    regions = set()
    for path in sorted((REPO / "hwlib").rglob("*.py")):
        for function in region_functions(path.read_text(), str(path)):
            regions.add((path.relative_to(REPO).as_posix(), function))
    tasks = {(t.module, f) for name in profiles()[0] for t in load(profile=name).tasks for f in t.functions}
    assert not regions - tasks, f"solution regions no task of course/questions/*.toml names: {sorted(regions - tasks)}"
    assert not tasks - regions, f"tasks without a solution region in hwlib: {sorted(tasks - regions)}"


def test_every_task_is_awarded_by_an_autograded_cell_of_its_question():
    for task in REGISTRY.tasks:
        cell = REGISTRY.cells[task.cell]
        assert cell.question == task.question and cell.graded == "auto", task


def test_notebooks_and_questions_come_in_order():
    assert list(REGISTRY.questions) == sorted(REGISTRY.questions, key=lambda q: int(q[1:]))
    assert [p.name for p in REGISTRY.notebook_paths] == sorted(p.name for p in REGISTRY.notebook_paths)
    assert all(p.exists() for p in REGISTRY.notebook_paths)


def test_the_release_readme_lists_every_question_and_task():
    readme = student_readme(REGISTRY)
    for name, question in REGISTRY.questions.items():
        assert f"| {name} {question.title} |" in readme
    for task in REGISTRY.tasks:
        for function in task.functions:
            assert f"`{function}`" in readme
    assert "<!--" not in readme


# --- a broken description fails loudly --------------------------------------------------------------

@pytest.fixture
def description(tmp_path) -> Path:
    folder = tmp_path / "course"
    folder.mkdir()
    shutil.copy2(COURSE_PACKAGE / "course.toml", folder / "course.toml")
    shutil.copytree(COURSE_PACKAGE / "questions", folder / "questions")
    return folder


def _edit(folder: Path, name: str, old: str, new: str) -> None:
    path = folder / "questions" / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_the_copied_description_loads(description):
    assert load(description) == REGISTRY


@pytest.mark.parametrize("name, old, new, message", [
    ("q1_layers.toml", "parts = { fc = 15, relu = 5 }", "parts = { fc = 15, relu = 4 }",
     "q1_layers.toml: the parts of Q1 add up to 19, not 20"),
    ("q1_layers.toml", 'points = 10, graded = "auto"', 'points = 10, graded = "machine"',
     "q1_layers.toml: cell q1-fc-test: graded must be 'manual' or 'auto', got 'machine'"),
    ("q1_layers.toml", 'cell = "q1-fc-test"', 'cell = "q1-fc-derivation"',
     "q1_layers.toml: task fc names cell 'q1-fc-derivation', which is not an autograded cell of Q1"),
    ("q1_layers.toml", "seed = 5101, points = 3", "seed = 5101, points = 4",
     "q1_layers.toml: the hidden cases of q1-fc-test are worth 11 points in profile 'seed'; the cell is worth 10"),
    ("q1_layers.toml", "[hidden.q1-relu-test]", "[hidden.q1-relu-derivation]",
     "hidden checks for 'q1-relu-derivation', which is not an autograded cell of Q1"),
    ("q2_softmax_mnist.toml", 'q2-report = {', 'q1-fc-test = {', "cell q1-fc-test is already listed by Q1"),
    ("q6_conv_backward_proof.toml", 'id = "Q6"', 'id = "Q5"', "question Q5 is already defined by course/questions/q5_"),
    ("q6_conv_backward_proof.toml", 'id = "Q6"', 'id = "Q6"\nid = "Q7"', "q6_conv_backward_proof.toml: not valid TOML"),
])
def test_a_broken_description_names_the_file_and_the_entry(description, name, old, new, message):
    _edit(description, name, old, new)
    with pytest.raises(RegistryError, match=re.escape(message)):
        load(description)


def test_an_autograded_cell_without_hidden_checks_is_refused(description):
    path = description / "questions" / "q1_layers.toml"
    text = path.read_text()
    start = text.index("[hidden.q1-relu-test]")
    path.write_text(text[:start])
    with pytest.raises(RegistryError, match=r"Q1: autograded cell q1-relu-test has no hidden checks"):
        load(description)
