"""Every course notebook runs from a fresh kernel in its quick profile without an error."""

from __future__ import annotations

import pytest

from course.execute import execute, source_notebooks
from course.run import summary_lines

from .conftest import shared_data_root

NOTEBOOKS = source_notebooks()


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_quick(notebook, tmp_path):
    root = shared_data_root()
    params = {"profile": "quick", "seed": 0}
    if root is not None:
        params["data_root"] = str(root)
    execute(notebook, tmp_path / notebook.name, params, timeout=900, quiet=True)
    # `make run` summarises every run by the lines a notebook prints starting with Data: / RESULT.
    lines = summary_lines(tmp_path / notebook.name)
    if notebook.stem[:2] in ("02", "03", "04", "05"):
        assert any(line.startswith("Data:") for line in lines), f"{notebook.name} prints no 'Data:' line"
        assert any(line.startswith("RESULT") for line in lines), f"{notebook.name} prints no 'RESULT' line"


def test_notebooks_are_committed_clean():
    """No outputs or execution counts in the source notebooks (outputs are build products)."""
    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: strip outputs"


def test_notebook_sources_hold_no_control_characters():
    """A LaTeX command written in a non-raw Python string loses its backslash (``"\\approx"`` -> BEL +
    ``pprox``, ``"\\frac"`` -> form feed + ``rac``): MathJax shows garbage and xelatex stops."""
    import re

    import nbformat

    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for index, cell in enumerate(nb.cells):
            pattern = r"[\x00-\x09\x0b-\x1f]" if cell.cell_type == "markdown" else r"[\x00-\x08\x0b-\x1f]"
            bad = re.search(pattern, cell.source)   # a tab in Markdown is most likely a lost "\t" of \times
            assert bad is None, (f"{path.name}, cell {index}: control character {bad.group()!r} in "
                                 f"{cell.source[max(0, bad.start() - 30):bad.end() + 10]!r}")
