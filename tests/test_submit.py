"""hwlib/submit.py, the students' pre-submission check: locked cells (nbgrader's own checksum as the
reference), what is not done yet (stubs, answer cells as released) per question, the clean run explained
cell by cell (cells counted as JupyterLab counts them), the exit status and the zip (none while something
is left, unless --anyway). The release-based tests build the real student release once per session and
run one notebook in the quick profile."""

from __future__ import annotations

import copy
import re
import shutil
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


def test_the_clean_run_is_explained_cell_by_cell(homework, capfd):
    report, rerun = submit.check_folder(homework, checks=False, log=lambda *_: None)
    text = "\n".join(str(f) for f in report.findings)
    # Cells are counted as JupyterLab counts them: all of them, Markdown too, from 1; the heading above named.
    assert [str(f) for f in report.errors] == [
        "[FIX ] 01_first.ipynb cell 2 of 2 (Question 1): fails on a clean run (NameError: name 'x' is not defined) "
        "but ran when saved: it depends on state from a deleted, edited or re-ordered cell"], text
    assert "02_second.ipynb: the saved outputs come from cells run out of order (execution counts [3, 1])" in text
    assert ("02_second.ipynb cell 2 of 2: printed 'test accuracy 0.979' when saved, 'test accuracy 0.972' on a clean "
            "run (0.979 -> 0.972)") in text
    assert "[ok  ] 02_second.ipynb: ran clean" in text
    assert set(rerun) == {"01_first.ipynb", "02_second.ipynb"}
    # The kernels ran without their "Kernel is running over TCP without encryption" warning on the terminal.
    assert "without encryption" not in capfd.readouterr().err


def test_a_cell_never_run_that_fails_on_a_clean_run_is_an_error(homework):
    nb = nbformat.read(homework / "02_second.ipynb", as_version=4)
    nb.cells.append(_code("print(undefined_name)", "c-never"))          # never run when saved
    nb.cells.append(_code("print('fine')", "c-fine"))                    # never run, runs clean
    nbformat.write(nb, homework / "02_second.ipynb")
    report, _ = submit.check_folder(homework, checks=False, notebooks=("02_second",), log=lambda *_: None)
    text = "\n".join(str(f) for f in report.findings)
    assert ("[FIX ] 02_second.ipynb cell 3 of 4: fails on a clean run (NameError: name 'undefined_name' is not "
            "defined); it was not run when saved") in text, text
    assert "02_second.ipynb: 1 cell(s) of 4 were not run when saved (cells 4)" in text, text
    assert "cell 3 of 4: was not run" not in text and "ran clean" not in text, text


def test_cells_are_counted_as_jupyterlab_counts_them_with_the_heading_above():
    nb = {"cells": [nbformat.v4.new_markdown_cell("# Q1. Layers\nIntro."),
                    nbformat.v4.new_code_cell("# a comment, not a heading\nx = 1"),
                    nbformat.v4.new_markdown_cell("## 2. ReLU\n\n```\n# inside a fence: not a heading\n```"),
                    nbformat.v4.new_markdown_cell("Plain text."),
                    nbformat.v4.new_code_cell("y = 2")]}
    assert submit.cell_place(nb, 0, "a.ipynb") == "a.ipynb cell 1 of 5"
    assert submit.cell_place(nb, 1, "a.ipynb") == "a.ipynb cell 2 of 5 (Q1. Layers)"
    assert submit.cell_place(nb, 4, "a.ipynb") == "a.ipynb cell 5 of 5 (2. ReLU)"
    assert submit.notebook_question(nb) == ("Q1", "Q1. Layers")
    # Without a Q heading, the question comes from the nbgrader grade_ids.
    graded = {"cells": [_locked_markdown("Question text.", "q4-report-question")]}
    assert submit.notebook_question(graded)[0] == "Q4"
    assert submit.notebook_question({"cells": []}) == ("", "")


def _answer_cell(source: str, grade_id: str, points: float, cell_type: str = "markdown"):
    cell = (nbformat.v4.new_markdown_cell if cell_type == "markdown" else nbformat.v4.new_code_cell)(source)
    cell.metadata["nbgrader"] = {"grade": points is not None, "grade_id": grade_id, "locked": False,
                                 "schema_version": 3, "solution": True}
    if points is not None:
        cell.metadata["nbgrader"]["points"] = points
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    return cell


def test_answer_cells_left_as_released_are_found():
    nb = {"cells": [_answer_cell("YOUR ANSWER HERE", "q1-derivation", 5),
                    _answer_cell("# YOUR CODE HERE\nraise NotImplementedError()", "q1-code", None, "code"),
                    _answer_cell("YOUR ANSWER HERE", "q6-proof", 0),
                    _answer_cell("YOUR ANSWER HERE", "q2-report", 5),
                    _answer_cell("YOUR ANSWER HERE", "q3-report", 4)]}
    nb["cells"][3].source = "My answer: 97.2 %."                              # answered
    nb["cells"][4].source = "YOUR ANSWER HERE\n\nThe test accuracy is 98 %."   # answered, placeholder kept
    found = submit.unanswered_cells(nb)
    assert [(i, gid, optional) for i, gid, optional, _ in found] == [
        (0, "q1-derivation", False), (1, "q1-code", False), (2, "q6-proof", True), (4, "q3-report", False)]
    assert "as released" in found[0][3] and "raise NotImplementedError()" in found[1][3]
    assert "replace it by your answer" in found[3][3]


def test_stubs_still_in_hwlib_are_named_with_their_question(tmp_path):
    package = tmp_path / "hwlib"
    package.mkdir()
    (package / "__init__.py").write_text("")
    stub = 'raise NotImplementedError("{f} is yours to write (Q{q}: 5 points); check it with check(\'x\')")'
    (package / "layers.py").write_text(
        "def fc_forward(x):\n"
        "    # YOUR CODE HERE\n"
        f"    {stub.format(f='fc_forward', q=1)}\n"
        "    return out\n\n"
        "def relu_forward(x):\n"
        "    out = x * (x > 0)\n"
        "    return out\n"
        f"    {stub.format(f='relu_forward', q=1)}\n\n"          # dead code after the student's return
        "class Net:\n"
        "    def loss(self, X, y=None):\n"
        "        if y is None:\n"
        f"            {stub.format(f='Net.loss', q=2)}\n"
        f"        {stub.format(f='Net.loss', q=2)}\n\n"
        "def given(x):\n"
        "    raise NotImplementedError('cell_type lstm is not supported')\n")
    (package / "broken.py").write_text("def f(:\n")
    stubs, broken = submit.find_stubs(tmp_path)
    assert [(s.function, s.question, s.detail, s.path, s.line) for s in stubs] == [
        ("fc_forward", "Q1", "(Q1: 5 points)", "hwlib/layers.py", 3),
        ("Net.loss", "Q2", "(Q2: 5 points)", "hwlib/layers.py", 14)]
    assert [path for path, _ in broken] == ["hwlib/broken.py"] and "SyntaxError" in broken[0][1]


def test_problems_block_the_zip_and_a_clean_folder_gets_one(homework, capsys):
    assert submit.main([str(homework), "--no-checks"]) == 1
    assert "no zip written" in capsys.readouterr().out
    assert not (homework.parent / "hw9_submission.zip").exists()
    # --anyway: the zip as it is, the problems still listed, the exit status still 1.
    assert submit.main([str(homework), "--no-checks", "--anyway"]) == 1
    out = capsys.readouterr().out
    assert "fails on a clean run (NameError: name 'x' is not defined)" in out and "--anyway: the zip is written" in out
    assert (homework.parent / "hw9_submission.zip").is_file()
    (homework.parent / "hw9_submission.zip").unlink()
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


# --- the real release: Q1 written and nothing else; everything written --------------------------------

QUICK = re.compile(r'^profile = "full"', re.MULTILINE)


def _student(tmp_path_factory, tmp_path, monkeypatch, questions: set | None = None, answer: bool = False):
    """The release as a student has it with the tasks of ``questions`` (None: all) written (the reference's
    code for their functions, the stubs elsewhere), every answer cell answered when ``answer``, the notebooks set
    to the quick profile and the embedded data (no data root)."""
    from course.paths import HWLIB
    from course.paths import REPO as KIT
    from course.registry import load as load_registry
    from grading.release.strip import strip_source, stub_messages, student_modules

    from .test_grading_release import shared_release

    registry = load_registry()
    folder = tmp_path / "hw4"
    shutil.copytree(shared_release(tmp_path_factory)["folder"], folder)
    done = {f for task in registry.tasks if questions is None or task.question in questions for f in task.functions}
    messages = stub_messages(registry)
    for path in student_modules(HWLIB):
        (folder / path.relative_to(KIT)).write_text(strip_source(path.read_text(), str(path), messages,
                                                                 set(registry.given) | done))
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert params and QUICK.search(params[0].source), path.name
        params[0].source = QUICK.sub('profile = "quick"', params[0].source, count=1)
        for cell in nb.cells:
            if answer and cell.metadata.get("nbgrader", {}).get("solution"):
                cell.source = "My answer, with a derivation." if cell.cell_type == "markdown" else "answer = 1"
        nbformat.write(nb, path)
    monkeypatch.setenv("HWLIB_DATA_ROOT", str(tmp_path / "no-data"))
    return folder, registry


def _sections(out: str) -> dict:
    """The report's lines per question: {"Q1": [lines], ..., "": the lines before the first question}."""
    sections, current = {"": []}, ""
    for line in out.splitlines():
        match = re.match(r"^(Q\d+)\b.*\((\d\d_\w+\.ipynb)\): ", line)
        if match:
            current = match.group(1)
            sections[current] = []
        elif line.strip():
            sections.setdefault(current, []).append(line.strip())
    return sections


@pytest.mark.slow
def test_a_release_with_q1_written_lists_what_is_left_per_question_and_writes_no_zip(
        tmp_path_factory, tmp_path, monkeypatch, capfd):
    folder, registry = _student(tmp_path_factory, tmp_path, monkeypatch, {"Q1"})
    assert submit.main([str(folder), "--notebooks", "01_layers"]) == 1
    out, err = capfd.readouterr()
    assert not (tmp_path / "hw4_submission.zip").exists()
    assert "no zip written" in out and "--anyway" in out
    assert "without encryption" not in err, err[-2000:]
    sections = _sections(out)
    assert set(sections) >= {"Q1", "Q2", "Q3", "Q4", "Q5", "Q6"}, out

    # Every function of a task not written is named under its question; Q1's are not named at all.
    for task in registry.tasks:
        for function in task.functions:
            named = [q for q, lines in sections.items() for line in lines
                     if line.startswith(f"[FIX ] {function} (hwlib/") and "not written yet" in line]
            assert named == ([] if task.question == "Q1" else [task.question]), (function, out)

    # Every answer cell still as released is named where JupyterLab shows it, under its notebook's question
    # (the grade_id says which): a FIX, or a LOOK for a 0-point (optional or extra-credit) one.
    answers = 0
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("solution"):
                continue
            answers += 1
            question = "Q" + str(int(re.match(r"q(\d+)-", meta["grade_id"]).group(1)))
            mark = "[FIX ]" if meta.get("points") else "[LOOK]"
            expected = f"{mark} {path.name} cell {index + 1} of {len(nb.cells)} "
            assert any(line.startswith(expected) and meta["grade_id"] in line and "not answered yet" in line
                       for line in sections[question]), (expected, meta["grade_id"], sections[question])
    assert answers >= 6

    # A cell of Q1's notebook stopped by a stub of Q2 (never run when saved: an error, not "output"), at the
    # place JupyterLab shows (all cells counted from 1, the heading above), listed under Q2.
    nb = nbformat.read(folder / "01_layers.ipynb", as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "= softmax_loss(" in c.source)
    heading = next(line.lstrip("#").strip() for c in reversed(nb.cells[:index]) if c.cell_type == "markdown"
                   for line in reversed(c.source.splitlines()) if line.startswith("#"))
    expected = (f"[FIX ] 01_layers.ipynb cell {index + 1} of {len(nb.cells)} ({heading}): fails on a clean run "
                "(NotImplementedError: softmax_loss is yours to write (Q2")
    assert any(line.startswith(expected) for line in sections["Q2"]), (expected, sections["Q2"])
    assert "a clean run gives it output" not in out and "01_layers.ipynb: ran clean" not in out
    assert "NOT IMPLEMENTED yet" not in out         # the public checks' stubs are the functions named above


@pytest.mark.slow
def test_a_complete_homework_exits_0_with_the_zip(tmp_path_factory, tmp_path, monkeypatch, capsys):
    folder, _ = _student(tmp_path_factory, tmp_path, monkeypatch, answer=True)
    assert submit.main([str(folder), "--notebooks", "01_layers", "--no-checks"]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "[FIX ]" not in out and "01_layers.ipynb: ran clean" in out, out
    with zipfile.ZipFile(tmp_path / "hw4_submission.zip") as zf:
        names = set(zf.namelist())
        assert {f"hw4/{p.name}" for p in folder.glob("[0-9][0-9]_*.ipynb")} | {"hw4/hwlib/layers.py"} <= names
        rerun = nbformat.reads(zf.read("hw4/01_layers.ipynb").decode(), as_version=4)
    outputs = [o for c in rerun.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.output_type == "error"]

