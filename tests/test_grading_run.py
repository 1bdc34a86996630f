"""`make run` (course/run.py): the summary lines, skipping unchanged steps, failing loudly."""

from __future__ import annotations

import sys

import nbformat
import pytest

from course import paths, run
from hwlib.data import DATASETS


def _executed(path, outputs):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print('...')")
    cell.outputs = outputs
    nb.cells = [nbformat.v4.new_markdown_cell("RESULT in Markdown is not a result"), cell]
    nbformat.write(nb, path)
    return path


def test_summary_lines_are_the_printed_data_and_result_lines(tmp_path):
    path = _executed(tmp_path / "nb.ipynb", [
        nbformat.v4.new_output("stream", name="stdout",
                               text="Data: MNIST, the full set from /x\nepoch 1\n  RESULT Q3 ConvNet: test accuracy 0.99\n"
                                    "    (what it means on this data)\n(not after a RESULT line)\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "RESULT not printed"}, execution_count=1),
    ])
    assert run.summary_lines(path) == ["Data: MNIST, the full set from /x", "RESULT Q3 ConvNet: test accuracy 0.99",
                                       "(what it means on this data)"]


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "BUILD", tmp_path / "build")
    return tmp_path


def test_run_step_skips_unchanged_inputs_and_reruns_when_forced(repo):
    marker = repo / "ran"
    command = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    assert run.run_step("demo", [command], "digest-1", force=False).startswith("done in")
    assert run.run_step("demo", [command], "digest-1", force=False) == "unchanged, skipped"
    assert marker.read_text() == "x"
    run.run_step("demo", [command], "digest-2", force=False)      # inputs changed
    run.run_step("demo", [command], "digest-2", force=True)       # --force
    assert marker.read_text() == "xxx"


def test_a_failed_step_says_which_command_and_runs_again_next_time(repo):
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    with pytest.raises(run.StepFailed, match=r"demo failed \(exit 3\)"):
        run.run_step("demo", [failing], "digest", force=False)
    assert not (repo / "build" / ".demo.inputs").exists()


def test_main_exits_non_zero_on_an_unknown_step(capsys):
    with pytest.raises(SystemExit) as exc:
        run.main(["--only", "notebooks,teleport"])
    assert exc.value.code != 0 and "teleport" in capsys.readouterr().err


def test_a_dataset_arriving_in_the_data_root_changes_the_notebook_digest(tmp_path):
    notebook = _executed(tmp_path / "02_demo.ipynb", [])
    params = {"profile": "full", "data_root": str(tmp_path / "data"), "seed": 0}
    before = run.inputs_digest(notebook, params)
    assert run.inputs_digest(notebook, params) == before
    mnist = DATASETS["mnist"]
    folder = mnist.path(tmp_path / "data")
    folder.mkdir(parents=True)
    for remote in mnist.files:
        (folder / remote.name).write_bytes(b"")
    assert run.datasets_present(tmp_path / "data")["mnist"]
    assert run.inputs_digest(notebook, params) != before
