"""hwlib/submit.py, the students' pre-submission check: locked cells (nbgrader's own checksum as the
reference), the clean run explained cell by cell, and the zip."""

from __future__ import annotations

import copy
import zipfile

import nbformat
import pytest
from nbgrader.utils import compute_checksum

from hwlib import submit

from .conftest import REPO


def _locked_markdown(source: str, grade_id: str):
    cell = nbformat.v4.new_markdown_cell(source)
    cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": True, "schema_version": 3,
                                 "solution": False}
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    return cell


def _code(source: str, cell_id: str, count=None, text=None, error=None):
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    cell.execution_count = count
    if text is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    if error is not None:
        cell.outputs = [nbformat.v4.new_output("error", ename=error[0], evalue=error[1], traceback=[])]
    return cell


@pytest.fixture
def homework(tmp_path):
    """A homework folder as a student saves it: one notebook whose defining cell was deleted after it
    ran (the saved output survives), one whose numbers depend on hidden state, a tiny hwlib."""
    folder = tmp_path / "hw9"
    (folder / "hwlib" / "__pycache__").mkdir(parents=True)
    (folder / "hwlib" / "__init__.py").write_text('"""A stand-in package."""\n')
    (folder / "hwlib" / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    first = nbformat.v4.new_notebook()
    first.cells = [_locked_markdown("## Question 1\nAnswer below.", "q1-question"),
                   _code("print('value', x + 1)", "c-print", count=2, text="value 42\n")]   # x came from a deleted cell
    second = nbformat.v4.new_notebook()
    second.cells = [_code("acc = 0.972", "c-acc", count=3),
                    _code("print(f'test accuracy {acc:.3f}')", "c-show", count=1, text="test accuracy 0.979\n")]
    nbformat.write(first, folder / "01_first.ipynb")
    nbformat.write(second, folder / "02_second.ipynb")
    return folder


def test_the_checksum_is_nbgraders_on_every_graded_or_locked_cell_of_the_course():
    cells = [c for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
             for c in nbformat.read(path, as_version=4).cells if "nbgrader" in c.metadata]
    assert len(cells) > 20
    for cell in cells:
        assert submit._checksum(cell) == compute_checksum(cell), cell.metadata["nbgrader"]["grade_id"]


def test_an_edited_locked_cell_is_named(homework):
    nb = nbformat.read(homework / "01_first.ipynb", as_version=4)
    assert submit.locked_cell_edits(nb) == []
    nb.cells[0].source += "\nMy answer, typed into the question."
    assert submit.locked_cell_edits(nb) == ["q1-question"]


def test_the_clean_run_is_explained_cell_by_cell(homework):
    report, rerun = submit.check_folder(homework, checks=False, log=lambda *_: None)
    text = "\n".join(str(f) for f in report.findings)
    assert [str(f) for f in report.errors] == [
        "[FIX ] 01_first.ipynb cell 1: fails on a clean run (NameError: name 'x' is not defined) but ran when "
        "saved: it depends on state from a deleted, edited or re-ordered cell"], text
    assert "02_second.ipynb: the saved outputs come from cells run out of order (execution counts [3, 1])" in text
    assert ("02_second.ipynb cell 2: printed 'test accuracy 0.979' when saved, 'test accuracy 0.972' on a clean run "
            "(0.979 -> 0.972)") in text
    assert "[ok  ] 02_second.ipynb: ran clean" in text
    assert set(rerun) == {"01_first.ipynb", "02_second.ipynb"}


def test_problems_block_the_zip_and_a_clean_folder_gets_one(homework, capsys):
    assert submit.main([str(homework), "--no-checks"]) == 1
    assert "no zip written" in capsys.readouterr().out
    assert not (homework.parent / "hw9_submission.zip").exists()
    nb = nbformat.read(homework / "01_first.ipynb", as_version=4)
    nb.cells.insert(1, _code("x = 41", "c-def", count=1))
    nbformat.write(nb, homework / "01_first.ipynb")
    assert submit.main([str(homework), "--no-checks"]) == 0
    archive = homework.parent / "hw9_submission.zip"
    with zipfile.ZipFile(archive) as zf:
        names = sorted(zf.namelist())
        assert names == ["hw9/01_first.ipynb", "hw9/02_second.ipynb", "hw9/hwlib/__init__.py"]
        rerun = nbformat.reads(zf.read("hw9/02_second.ipynb").decode(), as_version=4)
    # The zip holds the clean run, not the stale saved output.
    assert rerun.cells[1].outputs[0]["text"] == "test accuracy 0.972\n"


def test_compare_runs_reports_nothing_when_the_outputs_are_reproduced():
    nb = {"cells": [_code("print(1)", "a", count=1, text="1\n"), _code("print(2)", "b", count=2, text="2\n")]}
    assert submit.compare_runs(nb, copy.deepcopy(nb), "x.ipynb") == []


def test_a_folder_without_notebooks_or_hwlib_says_what_to_do(tmp_path):
    report, _ = submit.check_folder(tmp_path, checks=False, log=lambda *_: None)
    assert "run this in your homework folder" in str(report.errors[0])
    (tmp_path / "01_a.ipynb").write_text("{not json")
    report, _ = submit.check_folder(tmp_path, checks=False, log=lambda *_: None)
    messages = [str(f) for f in report.errors]
    assert any("hwlib package is missing" in m for m in messages)
    assert any("01_a.ipynb: cannot be read as a notebook" in m for m in messages)
